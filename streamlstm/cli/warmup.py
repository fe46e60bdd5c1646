"""``streamlstm warmup``: compile the kernels ahead of time.

The first run of a model configuration compiles its Numba kernels and caches
them; ``warmup`` compiles every variant a run or a River forecaster may take
(about a minute per cell and dtype on two cores, in two processes) now - in a
container build step, say - so the first real run starts in seconds.  The cache lives where Numba puts it (``__pycache__`` beside the
package, or ``NUMBA_CACHE_DIR``): keep that directory in the image.
"""
from __future__ import annotations

import click

from streamlstm.backends import compile_note
from streamlstm.forecast.multiseries import MultiSeriesForecaster
from streamlstm.forecast.warm import compile_every
from streamlstm.stream.runner import compile_kernels as compile_stream_kernels


@click.command()
@click.option("--cell", type=click.Choice(["lstm", "gru"]), multiple=True,
              help="Cell(s) to compile, e.g. --cell lstm --cell gru  [default: lstm]")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), multiple=True,
              help="Float type(s) to compile, e.g. --dtype float32  [default: float64]")
@click.option("--backend", type=click.Choice(["cpu", "cuda", "reference"]), default="cpu",
              show_default=True, help="Backend whose kernels to compile, e.g. --backend cuda.")
def warmup(cell, dtype, backend):
    """Compile (and cache) the kernels a run will use, e.g.
    `streamlstm warmup --cell lstm --cell gru --dtype float32`."""
    configs = [(c, d) for c in cell or ("lstm",) for d in dtype or ("float64",)]
    names = ", ".join(f"{c}/{d}" for c, d in configs)
    # with and without feature columns: the two input shapes a run can have (and
    # the prediction intervals' kernels, on by default in a run); all in one call,
    # so that one second process takes half of every configuration
    models = [MultiSeriesForecaster(cell=c, dtype=d, backend=backend, features=f, coverage=0.9)
              for c, d in configs for f in (None, ["feature"])]
    click.echo(f"{names} on {backend}: compiling ...")
    with compile_note.quiet():
        secs = compile_every(models)
    click.echo(f"{names} on {backend}: compiled and cached ({secs:.1f} s)")
    compile_stream_kernels()        # the run's own (time order, spacing): CPU, any model
