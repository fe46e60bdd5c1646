"""Online aggregation of experts: the network's forecasts combined, per series
and per horizon step, with simple forecasters, by weights learned from the
errors revealed so far (issue 11).

A user's first question of any forecaster is whether it beats repeating the last
value.  A network trained online is sometimes worse (a random-walk price, a
series too short to learn from), sometimes much better; which one is not known
in advance and changes over time.  So every forecast is a convex combination

    yhat = sum_k p_k f_k

of the *experts* ``f_k`` of that series and horizon step:

* ``network``: the recurrent network's forecast (its rollout for step h), from
  the series' ``NET_WARMUP + 1``-th value on (before, only while no value has
  been seen, when it is the only forecast): before that its input lags and
  scaler hold a handful of values and the network has hardly learned, and
  scoring those forecasts skews the weights of a short series for long after
  (lynx, wineind; bench/README.md, "the network's warm-up");
* ``naive``: the last observed value;
* ``level``: an exponentially smoothed level (``LEVEL_ALPHA``), the floor for
  noisy mean-reverting series (a sensor around a set point);
* ``cycle``: the seasonal naive forecast at a period detected online, the lag
  ``l`` in 2..``CYCLE_LAGS`` of the largest autocorrelation of the series' one-step
  changes (discounted sums over ~``CYCLE_WINDOW`` rows), when it exceeds
  ``max(CYCLE_MIN_ACF, 2 / sqrt(n))`` (the usual significance bound) and two
  whole cycles have been seen: a cycle no timestamp announces (sunspots' ~11
  years, lynx trappings' ~10) gets a forecaster too;
* ``drift``: the last value plus ``h`` times the mean change over the last
  ``DRIFT_ROWS`` rows (the drift method, over a window: a trending series such
  as GDP or prices indices, where naive lags behind), once that many rows have
  been seen (before, a drift from a few changes is mostly noise), shrunk
  towards zero by its significance: times ``max(0, 1 - 1 / z^2)``, ``z`` the
  mean change over its standard error (the plug-in of the mean-squared-error
  optimal factor ``mu^2 / (mu^2 + se^2)``): on a random walk without a trend
  it stays near naive instead of extrapolating noise;
* for each seasonal period ``P`` the model knows (rounded to whole rows):

  - ``seasonal_naive_P``: the value one season before the target;
  - ``seasonal_diff_P``: the last value plus the change over the same rows one
    season earlier, ``y[t] + y[t+h-P] - y[t-P]`` (the forecast of the seasonal
    random walk ARIMA(0,1,0)(0,1,0)_P: seasonal shape on a moving level, the
    right answer for a trending seasonal series such as airline passengers);
  - ``holt_winters_P``: additive seasonal exponential smoothing without trend,
    ETS(A,N,A) with fixed weights (level ``LEVEL_ALPHA``, season
    ``SEASON_GAMMA``), started from the first season: a seasonal profile
    averaged over many seasons, the floor for a noisy seasonal series.

The weights follow ML-Poly (Gaillard, Stoltz & van Erven 2014, "A second-order
bound with excess losses"; the default rule of the R package ``opera``), with the
gradient trick for the absolute loss, and a discount so that it follows switches
between experts:

    g   = sign(yhat - y)                       (d|yhat - y| / d yhat)
    r_k = g * (yhat - f_k)                     (the linearised regret to expert k)
    R_k <- rho R_k + r_k,   B_k <- rho B_k + r_k^2
    p_k ∝ (R_k)_+ / B_k                        (uniform while every R_k <= 0)

Undiscounted (``rho = 1``), its regret against the best fixed convex combination
of the experts, in linearised absolute loss, is ``O(sqrt(sum_t r^2 log K))`` with
no learning rate to tune; the linearised loss upper-bounds the regret in absolute
loss (convexity).  ``rho = 1 - 1/DISCOUNT_WINDOW`` keeps about the last
``DISCOUNT_WINDOW`` forecasts in force, the usual way to track a best expert
that changes (the bound then holds on every window of that length).  It is
scale-free: ``R`` scales with the series and ``B`` with its square, so the
weights of a series times 1000 are the same; one constant serves every unit.

A step-h forecast is scored when its target arrives, h rows of the series later
(the experts' forecasts and the combination issued then wait in ``pend``, slot =
target row mod H, as in ``intervals.py``): no look-ahead.  An expert without a
forecast (NaN: no value yet, a season not yet seen) takes no part, neither in the
combination nor in the update.  Rows run one by one in arrival order in one
``@njit`` loop, so batching never changes a result, and every array goes into the
checkpoint: resume = uninterrupted, replay = streaming.

State (``ExpertState.a``), per series: ``hist`` (N, L) the last L values (L the
longest period, at least ``CYCLE_LAGS + 2``); ``ser`` (N, ``S_ACF + CYCLE_LAGS + 1``)
the last finite value, the smoothed level, the detected cycle (0: none), the rows
seen, the discounted lagged products of changes, then per season the
Holt-Winters level and profile; ``reg`` (N, H, K, 2) each
step's discounted regrets and squared regrets; ``pend`` (N, H, H, K + 1) the
forecasts still waiting for their targets (with the combination issued).  The
four are views of one float64 arena, which also holds the settings (``P_*``) and
the kernels' scratch; an int64 ``dims`` holds a directory of them (offset,
ndim, shape: backends/cpu/arena.py's layout) and the seasons.  The kernels take
those two arrays and build the views with the backend arena's intrinsics: one
call per arriving row pays Numba's dispatch per array argument (~0.1 us each),
so two arrays instead of six.
"""
from __future__ import annotations

import numpy as np

from streamlstm.backends.cpu.arena import DIR_W, view2, view4
from streamlstm.backends.specialize import INNER, njit
from streamlstm.errors import CheckpointError, InputError
from streamlstm.forecast.kept_args import KeptArgs

LEVEL_ALPHA = 0.2        # smoothing weight of the ``level`` expert
DISCOUNT_WINDOW = 500    # the regrets of about this many forecasts stay in force
CYCLE_LAGS = 64          # the cycle detector looks at periods 2..CYCLE_LAGS
CYCLE_WINDOW = 1000      # ... in the autocorrelations of about this many changes
CYCLE_MIN_ACF = 0.2      # ... and takes a period whose autocorrelation exceeds this
SEASON_GAMMA = 0.2       # smoothing weight of the ``holt_winters_P`` profile
DRIFT_ROWS = CYCLE_LAGS  # the ``drift`` expert's window (hist keeps that many changes)
DRIFT_SHRINK = 1.0       # the drift is shrunk by max(0, 1 - this / z^2), z its mean / s.e.
NET_WARMUP = 8           # the ``network`` expert joins after this many values of a series
# Columns of ``reg`` and of ``ser``; the parameters of ``update_rows``.
R_SUM, B_SUM = range(2)
S_LAST, S_LEVEL, S_CYCLE, S_POS, S_ACF = range(5)
S_SEASONS = S_ACF + CYCLE_LAGS + 1           # per season: Holt-Winters level, then profile
P_RHO, P_ALPHA, P_RHO_ACF, P_MIN_ACF, P_KINDS, P_GAMMA, P_BASE = range(7)
N_PAR = 7                # the arena: the settings, 3 K of scratch, hist, ser, reg, pend
# ``dims``: a directory entry of ``DIR_W`` int64 per state array (its offset in the
# arena, ndim, shape: the layout backends/cpu/arena.py's ``view2``/``view4`` read),
# then the seasons
E_HIST, E_SER, E_REG, E_PEND = range(4)
D_SEASONS = 4 * DIR_W
NETWORK, NAIVE, LEVEL, CYCLE, DRIFT = range(5)   # expert columns; seasonal experts follow
BASE_NAMES = ("network", "naive", "level", "cycle", "drift")
# The experts of each season, in column order.  A checkpoint saved before
# ``seasonal_diff`` and ``holt_winters`` existed resumes with the first kind only;
# one saved before ``drift`` existed, with the first four base experts.
SEASONAL_KINDS = ("seasonal_naive", "seasonal_diff", "holt_winters")
# (base experts, seasonal kinds) of every state layout that was ever saved, newest first
LAYOUTS = ((len(BASE_NAMES), len(SEASONAL_KINDS)), (4, 3), (4, 1))
CHOICES = ("auto", None)


def check_experts(owner, experts):
    """``"auto"`` (the network plus the simple experts) or None (the network alone).

    >>> check_experts("MultiSeriesForecaster", "all")   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamlstm.errors.InputError: MultiSeriesForecaster(experts='all'): use 'auto' ...
    """
    if isinstance(experts, str) and experts.lower() == "none":
        return None
    if experts not in CHOICES:
        raise InputError(f"{owner}(experts={experts!r}): use 'auto' (the network combined "
                         f"online with naive, smoothed-level and seasonal-naive forecasts) or "
                         f"None (the network alone)")
    return experts


def expert_names(periods, kinds=len(SEASONAL_KINDS), base=len(BASE_NAMES)):
    """Names of the experts of a model with seasonal ``periods`` (in rows): the
    first ``base`` of ``BASE_NAMES``, then the first ``kinds`` of
    ``SEASONAL_KINDS`` per season."""
    return BASE_NAMES[:base] + tuple(f"{kind}_{p}" for p in season_lengths(periods)
                                     for kind in SEASONAL_KINDS[:kinds])


def season_lengths(periods):
    """Whole-row seasonal periods (distinct, > 1, in the order given)."""
    out = []
    for p in periods:
        q = int(round(p))
        if q > 1 and q not in out:
            out.append(q)
    return tuple(out)


@njit(cache=True, **INNER)
def _season_ago(hist, s, t, j, P):
    """The value a whole number of periods ``P`` before row ``t + j`` (NaN if none)."""
    back = t + j - P * ((j + P) // P)     # the target's row minus whole seasons
    return hist[s, back % hist.shape[1]] if back >= 0 else np.nan


@njit(cache=True, **INNER)
def _seasonal_diff(hist, s, t, j, P):
    """The last value plus the change over the same ``j + 1`` rows whole seasons
    earlier (NaN when those rows are not all in ``hist``)."""
    L = hist.shape[1]
    k = (j + P) // P                      # whole seasons back, as in _season_ago
    a = t - 1 - k * P
    if a < 0 or k * P + 1 > L:
        return np.nan
    return hist[s, (t - 1) % L] + hist[s, (t + j - k * P) % L] - hist[s, a % L]


@njit(cache=True)      # (not INNER: tests/test_experts.py checks it from Python)
def _drift_slope(hist, s, t):
    """The ``drift`` expert's change per row after the ``t`` rows of series ``s``:
    the mean change ``d`` over the last ``DRIFT_ROWS`` rows, shrunk towards zero
    by its own noise, ``d * max(0, 1 - DRIFT_SHRINK / z^2)`` with ``z`` the mean
    over its standard error (the changes' sample sd / sqrt(DRIFT_ROWS); missing
    changes left out, and ``d`` unshrunk when fewer than two are finite: no
    spread to judge it by).  NaN before that many changes or with a missing
    value at either end."""
    L = hist.shape[1]
    if t - 1 < DRIFT_ROWS:
        return np.nan
    i = (t - 1) % L
    d = (hist[s, i] - hist[s, (t - 1 - DRIFT_ROWS) % L]) / DRIFT_ROWS
    if d != d or d == 0.0:
        return d
    ss, n = 0.0, 0
    for _ in range(DRIFT_ROWS):        # the slot stepped back without a modulo
        im = i - 1 if i > 0 else L - 1
        e = hist[s, i] - hist[s, im] - d
        if e == e:
            ss += e * e
            n += 1
        i = im
    if n < 2:
        return d
    c = 1.0 - DRIFT_SHRINK * (ss / (n - 1)) / (DRIFT_ROWS * d * d)
    return d * c if c > 0.0 else 0.0


@njit(cache=True)      # (not INNER: tests/test_experts.py checks it from Python)
def _expert_forecasts(hist, ser, s, t, j, seasons, m, nb, fnet, slope, f):
    """Forecasts by every expert of the value ``j + 1`` rows after the ``t`` rows
    of series ``s`` seen so far (into ``f``); ``nb`` base experts, then ``m``
    seasonal experts per season; ``slope``: ``_drift_slope`` of the row."""
    f[NAIVE] = ser[s, S_LAST]
    # the network sits out the first values, unless nothing else forecasts yet
    f[NETWORK] = fnet if t >= NET_WARMUP or f[NAIVE] != f[NAIVE] else np.nan
    f[LEVEL] = ser[s, S_LEVEL]
    P = int(ser[s, S_CYCLE])
    f[CYCLE] = _season_ago(hist, s, t, j, P) if P >= 2 else np.nan
    if nb > DRIFT:
        f[DRIFT] = f[NAIVE] + (j + 1) * slope
    col, off = nb, S_SEASONS
    for i in range(seasons.size):
        P = seasons[i]
        f[col] = _season_ago(hist, s, t, j, P)
        if m > 1:
            f[col + 1] = _seasonal_diff(hist, s, t, j, P)
        if m > 2:
            lv = ser[s, off]
            f[col + 2] = lv + ser[s, off + 1 + (t + j) % P] if t >= P else np.nan
            off += 1 + P
        col += m


@njit(cache=True, **INNER)
def _take_seasons(ser, s, t, y, seasons, alpha, gamma):
    """Holt-Winters (additive, no trend) of each season takes row ``t``'s value
    ``y``: the first season fills the profile, its mean starts the level."""
    off = S_SEASONS
    for i in range(seasons.size):
        P = seasons[i]
        prof = off + 1
        if t < P:
            ser[s, prof + t] = y
            if t == P - 1:                # the first season is complete
                tot, n = 0.0, 0
                for q in range(P):
                    v = ser[s, prof + q]
                    if v == v:
                        tot += v
                        n += 1
                lv = tot / n if n > 0 else np.nan
                ser[s, off] = lv
                for q in range(P):
                    v = ser[s, prof + q] - lv
                    ser[s, prof + q] = v if v == v else 0.0
        elif y == y:
            ph = prof + t % P
            lv = ser[s, off]
            new = y - ser[s, ph] if lv != lv else alpha * (y - ser[s, ph]) + (1.0 - alpha) * lv
            ser[s, ph] = gamma * (y - new) + (1.0 - gamma) * ser[s, ph]
            ser[s, off] = new
        off += 1 + P


@njit(cache=True, **INNER)
def _take_cycle(hist, ser, s, t, rho_acf, min_acf):
    """Fold row ``t``'s change into the lagged products of series ``s`` (its value
    already in ``hist``) and redetect the cycle."""
    L = hist.shape[1]
    if t < 1:
        return
    d0 = hist[s, t % L] - hist[s, (t - 1) % L]
    if d0 != d0:
        return
    M = CYCLE_LAGS + 1
    i = t % L                     # hist's slot of row t - l, stepped back without a modulo
    for l in range(M):            # (an integer division per lag was most of this loop)
        ser[s, S_ACF + l] *= rho_acf
        im = i - 1 if i > 0 else L - 1        # the slot of row t - l - 1
        if t - l - 1 >= 0:
            d = hist[s, i] - hist[s, im]
            if d == d:
                ser[s, S_ACF + l] += d0 * d
        i = im
    best, P = 0.0, 0
    a0 = ser[s, S_ACF]
    if a0 > 0.0:
        for l in range(2, M):
            if 2 * l <= t + 1:
                a = ser[s, S_ACF + l] / a0
                if a > best:
                    best, P = a, l
    if best <= max(min_acf, 2.0 / np.sqrt(t + 1.0)):
        P = 0
    ser[s, S_CYCLE] = P


@njit(cache=True, **INNER)
def _weights(reg_sj, f, w):
    """ML-Poly weights of the experts with a forecast in ``f`` (into ``w``)."""
    K = f.size
    tot = 0.0
    n = 0
    for k in range(K):
        w[k] = 0.0
        if f[k] == f[k]:
            n += 1
            if reg_sj[k, R_SUM] > 0.0 and reg_sj[k, B_SUM] > 0.0:
                w[k] = reg_sj[k, R_SUM] / reg_sj[k, B_SUM]
                tot += w[k]
    if tot > 0.0:
        for k in range(K):
            w[k] /= tot
    elif n > 0:
        for k in range(K):
            w[k] = 1.0 / n if f[k] == f[k] else 0.0


@njit(cache=True, **INNER)
def _combine(reg_sj, f, w):
    _weights(reg_sj, f, w)
    c = 0.0
    any_ = False
    for k in range(f.size):
        if w[k] > 0.0:
            c += w[k] * f[k]
            any_ = True
    return c if any_ else np.nan


@njit(cache=True, **INNER)
def _score(reg_sj, f, c, y, rho):
    """Update one step's regrets with the target ``y`` of the combination ``c``."""
    if c != c:
        return
    g = 1.0 if c > y else (-1.0 if c < y else 0.0)
    for k in range(f.size):
        if f[k] == f[k]:
            r = g * (c - f[k])
            reg_sj[k, R_SUM] = rho * reg_sj[k, R_SUM] + r
            reg_sj[k, B_SUM] = rho * reg_sj[k, B_SUM] + r * r


@njit(cache=True, **INNER)
def _views(buf, dims):
    """The state arrays in the arena ``buf``, from the directory in ``dims``
    (``ExpertState._pack`` writes it).  Built by the backend arena's intrinsics,
    not ``reshape``: its checks and stride computation compiled for ~0.7 s on a
    first run and ran on every call."""
    return (view2(buf, dims, E_HIST), view2(buf, dims, E_SER), view4(buf, dims, E_REG),
            view4(buf, dims, E_PEND))


@njit(cache=True)
def update_rows(slots, y, fnet, buf, dims, out):
    """Combine each row's network forecasts ``fnet`` (R, H) with the experts into
    ``out``, then score every pending forecast whose target is the row's value
    and take the value into the history; rows in arrival order.  ``buf``,
    ``dims``: ``ExpertState.kernel_arrays()``."""
    hist, ser, reg, pend = _views(buf, dims)
    seasons = dims[D_SEASONS:]
    R, H = fnet.shape
    K = reg.shape[2]
    f = buf[N_PAR:N_PAR + K]            # scratch: slices of the arena, nothing allocated
    w = buf[N_PAR + K:N_PAR + 2 * K]
    f0 = buf[N_PAR + 2 * K:N_PAR + 3 * K]
    L = hist.shape[1]
    rho, alpha = buf[P_RHO], buf[P_ALPHA]
    m = int(buf[P_KINDS])
    nb = int(buf[P_BASE])
    for r in range(R):
        s = slots[r]
        t = int(ser[s, S_POS])
        slope = _drift_slope(hist, s, t) if nb > DRIFT else np.nan
        for j in range(H):
            _expert_forecasts(hist, ser, s, t, j, seasons, m, nb, fnet[r, j], slope, f)
            c = _combine(reg[s, j], f, w)
            out[r, j] = c
            # element loops, not slice copies: an array-to-array copy compiles
            # Numba's shape-mismatch error (string formatting: ~2.7 s on a cold start)
            if j == 0:
                for k in range(K):
                    f0[k] = f[k]
            else:
                q = (t + j) % H
                for k in range(K):
                    pend[s, q, j, k] = f[k]
                pend[s, q, j, K] = c
        yr = y[r]
        p = t % H
        for j in range(H):
            if yr == yr:
                if j == 0:
                    _score(reg[s, 0], f0, out[r, 0], yr, rho)
                else:
                    _score(reg[s, j], pend[s, p, j, :K], pend[s, p, j, K], yr, rho)
            if j > 0:
                pend[s, p, j, :] = np.nan
        hist[s, t % L] = yr
        if yr == yr:
            ser[s, S_LAST] = yr
            lv = ser[s, S_LEVEL]
            ser[s, S_LEVEL] = yr if lv != lv else lv + alpha * (yr - lv)
            _take_cycle(hist, ser, s, t, buf[P_RHO_ACF], buf[P_MIN_ACF])
        if m > 2:
            _take_seasons(ser, s, t, yr, seasons, alpha, buf[P_GAMMA])
        ser[s, S_POS] = t + 1


@njit(cache=True)
def combine_live(slots, fnet, buf, dims, out, weights):
    """Combinations of live forecasts ``fnet`` (B, h) (``forecast``): nothing
    changes (but the arena's scratch).  Steps beyond the tracked horizon use the
    last tracked step's weights; ``weights`` (B, h, K) receives the weights used,
    or is (0, 0, K)."""
    hist, ser, reg, _pend = _views(buf, dims)
    seasons = dims[D_SEASONS:]
    B, h = fnet.shape
    H = reg.shape[1]
    K = reg.shape[2]
    f = buf[N_PAR:N_PAR + K]
    w = buf[N_PAR + K:N_PAR + 2 * K]
    keep = weights.shape[0] > 0
    m = int(buf[P_KINDS])
    nb = int(buf[P_BASE])
    for b in range(B):
        s = slots[b]
        t = int(ser[s, S_POS])
        slope = _drift_slope(hist, s, t) if nb > DRIFT else np.nan
        for j in range(h):
            _expert_forecasts(hist, ser, s, t, j, seasons, m, nb, fnet[b, j], slope, f)
            out[b, j] = _combine(reg[s, min(j, H - 1)], f, w)
            if keep:                    # a loop: a slice copy compiles Numba's shape-error text
                for k in range(K):
                    weights[b, j, k] = w[k]


_F8, _I8 = np.dtype(np.float64), np.dtype(np.int64)


def _f64(a):
    """``a`` as a C-contiguous float64 array (itself when it is one: the per-row path)."""
    if type(a) is np.ndarray and a.dtype is _F8 and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a, dtype=np.float64)


def _i64(a):
    if type(a) is np.ndarray and a.dtype is _I8 and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a, dtype=np.int64)


class ExpertState(KeptArgs):
    """The per-series expert state of a ``MultiSeriesForecaster`` (module docstring).

    >>> st = ExpertState(periods=(), horizon=1)
    >>> st.resize(1)
    >>> rng = np.random.default_rng(0)
    >>> y = np.cumsum(rng.normal(size=2000))            # a random walk: naive is best
    >>> bad = y + 3.0 * rng.normal(size=2000)           # a noisy "network"
    >>> out = st.update(np.zeros(2000, np.int64), y, np.r_[0.0, bad[:-1]][:, None])
    >>> mae = lambda f: float(np.mean(np.abs(f[1000:] - y[1000:])))
    >>> round(mae(out[:, 0]) / mae(np.r_[0.0, y[:-1]]), 2)   # the combination vs naive
    1.0
    >>> {k: round(v, 2) for k, v in st.weights([0])[0, 0].items()}  # drift ~ naive here
    {'network': 0.0, 'naive': 0.77, 'level': 0.0, 'cycle': 0.0, 'drift': 0.22}
    """

    ARRAYS = ("hist", "ser", "reg", "pend")
    _KEPT = ("_kernel",)        # kernel_arrays(): the arena and its dims (kept_args.py)

    def __init__(self, periods, horizon, kinds=len(SEASONAL_KINDS), base=len(BASE_NAMES)):
        self.periods = tuple(periods)
        self.seasons = np.array(season_lengths(periods), dtype=np.int64)
        self.kinds = int(kinds)
        self.base = int(base)
        self.names = expert_names(periods, self.kinds, self.base)
        self.horizon = int(horizon)
        self.par = np.array([1.0 - 1.0 / DISCOUNT_WINDOW, LEVEL_ALPHA, 1.0 - 1.0 / CYCLE_WINDOW,
                             CYCLE_MIN_ACF, self.kinds, SEASON_GAMMA, self.base])
        self.a = self._fresh(0, self.horizon)      # packed into the arena on first use
        self.no_weights = np.empty((0, 0, len(self.names)))   # combine_live: none kept
        self.forget_args()

    def __setstate__(self, state):
        super().__setstate__(state)
        if self.par.size <= P_BASE:     # pickled before the drift expert: its four base experts
            self.base = 4
            self.par = np.append(self.par, 4.0)

    @property
    def n_experts(self):
        return len(self.names)

    @property
    def n_series(self):
        return self.a["ser"].shape[0]

    def _fresh(self, n, H):
        K = self.n_experts
        P = int(self.seasons.max(initial=1))
        # seasonal_diff looks back up to 2 seasons + 1 row (steps within 2 seasons)
        L = max(CYCLE_LAGS + 2, 2 * P + 1 if self.kinds > 1 else P)
        hw = int(np.sum(self.seasons + 1)) if self.kinds > 2 else 0
        ser = np.zeros((n, S_SEASONS + hw))
        ser[:, S_LAST] = ser[:, S_LEVEL] = np.nan
        ser[:, S_SEASONS:] = np.nan
        return {"hist": np.full((n, L), np.nan), "ser": ser, "reg": np.zeros((n, H, K, 2)),
                "pend": np.full((n, H, H, K + 1), np.nan)}

    def _pack(self, parts):
        """A new arena holding the state arrays of ``parts`` (dicts name -> array,
        stacked series after series): ``self.a`` becomes its views, and the kept
        ``kernel_arrays()`` its (buf, dims)."""
        K = self.n_experts
        shapes = {k: (sum(p[k].shape[0] for p in parts), *parts[0][k].shape[1:])
                  for k in self.ARRAYS}
        sizes = [int(np.prod(shapes[k])) for k in self.ARRAYS]
        offs = np.cumsum([N_PAR + 3 * K, *sizes])
        buf = np.zeros(offs[-1])
        buf[:N_PAR] = self.par
        a = {}
        for k, lo, hi in zip(self.ARRAYS, offs[:-1], offs[1:]):
            a[k] = view = buf[lo:hi].reshape(shapes[k])
            row = 0
            for p in parts:
                view[row:row + p[k].shape[0]] = p[k]
                row += p[k].shape[0]
        dims = np.zeros(D_SEASONS + self.seasons.size, dtype=np.int64)
        for e, (k, o) in enumerate(zip(self.ARRAYS, offs[:-1])):
            entry = (o, len(shapes[k]), *shapes[k])        # E_HIST.. in ARRAYS' order
            dims[e * DIR_W:e * DIR_W + len(entry)] = entry
        dims[D_SEASONS:] = self.seasons
        self.a = a
        self._kernel = (buf, dims)

    def resize(self, n):
        """Room for ``n`` series (new ones start fresh)."""
        old = self.n_series
        if n > old:
            self._pack([self.a, self._fresh(n - old, self.horizon)])

    def kernel_arrays(self):
        """The arena and its dims, the state arguments of ``update_rows`` and
        ``combine_live`` after ``fnet`` (kept: kept_args.py; after ``self.a`` was
        replaced, a new arena holding it)."""
        if self._kernel is None:
            self._pack([self.a])
        return self._kernel

    def update(self, slots, y, fnet):
        """The combined forecasts (R, H) of the network's ``fnet`` (R, H), updating
        the weights with the targets ``y`` (R,) row by row."""
        fn = _f64(fnet)
        out = np.empty(fn.shape)
        update_rows(_i64(slots), _f64(y), fn, *self.kernel_arrays(), out)
        return out

    def _live(self, slots, fnet, weights):
        fn = _f64(fnet)
        out = np.empty(fn.shape)
        combine_live(_i64(slots), fn, *self.kernel_arrays(), out, weights)
        return out

    def combine(self, slots, fnet):
        """Combinations of live forecasts ``fnet`` (B, h), changing nothing."""
        return self._live(slots, fnet, self.no_weights)

    def weight_array(self, slots):
        """(B, H, K) weights that the next forecasts of ``slots`` get, the network
        counted as present; an expert with no forecast yet (a season not seen) has
        weight 0."""
        slots = np.asarray(slots, dtype=np.int64)
        w = np.empty((slots.size, self.horizon, self.n_experts))
        self._live(slots, np.zeros((slots.size, self.horizon)), w)
        return w

    def weights(self, slots):
        """``weight_array`` as (B, H) dicts expert name -> weight."""
        w = self.weight_array(slots)
        return np.array([[dict(zip(self.names, map(float, w[b, j])))
                          for j in range(w.shape[1])] for b in range(w.shape[0])], dtype=object)

    def set_horizon(self, H):
        """Track ``H`` steps (only ever more): new steps start from the regrets
        of the last tracked step (the nearest evidence), pending forecasts move
        to their target's slot in the wider ring."""
        old = self.horizon
        if H <= old:
            return
        n = self.n_series
        fresh = self._fresh(n, H)
        reg, pend = fresh["reg"], fresh["pend"]
        reg[:, :old] = self.a["reg"]
        reg[:, old:] = self.a["reg"][:, old - 1:old]
        pos = self.a["ser"][:, S_POS].astype(np.int64)
        rows = np.arange(n)
        for d in range(1, old):   # targets pos + d - 1 ... still pending
            tgt = pos + d - 1
            pend[rows, tgt % H, :old] = self.a["pend"][rows, tgt % old]
        self.horizon = H
        self._pack([{"hist": self.a["hist"], "ser": self.a["ser"], "reg": reg, "pend": pend}])

    def load(self, arrays, n, source):
        """Restore the arrays ``arrays`` (name -> ndarray) of ``n`` series.  A
        checkpoint saved with fewer experts (before ``drift``, or before
        ``seasonal_diff`` and ``holt_winters``: ``LAYOUTS``) resumes with the
        experts it had."""
        for base, kinds in LAYOUTS:
            st = ExpertState(self.periods, self.horizon, kinds, base)
            want = st._fresh(n, self.horizon)
            if all(k in arrays and tuple(arrays[k].shape) == v.shape for k, v in want.items()):
                break
        else:
            raise CheckpointError(f"{source}: the expert state is missing or its arrays have "
                                  f"the wrong shape; the file is corrupt")
        if (base, kinds) != (self.base, self.kinds):
            self.__init__(self.periods, self.horizon, kinds, base)
        self._pack([{k: arrays[k] for k in self.ARRAYS}])
