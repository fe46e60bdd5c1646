"""Online prediction intervals (issue 12, streamlstm/forecast/intervals.py):
coverage on streams with a known error distribution, scale-freeness, bands that
are never inverted nor infinite, resume and batching bit for bit, refused
``coverage`` values."""
import math

import numpy as np
import pytest

from streamlstm.errors import InputError
from streamlstm.forecast.intervals import MIN_SCORED, CoverageTally, IntervalState
from streamlstm.forecast.multiseries import MultiSeriesForecaster

N = 3000


def _stream(kind, n=N, seed=0, mult=1.0):
    """A sine of period 24 plus noise of known law: Gaussian; Gaussian with a level
    shift of 8 noise sds half-way; Gaussian whose sd goes 1 -> 4 half-way;
    Student-t(3) (heavy tails)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = 10.0 + 3.0 * np.sin(2 * np.pi * t / 24)
    if kind == "shift":
        base = base + np.where(t >= n // 2, 8.0, 0.0)
    sd = np.where(t >= n // 2, 4.0, 1.0) if kind == "variance" else np.ones(n)
    noise = rng.standard_t(3, size=n) if kind == "t3" else rng.normal(size=n)
    return mult * (base + sd * noise)


def _model(**kw):
    kw.setdefault("hidden_size", 8)
    kw.setdefault("horizon", 3)
    kw.setdefault("coverage", 0.9)
    kw.setdefault("seasonality", 24)
    kw.setdefault("backend", "cpu")
    return MultiSeriesForecaster(**kw)


def _report(scores, skip=0.2):
    tal = CoverageTally(scores.shape[1])
    tal.update(scores)
    return tal.report(skip)


@pytest.mark.parametrize("kind", ["gaussian", "shift", "variance", "t3"])
def test_coverage_on_known_noise(kind):
    y = _stream(kind)
    band = _model().predict_learn(["s"] * N, y, interval=True)
    for r in _report(band.scores):
        assert 0.87 <= r["coverage"] <= 0.93, (kind, r)
        assert r["scored"] >= 0.79 * (N - r["step"])
    # the band is as wide as the noise needs: the Gaussian 90% band is 2 * 1.645 sd
    # wide; the model's own error adds a little
    if kind == "gaussian":
        assert 3.2 < _report(band.scores)[0]["width"] < 4.2


def test_coverage_after_a_variance_change_is_local():
    """The running error scale follows the new variance: the bands of the second
    half alone still cover about 90%, and are about 4 times wider."""
    y = _stream("variance")
    band = _model().predict_learn(["s"] * N, y, interval=True)
    first, second = band.scores[N // 5:N // 2], band.scores[N // 2 + 100:]
    cov2 = np.nanmean(second[:, 0, 0])
    assert 0.86 <= cov2 <= 0.94
    ratio = np.nanmean(second[:, 0, 1]) / np.nanmean(first[:, 0, 1])
    assert 3.0 < ratio < 5.0


def test_scale_free():
    """One step size serves any unit: a series times 1000 gets the same coverage
    and the same band (times 1000)."""
    y = _stream("gaussian", n=1500)
    a = _model().predict_learn(["s"] * y.size, y, interval=True)
    b = _model().predict_learn(["s"] * y.size, 1000.0 * y, interval=True)
    ra, rb = _report(a.scores), _report(b.scores)
    for p, q in zip(ra, rb):
        assert abs(p["coverage"] - q["coverage"]) <= 0.005
        assert q["width"] / 1000.0 == pytest.approx(p["width"], rel=1e-3)


def test_bands_are_never_inverted_nor_infinite():
    rng = np.random.default_rng(3)
    n = 2000
    ids = rng.choice(["a", "b", "c"], size=n)
    y = np.where(ids == "a", 1e6 * rng.standard_cauchy(n), rng.normal(size=n))
    y[rng.random(n) < 0.05] = np.nan                       # missing values
    y[(ids == "c") & (np.arange(n) > 500)] = 7.0           # a constant stretch
    band = _model(seasonality=None).predict_learn(ids, y, interval=True)
    lo, hi = band.lo, band.hi
    assert not np.isinf(lo).any() and not np.isinf(hi).any()
    both = ~np.isnan(lo)
    assert (np.isnan(lo) == np.isnan(hi)).all()
    assert (lo[both] <= hi[both]).all()
    assert both[n // 2:].mean() > 0.99          # NaN only while warming up


def test_bands_start_after_min_scored_and_nan_forecasts_have_none():
    m = _model(horizon=2)
    y = np.arange(20, dtype=float)
    band = m.predict_learn(["s"] * 20, y, interval=True)
    assert np.isnan(band.yhat[0]).all() and np.isnan(band.lo[0]).all()
    # step 1 is scored from row 1 on (row 0 has no forecast): bands from row 1 + MIN_SCORED
    first = int(np.flatnonzero(~np.isnan(band.lo[:, 0]))[0])
    assert first == 1 + MIN_SCORED


def test_scores_are_against_the_band_issued_h_steps_earlier():
    m = _model(horizon=3)
    y = _stream("gaussian", n=300)
    band = m.predict_learn(["s"] * 300, y, interval=True)
    for j in range(3):
        r = np.arange(100, 300)
        lo, hi = band.lo[r - j, j], band.hi[r - j, j]
        inside = ((y[r] >= lo) & (y[r] <= hi)).astype(float)
        assert np.array_equal(band.scores[r, j, 0], inside)
        assert np.allclose(band.scores[r, j, 1], hi - lo)


def _rows(n=900, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.choice(["a", "b", 7], size=n).tolist()
    t = np.arange(n)
    y = np.sin(t / 5.0) + 0.3 * rng.normal(size=n)
    y[rng.random(n) < 0.03] = np.nan
    return ids, y


def test_batching_never_changes_a_result():
    ids, y = _rows()
    one = _model(seasonality=None).predict_learn(ids, y, interval=True)
    m = _model(seasonality=None)
    parts, a = [], 0
    for b in (1, 2, 50, 51, 400, 700, 900):
        parts.append(m.predict_learn(ids[a:b], y[a:b], interval=True))
        a = b
    for k in range(4):
        assert np.array_equal(np.concatenate([p[k] for p in parts]), one[k], equal_nan=True)


def test_resume_is_bit_for_bit(tmp_path):
    ids, y = _rows()
    full = _model(seasonality=None)
    ref = full.predict_learn(ids, y, interval=True)
    m = _model(seasonality=None)
    first = m.predict_learn(ids[:400], y[:400], interval=True)
    m.save(tmp_path / "m.ckpt")
    m2 = MultiSeriesForecaster.load(tmp_path / "m.ckpt")
    assert m2.coverage == 0.9
    second = m2.predict_learn(ids[400:], y[400:], interval=True)
    for k in range(4):
        assert np.array_equal(np.concatenate([first[k], second[k]]), ref[k], equal_nan=True)
    got, want = m2.forecast(5, interval=True), full.forecast(5, interval=True)
    assert list(got) == list(want)
    for i in want:
        assert np.array_equal(np.array(got[i]), np.array(want[i]), equal_nan=True)


def test_forecast_interval_api():
    m = _model(horizon=2)
    y = _stream("gaussian", n=200)
    m.predict_learn(["s"] * 200, y)                # interval state updates without asking
    out = m.forecast(4, interval=True)
    yhat, lo, hi = out["s"]
    assert len(yhat) == len(lo) == len(hi) == 4
    assert lo[0] < yhat[0] < hi[0] and lo[1] < yhat[1] < hi[1]
    assert math.isnan(lo[2]) and math.isnan(hi[3])    # beyond the tracked horizon
    assert m.forecast(4) == {"s": yhat}              # the plain forecast is unchanged
    again = m.forecast(4, interval=True)["s"]       # and nothing changed
    assert np.array_equal(np.array(again), np.array(out["s"]), equal_nan=True)


def test_intervals_do_not_change_the_forecasts():
    ids, y = _rows(400)
    a = _model(seasonality=None, coverage=None).predict_learn(ids, y)
    b = _model(seasonality=None).predict_learn(ids, y, interval=True)
    assert np.array_equal(a, b.yhat, equal_nan=True)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, 90, float("nan"), float("inf"), "0.9", True])
def test_bad_coverage_is_refused(bad):
    with pytest.raises(InputError, match=r"coverage") as e:
        MultiSeriesForecaster(coverage=bad, backend="reference")
    if isinstance(bad, (int, float)) and not isinstance(bad, bool) and math.isfinite(bad):
        assert "strictly between 0 and 1" in str(e.value) and repr(bad) in str(e.value)


def test_interval_without_coverage_is_refused():
    m = MultiSeriesForecaster(backend="reference")
    with pytest.raises(InputError, match="coverage=0.9"):
        m.predict_learn(["a"], [1.0], interval=True)
    with pytest.raises(InputError, match="coverage=0.9"):
        m.forecast(1, interval=True)


def test_widen_horizon_keeps_pending_forecasts():
    st = IntervalState(0.9, horizon=2)
    st.resize(1)
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    st.update(np.zeros(50, np.int64), y, np.zeros((50, 2)))
    before = st.a["pend"][0].copy()
    pos = int(st.a["pos"][0])
    st.set_horizon(5)
    # the one step-2 forecast still pending (target = pos) sits in its slot of the wider ring
    assert np.array_equal(st.a["pend"][0, pos % 5, 1], before[pos % 2, 1])
    band = st.update(np.zeros(1, np.int64), np.array([0.1]), np.zeros((1, 5)))
    assert not np.isnan(band.scores[0, 1, 0]) and np.isnan(band.scores[0, 2, 0])


def test_tally_skips_the_warmup_exactly_in_bounded_memory():
    tal = CoverageTally(1)
    n = 100_000
    scores = np.zeros((n, 1, 3))
    scores[:, 0, 0] = np.arange(n) >= 20_000          # covered from 20% on
    scores[:, 0, 1] = 2.0
    tal.update(scores[:60_000])
    tal.update(scores[60_000:])
    r = tal.report(0.2)[0]
    assert tal.tally.shape == (1, 512, 4)
    assert r["coverage"] == 1.0 and r["width"] == 2.0
    assert 0.8 * n - n / 256 <= r["scored"] <= 0.8 * n


# -- the CLI: columns, summary, resume ---------------------------------------------------
def _cli(*args):
    from click.testing import CliRunner
    from _streamdata import FAST
    from streamlstm.cli.app import main
    res = CliRunner().invoke(main, ["run", *FAST, *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def _summary_coverages(stderr):
    import re
    return [float(v) / 100 for v in re.findall(r"coverage ([\d.]+)% of", stderr)]


def test_cli_writes_bands_and_reports_coverage(tmp_path):
    import pandas as pd
    from _streamdata import write_sensor_file
    src = tmp_path / "s.parquet"
    write_sensor_file(src, sensors=300, steps=168, seed=2)     # a week of hourly readings
    res = _cli("--source", str(src), "--horizon", "2", "--out", str(tmp_path / "o.parquet"))
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert {"yhat_lo", "yhat_hi", "yhat_lo_h2", "yhat_hi_h2"} <= set(out.columns)
    for tail in ("", "_h2"):
        lo, hi = out[f"yhat_lo{tail}"].to_numpy(), out[f"yhat_hi{tail}"].to_numpy()
        both = ~np.isnan(lo)
        assert (np.isnan(lo) == np.isnan(hi)).all() and (lo[both] <= hi[both]).all()
        assert np.isfinite(lo[both]).all() and np.isfinite(hi[both]).all()
    assert "90% intervals, after the first 20% of scored forecasts:" in res.stderr
    cov = _summary_coverages(res.stderr)
    assert len(cov) == 2 and all(0.87 <= c <= 0.93 for c in cov), res.stderr
    # the summary's figure is what the output file says (rows after the first 20%)
    y, lo, hi = out.y.to_numpy(), out.yhat_lo.to_numpy(), out.yhat_hi.to_numpy()
    scored = np.flatnonzero(~np.isnan(y) & ~np.isnan(lo))
    tail = scored[int(np.ceil(0.2 * scored.size)):]
    inside = (y[tail] >= lo[tail]) & (y[tail] <= hi[tail])
    assert abs(inside.mean() - cov[0]) < 0.01


def test_cli_bundled_example_coverage(tmp_path):
    from _streamdata import EXAMPLE
    res = _cli("--source", EXAMPLE, "--horizon", "3")
    cov = _summary_coverages(res.stderr)
    assert len(cov) == 3 and all(0.87 <= c <= 0.93 for c in cov), res.stderr


def test_cli_resume_checks_coverage_and_is_exact(tmp_path):
    import pandas as pd
    from _streamdata import write_sensor_file
    from click.testing import CliRunner
    from _streamdata import FAST
    from streamlstm.cli.app import main
    src = tmp_path / "s.parquet"
    write_sensor_file(src, sensors=6, steps=80, seed=4, row_group_rows=50)
    _cli("--source", str(src), "--out", str(tmp_path / "ref.parquet"))
    ck = tmp_path / "ck"
    _cli("--source", str(src), "--out", str(tmp_path / "a.parquet"), "--checkpoint", str(ck),
         "--checkpoint-every", "100", "--batch-rows", "50")
    ref = pd.read_parquet(tmp_path / "ref.parquet")
    a = pd.read_parquet(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(ref, a)
    res = CliRunner().invoke(main, ["run", *FAST, "--source", str(src), "--checkpoint", str(ck),
                                    "--coverage", "0.8"], catch_exceptions=False)
    assert res.exit_code == 1
    assert "a run with --coverage 0.9, this command has --coverage 0.8" in res.stderr
    res = CliRunner().invoke(main, ["run", *FAST, "--source", str(src), "--checkpoint", str(ck),
                                    "--coverage", "0"], catch_exceptions=False)
    assert res.exit_code == 1 and "this command has --coverage 0;" in res.stderr


@pytest.mark.parametrize("bad", ["1", "1.5", "-0.1", "x"])
def test_cli_refuses_bad_coverage(bad, tmp_path):
    from click.testing import CliRunner
    from _streamdata import FAST, EXAMPLE
    from streamlstm.cli.app import main
    res = CliRunner().invoke(main, ["run", *FAST, "--source", EXAMPLE, "--coverage", bad])
    assert res.exit_code == 2 and "--coverage" in res.stderr and "Traceback" not in res.output


def test_cli_init_from_must_keep_the_models_coverage(tmp_path):
    from click.testing import CliRunner
    from _streamdata import FAST, write_sensor_file
    from streamlstm.cli.app import main
    src = tmp_path / "s.parquet"
    write_sensor_file(src, sensors=3, steps=30, seed=1)
    _cli("--source", str(src), "--coverage", "0", "--checkpoint", str(tmp_path / "ck"))
    res = CliRunner().invoke(main, ["run", *FAST, "--source", str(src), "--init-from",
                                    str(tmp_path / "ck")])
    assert res.exit_code == 1
    assert "no intervals (--coverage 0)" in res.stderr and "pass --coverage 0" in res.stderr
    later = tmp_path / "later.parquet"
    write_sensor_file(later, sensors=3, steps=30, seed=1, start="2024-02-01T00:00:00")
    _cli("--source", str(later), "--init-from", str(tmp_path / "ck"), "--coverage", "0")


# -- River forecasters --------------------------------------------------------------------
def test_river_forecast_interval_covers_and_leaves_forecast_unchanged():
    import pickle
    import streamlstm
    y = _stream("gaussian", n=800, seed=5)
    with_iv = streamlstm.LSTMForecaster(seasonality=24, coverage=0.9)
    without = streamlstm.LSTMForecaster(seasonality=24, coverage=None)
    hits = {j: [] for j in range(3)}
    pending = []
    for t, v in enumerate(y):
        band = with_iv.forecast_interval(3)
        assert len(band) == 3 and all(len(b) == 2 for b in band)
        for j, (lo, hi) in enumerate(band):
            if t + j < y.size and not math.isnan(lo):
                assert lo <= hi and math.isfinite(lo) and math.isfinite(hi)
                pending.append((t + j, j, lo, hi))
        without.forecast(3)            # asks for the same steps (the experts track them)
        with_iv.learn_one(v)
        without.learn_one(v)
    for tgt, j, lo, hi in pending:
        if tgt >= 160:
            hits[j].append(lo <= y[tgt] <= hi)
    for j in range(3):
        assert 0.86 <= np.mean(hits[j]) <= 0.94, (j, np.mean(hits[j]))
    # intervals never change the forecasts (the same learning, bit for bit)
    assert with_iv.forecast(5) == without.forecast(5)
    # the interval state survives pickling
    again = pickle.loads(pickle.dumps(with_iv))
    assert again.forecast_interval(3) == with_iv.forecast_interval(3)


def test_river_forecast_interval_before_learning_and_without_coverage():
    import streamlstm
    m = streamlstm.GRUForecaster()
    assert m.coverage == 0.9
    band = m.forecast_interval(2)
    assert len(band) == 2 and all(math.isnan(lo) and math.isnan(hi) for lo, hi in band)
    assert m.forecast_interval(0) == []
    with pytest.raises(InputError, match="coverage=None"):
        streamlstm.GRUForecaster(coverage=None).forecast_interval(1)
    with pytest.raises(InputError, match="strictly between 0 and 1"):
        streamlstm.LSTMForecaster(coverage=1.0)


@pytest.mark.parametrize("band", [False, True])
def test_the_combined_update_equals_experts_then_intervals(band):
    """forecast/combined.py runs both kernels in one compiled call: bit for bit
    what ExpertState.update followed by IntervalState.update give, with the
    scratch outputs reused across calls (band=False) or fresh ones."""
    from streamlstm.forecast import combined
    from streamlstm.forecast.experts import ExpertState
    rng = np.random.default_rng(3)
    H, n, R = 3, 4, 600
    slots = rng.integers(0, n, R).astype(np.int64)
    t = np.arange(R)
    y = 10.0 * np.sin(2 * np.pi * t / 5) + rng.normal(size=R) + slots
    y[rng.random(R) < 0.05] = np.nan
    fnet = y[:, None] + rng.normal(size=(R, H))
    fnet[rng.random((R, H)) < 0.03] = np.nan
    states = []
    for _ in range(2):
        ex, iv = ExpertState((5,), H), IntervalState(0.9, H)
        ex.resize(n)
        iv.resize(n)
        states.append((ex, iv))
    (ex1, iv1), (ex2, iv2) = states
    cuts = np.cumsum(np.tile([1, 7, 1, 1, 13], R // 23 + 1))
    for a, b in zip(np.r_[0, cuts], cuts[cuts <= R]):   # calls of 1..13 rows, the scratch
        s, yy, fn = slots[a:b], y[a:b], fnet[a:b]      # reused (and regrown)
        want = iv1.update(s, yy, ex1.update(s, yy, fn))
        got = combined.update(ex2, iv2, s.copy(), yy.copy(), fn.copy(), band)
        np.testing.assert_array_equal(got.yhat if band else got, want.yhat)
        if band:
            for k in ("lo", "hi", "scores"):
                np.testing.assert_array_equal(getattr(got, k), getattr(want, k))
    for k in ex1.a:
        np.testing.assert_array_equal(ex1.a[k], ex2.a[k])
    for k in iv1.a:
        np.testing.assert_array_equal(iv1.a[k], iv2.a[k])
    # experts alone (coverage=None): the combination in place, the same bits
    ex3, ex4 = ExpertState((5,), H), ExpertState((5,), H)
    ex3.resize(n)
    ex4.resize(n)
    for a, b in zip(np.r_[0, cuts], cuts[cuts <= R]):
        s, yy, fn = slots[a:b], y[a:b], fnet[a:b]
        np.testing.assert_array_equal(combined.update(ex4, None, s, yy, fn.copy(), False),
                                      ex3.update(s, yy, fn))
    for k in ex3.a:
        np.testing.assert_array_equal(ex3.a[k], ex4.a[k])
