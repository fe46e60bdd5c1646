"""The ``streamlstm`` command line: one click group.

``run`` (``cli/run.py``) forecasts a Parquet/CSV or Kafka stream of long-format
rows, learning online; ``inspect`` (``cli/inspect.py``) describes a checkpoint;
``warmup`` (``cli/warmup.py``) compiles the kernels ahead of time.
"""
from __future__ import annotations

import click

from streamlstm import __version__
from streamlstm.cli.inspect import inspect
from streamlstm.cli.run import run
from streamlstm.cli.warmup import warmup


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version=__version__, prog_name="streamlstm")
def main():
    """Online forecasting with stateful LSTM/GRU networks.

    Every row of a stream is forecast before its value is seen, then learned
    from: `streamlstm run --source sensors.parquet`.
    """


main.add_command(run)
main.add_command(inspect)
main.add_command(warmup)

if __name__ == "__main__":  # python -m streamlstm.cli.app
    main()
