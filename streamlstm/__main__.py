"""``python -m streamlstm`` = the ``streamlstm`` command."""
from .cli import main

main(prog_name="streamlstm")
