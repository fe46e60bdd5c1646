"""The contract between ``OnlineRNN`` (the checked public wrapper) and a backend
(the launcher that owns the arrays and runs the kernels), stumpy-style.

``OnlineRNN`` validates every argument, converts it to C-contiguous arrays of the
model dtype and only then calls the backend, so backends never see bad input and
never raise user errors.  A backend:

* is constructed as ``Backend(layout, k1, k2, hyper, dtype, arrays)`` where
  ``arrays`` holds the host arrays named in ``layout.ALL_ARRAYS`` (it takes
  ownership; the CUDA backend copies them to the device once);
* ``step_calls(series, U, Y, offsets) -> yhat`` runs C consecutive ``step`` calls
  (docs/spec.md section 3/4): call ``c`` steps rows ``offsets[c]:offsets[c+1]``, i.e. the
  slots ``series[a:b]`` (int64, distinct within a call) on inputs ``U[a:b]``
  (R, I) with targets ``Y[a:b]`` (R, O, NaN = missing), each call updating the
  weights once if one of its series is due.  Returns ``yhat`` (R, O) on the host,
  every row computed with the weights in force before its own call's update;
* ``resize(n_series)`` grows the slots (old state kept, new slots fresh);
* ``host_arrays()`` returns the current arrays as host NumPy arrays (all of
  ``ALL_ARRAYS``; for checkpoints and inspection; callers do not mutate them);
* ``load_arrays(arrays)`` replaces every array (used by ``load_state_dict``/``load``);
* ``forward(state, U) -> (yhat, new_state)``: one step of the stack + head for
  B independent rows from the given states (B, L, S, H) with the current weights;
  pure (nothing in the model changes).  Used for forecasts and multi-step rollouts;
* ``forward_live(series, U) -> yhat``: ``forward(get_states(series), U)[0]`` (the
  CPU backend copies the states once instead of twice: a forecast's hot path);
* ``get_states(series) -> (B, L, S, H)`` host copy of the listed slots' live state;
* ``host_counts()`` returns the per-series step counts (N,) int64 on the host,
  cheaply (the CUDA backend mirrors them on the host), for ``step_rows`` grouping.

Determinism: results must not depend on the thread count, on the order in which
a call lists its slots, nor on which other series share a call (a series' forward
arithmetic is its own; gradients are summed over due series in ascending slot
order, in fixed-size chunks).  That is what makes ``run`` = repeated ``step``,
resume = uninterrupted and micro-batched = row-by-row hold bit for bit.
"""
from __future__ import annotations

from streamlstm.errors import InputError

BACKENDS = ("reference", "cpu", "cuda")


def backend_class(name: str):
    """Import lazily so that e.g. ``backend="reference"`` never compiles Numba code."""
    if name == "reference":
        from streamlstm.backends.reference import ReferenceBackend
        return ReferenceBackend
    if name == "cpu":
        from streamlstm.backends.cpu.launcher import CPUBackend
        return CPUBackend
    if name == "cuda":
        from streamlstm.backends.cuda.launcher import CUDABackend
        return CUDABackend
    raise InputError(f"unknown backend {name!r}; choose one of {', '.join(map(repr, BACKENDS))}")
