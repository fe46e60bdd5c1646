"""The CUDA backend on a machine without a GPU (the main suite runs without
Numba's simulator): a clear one-line error instead of a Numba traceback, and
kernels that still compile for a real GPU when the CUDA compiler is installed.
The backend's behaviour itself is tested under the simulator in tests/cuda."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, streamlstm
try:
    streamlstm.OnlineRNN(n_inputs=1, hidden_size=4, backend="cuda")
except streamlstm.BackendUnavailableError as exc:
    print(repr(str(exc)), exc.__cause__ is None,
          exc.__context__ is None or exc.__suppress_context__)
    sys.exit(3)
sys.exit(0)
"""


def _env():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""   # no GPU, even on a machine that has one
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_cuda_backend_without_gpu_fails_with_one_line_error():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       env=_env(), cwd=ROOT, timeout=120)
    assert r.returncode == 3, (r.stdout, r.stderr)
    msg, no_cause, no_context = r.stdout.strip().rsplit(" ", 2)
    msg = eval(msg)  # noqa: S307 - our own repr()
    assert "\n" not in msg
    assert msg.startswith("backend='cuda' needs an NVIDIA GPU")
    assert "backend='cpu'" in msg and "NUMBA_ENABLE_CUDASIM=1" in msg
    assert no_cause == "True" and no_context == "True"   # no chained Numba traceback


def test_uncaught_error_shows_no_numba_traceback():
    code = "import streamlstm; streamlstm.OnlineRNN(n_inputs=1, hidden_size=4, backend='cuda')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=_env(), cwd=ROOT, timeout=120)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("streamlstm.errors.BackendUnavailableError: backend='cuda' needs")
    assert "CudaSupportError" not in r.stderr and "During handling" not in r.stderr


def _nvvm_available():
    try:
        from numba.cuda.cudadrv import nvvm
        return nvvm.is_available()
    except Exception:
        return False


@pytest.mark.skipif(not _nvvm_available(), reason="the CUDA compiler (NVVM) is not installed here")
@pytest.mark.parametrize("dtype,cell", [("float32", "lstm"), ("float64", "gru")])
def test_kernels_compile_for_a_real_gpu(dtype, cell):
    """The simulator runs kernels as Python and checks no types; compiling every
    kernel to PTX for sm_90 (H100/H200) with its explicit signature does.  The
    float32 forward/backward kernels must not contain a single float64 op, and
    the register-blocked accumulators must live in registers (no local memory)."""
    from numba import cuda

    from streamlstm.backends.cuda.kernels import build

    for name, (fn, signature) in build(dtype, cell, 256, 4).items():
        ptx, _ = cuda.compile_ptx(fn, signature, cc=(9, 0))
        assert ".entry" in ptx, name
        if dtype == "float32" and name in ("step_forward", "window_forward", "window_backward",
                                           "grad_partial",
                                           "grad_accumulate", "window_move"):
            assert ".f64" not in ptx, f"{name} computes in float64 in a float32 model"
        assert "ld.local" not in ptx and "st.local" not in ptx, f"{name} uses local memory"
