"""CUDA backend tests.  They run in their own process (tests/run.sh):

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -p no:cacheprovider tests/cuda -o addopts="-ra"

under Numba's CUDA simulator (each CUDA thread a Python thread: slow, so the
models are tiny), or unchanged on a machine with a GPU, where the same tests
then check the compiled kernels.  The launch tunables are patched tiny so that
even three series span several blocks, grid-stride rounds and chunks.
"""
import os
import sys

import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

if SIMULATOR:
    # The simulator's block manager busy-polls its threads; a short GIL switch
    # interval makes each launch ~5x faster.  Only this process is affected.
    sys.setswitchinterval(1e-4)


def pytest_configure(config):
    from numba import cuda

    if not cuda.is_available():
        raise pytest.UsageError(
            "tests/cuda need a CUDA GPU or Numba's simulator: run them as "
            "NUMBA_ENABLE_CUDASIM=1 python -m pytest -p no:cacheprovider tests/cuda "
            "(see tests/run.sh)")


TINY = {
    "THREADS_PER_BLOCK": 4,      # a block = 2 series at H = 4: several blocks per call
    "ELEMENTWISE_THREADS": 8,
    "MAX_BLOCKS": 2,             # grid-stride loops take several rounds
    "CHUNK_BYTES": 1,            # chunks of GRAD_SEGMENT due series
    "GRAD_SEGMENT": 2,           # several gradient segments per update
    "ROWS_PER_THREAD": 2,        # register blocking with a partial last group
}


@pytest.fixture(autouse=True)
def tiny_launch_config(monkeypatch):
    """Tiny tunables for every test (read when a backend is built)."""
    from streamlstm.backends.cuda import config as cfg

    for name, value in TINY.items():
        monkeypatch.setattr(cfg, name, value)
    return cfg
