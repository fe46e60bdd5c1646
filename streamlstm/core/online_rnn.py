"""``OnlineRNN``: the checked public wrapper over a backend (docs/spec.md section 5).

Everything a user passes is validated here, once, before any backend sees it:
a rejected call raises an ``InputError`` (a ``ValueError``) naming the argument,
the position and the value, and leaves the model exactly as it was.
"""
from __future__ import annotations

import numbers
from math import isfinite, isinf

import numpy as np

from streamlstm.core import checkpoint as _ckpt
from streamlstm.core.microbatch import group_rows
from streamlstm.backends import BACKENDS, backend_class
from streamlstm.core.checks import (all_finite, as_real_array, check_int,
                                     no_inf, refuse_nonfinite)
from streamlstm.errors import CheckpointError, InputError
from streamlstm.core.layout import (ALL_ARRAYS, CELLS, DTYPES, Layout,
                     new_model_arrays, new_series_arrays)
from streamlstm.core.optim import SGD, Adam, optimizer_from_config

CHECKPOINT_KIND = "OnlineRNN"
_ONE_CALL = np.array([0, 1], dtype=np.int64)     # one row = one call
_INT64 = np.dtype(np.int64)
_ONE_BY_ONE = (1, 1)
# Slot lists up to this long are checked in Python on the fast path (set/min/max
# of a list beat np.unique's sort and allocations by far); longer ones take the
# full checks, whose cost is then small per row.
_FAST_SLOTS = 64


class OnlineRNN:
    """A stateful stacked LSTM/GRU with a linear head that forecasts and learns
    online, one step at a time, for ``n_series`` series sharing its weights.

    Parameters
    ----------
    n_inputs, hidden_size, n_outputs, n_series
        I, H, O and N of docs/spec.md section 1.
    cell
        ``"lstm"`` (gates i, f, g, o) or ``"gru"`` (r, z, n), as PyTorch.
    n_layers
        Stacked recurrent layers (layer k > 0 reads layer k-1's new h).
    k1, k2
        Truncated BPTT: update every ``k1`` steps of a series, back-propagating
        through its last ``k2`` steps (``1 <= k1 <= k2``).
    optimizer
        ``streamlstm.SGD`` or ``streamlstm.Adam`` (default ``Adam(lr=1e-3)``).
    clip_norm
        Clip the global gradient norm as ``torch.nn.utils.clip_grad_norm_``.
    dtype
        ``"float64"`` or ``"float32"``.
    backend
        ``"reference"`` (NumPy), ``"cpu"`` (Numba) or ``"cuda"`` (Numba CUDA).
    seed
        Seeds the initial weights (the same on every backend and dtype).

    Examples
    --------
    >>> import numpy as np, streamlstm
    >>> net = streamlstm.OnlineRNN(n_inputs=1, hidden_size=8, n_outputs=1, n_series=2,
    ...                            k1=4, k2=8, backend="reference", seed=0)
    >>> U = np.sin(np.arange(40.0)).reshape(20, 2, 1)
    >>> Y = np.roll(U, -1, axis=0)
    >>> net.run(U, Y).shape
    (20, 2, 1)
    >>> net.step(U[0], Y[0], series=[1, 0]).shape
    (2, 1)
    """

    def __init__(self, n_inputs, hidden_size, n_outputs=1, n_series=1, cell="lstm", n_layers=1,
                 k1=16, k2=16, optimizer=None, clip_norm=None, dtype="float64",
                 backend="cpu", seed=0):
        self.n_inputs = check_int("n_inputs", n_inputs, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.n_outputs = check_int("n_outputs", n_outputs, 1)
        self.n_series = check_int("n_series", n_series, 0)
        if cell not in CELLS:
            raise InputError(f"cell={cell!r} is unknown; choose 'lstm' or 'gru'")
        self.cell = cell
        self.n_layers = check_int("n_layers", n_layers, 1)
        self.k1 = check_int("k1", k1, 1)
        self.k2 = check_int("k2", k2, 1)
        if self.k1 > self.k2:
            raise InputError(f"k1={k1} > k2={k2}: truncated BPTT needs 1 <= k1 <= k2; "
                             f"raise k2 to at least {k1} or lower k1")
        if optimizer is None:
            optimizer = Adam(lr=1e-3)
        if not isinstance(optimizer, (SGD, Adam)):
            raise InputError(f"optimizer must be streamlstm.SGD(...) or streamlstm.Adam(...), "
                             f"got {optimizer!r}")
        self.optimizer = optimizer
        if clip_norm is not None:
            if isinstance(clip_norm, bool) or not isinstance(clip_norm, numbers.Real) \
                    or not np.isfinite(clip_norm) or clip_norm <= 0:
                raise InputError(f"clip_norm={clip_norm!r} must be a positive number or None")
        self.clip_norm = clip_norm
        if dtype not in DTYPES:
            raise InputError(f"dtype={dtype!r} is unknown; choose 'float32' or 'float64'")
        self.dtype = dtype
        if backend not in BACKENDS:
            raise InputError(f"backend={backend!r} is unknown; choose one of "
                             f"{', '.join(map(repr, BACKENDS))}")
        self.backend = backend
        self.seed = check_int("seed", seed, 0)
        self.layout = Layout(cell, self.n_inputs, self.hidden_size, self.n_outputs, self.n_layers)
        arrays = new_model_arrays(self.layout, self.seed, self.numpy_dtype)
        arrays.update(new_series_arrays(self.layout, self.n_series, self.k2, self.numpy_dtype))
        self._impl = self._make_impl(arrays)
        self._dt = np.dtype(self.numpy_dtype)
        self._one_value = self.n_inputs == 1 and self.n_outputs == 1
        self._fast = {}      # per-shape arrays the fast path reuses (never written by backends)
        self._all = np.arange(self.n_series, dtype=np.int64)     # step()'s series=None

    # -- internals ----------------------------------------------------------------------
    def _make_impl(self, arrays):
        cls = backend_class(self.backend)
        return cls(self.layout, self.k1, self.k2, self.optimizer.hyper(self.clip_norm),
                   self.numpy_dtype, arrays)

    # -- the fast path of the checked calls ---------------------------------------------
    # A stream calls step() once per arrival: the full checks below (np.unique,
    # argwhere, issubdtype...) cost several times the kernel on one row.  So the
    # checked calls first ask, in a few hundred nanoseconds, whether the input is
    # already exactly what the backend takes (C-contiguous arrays of the model's
    # dtype and shape, finite u, y free of inf, distinct in-range int64 slots); if
    # so they pass it on as the full checks would have (np.ascontiguousarray returns
    # such an array itself, so the backend sees the same bits).  Anything else goes
    # through the full checks, which raise the errors: no message changes.
    def _cached(self, key, make):
        a = self._fast.get(key)
        if a is None:
            if len(self._fast) > 64:
                self._fast.clear()
            a = self._fast[key] = make()
        return a

    def _fast_series(self, series, distinct=True):
        """``series`` as the int64 slots to step when it certainly passes
        ``_check_series`` (and has no repeats, with ``distinct``), else None."""
        n_series = self.n_series
        if series is None:
            return self._cached(("all", n_series), lambda: np.arange(n_series, dtype=np.int64))
        if not (type(series) is np.ndarray and series.dtype is _INT64 and series.ndim == 1
                and series.flags.c_contiguous):
            return None
        n = series.size
        if n == 1:
            return series if 0 <= series.item() < n_series else None
        if n == 0:
            return None
        if n <= _FAST_SLOTS:
            vals = series.tolist()
            lo, hi = min(vals), max(vals)
            ok = not distinct or len(set(vals)) == n
        elif not distinct:
            lo, hi, ok = series.min(), series.max(), True
        else:
            return None
        return series if ok and lo >= 0 and hi < n_series else None

    def _fast_rows(self, u, y, R):
        """``(u, y)`` when they certainly pass ``_check_rows`` unchanged (``y``
        None becomes NaN rows), else None."""
        dt = self._dt
        # is_ready_array and all_finite / no_inf, written out for the one-value
        # arrays of a one-series stream (each call saved is ~0.1 us per step).
        # One value each: numpy flags every one-element array C-contiguous, so
        # the shape settles the layout too.
        if R == 1 and self._one_value:
            if not (type(u) is np.ndarray and u.dtype is dt and u.shape == _ONE_BY_ONE
                    and isfinite(u.item())):
                return None
            if y is None:
                return u, self._cached(("nan", 1), lambda: np.full((1, 1), np.nan, dtype=dt))
            if not (type(y) is np.ndarray and y.dtype is dt and y.shape == _ONE_BY_ONE
                    and not isinf(y.item())):
                return None
            return u, y
        if not (type(u) is np.ndarray and u.dtype is dt and u.shape == (R, self.n_inputs)
                and u.flags.c_contiguous
                and (isfinite(u.item()) if u.size == 1 else all_finite(u))):
            return None
        if y is None:
            O = self.n_outputs
            return u, self._cached(("nan", R), lambda: np.full((R, O), np.nan, dtype=dt))
        if not (type(y) is np.ndarray and y.dtype is dt and y.shape == (R, self.n_outputs)
                and y.flags.c_contiguous and (not isinf(y.item()) if y.size == 1 else no_inf(y))):
            return None
        return u, y

    def _one_call(self, R):
        """Offsets (2,) of one backend call of ``R`` rows."""
        return _ONE_CALL if R == 1 else self._cached(("call", R), lambda: np.array(
            [0, R], dtype=np.int64))

    def _check_series(self, series, name="series"):
        if series is None:
            return np.arange(self.n_series, dtype=np.int64)
        s = np.asarray(series)
        if s.ndim == 0:
            s = s.reshape(1)
        if s.ndim != 1:
            raise InputError(f"{name} must be a 1-D list of slot indices, got shape {s.shape}")
        if s.size and (s.dtype == bool or not np.issubdtype(s.dtype, np.integer)):
            if np.issubdtype(s.dtype, np.floating) and np.all(np.isfinite(s)) and np.all(s == np.round(s)):
                s = s.astype(np.int64)
            else:
                raise InputError(f"{name} must hold integer slot indices, got dtype {s.dtype} "
                                 f"(first value {s.flat[0]!r})")
        s = s.astype(np.int64)
        bad = np.flatnonzero((s < 0) | (s >= self.n_series))
        if bad.size:
            raise InputError(f"{name}[{bad[0]}]={s[bad[0]]} is out of range: this model has "
                             f"n_series={self.n_series} slots (0..{self.n_series - 1}); "
                             f"call resize() to add slots")
        return s

    def _check_rows(self, u, y, where, R):
        """Validate u (R, I) and y (R, O)/None; ``where(r)`` names row r for messages."""
        I, O = self.n_inputs, self.n_outputs
        dt = self.numpy_dtype
        u = as_real_array("u", u, dt, f"(B, I) = ({R}, {I})")
        if u.shape != (R, I):
            raise InputError(f"u has shape {u.shape}; expected (B, I) = ({R}, {I}): one row of "
                             f"{I} input(s) per stepped series")
        u = np.ascontiguousarray(u, dtype=dt)
        refuse_nonfinite(u, lambda r, col: (
            f"u has non-finite value {u[r, col]} at {where(r)}, input column {col}; inputs "
            f"must be finite: impute or drop the row (a missing target goes in y as NaN instead)"))
        if y is None:
            y = np.full((R, O), np.nan, dtype=dt)
        else:
            y = as_real_array("y", y, dt, f"(B, O) = ({R}, {O})")
            if y.shape != (R, O):
                raise InputError(f"y has shape {y.shape}; expected (B, O) = ({R}, {O}) or None")
            y = np.ascontiguousarray(y, dtype=dt)
            bad = np.argwhere(np.isinf(y))
            if bad.size:
                r, col = bad[0]
                raise InputError(f"y has infinite value {y[r, col]} at {where(r)}, output column "
                                 f"{col}; use NaN to mark a missing target")
        return u, y

    # -- stepping ----------------------------------------------------------------------
    def step(self, u, y=None, series=None):
        """One step of the listed slots (all N in order when ``series`` is None).

        ``u`` is (B, I), ``y`` (B, O) or None (NaN = missing target).  Returns the
        one-step forecasts ``yhat`` (B, O), made with the weights in force before
        this call's update (docs/spec.md section 3).
        """
        if series is None:
            s = self._all
            if s.size != self.n_series:
                s = self._all = np.arange(self.n_series, dtype=np.int64)
        else:
            s = self._fast_series(series)
        if s is not None:
            R = s.size
            rows = self._fast_rows(u, y, R)
            if rows is not None:
                return self._impl.step_calls(s, rows[0], rows[1],
                                             _ONE_CALL if R == 1 else self._one_call(R))
        s = self._check_series(series)
        uniq, counts = np.unique(s, return_counts=True)
        if np.any(counts > 1):
            dup = uniq[counts > 1][0]
            pos = np.flatnonzero(s == dup)
            raise InputError(f"series lists slot {dup} twice (positions {pos[0]} and {pos[1]}); "
                             f"a call steps each slot at most once: split it into two calls")
        u, y = self._check_rows(u, y, lambda r: f"row {r} (series slot {s[r]})", s.size)
        return self._impl.step_calls(s, u, y, np.array([0, s.size], dtype=np.int64))

    def run(self, U, Y=None):
        """``T`` steps of all N slots: U (T, N, I), Y (T, N, O) or None -> (T, N, O).

        Bit for bit the same as ``T`` calls of ``step`` (docs/spec.md section 6), in one
        backend call.
        """
        T = None
        Ua = as_real_array("U", U, self.numpy_dtype, f"(T, N, I) = (T, {self.n_series}, {self.n_inputs})")
        if Ua.ndim != 3 or Ua.shape[1:] != (self.n_series, self.n_inputs):
            raise InputError(f"U has shape {Ua.shape}; expected (T, N, I) = "
                             f"(T, {self.n_series}, {self.n_inputs})")
        T, N = Ua.shape[0], self.n_series
        if Y is not None:
            Ya = as_real_array("Y", Y, self.numpy_dtype, f"(T, N, O) = ({T}, {N}, {self.n_outputs})")
            if Ya.shape != (T, N, self.n_outputs):
                raise InputError(f"Y has shape {Ya.shape}; expected (T, N, O) = "
                                 f"({T}, {N}, {self.n_outputs}) or None")
            Y = Ya.reshape(T * N, self.n_outputs)
        u, y = self._check_rows(Ua.reshape(T * N, self.n_inputs), Y,
                                lambda r: f"U[{r // N}, {r % N}] (step {r // N}, series slot {r % N})", T * N)
        series = np.tile(np.arange(N, dtype=np.int64), T)
        offsets = np.arange(T + 1, dtype=np.int64) * N
        out = self._impl.step_calls(series, u, y, offsets)
        return out.reshape(T, N, self.n_outputs)

    def step_rows(self, series, U, Y=None):
        """Rows that arrive one at a time, each for its own slot: ``series`` (R,),
        ``U`` (R, I), ``Y`` (R, O) or None -> ``yhat`` (R, O).

        Bit for bit the same as ``R`` calls ``step(U[r:r+1], Y[r:r+1], series=[series[r]])``,
        but run as few backend calls: consecutive rows are grouped into one call
        while no slot repeats, and a call ends right after a row whose series
        becomes due, so every update sees exactly the weights and windows it
        would see row by row.  This is the micro-batching used by the forecasters,
        the CLI and the Kafka worker.
        """
        s = self._fast_series(series, distinct=False) if series is not None else None
        if s is not None:
            rows = self._fast_rows(U, Y, s.size)
            if rows is not None:
                return self.step_rows_trusted(s, rows[0], rows[1])
        s = self._check_series(series)
        u, y = self._check_rows(U, Y, lambda r: f"row {r} (series slot {s[r]})", s.size)
        if s.size == 0:
            return np.empty((0, self.n_outputs), dtype=self.numpy_dtype)
        return self.step_rows_trusted(s, u, y)

    # -- the trusted path: for callers that validated already ---------------------------
    # The checked methods above cost microseconds of argument checking per call; an
    # upper layer that builds its rows itself (MultiSeriesForecaster, the stream
    # runner) can call these instead.  Preconditions, which they do NOT check:
    # ``series`` an int64 array of slots in range (distinct within a call for
    # ``step_rows_trusted``'s groups: repeats are fine, the grouping handles them),
    # ``U`` (R, I) finite, ``Y`` (R, O) finite or NaN, both C-contiguous of
    # ``numpy_dtype``; ``state`` as returned by ``states_trusted``/``forward_trusted``.
    # Broken preconditions give wrong numbers, not errors: when in doubt use the
    # checked method.  Results are bit for bit those of the checked methods.
    @property
    def numpy_dtype(self):
        """The model's NumPy dtype (``float64`` or ``float32``)."""
        return DTYPES[self.dtype]

    def step_rows_trusted(self, series, U, Y):
        """``step_rows`` without argument checks (see the preconditions above)."""
        offsets = (_ONE_CALL if series.size == 1
                   else group_rows(series, self._impl.host_counts(), self.k1))
        return self._impl.step_calls(series, U, Y, offsets)

    def cpu_kernel_args(self):
        """The CPU backend's ``kernel_args()`` (its arenas, for a compiled caller
        that steps or forecasts one row itself: forecast/onerow.py), or None on
        another backend.  Ask again for every call (the arrays change on growth)."""
        kernel_args = getattr(self._impl, "kernel_args", None)
        return None if kernel_args is None else kernel_args()

    def compile_driver(self, rows, driver=True):
        """Compile (or load) the CPU backend's ``step_calls`` for calls of ``rows``
        rows (or, ``driver`` False, only the update it calls) ahead of the first one
        (forecast/warm.py); False on another backend."""
        compile_driver = getattr(self._impl, "compile_driver", None)
        if compile_driver is None:
            return False
        compile_driver(rows, driver)
        return True

    def driver_ready(self, rows, driver=True):
        """Whether the CPU backend's ``step_calls`` for calls of ``rows`` rows (or,
        ``driver`` False, only the update it calls: ``update_due``) is compiled here
        or in Numba's cache (nothing compiles or loads); None on another backend."""
        driver_ready = getattr(self._impl, "driver_ready", None)
        return None if driver_ready is None else driver_ready(rows, driver)

    def call_groups(self, series):
        """Where ``step_rows`` would split ``series`` (R,) into calls: offsets
        (C+1,) int64.  Callers that do work between calls (rollouts that need the
        weights in force before each call's update) step group by group."""
        return group_rows(series, self._impl.host_counts(), self.k1)

    def states_trusted(self, series):
        """``get_state`` of int64 slots in range, unchecked."""
        return self._impl.get_states(series)

    def forward_trusted(self, state, U):
        """``predict(U, state=state)`` unchecked: ``(yhat, new_state)``, pure."""
        return self._impl.forward(state, U)

    def forward_live_trusted(self, series, U):
        """``predict(U, series=series)[0]`` unchecked (int64 slots in range, U
        (B, I) C-contiguous of the model dtype, finite): the next forecasts from
        the live states, pure."""
        return self._impl.forward_live(series, U)

    # -- side-effect-free forecasting ---------------------------------------------------
    def get_state(self, series=None):
        """A copy of the listed slots' live state, shape (B, L, S, H) with S = 2
        (h, c) for LSTM and 1 (h) for GRU."""
        return self._impl.get_states(self._check_series(series))

    def predict(self, u, series=None, state=None):
        """One forward step with the current weights that changes nothing:
        returns ``(yhat (B, O), new_state (B, L, S, H))``.  Starts from ``state``
        when given (e.g. the ``new_state`` of a previous ``predict``, for
        multi-step rollouts that feed forecasts back), else from the listed
        slots' live state."""
        if state is None:
            s = self._check_series(series)
            state = self._impl.get_states(s)
            B = s.size
        else:
            state = as_real_array("state", state, self.numpy_dtype, "(B, L, S, H)")
            B = state.shape[0] if state.ndim == 4 else -1
            want = self.layout.state_shape(B)
            if state.shape != want:
                raise InputError(f"state has shape {state.shape}; expected (B, L, S, H) = {want}")
            state = np.ascontiguousarray(state, dtype=self.numpy_dtype)
            if not np.all(np.isfinite(state)):
                raise InputError("state has non-finite values; pass a state from get_state/predict")
        u, _ = self._check_rows(u, None, lambda r: f"row {r}", B)
        return self._impl.forward(state, u)

    # -- slots -------------------------------------------------------------------------
    def resize(self, n_series):
        """Grow to ``n_series`` slots; existing state kept, new slots start at zero."""
        n = check_int("n_series", n_series, 0)
        if n < self.n_series:
            raise InputError(f"resize(n_series={n}) would drop slots {n}..{self.n_series - 1}; "
                             f"slots can only be added (current n_series={self.n_series})")
        if n != self.n_series:
            self._impl.resize(n)
            self.n_series = n

    def reset_series(self, series):
        """Forget the state and window of the listed slots (they restart from zero
        state; their step count restarts too).  Weights are untouched."""
        s = self._check_series(series)
        arrays = {k: v.copy() for k, v in self._impl.host_arrays().items()}
        fresh = new_series_arrays(self.layout, s.size, self.k2, self.numpy_dtype)
        for k, v in fresh.items():
            arrays[k][s] = v
        self._impl.load_arrays(arrays)

    # -- weights -----------------------------------------------------------------------
    def state_dict(self):
        """Weights as a dict of NumPy arrays with ``torch.nn.LSTM/GRU`` names plus
        ``head.weight`` and ``head.bias`` (docs/spec.md section 2)."""
        return self.layout.to_state_dict(self._impl.host_arrays()["theta"])

    def load_state_dict(self, d):
        """Load weights (NumPy arrays or torch tensors, PyTorch names).  Series
        state and optimizer moments are kept."""
        theta = self.layout.from_state_dict(d, self.numpy_dtype)
        arrays = dict(self._impl.host_arrays())
        arrays["theta"] = theta
        self._impl.load_arrays(arrays)

    # -- checkpoints -------------------------------------------------------------------
    def config(self) -> dict:
        return {"n_inputs": self.n_inputs, "hidden_size": self.hidden_size,
                "n_outputs": self.n_outputs, "n_series": self.n_series, "cell": self.cell,
                "n_layers": self.n_layers, "k1": self.k1, "k2": self.k2,
                "optimizer": self.optimizer.config(), "clip_norm": self.clip_norm,
                "dtype": self.dtype, "backend": self.backend, "seed": self.seed}

    def arrays(self) -> dict:
        """Every array of the model's state as host NumPy arrays (read-only use)."""
        return self._impl.host_arrays()

    def save(self, path):
        """Write everything needed to resume (weights, optimizer moments and step
        count, every series' state, window and counters) atomically to ``path``."""
        _ckpt.write(path, kind=CHECKPOINT_KIND,
                    meta={"config": self.config(), "layout": self.layout.describe()},
                    arrays=self._impl.host_arrays())

    @classmethod
    def load(cls, path, backend=None):
        """Restore a model written by ``save``; ``backend`` overrides the one saved
        (a checkpoint written on ``cuda`` resumes on ``cpu`` and back)."""
        meta, arrays = _ckpt.read(path, kind=CHECKPOINT_KIND)
        return cls.from_checkpoint_parts(meta, arrays, backend=backend, source=str(path))

    @classmethod
    def from_checkpoint_parts(cls, meta, arrays, backend=None, source="checkpoint"):
        try:
            cfg = dict(meta["config"])
            cfg["optimizer"] = optimizer_from_config(cfg["optimizer"])
            if backend is not None:
                cfg["backend"] = backend
            net = cls.__new__(cls)
            n_series = cfg.pop("n_series")
            OnlineRNN.__init__(net, n_series=0, **cfg)
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"{source}: checkpoint header is missing or has a bad field "
                                  f"({exc!r}); it was not written by this streamlstm") from None
        if meta.get("layout") != net.layout.describe():
            raise CheckpointError(f"{source}: the weight layout in the file does not match the "
                                  f"configuration it names; the file is corrupt")
        expect = {"theta": (net.layout.n_params,), "opt_m": (net.layout.n_params,),
                  "opt_v": (net.layout.n_params,), "opt_step": (1,)}
        fresh = new_series_arrays(net.layout, n_series, net.k2, net.numpy_dtype)
        for k, v in fresh.items():
            expect[k] = v.shape
        for k in ALL_ARRAYS:
            if k not in arrays:
                raise CheckpointError(f"{source}: array {k!r} is missing; the file is corrupt "
                                      f"or from another program")
            if arrays[k].shape != expect[k]:
                raise CheckpointError(f"{source}: array {k!r} has shape {arrays[k].shape}, "
                                      f"expected {expect[k]}; the file is corrupt")
        want = {k: (np.int64 if k in ("win_len", "count", "opt_step") else net.numpy_dtype)
                for k in ALL_ARRAYS}
        arrays = {k: np.ascontiguousarray(arrays[k], dtype=want[k]) for k in ALL_ARRAYS}
        # Values the kernels index with must be in range (a checksum-valid file can still
        # be hand-edited or written by a buggy tool).  Between calls a window holds at most
        # k2-1 rows (a window reaching k2 rows is due and moves at once); counts >= 0.
        bad = np.flatnonzero((arrays["win_len"] < 0) | (arrays["win_len"] >= net.k2))
        if bad.size:
            raise CheckpointError(f"{source}: series slot {bad[0]} has window length "
                                  f"{arrays['win_len'][bad[0]]}, outside 0..k2-1={net.k2 - 1}; "
                                  f"the file is corrupt")
        bad = np.flatnonzero(arrays["count"] < 0)
        if bad.size or arrays["opt_step"][0] < 0:
            raise CheckpointError(f"{source}: negative step count in the file; it is corrupt")
        for k in ("theta", "opt_m", "opt_v", "state", "entry", "win_u"):
            if not np.all(np.isfinite(arrays[k])):
                raise CheckpointError(f"{source}: array {k!r} holds non-finite values; the "
                                      f"model diverged before it was saved or the file is corrupt")
        net.n_series = n_series
        net._impl = net._make_impl(arrays)
        return net

    def __repr__(self):
        return (f"OnlineRNN(n_inputs={self.n_inputs}, hidden_size={self.hidden_size}, "
                f"n_outputs={self.n_outputs}, n_series={self.n_series}, cell={self.cell!r}, "
                f"n_layers={self.n_layers}, k1={self.k1}, k2={self.k2}, "
                f"optimizer={self.optimizer!r}, clip_norm={self.clip_norm!r}, "
                f"dtype={self.dtype!r}, backend={self.backend!r}, seed={self.seed})")
