"""MultiSeriesForecaster: batching invariance, side-effect-free forecasts,
resume = uninterrupted, new series and features at any time, bad input."""
import numpy as np
import pandas as pd
import pytest

from streamlstm import InputError
from streamlstm.backends import backend_class
from streamlstm.errors import CheckpointError
from streamlstm.forecast.multiseries import MultiSeriesForecaster


def _backend():
    try:
        backend_class("cpu")
        return "cpu"
    except ImportError:   # the Numba CPU backend is not on this branch yet
        return "reference"


BACKEND = _backend()


def make(**kw):
    kw.setdefault("hidden_size", 6)
    kw.setdefault("backend", BACKEND)
    kw.setdefault("k1", 2)
    kw.setdefault("k2", 5)
    return MultiSeriesForecaster(**kw)


def stream(R=90, seed=0, n_series=4, F=0, missing=True):
    """Rows of interleaved series that join at different times, with missing values."""
    rng = np.random.default_rng(seed)
    ids, ys, xs = [], [], []
    t = np.zeros(n_series)
    for r in range(R):
        s = int(rng.integers(0, min(n_series, 1 + r // 10)))     # series s joins at row 10 s
        t[s] += 1
        ids.append(["a", "b", 7, "d", 9][s])
        y = 100.0 * (s + 1) + 10 * np.sin(t[s] / 3.0) + rng.normal()
        if missing and rng.random() < 0.1:
            y = np.nan
        ys.append(y)
        xs.append(rng.normal(size=F) + s)
    return ids, np.array(ys), np.array(xs).reshape(R, F)


@pytest.mark.parametrize("horizon", [1, 3])
def test_batched_equals_row_by_row(horizon):
    ids, y, X = stream(F=2)
    a = make(horizon=horizon, features=["f0", "f1"])
    out = a.predict_learn(ids, y, X)
    b = make(horizon=horizon, features=["f0", "f1"])
    rows = [b.predict_learn(ids[r:r + 1], y[r:r + 1], X[r:r + 1]) for r in range(len(ids))]
    c = make(horizon=horizon, features=["f0", "f1"])
    cuts = [0, 7, 8, 40, 41, 77, len(ids)]
    parts = [c.predict_learn(ids[i:j], y[i:j], X[i:j]) for i, j in zip(cuts, cuts[1:])]
    assert out.shape == (len(ids), horizon)
    np.testing.assert_array_equal(out, np.vstack(rows))
    np.testing.assert_array_equal(out, np.vstack(parts))
    np.testing.assert_array_equal(a.net.state_dict()["weight_hh_l0"],
                                  b.net.state_dict()["weight_hh_l0"])
    assert a.series_ids == ["a", "b", 7, "d"] == b.series_ids
    # only the very first row of each series has nothing to anchor a forecast on
    first = [ids.index(i) for i in a.series_ids]
    assert np.isnan(out[first, 0]).all()
    assert np.isfinite(np.delete(out, first, axis=0)).all()


def test_forecast_has_no_side_effects_and_matches_next_row():
    ids, y, _ = stream()
    a, b = make(horizon=3), make(horizon=3)
    a.predict_learn(ids, y)
    b.predict_learn(ids, y)
    f1 = a.forecast(3)
    f2 = a.forecast(3, series=["b", 7])
    assert f1 == a.forecast(3) and f2 == {"b": f1["b"], 7: f1[7]}
    nxt = a.predict_learn(["b"], [101.0])
    ref = b.predict_learn(["b"], [101.0])
    np.testing.assert_array_equal(nxt, ref)
    # the forecast made before the row is that row's forecast (column 0) and rollout
    np.testing.assert_allclose(nxt[0], f1["b"], rtol=1e-12)


def test_resume_equals_uninterrupted(tmp_path):
    ids, y, X = stream(R=80, F=1)
    a = make(horizon=2, features=["x"])
    a.predict_learn(ids[:50], y[:50], X[:50])
    a.save(tmp_path / "m.ckpt", extra_meta={"offset": 50}, extra_arrays={"w": np.arange(3)})
    b, meta, arrays = MultiSeriesForecaster.load_with_extras(tmp_path / "m.ckpt")
    assert meta == {"offset": 50} and arrays["w"].tolist() == [0, 1, 2]
    assert b.series_ids == a.series_ids
    np.testing.assert_array_equal(a.predict_learn(ids[50:], y[50:], X[50:]),
                                  b.predict_learn(ids[50:], y[50:], X[50:]))
    assert a.forecast(4) == b.forecast(4)
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a streamlstm checkpoint"):
        MultiSeriesForecaster.load(tmp_path / "bad.ckpt")


def test_bad_input_names_row_and_column_and_changes_nothing():
    m = make(features=["temp", "load"])
    m.predict_learn(["a"], [1.0], [[0.5, 0.1]])
    before = m.forecast(2)
    with pytest.raises(InputError, match=r"inf at row 1 \(series 'new'\), column 1 \('load'\)"):
        m.predict_learn(["a", "new"], [2.0, 3.0], [[0.1, 0.2], [0.3, np.inf]])
    with pytest.raises(InputError, match=r"nan at row 0 .*'temp'"):
        m.predict_learn(["a"], [2.0], [[np.nan, 0.2]])
    with pytest.raises(InputError, match="infinite value"):
        m.predict_learn(["a"], [np.inf], [[0.1, 0.2]])
    with pytest.raises(InputError, match="series id 1.5 at row 0 is a float"):
        m.predict_learn([1.5], [2.0], [[0.1, 0.2]])
    with pytest.raises(InputError, match="series id 1.5 at row 70 is a float"):
        m.predict_learn(["a"] * 70 + [1.5] + ["b"] * 29, np.ones(100), np.zeros((100, 2)))
    with pytest.raises(InputError, match="expected \\(1, 2\\)"):
        m.predict_learn(["a"], [2.0], [[0.1]])
    with pytest.raises(InputError, match="unknown series id 'zzz'"):
        m.forecast(1, series="zzz")
    assert m.series_ids == ["a"] and m.forecast(2) == before


def test_learn_many_frame_is_predict_learn_in_time_order():
    ids, y, X = stream(R=60, F=1, missing=False)
    frame = pd.DataFrame({"series_id": ids, "timestamp": np.arange(60), "value": y, "x": X[:, 0]})
    shuffled = frame.iloc[np.random.default_rng(1).permutation(60)]
    a = make(features=["x"])
    a.learn_many(shuffled)
    b = make(features=["x"])
    b.predict_learn(ids, y, X)
    assert a.forecast(3) == b.forecast(3)
    with pytest.raises(InputError, match="no column 'x'"):
        make(features=["x"]).learn_many(frame.drop(columns="x"))


def test_add_features_keeps_forecasts_and_learns_from_them():
    ids, y, _ = stream(R=40, missing=False)
    m = make()
    m.predict_learn(ids, y)
    before = m.forecast(3)
    n_in = m.net.n_inputs
    m.add_features(["promo"])
    assert m.forecast(3) == before and m.net.n_inputs == n_in + 1
    out = m.predict_learn(["a"] * 5, [100.0, 101, 102, 103, 104], [[0], [1], [0], [1], [0]])
    assert np.isfinite(out).all()
    w = m.net.state_dict()["weight_ih_l0"]
    assert w.shape[1] == n_in + 1 and np.any(w[:, -1] != 0)      # the new column has learned


def test_learns_many_seasonal_series_in_the_hundreds():
    """Two sine series with offsets in the hundreds and periods 8 and 12: after
    warming up, one-step forecasts beat the naive (last value) forecast clearly."""
    t = np.arange(600)
    ids = np.where(t % 2 == 0, "s8", "s12")
    k = t // 2
    y = np.where(ids == "s8", 500 + 20 * np.sin(2 * np.pi * k / 8), 300 + 5 * np.cos(2 * np.pi * k / 12))
    m = make(hidden_size=16, k1=1, k2=12)
    out = m.predict_learn(ids, y)[:, 0]
    last = {}
    naive = np.empty(len(y))
    for r, (i, v) in enumerate(zip(ids, y)):
        naive[r] = last.get(i, np.nan)
        last[i] = v
    tail = slice(400, None)
    err = np.mean(np.abs(out[tail] - y[tail]))
    err_naive = np.mean(np.abs(naive[tail] - y[tail]))
    assert err < 0.5 * err_naive, (err, err_naive)


def test_replay_shows_progress_and_equals_learn_many(capsys):
    ids, y, _ = stream(R=50, missing=False)
    frame = pd.DataFrame({"series_id": ids, "timestamp": np.arange(50), "value": y})
    a, b = make(), make()
    a.replay(frame)
    assert "learning" in capsys.readouterr().err          # the progress bar, on stderr
    b.learn_many(frame)
    assert capsys.readouterr().err == ""                   # short frames stay quiet
    assert a.forecast(2) == b.forecast(2)


@pytest.mark.parametrize("kw", [dict(), dict(trend=True), dict(differencing=True),
                                dict(seasonality=(4,), lags=(1, 4), trend=True)])
def test_multi_step_forecast_equals_an_independent_rollout(kw):
    """forecast(h) against a rollout written out here in Python: inputs from the
    frozen scalers, the network's public ``predict`` from the live state, the
    forecast mapped to raw units and fed back - the last value becomes the
    forecast and the smoothed level moves on by its trend.  (A planted trend bug
    in the compiled rollout survived the other tests.)"""
    from streamlstm.forecast.features import Y_LEVEL, Y_MEAN, Y_TREND
    m = MultiSeriesForecaster(hidden_size=6, k1=3, k2=6, backend="reference", seed=2,
                              experts=None, **kw)
    t = np.arange(60)
    rng = np.random.default_rng(1)
    for sid, a in (("a", 1.0), ("b", -0.5)):
        y = 10 + a * 0.4 * t + np.sin(t * np.pi / 2) + rng.normal(0, 0.1, t.size)
        m.predict_learn([sid] * t.size, y)
    h = 5
    got = m.forecast(h, series=["a", "b"])
    slots = m.slots_of(["a", "b"])
    snap = m._feats.snapshot(slots)
    state = m._net.get_state(slots)
    X = np.zeros((2, 0))
    mine = np.empty((2, h))
    for j in range(h):
        U, level, scale = m._feats.rollout_step(snap, X)
        yhat, state = m._net.predict(U, state=state)
        v = np.where(scale > 0, level + yhat[:, 0] * scale, level)
        mine[:, j] = v
        snap["hist"][:, :-1] = snap["hist"][:, 1:].copy()
        snap["hist"][:, -1] = v
        snap["ystat"][:, Y_LEVEL] = v
        snap["ystat"][:, Y_MEAN] += snap["ystat"][:, Y_TREND]
        snap["pos"] += 1
    np.testing.assert_allclose([got["a"], got["b"]], mine, rtol=1e-12, atol=1e-12)
    if kw.get("trend"):
        assert np.all(snap["ystat"][:, Y_TREND] != 0)      # the trend is really exercised


@pytest.mark.parametrize("scaling", ["series", "global"])
@pytest.mark.parametrize("experts", [None, "auto"])
def test_one_step_forecast_is_the_first_step_of_a_rollout(scaling, experts):
    """forecast(1) takes its own path (the live feature state read in place, one
    copy of the network states, the combination in one compiled call); it must
    give the bits of forecast(h)'s first step, which rolls out from copies."""
    m = MultiSeriesForecaster(hidden_size=6, k1=2, k2=4, seed=3, scaling=scaling,
                              experts=experts, lags=(1, 2), trend=scaling == "series")
    t = np.arange(40)
    rng = np.random.default_rng(4)
    for sid, a in (("a", 1.0), ("b", -0.5), ("c", 0.2)):
        m.predict_learn([sid] * t.size, 5 + a * t + rng.normal(0, 0.3, t.size))
    for series in (["b"], ["c", "a"]):
        one, four = m.forecast(1, series=series), m.forecast(4, series=series)
        assert {k: v[0] for k, v in one.items()} == {k: v[0] for k, v in four.items()}
