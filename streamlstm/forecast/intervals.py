"""Online prediction intervals with a long-run coverage guarantee (issue 12).

Per series and per horizon step ``h`` the band around a forecast ``yhat`` is

    [yhat + s * q_lo, yhat + s * q_hi]

where ``s`` is a running mean of the absolute errors of that series' step-h
forecasts and ``q_lo``/``q_hi`` are online quantile trackers of the *scaled*
signed error ``u = (y - yhat) / s`` at levels ``alpha/2`` and ``1 - alpha/2``
(``alpha = 1 - coverage``).  The trackers follow the quantile-tracking rule of
conformal PID control (Angelopoulos, Candes & Tibshirani 2023, the P part; with
a constant step it is the adaptive conformal inference of Gibbs & Candes 2021
applied to each bound):

    q_hi <- q_hi + eta * (miss_hi - alpha/2)     miss_hi = y > upper bound issued
    q_lo <- q_lo - eta * (miss_lo - alpha/2)     miss_lo = y < lower bound issued

Each tracker is the sum of a part shared by all series (``pool``, step
``ETA_POOL`` per scored error of any series) and the series' own offset
(``trk``, step ``ETA``); both take the same update.  Scaled errors are unit-free,
so the shared part learns the common calibration from every series at once: a
new or short series starts calibrated (many short series were otherwise
over-covered while their scales still remembered the model's first errors).

Why this shape:

* scale-free: the trackers work in units of the running error scale, so one
  step size serves series in any unit (a series times 1000 gets the same band
  times 1000) and a change of error variance is followed by ``s`` within about
  ``SCALE_WINDOW`` errors while the trackers keep the calibration;
* long-run coverage for any bounded error sequence, per series: summing the
  series' offset updates gives ``#misses_hi - (alpha/2) T = (d_T - d_0) / eta``;
  ``q_hi = pool + d`` only rises while errors exceed it, so it stays bounded,
  and the pooled part's drift is a fraction of the offsets' (its updates are
  their sum times ``ETA_POOL / ETA``), so it is bounded too, hence ``d``: the
  miss rate of each side converges to ``alpha/2`` at rate ``O(1 / (eta T))``.
  A step-h forecast is scored when its target arrives, ``h`` rows of the series
  later, against the band *issued with it* (stored beside it), which keeps the
  bound (the trackers move a bounded amount in between);
* lower and upper bounds are tracked separately (errors are asymmetric);
* never inverted (if ``q_lo > q_hi`` both bounds are their midpoint) and never
  infinite: NaN until the step has scored ``MIN_SCORED`` errors of the series
  (before that there is no scale), and wherever the forecast itself is NaN.

State (``IntervalState.a``): ``trk`` (N, H, 4) per series and step the two
offsets, the scale and the scored count; ``pool`` (H, 2) the shared trackers;
``pend`` (N, H, H, 3) the forecasts still waiting for their target with their
issued bands (slot = target row mod H; ``H (H - 1) / 2`` of them are live at any
time: a step-h forecast is pending for ``h`` rows, inherent to scoring every
one); ``pos`` (N,) rows seen.  The first three are views of one float64 arena,
which also holds the settings (``P_*``); ``pos`` is a view of an int64 ``dims``
that starts with the directory of the three (offset, ndim, shape:
backends/cpu/arena.py's layout), as in ``experts.py``.  The kernels take those
two arrays and build the views with the backend arena's intrinsics: Numba's
dispatch of four arrays and four settings cost ~0.6 us per arriving row on a
loaded machine, of two arrays ~0.25 us (``bench/onerow_pieces.py``).  Updates run
row by row in arrival order in one ``@njit`` loop, so batching never changes a
result, and the arrays go into the checkpoint: resume = uninterrupted.
Constants chosen on the bench panel, the bundled example and generated sensor
files (bench/intervals.py, bench/README.md).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from streamlstm.backends.cpu.arena import DIR_W, view2, view3, view4
from streamlstm.backends.specialize import INNER, njit
from streamlstm.core.checks import check_number
from streamlstm.errors import CheckpointError, InputError
from streamlstm.forecast.kept_args import KeptArgs

ETA = 0.08           # per-series tracker step, in units of the running error scale
ETA_POOL = 0.01      # step of the trackers shared by all series (per scored error)
SCALE_WINDOW = 50    # the error scale is a mean of |error| over ~this many errors
MIN_SCORED = 5       # a step issues bands once it has scored this many errors
# Columns of ``trk`` (the series' own offsets to the pooled trackers) and of ``pool``.
Q_LO, Q_HI, SCALE, COUNT = range(4)
N_TRK = 4
# The arena: the settings, then trk, pool, pend; ``dims``: their directory
# entries (DIR_W int64 each, in ``ARRAYS``' order), then ``pos``.
P_A_SIDE, P_ETA, P_ETA_POOL, P_WINDOW = range(4)
N_PAR = 4
I_TRK, I_POOL, I_PEND = range(3)
D_POS = 3 * DIR_W
# Columns of ``pend`` and of the scores: the pending forecast and its issued band;
# whether the target fell inside, the band's width and its Winkler score.
P_YHAT, P_LO, P_HI = range(3)
S_COVERED, S_WIDTH, S_WINKLER = range(3)
# Coverage tallies keep at most this many blocks per step (merged pairwise when full).
TALLY_BLOCKS = 512


class Band(NamedTuple):
    """What ``MultiSeriesForecaster.predict_learn(..., interval=True)`` returns.

    ``yhat``, ``lo``, ``hi``: (R, H) forecasts and their bands (column j: the
    series' value j steps after the row).  ``scores`` (R, H, 3): for the forecast
    made j rows earlier *for this row's value*, whether the value fell inside its
    band (1.0/0.0), the band's width and its Winkler score; NaN where no such
    forecast (or band, or value) exists."""
    yhat: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    scores: np.ndarray


def check_coverage(owner, coverage):
    """None (no intervals) or a nominal coverage strictly between 0 and 1, as float.

    >>> check_coverage("MultiSeriesForecaster", 1.5)   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamlstm.errors.InputError: MultiSeriesForecaster(coverage=1.5) must be strictly between 0 and 1 ...
    """
    if coverage is None:
        return None
    v = check_number(owner, "coverage", coverage)
    if not 0.0 < v < 1.0:
        raise InputError(f"{owner}(coverage={coverage!r}) must be strictly between 0 and 1 "
                         f"(e.g. 0.9 for 90% intervals), or None for no intervals")
    return v


def initial_q(coverage):
    """The starting upper tracker: the Gaussian ``1 - alpha/2`` quantile in units
    of the mean absolute error (``sd = sqrt(pi/2) * E|e|`` for a Gaussian)."""
    z = NormalDist().inv_cdf(1.0 - (1.0 - coverage) / 2.0)
    return z * math.sqrt(math.pi / 2.0)


@njit(cache=True, **INNER)
def _bounds(trk, pool, s, j, f):
    """The band issued now for step j of slot s around forecast f."""
    if not (trk[s, j, COUNT] >= MIN_SCORED) or f != f:
        return np.nan, np.nan
    ql, qh = pool[j, Q_LO] + trk[s, j, Q_LO], pool[j, Q_HI] + trk[s, j, Q_HI]
    if ql > qh:
        ql = qh = 0.5 * (ql + qh)
    sc = trk[s, j, SCALE]
    return f + sc * ql, f + sc * qh


@njit(cache=True, **INNER)
def _score(trk, pool, s, j, y, f, lo, hi, a_side, eta, eta_pool, window, out):
    """Score one forecast ``f`` (issued with band lo..hi) against its target ``y``
    and update step j's trackers and scale; writes covered/width/Winkler to
    ``out`` (None: the caller keeps no scores, a compile-time switch)."""
    if lo == lo:
        miss_lo, miss_hi = y < lo, y > hi
        if out is not None:
            out[S_COVERED] = 0.0 if (miss_lo or miss_hi) else 1.0
            out[S_WIDTH] = hi - lo
            pen = 0.0
            if miss_lo:
                pen = (lo - y) / a_side
            elif miss_hi:
                pen = (y - hi) / a_side
            out[S_WINKLER] = hi - lo + pen
    else:   # issued during warm-up: no band; train the trackers as if issued now
        sc = trk[s, j, SCALE]
        miss_lo = y < f + sc * (pool[j, Q_LO] + trk[s, j, Q_LO])
        miss_hi = y > f + sc * (pool[j, Q_HI] + trk[s, j, Q_HI])
    n = trk[s, j, COUNT]
    if n >= 1.0:
        g_hi = (1.0 if miss_hi else 0.0) - a_side
        g_lo = (1.0 if miss_lo else 0.0) - a_side
        trk[s, j, Q_HI] += eta * g_hi
        trk[s, j, Q_LO] -= eta * g_lo
        pool[j, Q_HI] += eta_pool * g_hi
        pool[j, Q_LO] -= eta_pool * g_lo
    w = 1.0 / (n + 1.0)
    if w < 1.0 / window:
        w = 1.0 / window
    trk[s, j, SCALE] += w * (abs(y - f) - trk[s, j, SCALE])
    trk[s, j, COUNT] = n + 1.0


@njit(cache=True, **INNER)
def _views(buf, dims):
    """``trk``, ``pool``, ``pend`` and ``pos`` in the arena ``buf`` and ``dims``
    (``IntervalState._pack`` writes the directory)."""
    return (view3(buf, dims, I_TRK), view2(buf, dims, I_POOL), view4(buf, dims, I_PEND),
            dims[D_POS:])


@njit(cache=True)
def update_rows(slots, y, yhat, buf, dims, lo, hi, scores):
    """Issue the bands of each row's forecasts, then score every pending forecast
    whose target is the row's value, rows in arrival order (module docstring).
    ``buf``, ``dims``: ``IntervalState.kernel_arrays()``.  The bands go to ``lo``,
    ``hi`` (R, H) and the scores to ``scores`` (R, H, 3); all three None when the
    caller keeps neither (the one-row path's learning without a band: a
    compile-time switch, nothing allocated, the same state)."""
    trk, pool, pend, pos = _views(buf, dims)
    a_side, eta, eta_pool, window = buf[P_A_SIDE], buf[P_ETA], buf[P_ETA_POOL], buf[P_WINDOW]
    R, H = yhat.shape
    for r in range(R):
        s = slots[r]
        t = pos[s]
        p = t % H
        yr = y[r]
        # the bands issued with the row's forecasts, from the trackers as they stand
        # before it is scored; step j >= 1 waits in its target's slot (t + j) % H,
        # never this row's slot p (j < H), so it is stored before p is read
        l0, h0 = _bounds(trk, pool, s, 0, yhat[r, 0])
        if lo is not None:
            lo[r, 0], hi[r, 0] = l0, h0
        for j in range(1, H):
            lj, hj = _bounds(trk, pool, s, j, yhat[r, j])
            if lo is not None:
                lo[r, j], hi[r, j] = lj, hj
            q = (t + j) % H
            pend[s, q, j, P_YHAT], pend[s, q, j, P_LO], pend[s, q, j, P_HI] = yhat[r, j], lj, hj
        for j in range(H):
            if j == 0:
                f, fl, fh = yhat[r, 0], l0, h0
            else:
                f, fl, fh = pend[s, p, j, P_YHAT], pend[s, p, j, P_LO], pend[s, p, j, P_HI]
                pend[s, p, j, P_YHAT] = pend[s, p, j, P_LO] = pend[s, p, j, P_HI] = np.nan
            if scores is None:
                if yr == yr and f == f:
                    _score(trk, pool, s, j, yr, f, fl, fh, a_side, eta, eta_pool, window, None)
            else:
                scores[r, j, 0] = scores[r, j, 1] = scores[r, j, 2] = np.nan
                if yr == yr and f == f:
                    _score(trk, pool, s, j, yr, f, fl, fh, a_side, eta, eta_pool, window,
                           scores[r, j])
        pos[s] = t + 1


@njit(cache=True)
def bounds_of(slots, yhat, trk, pool, lo, hi):
    """Bands of forecasts made from the live state (``forecast``): nothing changes.
    Steps beyond the tracked horizon get NaN."""
    B, h = yhat.shape
    H = trk.shape[1]
    for b in range(B):
        for j in range(h):
            if j < H:
                lo[b, j], hi[b, j] = _bounds(trk, pool, slots[b], j, yhat[b, j])
            else:
                lo[b, j] = hi[b, j] = np.nan


class IntervalState(KeptArgs):
    """The per-series interval state of a ``MultiSeriesForecaster`` (module docstring).

    >>> st = IntervalState(0.9, horizon=1)
    >>> st.resize(1)
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=400)
    >>> band = st.update(np.zeros(400, np.int64), y, np.zeros((400, 1)))
    >>> cov = band.scores[80:, 0, 0]
    >>> round(float(np.nanmean(cov)), 3), bool(np.all(band.lo[5:] <= band.hi[5:]))
    (0.9, True)
    """

    ARRAYS = ("trk", "pool", "pend", "pos")
    _KEPT = ("_kernel",)         # kernel_arrays(): the arena and its dims (kept_args.py)

    def __init__(self, coverage, horizon):
        self.coverage = float(coverage)
        self.horizon = int(horizon)
        self.a_side = (1.0 - self.coverage) / 2.0
        self.q0 = initial_q(self.coverage)
        self.par = np.array([self.a_side, ETA, ETA_POOL, SCALE_WINDOW], dtype=np.float64)
        H = self.horizon
        self.a = self._fresh(0, H) | {"pool": self._fresh_pool(H)}   # packed on first use
        self._scratch = None
        self.forget_args()

    def __setstate__(self, state):
        super().__setstate__(state)
        if "par" not in state:      # pickled before the arena
            self.par = np.array([self.a_side, ETA, ETA_POOL, SCALE_WINDOW], dtype=np.float64)

    def _fresh_pool(self, H):
        return np.tile(np.array([-self.q0, self.q0]), (H, 1))

    @staticmethod
    def _fresh(n, H):
        """The per-series arrays of ``n`` new series (``pool`` is not per series)."""
        return {"trk": np.zeros((n, H, N_TRK)), "pend": np.full((n, H, H, 3), np.nan),
                "pos": np.zeros(n, dtype=np.int64)}

    def _pack(self, trk, pool, pend, pos):
        """A new arena holding these arrays: ``self.a`` becomes its views, and the
        kept ``kernel_arrays()`` its (buf, dims)."""
        floats = (trk, pool, pend)
        offs = np.cumsum([N_PAR, *(x.size for x in floats)])
        buf = np.empty(offs[-1])
        buf[:N_PAR] = self.par
        dims = np.zeros(D_POS + pos.size, dtype=np.int64)
        views = []
        for e, (x, o) in enumerate(zip(floats, offs[:-1])):
            v = buf[o:o + x.size].reshape(x.shape)
            v[...] = x
            views.append(v)
            entry = (o, x.ndim, *x.shape)          # I_TRK, I_POOL, I_PEND
            dims[e * DIR_W:e * DIR_W + len(entry)] = entry
        dims[D_POS:] = pos
        self.a = dict(zip(self.ARRAYS, (*views, dims[D_POS:])))
        self._kernel = (buf, dims)

    def _pack_series(self, parts, pool):
        """``_pack`` of the per-series arrays of ``parts`` stacked series after series."""
        cat = {k: np.concatenate([p[k] for p in parts]) for k in ("trk", "pend", "pos")}
        self._pack(cat["trk"], pool, cat["pend"], cat["pos"])

    @property
    def n_series(self):
        return self.a["pos"].shape[0]

    def resize(self, n):
        """Room for ``n`` series (new ones start fresh)."""
        old = self.n_series
        if n > old:
            self._pack_series([self.a, self._fresh(n - old, self.horizon)], self.a["pool"])

    def kernel_arrays(self):
        """The arena and its dims, the state arguments of ``update_rows`` after
        ``yhat`` (kept: kept_args.py; after ``self.a`` was replaced, a new arena
        holding it)."""
        if self._kernel is None:
            self._pack_series([self.a], self.a["pool"])
        return self._kernel

    def outputs(self, R, H, keep):
        """``lo``, ``hi`` (R, H) and ``scores`` (R, H, 3) for ``update_rows``: new
        arrays if the caller ``keep``s them, else views of scratch arrays reused
        from call to call (no allocation on the per-row path)."""
        if keep:
            return np.empty((R, H)), np.empty((R, H)), np.empty((R, H, 3))
        scratch = self._scratch
        if scratch is None or scratch[0].shape[0] < R or scratch[0].shape[1] != H:
            scratch = self._scratch = (np.empty((R, H)), np.empty((R, H)), np.empty((R, H, 3)))
        return scratch[0][:R], scratch[1][:R], scratch[2][:R]

    def update(self, slots, y, yhat):
        """The bands of ``yhat`` (R, H) and the scores of the forecasts whose targets
        ``y`` (R,) are, updating the trackers row by row: a ``Band``."""
        R, H = yhat.shape
        lo, hi, scores = self.outputs(R, H, keep=True)
        yh = np.ascontiguousarray(yhat, dtype=np.float64)
        update_rows(np.ascontiguousarray(slots, dtype=np.int64),
                    np.ascontiguousarray(y, dtype=np.float64), yh, *self.kernel_arrays(),
                    lo, hi, scores)
        return Band(yh, lo, hi, scores)

    def bounds(self, slots, yhat):
        """(lo, hi) bands of live forecasts ``yhat`` (B, h), changing nothing."""
        yh = np.ascontiguousarray(yhat, dtype=np.float64)
        lo, hi = np.empty(yh.shape), np.empty(yh.shape)
        bounds_of(np.ascontiguousarray(slots, dtype=np.int64), yh, self.a["trk"], self.a["pool"],
                  lo, hi)
        return lo, hi

    def set_horizon(self, H):
        """Track ``H`` steps (only ever more): new steps start fresh, pending
        forecasts move to their target's slot in the wider ring."""
        old = self.horizon
        if H <= old:
            return
        n = self.n_series
        fresh = self._fresh(n, H)
        trk, pend, pos = fresh["trk"], fresh["pend"], np.array(self.a["pos"])
        trk[:, :old] = self.a["trk"]
        pool = self._fresh_pool(H)
        pool[:old] = self.a["pool"]
        rows = np.arange(n)
        for d in range(1, old):   # targets pos + d - 1 ... still pending
            tgt = pos + d - 1
            pend[rows, tgt % H, :old] = self.a["pend"][rows, tgt % old]
        self.horizon = H
        self._pack(trk, pool, pend, pos)

    def load(self, arrays, n, source):
        """Restore the arrays ``arrays`` (name -> ndarray) of ``n`` series."""
        H = self.horizon
        shapes = {"trk": (n, H, N_TRK), "pool": (H, 2), "pend": (n, H, H, 3), "pos": (n,)}
        for k, shape in shapes.items():
            if k not in arrays or tuple(arrays[k].shape) != shape:
                raise CheckpointError(f"{source}: interval state {k!r} is missing or has the "
                                      f"wrong shape; the file is corrupt")
        self._pack(*(np.asarray(arrays[k], dtype=np.float64) for k in ("trk", "pool", "pend")),
                   np.asarray(arrays["pos"]).astype(np.int64))


@njit(cache=True)
def _tally_rows(scores, tally, n, bs):
    R, H = scores.shape[0], scores.shape[1]
    for r in range(R):
        for j in range(H):
            if scores[r, j, S_COVERED] != scores[r, j, S_COVERED]:
                continue
            b = n[j] // bs[j]
            if b >= TALLY_BLOCKS:          # full: merge pairs, double the block size
                for k in range(TALLY_BLOCKS // 2):
                    for c in range(4):
                        tally[j, k, c] = tally[j, 2 * k, c] + tally[j, 2 * k + 1, c]
                tally[j, TALLY_BLOCKS // 2:] = 0.0
                bs[j] *= 2
                b = n[j] // bs[j]
            tally[j, b, 0] += 1.0
            for c in range(3):
                tally[j, b, c + 1] += scores[r, j, c]
            n[j] += 1


class CoverageTally:
    """Empirical coverage, mean width and mean Winkler score per horizon step of
    the scored bands, skipping a leading fraction of them (the warm-up), in
    bounded memory: counts per block of scored bands, at most ``TALLY_BLOCKS``
    blocks per step (pairs merge when full, so the skipped prefix is exact to
    within 1/256 of the total)."""

    def __init__(self, horizon):
        H = int(horizon)
        self.tally = np.zeros((H, TALLY_BLOCKS, 4))
        self.n = np.zeros(H, dtype=np.int64)
        self.bs = np.ones(H, dtype=np.int64)

    def update(self, scores):
        """Add ``Band.scores`` (R, H, 3) (rows in arrival order)."""
        if scores.shape[1] != self.n.size:
            raise ValueError("scores have another horizon than this tally")
        _tally_rows(np.ascontiguousarray(scores, dtype=np.float64), self.tally, self.n, self.bs)

    def report(self, skip=0.2):
        """Per step: ``{"step", "scored", "coverage", "width", "winkler"}`` over the
        bands after the first ``skip`` fraction of each step's scored bands (rounded up
        to a whole block: at most 1/256 of them more)."""
        out = []
        for j in range(self.n.size):
            first = int(math.ceil(skip * self.n[j] / self.bs[j]))   # at least skip
            t = self.tally[j, first:].sum(axis=0)
            m = t[0]
            out.append({"step": j + 1, "scored": int(m),
                        "coverage": t[1] / m if m else math.nan,
                        "width": t[2] / m if m else math.nan,
                        "winkler": t[3] / m if m else math.nan})
        return out

    def state(self):
        return {"tally": self.tally, "n": self.n, "bs": self.bs}

    @classmethod
    def from_state(cls, arrays):
        tally = np.array(arrays["tally"], dtype=np.float64)
        self = cls(tally.shape[0])
        self.tally = tally
        self.n = np.array(arrays["n"], dtype=np.int64)
        self.bs = np.array(arrays["bs"], dtype=np.int64)
        return self
