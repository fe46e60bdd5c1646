"""Per-horizon-step results (issue 16): ``StepMetrics`` equals River computed row by
row, bit for bit, batching and resume change nothing; ``--metrics-out`` and the
summary of a ``--horizon 3`` run equal River metrics (and the bands' coverage and
width per step) computed on the run's own output; the latest-forecast table names
the times the forecasts are for."""
import os
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from _streamdata import FAST, write_sensor_file
from streamlstm.cli.app import main
from streamlstm.stream.metrics import ForecastMetrics
from streamlstm.stream.spacing import Spacing
from streamlstm.stream.steps import StepMetrics

H = 3


def river_steps(index, y, yhat):
    """River MAE, RMSE, SMAPE and naive MAE of every step, per series and overall,
    from the rows themselves: step j+1's forecast of a row is column j of the row
    j rows earlier in its series; its naive forecast the latest value before that
    row."""
    from river import metrics, stats
    kinds = (metrics.MAE, metrics.RMSE, metrics.SMAPE, metrics.MAE, stats.Count)
    overall = [[k() for k in kinds] for _ in range(yhat.shape[1])]
    per = {}
    rows = {}                 # series -> [(y, yhat row, last value before it)]
    last = {}
    for s, v, f in zip(index.tolist(), y.tolist(), yhat.tolist()):
        hist = rows.setdefault(s, [])
        hist.append((v, f, last.get(s, np.nan)))
        if v == v:
            last[s] = v
            for j in range(min(len(hist), yhat.shape[1])):
                _, fs, naive = hist[-1 - j]
                if fs[j] == fs[j]:
                    ms = per.setdefault(s, [[k() for k in kinds] for _ in range(yhat.shape[1])])
                    for m in (ms[j], overall[j]):
                        for k in range(3):
                            m[k].update(v, fs[j])
                        m[4].update(1)
                        if naive == naive:
                            m[3].update(v, naive)
    return per, overall


def random_rows(seed, n=400, series=5, nan=0.15):
    rng = np.random.default_rng(seed)
    index = rng.integers(0, series, n)
    y = rng.normal(10, 3, n)
    y[rng.random(n) < nan] = np.nan
    y[rng.random(n) < 0.05] = 0.0
    yhat = rng.normal(10, 3, (n, H))
    yhat[rng.random((n, H)) < nan] = np.nan
    yhat[rng.random((n, H)) < 0.03] = 0.0
    return index, y, yhat


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_metrics_are_river_bit_for_bit(seed):
    index, y, yhat = random_rows(seed)
    m = StepMetrics(H)
    m.update(index, y, yhat)
    per, overall = river_steps(index, y, yhat)
    for j, r in enumerate(m.report()):
        assert [r["MAE"], r["RMSE"], r["SMAPE"], r["naive_MAE"]] == \
            [x.get() for x in overall[j][:4]]
        assert r["scored"] == overall[j][4].get()
    cols = m.per_series_columns(5, first_step=1)
    for s, ms in per.items():
        for j in range(H):
            got = [cols[f"{k}_h{j + 1}"][s] for k in ("MAE", "RMSE", "SMAPE", "naive_MAE")]
            assert got == [x.get() for x in ms[j][:4]], (s, j)
            assert cols[f"rows_h{j + 1}"][s] == ms[j][4].get()


def test_step_one_equals_the_one_step_river_metrics():
    index, y, yhat = random_rows(3)
    fm = ForecastMetrics()
    fm.update(index, y, yhat[:, 0])
    fm.update_steps(index, y, yhat)
    s = fm.summary()
    one = s["steps"][0]
    assert (one["MAE"], one["RMSE"], one["SMAPE"], one["naive_MAE"], one["scored"]) == \
        (s["overall"]["MAE"], s["overall"]["RMSE"], s["overall"]["SMAPE"], s["naive"]["MAE"],
         s["scored"])


def test_batching_and_resume_change_nothing():
    index, y, yhat = random_rows(4)
    whole = StepMetrics(H)
    whole.update(index, y, yhat)
    parts = StepMetrics(H)
    for a, b in ((0, 1), (1, 57), (57, 58), (58, 300), (300, 400)):
        if b == 58:            # a checkpoint in the middle: state -> arrays -> state
            parts = StepMetrics.from_state({k: v.copy() for k, v in parts.state().items()})
        parts.update(index[a:b], y[a:b], yhat[a:b])
    for k, v in whole.state().items():
        np.testing.assert_array_equal(parts.state()[k], v, err_msg=k)


def test_spacing_is_the_lower_median_of_recent_intervals_in_any_batching():
    rng = np.random.default_rng(0)
    hour = 3_600 * 10**9
    t0 = 1_704_067_200 * 10**9
    steps = np.cumsum(np.where(rng.random(60) < 0.2, 2 * hour, hour))   # gaps: 2 h
    index = np.tile([0, 1], 60)
    t = t0 + np.repeat(steps, 2) + index * 7 * 10**9                     # int64 ns
    whole = Spacing()
    whole.update(index, t, np.zeros(0, np.int64), np.zeros(0, bool))
    assert whole.spacing().tolist() == [hour, hour]
    parts = Spacing()
    last, seen = np.zeros(0, np.int64), np.zeros(0, bool)
    for a, b in ((0, 3), (3, 50), (50, 120)):
        parts.update(index[a:b], t[a:b], last, seen)
        last = np.array([t[:b][index[:b] == s][-1] for s in (0, 1)])
        seen = np.ones(2, bool)
    np.testing.assert_array_equal(parts.ring, whole.ring)


# -- through the CLI --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sensor(tmp_path_factory):
    d = tmp_path_factory.mktemp("steps")
    write_sensor_file(d / "s.parquet", sensors=4, steps=45, seed=7, row_group_rows=40)
    return d / "s.parquet"


def run_ok(*args):
    res = CliRunner().invoke(main, ["run", *FAST, *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def from_output(out):
    """Rows of the ``--out`` file as (dense index, y, yhat (R, H)) in arrival order."""
    codes, ids = pd.factorize(out.series_id)
    cols = ["yhat"] + [f"yhat_h{h}" for h in range(2, H + 1)]
    return codes, ids, out.y.to_numpy(float), out[cols].to_numpy(float)


def test_metrics_out_and_summary_per_step_equal_river_on_the_output(sensor, tmp_path):
    res = run_ok("--source", str(sensor), "--horizon", str(H), "--out",
                 str(tmp_path / "o.parquet"), "--metrics-out", str(tmp_path / "m.csv"))
    index, ids, y, yhat = from_output(pd.read_parquet(tmp_path / "o.parquet"))
    per, overall = river_steps(index, y, yhat)
    m = pd.read_csv(tmp_path / "m.csv").set_index("series_id")
    assert len(m) == len(ids)
    for h in range(2, H + 1):
        assert m[f"rows_h{h}"].dtype.kind == "i"
        for k, sid in enumerate(ids):
            want = [x.get() for x in per[k][h - 1][:4]]
            got = [m.loc[sid, f"{c}_h{h}"] for c in ("MAE", "RMSE", "SMAPE", "naive_MAE")]
            np.testing.assert_allclose(got, want, rtol=1e-14)     # CSV: 17 digits
            assert m.loc[sid, f"rows_h{h}"] == per[k][h - 1][4].get()
    out = pd.read_parquet(tmp_path / "o.parquet")
    for h in range(2, H + 1):
        for k, sid in enumerate(ids):
            g = out[out.series_id == sid]
            lo = g[f"yhat_lo_h{h}"].to_numpy()[:len(g) - h + 1]
            hi = g[f"yhat_hi_h{h}"].to_numpy()[:len(g) - h + 1]
            yy = g.y.to_numpy()[h - 1:]                  # the value h-1 rows later
            ok = ~np.isnan(lo) & ~np.isnan(yy)
            assert m.loc[sid, f"bands_h{h}"] == ok.sum() > 0
            assert m.loc[sid, f"coverage_h{h}"] == pytest.approx(
                np.mean((lo[ok] <= yy[ok]) & (yy[ok] <= hi[ok])), abs=1e-12)
            assert m.loc[sid, f"width_h{h}"] == pytest.approx(np.mean(hi[ok] - lo[ok]),
                                                              rel=1e-12)
    lines = {ln.split()[0]: ln.split() for ln in res.stderr.splitlines()
             if re.match(r"\s+\+\d ", ln)}
    for h in range(1, H + 1):
        mae, naive, ratio, rmse, smape, rows = lines[f"+{h}"][1:]
        o = [x.get() for x in overall[h - 1][:4]]
        assert (mae, naive, rmse, smape) == (f"{o[0]:.4g}", f"{o[3]:.4g}", f"{o[1]:.4g}",
                                             f"{o[2]:.3g}%")
        assert ratio == f"{o[0] / o[3]:.3f}"
        assert int(rows.replace(",", "")) == overall[h - 1][4].get()
    assert "per horizon step" in res.stderr


def test_horizon_one_has_no_step_table_nor_step_columns(sensor, tmp_path):
    res = run_ok("--source", str(sensor), "--metrics-out", str(tmp_path / "m.csv"))
    assert "per horizon step" not in res.stderr
    assert not [c for c in pd.read_csv(tmp_path / "m.csv").columns if "_h" in c]


def test_metrics_out_per_step_after_kill_and_resume_is_the_same_file(sensor, tmp_path):
    import subprocess
    import sys
    from _streamdata import ROOT

    def run(metrics, ck, kill_at=None):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("STREAMLSTM_TEST_KILL_AT", None)
        if kill_at:
            env["STREAMLSTM_TEST_KILL_AT"] = kill_at
        args = ["run", *FAST, "--source", str(sensor), "--horizon", str(H),
                "--batch-rows", "16", "--metrics-out", str(metrics), "--checkpoint", str(ck),
                "--checkpoint-every", "30"]
        return subprocess.run([sys.executable, "-m", "streamlstm", *args], env=env,
                              capture_output=True, text=True)

    ref = run(tmp_path / "ref.parquet", tmp_path / "ck1")
    assert ref.returncode == 0, ref.stderr
    assert run(tmp_path / "m.parquet", tmp_path / "ck2", kill_at="checkpoint:3").returncode == -9
    again = run(tmp_path / "m.parquet", tmp_path / "ck2")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "m.parquet").read_bytes() == (tmp_path / "ref.parquet").read_bytes()
    step_lines = lambda s: [ln for ln in s.splitlines() if re.match(r"\s+\+\d ", ln)]  # noqa
    assert step_lines(again.stderr) == step_lines(ref.stderr) != []


# -- the latest-forecast table ----------------------------------------------------------------
def table(res):
    return [ln for ln in res.stdout.splitlines() if ln and not ln.startswith("...")]


def test_latest_table_heads_the_steps_with_their_times(tmp_path):
    write_sensor_file(tmp_path / "g.parquet", sensors=4, steps=30, seed=3, gap_rate=0.0)
    res = run_ok("--source", str(tmp_path / "g.parquet"), "--horizon", str(H))
    head = table(res)[0]
    last = pd.read_parquet(tmp_path / "g.parquet").timestamp.max()
    for h in range(1, H + 1):
        assert str(last + pd.Timedelta(hours=h)) in head, head
    assert "next+" not in res.stdout


def test_latest_table_gives_each_series_its_own_times(sensor, tmp_path):
    df = pd.read_parquet(sensor)
    sid = sorted(df.series_id.unique())[0]
    cut = df[~((df.series_id == sid) & (df.timestamp > df.timestamp.max() - pd.Timedelta(hours=3)))]
    cut.to_parquet(tmp_path / "cut.parquet", index=False)
    lines = table(run_ok("--source", str(tmp_path / "cut.parquet"), "--horizon", "2"))
    assert "next forecasts at" in lines[0] and "+1" in lines[0] and "+2" in lines[0]
    first = cut[cut.series_id == sid].timestamp.max() + pd.Timedelta(hours=1)
    row = next(ln for ln in lines if ln.startswith(sid))
    assert f"{first}, every 1h" in row


def test_latest_table_with_numeric_times_adds_the_step(tmp_path):
    df = pd.DataFrame({"series_id": ["a", "b"] * 6, "timestamp": np.repeat(np.arange(6) * 5, 2),
                       "value": np.arange(12.0)})
    df.to_csv(tmp_path / "n.csv", index=False)
    head = table(run_ok("--source", str(tmp_path / "n.csv"), "--horizon", "2"))[0]
    assert head.split()[-2:] == ["30", "35"]


def test_pooled_steps_of_partitions_equal_the_steps_of_all_rows():
    from streamlstm.cli.messages import pool_steps
    index, y, yhat = random_rows(5)
    whole = StepMetrics(H)
    whole.update(index, y, yhat)
    parts = []
    for p in (0, 1):              # two "partitions": series by parity
        m = index % 2 == p
        sm = StepMetrics(H)
        sm.update(index[m] // 2, y[m], yhat[m])
        parts.append(sm.report())
    for got, want in zip(pool_steps(parts), whole.report()):
        assert got["scored"] == want["scored"] and got["naive_scored"] == want["naive_scored"]
        for k in ("MAE", "RMSE", "SMAPE", "naive_MAE"):
            assert got[k] == pytest.approx(want[k], rel=1e-12), k


def test_metrics_out_jsonl_has_the_step_columns(sensor, tmp_path):
    run_ok("--source", str(sensor), "--horizon", "2", "--metrics-out", str(tmp_path / "m.jsonl"))
    m = pd.read_json(tmp_path / "m.jsonl", lines=True)
    assert {"rows_h2", "MAE_h2", "RMSE_h2", "SMAPE_h2", "naive_MAE_h2"} <= set(m.columns)
    assert len(m) == pd.read_parquet(sensor).series_id.nunique()


def test_every_option_of_every_command_shows_an_example():
    """Issue 16: every option of ``--help`` with an example: ``e.g.`` in its help, or
    the option with a value somewhere in the command's help (its examples)."""
    import click
    from streamlstm.cli.app import main
    for cmd in main.commands.values():
        text = " ".join([cmd.help or ""] + [p.help or "" for p in cmd.params
                                            if isinstance(p, click.Option)])
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.is_flag:
                assert "e.g." in (p.help or "") or any(
                    re.search(rf"{o}[ =][^\s,.;)]", text) for o in p.opts), (cmd.name, p.opts)


def test_latest_table_with_float_times_keeps_their_digits(tmp_path):
    df = pd.DataFrame({"series_id": ["a"] * 4,
                       "timestamp": 1_704_067_200.5 + np.arange(4) * 0.25,
                       "value": np.arange(4.0)})
    df.to_csv(tmp_path / "f.csv", index=False)
    lines = table(run_ok("--source", str(tmp_path / "f.csv")))
    assert lines[0].split()[-1] == "1704067201.5" and "1704067201.25" in lines[1]


def test_metrics_out_names_the_leading_expert_and_every_weight(sensor, tmp_path):
    """``lead_expert`` and ``weight_<expert>`` are the model's weights in each series'
    next one-step forecast (the checkpointed model says so), and the summary line
    gives their means; ``--experts none`` has neither."""
    from streamlstm.forecast.multiseries import MultiSeriesForecaster
    ck = tmp_path / "ck"
    res = run_ok("--source", str(sensor), "--metrics-out", str(tmp_path / "m.csv"),
                 "--checkpoint", str(ck))
    m = pd.read_csv(tmp_path / "m.csv").set_index("series_id")
    model = MultiSeriesForecaster.load(ck / "checkpoint.slstm")
    names, W = model.weight_table()
    for k, sid in enumerate(model.series_ids):
        w = [m.loc[sid, f"weight_{n}"] for n in names]
        np.testing.assert_allclose(w, W[k, 0], rtol=1e-14, atol=1e-300)
        assert m.loc[sid, "lead_expert"] == names[int(np.argmax(W[k, 0]))]
        assert sum(w) == pytest.approx(1.0, abs=1e-12)
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("experts,"))
    for n, k in zip(names, range(len(names))):
        mean = W[:, 0, k].mean()
        if mean > 0:
            assert f"{n} {mean:.2f}" in line
    res = run_ok("--source", str(sensor), "--metrics-out", str(tmp_path / "n.csv"),
                 "--experts", "none")
    assert "experts," not in res.stderr
    assert not [c for c in pd.read_csv(tmp_path / "n.csv").columns
                if c.startswith(("weight_", "lead_"))]


def test_resume_with_other_experts_option_is_refused(sensor, tmp_path):
    ck = tmp_path / "ck"
    run_ok("--source", str(sensor), "--checkpoint", str(ck), "--experts", "none")
    res = CliRunner().invoke(main, ["run", *FAST, "--source", str(sensor),
                                    "--checkpoint", str(ck)])
    assert res.exit_code == 1 and "--experts none" in res.output and "Traceback" not in res.output
