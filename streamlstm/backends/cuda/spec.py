"""Compile-time constants of one CUDA kernel set (docs/spec.md section 1).

The kernels (``forward.py``, ``window.py``, ``grad.py``, ``optimizer.py``) and
their device functions (``layers.py``) are module-level functions that read the
capitalised names below as globals.  ``kernels.py`` compiles them once per
(dtype, cell, rows per thread, norm lanes), each time over a copy of its
module's namespace in which these names hold that set's values (what a
closure's cells would hold), so Numba sees constants:

* ``DT``, ``ZERO``, ``ONE``, ``TWO``, ``NAN``: the model dtype and numbers in
  it.  A bare ``1.0`` is float64 and would promote float32 arithmetic, so a
  float32 model computes in float32 throughout only with these.
* ``LSTM``, ``G``, ``S``: the cell (LSTM/GRU branches are pruned at compile
  time), its gates per unit and its state vectors per layer.
* ``R``, ``R4``: rows per thread of the register-blocked matrix-vector products
  (``config.ROWS_PER_THREAD``) and 4R, the sizes of their local arrays.
* ``LANES``: lanes of the clip-norm reduction (``config.NORM_LANES``), the size
  of a shared array.

Here they are ``None``: a function compiled without its constants fails to type
at once instead of computing in some default dtype.
"""
import numpy as np

DT = ZERO = ONE = TWO = NAN = None
LSTM = G = S = None
R = R4 = None
LANES = None

NAMES = ("DT", "ZERO", "ONE", "TWO", "NAN", "LSTM", "G", "S", "R", "R4", "LANES")


def constants(dtype: str, cell: str, rows_per_thread: int, norm_lanes: int) -> dict:
    """The values of ``NAMES`` for one kernel set."""
    dt = {"float32": np.float32, "float64": np.float64}[dtype]
    lstm = {"lstm": True, "gru": False}[cell]
    r = int(rows_per_thread)
    return {"DT": dt, "ZERO": dt(0.0), "ONE": dt(1.0), "TWO": dt(2.0), "NAN": dt(np.nan),
            "LSTM": lstm, "G": 4 if lstm else 3, "S": 2 if lstm else 1,
            "R": r, "R4": 4 * r, "LANES": int(norm_lanes)}
