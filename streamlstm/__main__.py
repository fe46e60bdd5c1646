"""``python -m streamlstm`` = the ``streamlstm`` command."""
from .cli import main

if __name__ == "__main__":
    main(prog_name="streamlstm")
