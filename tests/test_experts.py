"""Online aggregation of experts (issue 11, streamlstm/forecast/experts.py): the
combination follows the best expert (a bad network falls back on naive, a good one
is kept), follows a switch, is scale-free, never looks ahead, and is bit for bit
the same however rows are batched, interleaved or checkpointed."""
import numpy as np
import pytest

from streamlstm import LSTMForecaster
from streamlstm.errors import CheckpointError, InputError
from streamlstm.forecast import experts as E
from streamlstm.forecast.experts import ExpertState
from streamlstm.forecast.multiseries import MultiSeriesForecaster

N = 3000


def _walk(n=N, seed=0):
    return 100.0 + np.cumsum(np.random.default_rng(seed).normal(size=n))


def _run(y, fnet, periods=(), slots=None):
    st = ExpertState(periods, fnet.shape[1])
    st.resize(1 if slots is None else int(slots.max()) + 1)
    slots = np.zeros(y.size, np.int64) if slots is None else slots
    return st.update(slots, y, fnet), st


def _mae(f, y, skip=N // 5):
    return float(np.nanmean(np.abs(f[skip:] - y[skip:])))


def _lagged(v, h=1):
    """Row r's forecast of row r + j (j < h) from values up to r - 1: v[r - 1 + j]."""
    out = np.full((v.size, h), np.nan)
    for j in range(h):
        out[1:v.size - j, j] = v[j:v.size - 1]
    return out


def test_a_bad_network_falls_back_on_naive():
    y = _walk()
    bad = y + 3.0 * np.random.default_rng(1).normal(size=N)    # worse than naive
    out, st = _run(y, _lagged(bad))
    naive = np.r_[np.nan, y[:-1]]
    assert _mae(out[:, 0], y) <= 1.01 * _mae(naive, y)
    w = st.weights([0])[0, 0]
    # on a random walk the drift is shrunk to the last value on most rows (its mean
    # change is not significant): the two share the weight
    assert w["naive"] + w["drift"] > 0.9 and w["network"] < 0.1, w


def test_a_good_network_is_kept():
    rng = np.random.default_rng(2)
    y = _walk()
    good = np.r_[y[1:], y[-1]] + 0.2 * rng.normal(size=N)     # knows the next value, roughly
    fnet = np.full((N, 1), np.nan)
    fnet[:, 0] = good - np.r_[y[1:], y[-1]] + y               # row r's forecast of y[r]
    out, st = _run(y, fnet)
    naive = np.r_[np.nan, y[:-1]]
    assert _mae(out[:, 0], y) < 0.3 * _mae(naive, y)
    assert st.weights([0])[0, 0]["network"] > 0.9


def test_the_network_joins_after_its_warm_up():
    """The network sits out a series' first NET_WARMUP values (unless nothing else
    forecasts: no finite value yet), then joins and wins when it is the best."""
    W = E.NET_WARMUP
    y = _walk(60, seed=12)
    y[:3] = np.nan                               # the series starts with missing values
    exact = y[:, None].copy()                    # row r's network forecast of y[r]: exact
    exact[:3, 0] = 50.0
    out, st = _run(y, exact)
    alone, _ = _run(y, np.full((y.size, 1), np.nan))
    # rows 0..3 have no finite value before them: the network's is the only forecast
    np.testing.assert_array_equal(out[:4, 0], exact[:4, 0])
    # rows 4..W-1: naive and level only, as if there were no network
    np.testing.assert_array_equal(out[4:W, 0], alone[4:W, 0])
    assert np.all(np.isfinite(out[4:, 0]))
    # from row W on it takes part, and being exact it takes over
    err, err_alone = np.abs(out[W + 5:, 0] - y[W + 5:]), np.abs(alone[W + 5:, 0] - y[W + 5:])
    assert err.mean() < 0.2 * err_alone.mean()
    assert st.weights([0])[0, 0]["network"] > 0.8


def test_a_switch_between_experts_is_followed():
    """The network is good for the first half, then useless: within a few hundred
    rows of the switch the combination is back at naive's error."""
    rng = np.random.default_rng(3)
    y = _walk(seed=3)
    fnet = y + np.where(np.arange(N) < N // 2, 0.1, 5.0) * rng.normal(size=N)
    out, _ = _run(y, fnet[:, None])
    naive = np.r_[np.nan, y[:-1]]
    late = slice(N // 2 + 300, N)
    assert np.mean(np.abs(out[late, 0] - y[late])) <= 1.05 * np.mean(np.abs(naive[late] - y[late]))
    early = slice(300, N // 2)
    assert np.mean(np.abs(out[early, 0] - y[early])) < 0.3 * np.mean(np.abs(naive[early] - y[early]))


def test_the_seasonal_experts_win_on_a_clean_cycle():
    t = np.arange(N)
    y = 50.0 + 10.0 * np.sin(2 * np.pi * t / 12) + 0.1 * np.random.default_rng(4).normal(size=N)
    flat = np.full((N, 3), 50.0)          # a network that learned nothing
    out, st = _run(y, flat, periods=(12,))
    snaive = np.r_[np.full(12, np.nan), y[:-12]]
    assert _mae(out[:, 0], y) <= 1.05 * _mae(snaive, y)
    w = st.weights([0])[0, 0]
    assert w["seasonal_naive_12"] + w["seasonal_diff_12"] + w["holt_winters_12"] > 0.9


def test_seasonal_diff_follows_a_trending_season():
    """A linear trend under a season of 12: the seasonal random walk forecasts it
    exactly (up to noise), seasonal naive lags a season's growth behind."""
    t = np.arange(N)
    y = 0.5 * t + 10.0 * np.sin(2 * np.pi * t / 12) + 0.1 * np.random.default_rng(8).normal(size=N)
    out, st = _run(y, np.full((N, 3), np.nan), periods=(12,))
    snaive = np.r_[np.full(12, np.nan), y[:-12]]
    assert _mae(out[:, 0], y) < 0.1 * _mae(snaive, y)
    assert st.weights([0])[0, 2]["seasonal_diff_12"] > 0.8


def test_holt_winters_averages_a_noisy_season():
    """A fixed profile under heavy noise: Holt-Winters averages the profile over
    seasons, seasonal naive repeats last season's noise (error sd sqrt(2) sigma)."""
    t = np.arange(N)
    y = 50.0 + 10.0 * np.sin(2 * np.pi * t / 12) + 3.0 * np.random.default_rng(9).normal(size=N)
    out, st = _run(y, np.full((N, 2), np.nan), periods=(12,))
    snaive = np.r_[np.full(12, np.nan), y[:-12]]
    assert _mae(out[:, 0], y) < 0.85 * _mae(snaive, y)
    w = st.weights([0])[0, 0]
    assert max(w, key=w.get) == "holt_winters_12"


def _reference_experts(y, t, j, P, alpha=E.LEVEL_ALPHA, gamma=E.SEASON_GAMMA):
    """A plain-Python twin: the seasonal experts' forecasts of row t + j from y[:t]."""
    b = t + j - P * ((j + P) // P)
    sn = y[b] if b >= 0 else np.nan
    k = (j + P) // P
    sd = y[t - 1] + y[b] - y[t - 1 - k * P] if t - 1 - k * P >= 0 else np.nan
    if t < P:
        return sn, sd, np.nan
    prof = y[:P].copy()
    lv = np.nanmean(prof)
    prof = np.nan_to_num(prof - lv)
    for r in range(P, t):
        if y[r] == y[r]:
            new = alpha * (y[r] - prof[r % P]) + (1 - alpha) * lv
            prof[r % P] = gamma * (y[r] - new) + (1 - gamma) * prof[r % P]
            lv = new
    return sn, sd, lv + prof[(t + j) % P]


def _reference_drift(y, t, j):
    """A plain-Python twin of the drift expert's forecast of row t + j from y[:t]:
    the mean change over the last W rows, times max(0, 1 - 1 / z^2) (z: the mean
    over its standard error, from the finite changes in the window)."""
    W = E.DRIFT_ROWS
    if t <= W:
        return np.nan
    d = (y[t - 1] - y[t - 1 - W]) / W
    ch = np.diff(y[t - 1 - W:t])
    ch = ch[np.isfinite(ch)]
    if np.isfinite(d) and d != 0.0 and ch.size >= 2:
        z2 = d * d / (np.sum((ch - d) ** 2) / (ch.size - 1) / W)   # (spread around d)
        d *= max(0.0, 1.0 - E.DRIFT_SHRINK / z2)
    return y[t - 1] + (j + 1) * d


def _drift_forecasts(y, H):
    """The drift expert's forecasts (n, H) as the kernel computes them, row by row."""
    st = ExpertState((), H)
    st.resize(1)
    f = np.empty(st.n_experts)
    k = st.names.index("drift")
    out = np.empty((y.size, H))
    for t in range(y.size):
        slope = E._drift_slope(st.a["hist"], 0, t)
        for j in range(H):
            E._expert_forecasts(st.a["hist"], st.a["ser"], 0, t, j, st.seasons, 3, st.base,
                                np.nan, slope, f)
            out[t, j] = f[k]
        st.update(np.zeros(1, np.int64), y[t:t + 1], np.full((1, H), np.nan))
    return out


def test_seasonal_experts_equal_their_python_twin():
    rng = np.random.default_rng(10)
    n, P, H = 90, 7, 9
    y = 20 + np.cumsum(rng.normal(size=n)) + 5 * np.sin(np.arange(n))
    y[[3, 30, 31, 55]] = np.nan                     # missing values, one in the first season
    st = ExpertState((P,), H)
    st.resize(1)
    f = np.empty(st.n_experts)
    a = st.a
    col = st.names.index(f"seasonal_naive_{P}")
    for t in range(n):
        for j in range(H):
            E._expert_forecasts(a["hist"], a["ser"], 0, t, j, st.seasons, 3, st.base,
                                np.nan, E._drift_slope(a["hist"], 0, t), f)
            want = _reference_experts(y, t, j, P)
            np.testing.assert_allclose(f[col:col + 3], want, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(f[st.names.index("drift")], _reference_drift(y, t, j),
                                       rtol=1e-12)
        st.update(np.zeros(1, np.int64), y[t:t + 1], np.full((1, H), np.nan))


def test_a_checkpoint_with_one_seasonal_expert_resumes_with_it():
    """A state saved before seasonal_diff and holt_winters existed (one seasonal
    expert per season) loads as it was and goes on bit for bit."""
    y = _walk(400)
    fnet = _lagged(y + np.random.default_rng(11).normal(size=400), 2)
    old = ExpertState((12,), 2, kinds=1, base=4)       # (also before drift)
    old.resize(1)
    a = old.update(np.zeros(200, np.int64), y[:200], fnet[:200])
    assert old.names[-1] == "seasonal_naive_12" and old.n_experts == 5
    new = ExpertState((12,), 2)
    assert new.n_experts == 8
    new.load(old.a, 1, "old.ckpt")
    assert new.names == old.names
    b1 = old.update(np.zeros(200, np.int64), y[200:], fnet[200:])
    b2 = new.update(np.zeros(200, np.int64), y[200:], fnet[200:])
    assert np.array_equal(b1, b2) and a.shape == (200, 2)
    with pytest.raises(CheckpointError, match="corrupt"):
        new.load({**old.a, "ser": old.a["ser"][:, :3]}, 1, "bad.ckpt")


def test_drift_follows_a_trend():
    """A trend under noise: naive lags a step behind (error ~ the slope), the drift
    over the last DRIFT_ROWS rows does not; with a useless network the combination
    takes the drift."""
    t = np.arange(N)
    y = 3.0 * t + np.random.default_rng(12).normal(size=N)
    out, st = _run(y, np.full((N, 3), np.nan))
    for j in range(3):      # row r's step-j forecast targets y[r + j]; naive's is y[r - 1]
        target = y[N // 5 + j:]
        combined = np.mean(np.abs(out[N // 5:N - j, j] - target))
        naive = np.mean(np.abs(y[N // 5 - 1:N - j - 1] - target))
        assert combined < 0.6 * naive, (j, combined, naive)
    w = st.weights([0])[0, 2]
    assert max(w, key=w.get) == "drift"


def test_the_drift_is_shrunk_by_its_significance():
    """A weak trend under noise keeps part of its slope (the shrink factor strictly
    between 0 and 1, as the twin computes it, missing values included); a random
    walk without a trend gets a drift of exactly naive on most rows, where the
    unshrunk mean change would extrapolate noise."""
    n, H, W = 400, 3, E.DRIFT_ROWS
    y = 0.3 * np.arange(n) + np.random.default_rng(14).normal(size=n)
    y[[100, 101, 250]] = np.nan
    got = _drift_forecasts(y, H)
    factors = []
    for t in range(W + 1, n):
        for j in range(H):
            np.testing.assert_allclose(got[t, j], _reference_drift(y, t, j), rtol=1e-12)
        d = (y[t - 1] - y[t - 1 - W]) / W
        if np.isfinite(got[t, 0]):
            factors.append((got[t, 0] - y[t - 1]) / d)
    factors = np.array(factors)
    assert factors.size > 250 and 0.3 < np.median(factors) < 0.9 and factors.max() < 1.0

    y = _walk(n, seed=15)
    got = _drift_forecasts(y, H)[W + 1:, 0]
    naive = y[W:n - 1]
    unshrunk = naive + (naive - y[:n - 1 - W]) / W
    assert np.mean(got == naive) > 0.5
    assert np.mean(np.abs(got - naive)) < 0.3 * np.mean(np.abs(unshrunk - naive))


def test_the_drift_is_unshrunk_without_two_finite_changes():
    """With both ends of the window present but fewer than two finite changes in
    it (gaps), there is no spread to judge the mean change by: the drift keeps it
    whole, as the twin does (one finite change at t = 150, none at t = 280)."""
    n, H, W = 300, 2, E.DRIFT_ROWS
    y = 0.05 * np.arange(n) + np.random.default_rng(16).normal(size=n)
    y[87:149] = np.nan         # t = 150: ends y[85], y[149]; only 85 -> 86 is a change
    y[216:279] = np.nan        # t = 280: ends y[215], y[279]; no change at all
    got = _drift_forecasts(y, H)
    for t in (150, 280):
        d = (y[t - 1] - y[t - 1 - W]) / W
        for j in range(H):
            assert got[t, j] == pytest.approx(y[t - 1] + (j + 1) * d, rel=1e-12)
            assert got[t, j] == pytest.approx(_reference_drift(y, t, j), rel=1e-12)

def test_a_checkpoint_from_before_drift_resumes_without_it(tmp_path):
    """A state saved with the four base experts of before ``drift`` (checkpoint or
    pickle) loads as it was and goes on bit for bit."""
    import pickle
    y = _walk(400)
    fnet = _lagged(y + np.random.default_rng(13).normal(size=400), 2)
    old = ExpertState((12,), 2, base=4)
    old.resize(1)
    old.update(np.zeros(200, np.int64), y[:200], fnet[:200])
    assert "drift" not in old.names and old.n_experts == 7
    new = ExpertState((12,), 2)
    assert new.names[4] == "drift" and new.n_experts == 8
    new.load(old.a, 1, "old.ckpt")
    assert new.names == old.names
    # a River model pickled before drift: its ExpertState had no base and 6 settings
    state = dict(old.__dict__, par=old.par[:E.P_BASE].copy())
    del state["base"]
    pickled = ExpertState.__new__(ExpertState)
    pickled.__setstate__(pickle.loads(pickle.dumps(state)))
    b1 = old.update(np.zeros(200, np.int64), y[200:], fnet[200:])
    b2 = new.update(np.zeros(200, np.int64), y[200:], fnet[200:])
    b3 = pickled.update(np.zeros(200, np.int64), y[200:], fnet[200:])
    assert np.array_equal(b1, b2) and np.array_equal(b1, b3)


def test_the_cycle_detector_finds_an_unannounced_period():
    """A period no timestamp gives (11, like sunspots): detected from the changes'
    autocorrelation; a random walk has none."""
    t = np.arange(600)
    y = 80.0 + 40.0 * np.sin(2 * np.pi * t / 11) + np.random.default_rng(5).normal(size=600)
    _, st = _run(y, np.full((600, 1), np.nan))
    assert st.a["ser"][0, E.S_CYCLE] == 11
    _, st = _run(_walk(600), np.full((600, 1), np.nan))
    assert st.a["ser"][0, E.S_CYCLE] == 0


def test_scale_free():
    y = _walk()
    fnet = _lagged(y + np.random.default_rng(6).normal(size=N), 3)
    a, sa = _run(y, fnet, periods=(7,))
    b, sb = _run(1000.0 * y, 1000.0 * fnet, periods=(7,))
    np.testing.assert_allclose(b, 1000.0 * a, rtol=1e-9)
    np.testing.assert_allclose(sb.a["reg"][..., E.R_SUM] / sb.a["reg"][..., E.B_SUM].clip(1e-300),
                               (sa.a["reg"][..., E.R_SUM] / sa.a["reg"][..., E.B_SUM].clip(1e-300))
                               / 1000.0, rtol=1e-6, atol=1e-300)


def test_no_look_ahead():
    """A forecast issued at row k does not depend on the values from row k on."""
    y = _walk()
    fnet = _lagged(y + np.random.default_rng(7).normal(size=N), 4)
    k = 1700
    y2 = y.copy()
    y2[k:] += 50.0
    a, _ = _run(y, fnet)
    b, _ = _run(y2, fnet)
    np.testing.assert_array_equal(a[:k + 1], b[:k + 1])
    assert not np.array_equal(a[k + 1:], b[k + 1:])


def test_batching_and_interleaving_change_nothing():
    rng = np.random.default_rng(8)
    S, R, H = 5, 4000, 3
    slots = rng.integers(0, S, size=R)
    y = 10.0 * slots + np.cumsum(rng.normal(size=R))
    y[rng.random(R) < 0.05] = np.nan                   # missing values
    fnet = y[:, None] + rng.normal(size=(R, H))
    one, s1 = _run(y, fnet, periods=(5,), slots=slots)
    st = ExpertState((5,), H)
    st.resize(S)
    cuts = np.sort(rng.choice(np.arange(1, R), size=40, replace=False))
    parts = [st.update(slots[a:b], y[a:b], fnet[a:b])
             for a, b in zip(np.r_[0, cuts], np.r_[cuts, R])]
    np.testing.assert_array_equal(np.concatenate(parts), one)
    for k in ExpertState.ARRAYS:
        np.testing.assert_array_equal(st.a[k], s1.a[k])
    # each series on its own gives the same as interleaved
    for s in range(S):
        alone, _ = _run(y[slots == s], fnet[slots == s], periods=(5,))
        np.testing.assert_array_equal(alone, one[slots == s])


def test_weights_are_a_convex_combination():
    y = _walk()
    out, st = _run(y, _lagged(y + np.random.default_rng(9).normal(size=N), 2), periods=(3,))
    for w in st.weights([0])[0]:
        v = np.array(list(w.values()))
        assert np.all(v >= 0) and abs(v.sum() - 1.0) < 1e-12


def test_multiseries_resume_is_bit_for_bit(tmp_path):
    rng = np.random.default_rng(10)
    ids = np.array(["a", "b", "c"])[rng.integers(0, 3, size=300)]
    y = np.cumsum(rng.normal(size=300))
    whole = MultiSeriesForecaster(hidden_size=4, horizon=3, seasonality=5, backend="cpu")
    full = whole.predict_learn(ids, y)
    part = MultiSeriesForecaster(hidden_size=4, horizon=3, seasonality=5, backend="cpu")
    first = part.predict_learn(ids[:170], y[:170])
    part.save(tmp_path / "m.slstm")
    back = MultiSeriesForecaster.load(tmp_path / "m.slstm")
    rest = back.predict_learn(ids[170:], y[170:])
    np.testing.assert_array_equal(np.vstack([first, rest]), full)
    assert back.weights("a") == whole.weights("a")
    assert back.forecast(4) == whole.forecast(4)


def test_experts_none_is_the_network_alone_and_auto_differs():
    rng = np.random.default_rng(11)
    y = np.cumsum(rng.normal(size=200))
    ids = ["s"] * 200
    a = MultiSeriesForecaster(hidden_size=4, experts=None, backend="cpu")
    b = MultiSeriesForecaster(hidden_size=4, backend="cpu")
    fa, fb = a.predict_learn(ids, y), b.predict_learn(ids, y)
    assert not np.array_equal(fa, fb)
    # the network inside learns the same either way: the combination is downstream
    np.testing.assert_array_equal(a.net.arrays()["theta"], b.net.arrays()["theta"])
    with pytest.raises(InputError, match="experts=None"):
        a.weights()


@pytest.mark.parametrize("bad", ["all", 1, True])
def test_bad_experts_option_is_refused(bad):
    with pytest.raises(InputError, match="'auto'"):
        MultiSeriesForecaster(experts=bad)
    with pytest.raises(InputError, match="'auto'"):
        LSTMForecaster(experts=bad)


def test_a_checkpoint_from_before_experts_loads_without_them():
    m = MultiSeriesForecaster(hidden_size=4, experts=None, backend="cpu")
    m.predict_learn(["a"] * 20, np.arange(20.0))
    meta, arrays = m._parts()
    del meta["config"]["experts"]
    old = MultiSeriesForecaster._from_parts(meta, arrays)
    assert old.experts is None
    assert old.forecast(2) == m.forecast(2)


def test_river_forecaster_shows_its_weights():
    m = LSTMForecaster(seasonality=4)
    assert m.weights_ == []
    for t in range(120):
        m.learn_one(float(t % 4))
    m.forecast(3)                       # tracks steps 2 and 3 from now on
    m.learn_one(0.0)
    w = m.weights_
    assert len(w) == 3 and set(w[0]) == {"network", "naive", "level", "cycle", "drift",
                                         "seasonal_naive_4", "seasonal_diff_4",
                                         "holt_winters_4"}
    assert all(abs(sum(d.values()) - 1.0) < 1e-12 for d in w)
    assert LSTMForecaster(experts=None).weights_ == []


def test_replay_equals_streaming():
    """learn_many (a replayed history) leaves the experts where predict_learn row by
    row does: the same weights, the same next forecasts."""
    import pandas as pd
    rng = np.random.default_rng(12)
    ids = np.array(["a", "b"])[rng.integers(0, 2, size=240)]
    y = np.cumsum(rng.normal(size=240))
    frame = pd.DataFrame({"series_id": ids, "value": y})
    a = MultiSeriesForecaster(hidden_size=4, horizon=2, seasonality=6, backend="cpu")
    b = MultiSeriesForecaster(hidden_size=4, horizon=2, seasonality=6, backend="cpu")
    a.learn_many(frame)
    for i, v in zip(ids, y):
        b.predict_learn([i], [v])
    assert a.weights() == b.weights()
    assert a.forecast(3) == b.forecast(3)


def test_the_next_forecast_in_one_call_equals_to_raw_then_combine():
    """forecast(1)'s one compiled call (forecast/combined.py: to raw units, then
    the combination) gives the bits of features.to_raw followed by
    ExpertState.combine, through the model's path and directly."""
    from streamlstm.forecast import combined
    from streamlstm.forecast.features import to_raw
    rng = np.random.default_rng(5)
    n, R = 5, 400
    st = ExpertState((4,), 2)
    st.resize(n)
    slots = rng.integers(0, n, R).astype(np.int64)
    y = np.sin(np.arange(R)) * 10 + slots + rng.normal(size=R)
    st.update(slots, y, y[:, None] + rng.normal(size=(R, 2)))
    s = np.array([3, 0, 4], np.int64)
    yhat, level = rng.normal(size=3), rng.normal(size=3) * 10
    scale = np.array([2.0, 0.0, 0.5])                  # one series without a scale yet
    got = combined.next_combination(st, s, yhat, level, scale)
    want = st.combine(s, to_raw(yhat, level, scale)[:, None])
    np.testing.assert_array_equal(got, want)
    assert got.shape == (3, 1) and np.all(np.isfinite(got))

    m = MultiSeriesForecaster(hidden_size=4, backend="reference", seasonality=3, seed=1)
    ids = np.array(["a", "b"])[rng.integers(0, 2, 90)]
    m.predict_learn(ids, np.cos(np.arange(90.0)) + (ids == "b"))
    sl = m.slots_of(["b", "a"])
    net = m._network_forecast(sl, 1, np.zeros((2, 1, 0)))
    np.testing.assert_array_equal(m.forecast_slots(sl, 1), m._ex.combine(sl, net))
