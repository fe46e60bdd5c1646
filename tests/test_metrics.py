"""The one-step metrics of a run (``stream.metrics.ForecastMetrics``) are River's,
bit for bit: MAE, RMSE, SMAPE and the naive MAE, overall, per series and over the
rolling window, in any batching and across a checkpoint; a checkpoint written
before the per-series RMSE/SMAPE/naive metrics resumes; and the CLI's imports do
not pull in River (whose metrics import scipy.stats: 0.75 s of a warm run)."""
import math
import subprocess
import sys

import numpy as np
import pytest
from river import metrics, utils

from streamlstm.stream.metrics import METRIC_NAMES, ForecastMetrics

KINDS = (metrics.MAE, metrics.RMSE, metrics.SMAPE)


def random_rows(seed, n=600, series=7):
    rng = np.random.default_rng(seed)
    index = rng.integers(0, series, n)
    y = rng.normal(0, 3, n) * rng.choice([1e-3, 1.0, 1e3], n)
    yhat = y + rng.normal(0, 2, n)
    y[rng.random(n) < 0.1] = np.nan
    yhat[rng.random(n) < 0.05] = np.nan
    both = rng.random(n) < 0.04          # SMAPE's 0 / 0 rows
    y[both] = yhat[both] = 0.0
    y[rng.random(n) < 0.03] = 0.0
    return index, y, yhat


def river_metrics(index, y, yhat, window):
    """River objects fed the scored rows one by one: overall, per series, the naive
    forecast (the series' previous value), and a Rolling of each metric over the
    last ``window`` scored rows."""
    overall = [k() for k in KINDS] + [metrics.MAE()]
    per = {}
    last = {}
    scored = []
    for s, a, b in zip(index.tolist(), y.tolist(), yhat.tolist()):
        if a == a and b == b:
            ms = per.setdefault(s, [k() for k in KINDS] + [metrics.MAE()])
            for m in (overall, ms):
                for k in range(3):
                    m[k].update(a, b)
                if s in last:
                    m[3].update(a, last[s])
            scored.append((a, b))
        if a == a:
            last[s] = a
    rolls = [utils.Rolling(k, window_size=window) for k in KINDS]
    for a, b in scored[-window:]:
        for r in rolls:
            r.update(a, b)
    return overall, per, rolls


def check_equal_to_river(fm, index, y, yhat):
    overall, per, rolls = river_metrics(index, y, yhat, fm.window)
    s = fm.summary(n_worst=3)
    assert [s["overall"][k] for k in METRIC_NAMES] == [m.get() for m in overall[:3]]
    assert s["naive"]["MAE"] == overall[3].get()
    assert [s["rolling"][k] for k in METRIC_NAMES] == [r.get() for r in rolls]
    assert s["rolling_rows"] == len(rolls[0].window)
    table = fm.per_series_table()
    for i in range(len(table["MAE"])):
        ms = per.get(i)
        got = [table[k][i] for k in ("MAE", "RMSE", "SMAPE", "naive_MAE")]
        if ms is None:
            assert all(math.isnan(v) for v in got)
            continue
        want = [m.get() for m in ms[:3]] + [ms[3].get() if ms[3]._mean.n else math.nan]
        np.testing.assert_array_equal(got, want, err_msg=f"series {i}")
    maes = sorted(((-ms[0].get(), i) for i, ms in per.items()))[:3]
    assert [(i, mae) for i, mae, _ in s["worst"]] == [(i, -m) for m, i in maes]


@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_are_river_bit_for_bit_in_any_batching_and_across_a_checkpoint(seed):
    index, y, yhat = random_rows(seed)
    whole = ForecastMetrics(window=50)
    whole.update(index, y, yhat)
    check_equal_to_river(whole, index, y, yhat)
    assert whole.scored == int((~np.isnan(y) & ~np.isnan(yhat)).sum())

    parts = ForecastMetrics(window=50)
    for a, b in ((0, 1), (1, 40), (40, 41), (41, 333), (333, 600)):
        if a == 333:       # a checkpoint: state -> plain arrays -> state
            numbers, arrays = parts.state()
            parts = ForecastMetrics.from_state(dict(numbers),
                                               {k: v.copy() for k, v in arrays.items()})
        parts.update(index[a:b], y[a:b], yhat[a:b])
    n_whole, a_whole = whole.state()
    n_parts, a_parts = parts.state()
    assert n_parts == n_whole
    assert a_parts.keys() == a_whole.keys()
    for k, v in a_whole.items():
        np.testing.assert_array_equal(a_parts[k], v, err_msg=k)
    check_equal_to_river(parts, index, y, yhat)


def test_a_checkpoint_from_before_the_per_series_rmse_smape_and_naive_resumes():
    index, y, yhat = random_rows(3)
    fm = ForecastMetrics()
    fm.update(index[:300], y[:300], yhat[:300])
    numbers, arrays = fm.state()
    old = {k: v for k, v in arrays.items() if k not in ("per_rmse", "per_smape", "per_naive")}
    back = ForecastMetrics.from_state(numbers, old)
    np.testing.assert_array_equal(back.per_series_table()["MAE"], fm.per_series_table()["MAE"])
    assert np.isnan(back.per_series_table()["RMSE"]).all()   # restarted empty
    back.update(index[300:], y[300:], yhat[300:])
    fm.update(index[300:], y[300:], yhat[300:])
    assert back.summary() == fm.summary()
    np.testing.assert_array_equal(back.per_series_table()["MAE"], fm.per_series_table()["MAE"])


def test_the_cli_and_its_metrics_import_neither_river_nor_scipy_stats():
    code = ("import sys, numpy as np\n"
            "import streamlstm.cli.app, streamlstm.stream.runner\n"
            "from streamlstm.stream.metrics import ForecastMetrics\n"
            "m = ForecastMetrics()\n"
            "m.update(np.array([0, 0]), np.array([1.0, 2.0]), np.array([1.5, 2.5]))\n"
            "m.summary(); m.per_series_table(); m.state()\n"
            "print(sorted(k for k in ('river', 'scipy.stats') if k in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
