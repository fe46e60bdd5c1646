"""``python -m streamlstm`` = the ``streamlstm`` command."""
from streamlstm.cli.app import main

if __name__ == "__main__":
    main(prog_name="streamlstm")
