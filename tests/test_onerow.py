"""The one-row compiled path (streamlstm/forecast/onerow.py) against the general
path it replaces, side by side on the same stream: every forecast, band and
weight, and every array of the state, bit for bit.  The general path is what a
model takes when ``OnlineRNN.cpu_kernel_args`` gives None (another backend)."""
import numpy as np
import pytest

import streamlstm
from streamlstm.errors import InputError
from streamlstm.forecast import onerow
from streamlstm.forecast.multiseries import MultiSeriesForecaster


def _general(model):
    """Make ``model`` (a MultiSeriesForecaster) take the general path."""
    model._net.cpu_kernel_args = lambda: None
    return model


def _assert_same_state(a, b):
    (ma, aa), (mb, ab) = a._parts(), b._parts()
    assert ma == mb
    assert aa.keys() == ab.keys()
    for k in aa:
        np.testing.assert_array_equal(aa[k], ab[k], err_msg=k, strict=True)


def _values(n, seed=0, missing=()):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 100.0 + 10.0 * np.sin(2 * np.pi * t / 12) + rng.normal(size=n)
    y[list(missing)] = np.nan
    return y


def _bits(v):
    return np.asarray(v, dtype=np.float64).tobytes()


@pytest.mark.parametrize("kw", [
    {},                                                     # the defaults: experts + intervals
    {"coverage": None},                                     # experts alone
    {"experts": None},                                      # intervals alone
    {"coverage": None, "experts": None},                    # the network alone
    {"dtype": "float32", "n_layers": 2},
    {"cell": "gru", "k1": 2, "k2": 3, "differencing": False},
    {"scaling": "global", "trend": False},
    {"features": ["f", "g"]},
    {"k1": 4, "k2": 4},                                     # a fused window (k1 = k2)
    {"horizon": 3},                                         # rollouts before each row
    {"horizon": 4, "features": ["f"], "coverage": None},
    {"horizon": 2, "scaling": "global", "trend": False, "experts": None},
    {"horizon": 3, "dtype": "float32", "cell": "gru"},
])
def test_one_row_calls_equal_the_general_path(kw):
    kw = {"hidden_size": 6, "k1": 1, "k2": 5, "seasonality": 12, "lags": (1, 12),
          "coverage": 0.9, "experts": "auto", **kw}
    fast, slow = MultiSeriesForecaster(**kw), _general(MultiSeriesForecaster(**kw))
    n = 160
    y = _values(n, missing=(5, 6, 40, 90))
    F = len(kw.get("features", ()))
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, F))
    ids = ["a", "b", "a", "c"]
    for t in range(n):
        sid = ids[t % len(ids)] if t > 20 else "a"             # a new series now and then
        args = ([sid], y[t:t + 1], X[t:t + 1] if F else None)
        if kw["coverage"] is None:
            got, want = fast.predict_learn(*args), slow.predict_learn(*args)
            assert _bits(got) == _bits(want), t
        else:
            got, want = fast.predict_learn(*args, interval=True), \
                slow.predict_learn(*args, interval=True)
            for g, w in zip(got, want):
                assert _bits(g) == _bits(w), t
        if t % 3 == 0:
            for h in (1, 5):            # the next value; a rollout past the model's horizon
                xs = rng.normal(size=(h, F)) if F else None
                for series in (sid, "a"):
                    assert _bits(fast.forecast(h, series, xs)[series]) == \
                        _bits(slow.forecast(h, series, xs)[series]), (t, h)
                if kw["coverage"] is not None:
                    got = fast.forecast(h, sid, xs, interval=True)[sid]
                    want = slow.forecast(h, sid, xs, interval=True)[sid]
                    assert [_bits(v) for v in got] == [_bits(v) for v in want], (t, h)
    if kw["experts"] is not None:
        assert fast.weights() == slow.weights()
    _assert_same_state(fast, slow)


def test_river_forecaster_takes_the_one_row_path_with_the_same_bits():
    """``learn_one`` + ``forecast(1)`` of the River forecaster (which asks for one
    row at a time) on both paths; the one-row path is the one actually taken."""
    fast, slow = streamlstm.LSTMForecaster(seasonality=12), streamlstm.LSTMForecaster(seasonality=12)
    fast.learn_one(1.0)
    slow.learn_one(1.0)                    # the period is given: the core exists now
    _general(slow._core)
    calls = []
    learn_row = onerow.learn_row
    y = _values(300)
    out_fast, out_slow = [], []
    try:
        onerow.learn_row = lambda *a: calls.append(1) or learn_row(*a)
        for v in y:
            fast.learn_one(float(v))
            slow.learn_one(float(v))
            out_fast.append(fast.forecast(1))
            out_slow.append(slow.forecast(1))
    finally:
        onerow.learn_row = learn_row
    assert len(calls) == len(y)
    assert _bits(out_fast) == _bits(out_slow)
    assert _bits(fast.forecast_interval(1)) == _bits(slow.forecast_interval(1))
    assert fast.weights_ == slow.weights_
    _assert_same_state(fast._core, slow._core)


def test_river_evaluate_at_a_horizon_takes_the_one_row_path_with_the_same_bits(monkeypatch):
    """River's ``evaluate`` loop at horizon 3 on AirlinePassengers (monthly datetimes:
    the period is inferred, and each ``forecast(3, xs)`` rolls on through the one-step
    gap): every ``learn_one`` (horizon 4 by then) and every forecast is one compiled
    call, with the general path's bits, bands and weights."""
    from river import datasets
    pairs = list(datasets.AirlinePassengers())
    fast, slow = streamlstm.LSTMForecaster(), streamlstm.LSTMForecaster()
    counts = {"learn_row": 0, "forecast_row": 0}
    for name in counts:
        kernel = getattr(onerow, name)

        def counted(*a, _k=kernel, _n=name):
            status = _k(*a)
            counts[_n] += status == onerow.OK
            return status
        monkeypatch.setattr(onerow, name, counted)
    h = 3
    for x, y in pairs[:h]:
        fast.learn_one(y, x)
        slow.learn_one(y, x)
    _general(slow._core)
    for k in range(h, len(pairs) - h):
        x, y = pairs[k]
        xs = [a[0] for a in pairs[k + 1:k + 1 + h]]
        assert _bits(fast.forecast(h, xs)) == _bits(slow.forecast(h, xs)), k
        assert _bits(fast.forecast_interval(h, xs)) == _bits(slow.forecast_interval(h, xs)), k
        fast.learn_one(y, x)
        slow.learn_one(y, x)
    n = len(pairs) - 2 * h
    assert counts["forecast_row"] == 2 * n and counts["learn_row"] >= n
    assert fast._core.horizon == h + 1 and fast.weights_ == slow.weights_
    _assert_same_state(fast._core, slow._core)


def test_a_non_finite_network_input_gets_the_same_clear_error_on_both_paths():
    """Values at the edge of the float range make the scaled change inf/inf: the
    one-row kernel stops before the network (the features already learned, as on
    the general path) and the checked path raises its clear error."""
    kw = dict(hidden_size=4, seasonality=None, lags=(1,), differencing=True, coverage=0.9)
    fast, slow = MultiSeriesForecaster(**kw), _general(MultiSeriesForecaster(**kw))
    errors = []
    for m in (fast, slow):
        for t, v in enumerate([1.0, 2.0, 1e308, -1e308, 1e308, -1e308]):
            try:
                m.predict_learn(["s"], [v])
            except InputError as e:
                errors.append((t, str(e)))
                break
    assert len(errors) == 2 and errors[0] == errors[1], errors
    assert "non-finite" in errors[0][1]
    _assert_same_state(fast, slow)
    outcomes = []
    for m in (fast, slow):
        try:
            outcomes.append(_bits(m.forecast(1, "s")["s"]))
        except InputError as e:
            outcomes.append(str(e))
    assert outcomes[0] == outcomes[1]


def test_warmup_compiles_the_one_row_calls(monkeypatch):
    """``compile_kernels(every=True)`` (``streamlstm warmup``) asks for one-row
    learning and a one-series ``forecast(1)``, so a River forecaster's first values
    find them compiled (the reference backend: the calls are asked, nothing slow)."""
    asked = []
    for name in ("learn", "forecast"):
        orig = getattr(onerow.OneRow, name)
        monkeypatch.setattr(onerow.OneRow, name,
                            lambda self, *a, _o=orig, _n=name: asked.append(_n) or _o(self, *a))
    MultiSeriesForecaster(hidden_size=2, coverage=0.9, backend="reference").compile_kernels()
    assert asked.count("learn") == 0          # a run's twins call with several rows
    MultiSeriesForecaster(hidden_size=2, coverage=0.9, backend="reference").compile_kernels(
        every=True)
    assert asked.count("learn") >= 1 and asked.count("forecast") >= 1
