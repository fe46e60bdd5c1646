"""The ``streamlstm`` command line (click): thin commands over the library."""
