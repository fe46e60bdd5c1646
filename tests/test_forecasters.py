"""River estimators: River's conformance suite, pipelines, evaluate() on raw
datasets, side-effect-free forecasts, pickling/cloning, features that come and go."""
import copy
import datetime as dt
import math
import pickle

import numpy as np
import pytest
from river import (checks, compose, datasets, dummy, evaluate, metrics, preprocessing, stats,
                   time_series)

import streamlstm
from streamlstm import InputError
from streamlstm.backends import backend_class
from streamlstm.forecast.estimators import season_from_step


def _backend():
    try:
        backend_class("cpu")
        return "cpu"
    except ImportError:   # the Numba CPU backend is not on this branch yet
        return "reference"


BACKEND = _backend()
ESTIMATORS = [streamlstm.LSTMForecaster, streamlstm.GRUForecaster, streamlstm.LSTMRegressor]


def _cases():
    for cls in ESTIMATORS:
        for i, params in enumerate(cls._unit_test_params()):
            yield pytest.param(cls, params, id=f"{cls.__name__}-{i}")


@pytest.mark.parametrize("cls, params", list(_cases()))
def test_river_check_estimator(cls, params):
    model = cls(**{**params, "backend": BACKEND})
    for check in checks.yield_checks(model):
        if check.__name__ in model._unit_test_skips():
            continue
        check(copy.deepcopy(model))


def small(cls=streamlstm.LSTMForecaster, **kw):
    kw.setdefault("hidden_size", 8)
    kw.setdefault("backend", BACKEND)
    return cls(**kw)


@pytest.mark.parametrize("cls", [streamlstm.LSTMForecaster, streamlstm.GRUForecaster,
                                 streamlstm.LSTMRegressor])
@pytest.mark.parametrize("kw, needle", [
    (dict(hidden_size=0), "hidden_size=0 is out of range"),
    (dict(n_layers=1.5), "n_layers must be an integer"),
    (dict(lr=-1), "(lr=-1) must be > 0"),
    (dict(k1=4, k2=2), "k1 <= k2"),
    (dict(scale_window=0), "scale_window=0"),
    (dict(clip_norm=0.0), "(clip_norm=0.0) must be > 0"),
    (dict(backend="gpu"), "backend='gpu'"),
    (dict(dtype="float16"), "dtype='float16'"),
    (dict(seed=-1), "seed=-1"),
])
def test_bad_constructor_arguments_are_refused_at_construction(cls, kw, needle):
    with pytest.raises(InputError) as e:
        cls(**kw)
    assert needle in str(e.value)


def airline(n):
    return list(datasets.AirlinePassengers().take(n))


def test_constructor_stores_arguments_unchanged_and_is_lazy():
    m = streamlstm.LSTMForecaster(hidden_size=7, lags=(1, 2), seasonality=None)
    assert (m.hidden_size, m.lags, m.seasonality, m.backend) == (7, (1, 2), None, "cpu")
    assert m._core is None                                       # nothing built before data
    # Before any value: NaN, the same answer as MultiSeriesForecaster for an unseen series.
    assert all(math.isnan(v) for v in m.forecast(2))
    core = streamlstm.MultiSeriesForecaster(hidden_size=4)
    core.predict_learn(["a"], [math.nan])                      # a series with no value yet
    assert all(math.isnan(v) for v in core.forecast(2, series="a")["a"])
    assert m.clone()._get_params() == m._get_params()
    with pytest.raises(InputError, match="seasonality"):
        streamlstm.LSTMForecaster(seasonality="weekly")


def test_evaluate_on_raw_airline_passengers_with_datetimes():
    """River 0.26 passes x = {'month': datetime}: seasonality is inferred from it,
    and the raw series in the hundreds is learned without any preprocessing."""
    data = airline(96)
    model = small()
    mae = evaluate.evaluate(data, model, metrics.MAE(), horizon=6)
    naive = evaluate.evaluate(data, _Naive(), metrics.MAE(), horizon=6)
    assert model.period_ == 12
    per_model = [m.get() for m in mae.metrics]
    per_naive = [m.get() for m in naive.metrics]
    assert all(math.isfinite(v) for v in per_model)
    assert np.mean(per_model) < np.mean(per_naive), (per_model, per_naive)


class _Naive(time_series.base.Forecaster):
    def __init__(self):
        self.last = 0.0

    def learn_one(self, y, x=None):
        self.last = y

    def forecast(self, horizon, xs=None):
        return [self.last] * horizon


@pytest.mark.parametrize("experts", [None, "auto"])
def test_forecast_has_no_side_effects(experts):
    """forecast() changes nothing; with experts, asking for a step also starts
    learning that step's weights (the only effect): a twin that asked for the same
    steps once learns exactly the same."""
    data = airline(40)
    a, b = small(experts=experts), small(experts=experts)
    for x, y in data[:30]:
        a.learn_one(y, x)
        b.learn_one(y, x)
    xs = [x for x, _ in data[30:36]]
    f = a.forecast(6, xs=xs)
    assert f == a.forecast(6, xs=xs) == a.forecast(6)      # datetimes are not inputs
    assert len(f) == 6 and all(math.isfinite(v) for v in f)
    if experts is not None:
        b.forecast(6, xs=xs)                                 # the same steps tracked
    for x, y in data[30:]:
        a.forecast(3)
        a.learn_one(y, x)
        b.learn_one(y, x)
    assert a.forecast(12) == b.forecast(12)
    if experts is not None:
        assert len(a.weights_) == len(b.weights_) == 12


def test_pickled_and_copied_models_forecast_the_same_and_keep_learning_the_same():
    data = airline(50)
    m = small(streamlstm.GRUForecaster)
    for x, y in data[:30]:
        m.learn_one(y, x)
    p = pickle.loads(pickle.dumps(m))
    d = copy.deepcopy(m)
    assert p.forecast(12) == m.forecast(12) == d.forecast(12)
    for x, y in data[30:]:
        for model in (m, p, d):
            model.learn_one(y, x)
    assert p.forecast(5) == m.forecast(5) == d.forecast(5)
    # clone = same parameters, fresh state: the same data gives the same model
    c = m.clone()
    for t, (x, y) in enumerate(data):
        if t == 30:
            c.forecast(12)        # asks for the steps m was asked for (experts track them)
        c.learn_one(y, x)
    assert c.forecast(5) == m.forecast(5)


def test_numeric_features_are_inputs_others_ignored_and_may_come_and_go():
    m = small(seasonality=None, experts=None)     # the network's inputs, not combined
    base = dt.datetime(2024, 1, 1)
    for t in range(40):
        x = {"when": base + dt.timedelta(days=t), "name": "sensor-7", "none": None}
        if t >= 5:
            x["temp"] = 20.0 + t % 7          # appears later
        if 10 <= t < 30:
            x["load"] = float(t % 3)          # appears, then vanishes
        m.learn_one(300.0 + 10 * (t % 7) + x.get("load", 0.0), x)
    assert m._feature_names == ["temp", "load"]
    assert m._core.net.n_inputs == m._core._feats.n_x_first + 2
    f1 = m.forecast(3, xs=[{"temp": 21.0, "load": 2.0}] * 3)
    f2 = m.forecast(3, xs=[{"temp": 21.0}] * 3)
    f3 = m.forecast(3, xs=[{"temp": 21.0, "new": 5.0}] * 3)   # unseen in learning: ignored
    assert all(math.isfinite(v) for v in f1 + f2)
    assert f1 != f2 and f3 == f2
    with pytest.raises(InputError, match="'temp' is infinite"):
        m.learn_one(1.0, {"temp": math.inf})
    with pytest.raises(InputError, match="is a str"):
        m.learn_one("12")
    with pytest.raises(InputError, match="one per forecast step"):
        m.forecast(3, xs=[{}])


@pytest.mark.parametrize("step, period", [(dt.timedelta(hours=1), 24), (dt.timedelta(days=1), 7),
                                          (dt.timedelta(weeks=1), 52), (None, None),
                                          (dt.timedelta(seconds=10), 8640),
                                          (dt.timedelta(seconds=1), None)])
def test_seasonality_auto_from_the_datetime_spacing(step, period):
    m = small(hidden_size=4)
    t0 = dt.datetime(2023, 3, 1, tzinfo=dt.timezone.utc)
    for t in range(5):
        m.learn_one(float(t), None if step is None else {"ts": t0 + t * step})
    assert m.period_ == period
    lags = (1,) if period is None else (1, period - 1, period, period + 1)
    assert m._core.lags == lags
    assert season_from_step(30.4 * 86400) == 12


def test_fast_sampled_series_keep_a_small_model():
    """A day of 10 Hz data is 864,000 steps: "auto" takes no period beyond
    MAX_AUTO_PERIOD (each step of a period costs ~32 bytes of lags and seasonal
    experts; before, a 10 Hz series made a 221 MB model at its first value and a
    1 kHz one ran out of memory).  A River forecaster keeps room for its one
    series only.  A period given explicitly is still honoured."""
    t0 = dt.datetime(2023, 3, 1)
    m = small(hidden_size=4)
    for t in range(30):
        m.learn_one(float(t % 7), {"ts": t0 + t * dt.timedelta(milliseconds=100)})
    assert m.period_ is None and len(m.forecast(2)) == 2
    assert len(pickle.dumps(m)) < 100_000
    assert m._core.net.n_series == 1               # room for one series, not 8
    given = small(hidden_size=4, seasonality=20_000)
    given.learn_one(1.0)
    assert given.period_ == 20_000


def test_forecaster_in_a_pipeline_with_river_preprocessing():
    def calendar(x):
        a = 2 * math.pi * (x["month"].month - 1) / 12
        return {"sin": math.sin(a), "cos": math.cos(a), "t": x["month"].toordinal()}

    model = (compose.FuncTransformer(calendar) | preprocessing.StandardScaler()
             | small(seasonality=12))
    res = evaluate.evaluate(airline(72), model, metrics.MAE(), horizon=3)
    assert all(math.isfinite(m.get()) for m in res.metrics)
    assert model["LSTMForecaster"]._feature_names == ["cos", "sin", "t"]


def test_regressor_state_persists_across_calls_and_predict_is_pure():
    xs = [{"a": math.sin(t / 3.0)} for t in range(60)]
    a, b = small(streamlstm.LSTMRegressor), small(streamlstm.LSTMRegressor)
    for t, x in enumerate(xs):
        a.learn_one(x, 2.0 * x["a"] + 5.0)
        b.learn_one(x, 2.0 * x["a"] + 5.0)
    q = {"a": 0.3}
    assert a.predict_one(q) == a.predict_one(q) == b.predict_one(q)
    b.learn_one({"a": -1.0}, 0.0)                 # one more step moves the recurrent state
    assert a.predict_one(q) != b.predict_one(q)
    c = small(streamlstm.LSTMRegressor)
    for t, x in enumerate(xs):
        c.predict_one(x)
        c.learn_one(x, 2.0 * x["a"] + 5.0)
    assert c.predict_one(q) == a.predict_one(q)


def test_regressor_in_a_pipeline_with_progressive_validation():
    model = (compose.Select("ordinal_date", "gallup", "ipsos") | preprocessing.StandardScaler()
             | small(streamlstm.LSTMRegressor))
    data = list(datasets.TrumpApproval().take(300))
    mae = evaluate.progressive_val_score(data, model, metrics.MAE())
    mean = evaluate.progressive_val_score(data, dummy.StatisticRegressor(stats.Mean()),
                                          metrics.MAE())
    assert mae.get() < mean.get()


def test_alphabet_example_learns_the_transitions_and_needs_its_state(capsys):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "examples" / "alphabet.py"
    spec = importlib.util.spec_from_file_location("alphabet_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--backend", BACKEND]) == 0
    out = capsys.readouterr().out
    assert "26/26 transitions right" in out
    assert "A..J then 'K': predicts 'L'" in out
    assert "input 'K':     predicts 'L'" not in out      # a fresh state alone has no context


def test_forecasts_are_aligned_to_the_datetimes_in_xs():
    """River's evaluate asks, after learning y_t, for y_{t+2}..y_{t+h+1}: with
    datetimes in xs the forecaster rolls on through the gap."""
    t0 = dt.datetime(2024, 1, 1)
    at = [{"ts": t0 + dt.timedelta(hours=t)} for t in range(40)]
    m = small()
    for t in range(30):
        m.learn_one(50.0 + 5 * math.sin(t / 4), at[t])
    assert m.forecast(3, xs=at[30:33]) == m.forecast(3)            # the next three hours
    assert m.forecast(3, xs=at[31:34]) == m.forecast(4)[1:]        # one hour skipped
    assert m.forecast(3, xs=at[31:34]) != m.forecast(3)
    off = m.clone({"align_to_xs": False})
    for t in range(30):
        off.learn_one(50.0 + 5 * math.sin(t / 4), at[t])
    assert off.forecast(3, xs=at[31:34]) == off.forecast(3)


def test_a_regressor_pickled_with_an_expert_state_keeps_its_predictions():
    """Before the one-row path, ``LSTMRegressor``'s core carried experts it never
    scored (its forecasts were the network's alone); one unpickled from then keeps
    learning that way, bit for bit the same as a regressor without them."""
    old, new = small(streamlstm.LSTMRegressor), small(streamlstm.LSTMRegressor)
    # what such a pickle holds: the core as it was built then (experts on, the default)
    old._core = old._new_core(lags=(), differencing=False)
    assert old._core.experts is not None
    xs = [{"a": math.sin(t / 3.0), "b": t % 5} for t in range(80)]
    ys = [math.cos(t / 4.0) + 0.1 * (t % 7) for t in range(80)]
    for t, (x, y) in enumerate(zip(xs, ys)):
        if t == 40:
            old = pickle.loads(pickle.dumps(old))
        if t:                           # (before any value, only a built core has a slot)
            assert old.predict_one(x) == new.predict_one(x), t
        old.learn_one(x, y)
        new.learn_one(x, y)
    assert old._core.experts is not None and new._core.experts is None


def test_a_period_too_long_for_memory_is_a_clear_error_and_loses_nothing():
    """seasonality=10**12 would need terabytes per series: a clear InputError at
    the first value (not numpy's MemoryError traceback), no series registered
    without its room, and the held values kept."""
    m = small(hidden_size=4, seasonality=10**12)
    with pytest.raises(InputError, match="not enough memory for 1 series.*seasonal periods: 1e"
                                         "\\+12.*shorter seasonality"):
        m.learn_one(1.0)
    core = streamlstm.MultiSeriesForecaster(hidden_size=4, seasonality=(10**12,))
    with pytest.raises(InputError, match="no series was added"):
        core.predict_learn(["a", "b"], [1.0, 2.0])
    assert core.series_ids == []
    with pytest.raises(InputError, match="not enough memory"):
        core.predict_learn(["a"], [1.0])              # a retry fails the same way, cleanly
    assert core.series_ids == []


@pytest.mark.parametrize("failing", ["experts", "network"])
def test_a_growth_refused_for_memory_leaves_the_model_as_it_was(monkeypatch, tmp_path, failing):
    """Memory running out while the per-series parts grow (here the experts', or
    the network's arena, the last to grow) puts back the parts grown so far: the
    model goes on, saves and loads, and continues bit for bit like one that never
    tried to grow."""
    from streamlstm.backends.cpu import arena
    from streamlstm.forecast.experts import ExpertState
    ids = [f"s{i}" for i in range(20)]
    a, b = (streamlstm.MultiSeriesForecaster(hidden_size=4, seed=3) for _ in range(2))
    for m in (a, b):
        m.predict_learn(["x"], [1.0])

    def no_memory(*args, **kw):
        raise MemoryError("simulated")
    with monkeypatch.context() as mp:
        mp.setattr(ExpertState, "resize", no_memory) if failing == "experts" else \
            mp.setattr(arena, "pack", no_memory)
        with pytest.raises(InputError, match="not enough memory"):
            a.predict_learn(ids, np.arange(20.0))
    assert a.series_ids == ["x"]
    a.save(tmp_path / "a.ckpt")
    c = streamlstm.MultiSeriesForecaster.load(tmp_path / "a.ckpt")
    for m in (a, b, c):
        m.predict_learn(["x"], [2.0])
    got = [m.predict_learn(ids + ["x"], np.arange(21.0)) for m in (a, b, c)]
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_array_equal(got[2], got[1])
