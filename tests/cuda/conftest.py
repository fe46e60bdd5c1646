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


def thread_safe_shared_arrays():
    """Make the simulator's ``cuda.shared.array`` thread-safe.

    Numba's simulator (numba/cuda/simulator/kernelapi.py, ``FakeCUDAShared.array``)
    gives the threads of a launch one array per source line by check-then-set
    on a dict, without a lock: ``get``; if absent, ``np.empty`` and store.  A
    thread switch between the two lets several threads of one block each get
    (and keep) an array of their own, so a value written before a syncthreads
    is not the one read after it: ``optimizer.update_prepare`` then sums
    uninitialised clip-norm lanes, a wrong clip coefficient, at random.  A GPU
    has one array per block.  The same lookup, under a lock (its allocation
    still by kernelapi's ``np.empty``, which test_cuda_backend.py slows down to
    check this)."""
    import threading

    from numba.core import types
    from numba.cuda.simulator import kernelapi

    original = kernelapi.FakeCUDAShared.array
    if getattr(original, "thread_safe", False):
        return
    lock = threading.Lock()

    def array(self, shape, dtype):
        if shape == 0:                  # dynamic shared memory: one buffer already
            return original(self, shape, dtype)
        frame = sys._getframe(1)        # the caller's line, as the original keys it
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                if isinstance(dtype, types.Type):
                    dtype = kernelapi.numpy_support.as_dtype(dtype)
                res = self._allocations[caller] = kernelapi.np.empty(shape, dtype)
        return res

    array.thread_safe = True
    kernelapi.FakeCUDAShared.array = array


if SIMULATOR:
    # The simulator's block manager busy-polls its threads; a short GIL switch
    # interval makes each launch ~5x faster.  Only this process is affected.
    sys.setswitchinterval(1e-4)
    thread_safe_shared_arrays()


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
