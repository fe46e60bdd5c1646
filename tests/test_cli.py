"""``streamlstm run`` / ``inspect`` through click's CliRunner: every option, and
every data-policy error (one ``Error:`` line naming file, column, row and value,
exit status 1, no traceback)."""
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from _streamdata import FAST, write_sensor_file
from streamlstm.cli.app import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    write_sensor_file(d / "s.parquet", sensors=4, steps=50, seed=5, row_group_rows=40)
    df = pd.read_parquet(d / "s.parquet")
    df.to_csv(d / "s.csv", index=False)
    # History and live halves, split in time.
    cut = df["timestamp"].iloc[len(df) // 2]
    df[df.timestamp < cut].to_parquet(d / "hist.parquet", index=False)
    df[df.timestamp >= cut].to_parquet(d / "live.parquet", index=False)
    return d


def invoke(*args, fast=True):
    """``streamlstm run`` with the fast model options first (so ``args`` override them)."""
    fast_opts = FAST if fast is True else (fast or [])
    return CliRunner().invoke(main, ["run", *fast_opts, *args], catch_exceptions=False)


def ok(*args, **kw):
    res = invoke(*args, **kw)
    assert res.exit_code == 0, res.output
    return res


def error(*args, needles=(), **kw):
    """Run, expect a user error: exit 1, exactly one 'Error:' line on stderr that
    contains every needle, no traceback."""
    res = invoke(*args, **kw)
    assert res.exit_code in (1, 2), res.output
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    err = [l for l in lines if l.startswith("Error:")]
    assert len(err) == 1, res.stderr
    assert "Traceback" not in res.output
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def read_out(path):
    if str(path).endswith(".csv"):
        return pd.read_csv(path)
    return pd.read_parquet(path)


# -- the happy path and every option ---------------------------------------------------------
def test_run_prints_forecasts_summary_and_plot(data, tmp_path):
    png = tmp_path / "f.png"
    res = ok("--source", str(data / "s.parquet"), "--plot", str(png), fast=FAST[:-1])
    out = res.stdout.splitlines()
    assert out[0].split()[:4] == ["series", "last", "time", "y"]
    assert len(out) == 1 + 4                                   # header + 4 series
    assert "MAE" in res.stderr and "RMSE" in res.stderr and "SMAPE" in res.stderr
    assert "worst series by MAE" in res.stderr and "naive last-value forecast: MAE" in res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_out_parquet_csv_and_stdout_agree(data, tmp_path):
    src = str(data / "s.parquet")
    ok("--source", src, "--out", str(tmp_path / "f.parquet"))
    ok("--source", src, "--out", str(tmp_path / "f.csv"))
    res = ok("--source", src, "--out", "-")
    a = read_out(tmp_path / "f.parquet")
    b = read_out(tmp_path / "f.csv")
    n_rows = pq.ParquetFile(src).metadata.num_rows
    # --coverage 0.9 is on by default: each forecast comes with its 90% interval
    assert list(a.columns) == ["series_id", "timestamp", "y", "yhat", "yhat_lo", "yhat_hi"]
    assert len(a) == n_rows
    for c in ("yhat", "yhat_lo", "yhat_hi"):   # CSV round-trips exactly
        np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy())
    assert res.stdout.splitlines()[0] == '"series_id","timestamp","y","yhat","yhat_lo","yhat_hi"'
    assert len(res.stdout.splitlines()) == n_rows + 1
    src_df = pd.read_parquet(src)
    np.testing.assert_array_equal(a.y.to_numpy(), src_df.value.to_numpy())
    assert (a.series_id == src_df.series_id).all()


def test_csv_source_same_as_parquet(data, tmp_path):
    ok("--source", str(data / "s.parquet"), "--out", str(tmp_path / "a.parquet"))
    ok("--source", str(data / "s.csv"), "--out", str(tmp_path / "b.parquet"))
    a, b = read_out(tmp_path / "a.parquet"), read_out(tmp_path / "b.parquet")
    np.testing.assert_array_equal(a.yhat.to_numpy(), b.yhat.to_numpy())


def test_batch_rows_do_not_change_the_output(data, tmp_path):
    """Micro-batched = row by row, end to end: record batches of 1 row vs many."""
    src = str(data / "s.parquet")
    ok("--source", src, "--out", str(tmp_path / "one.parquet"), "--batch-rows", "1")
    ok("--source", src, "--out", str(tmp_path / "many.parquet"), "--batch-rows", "100000")
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "many.parquet").read_bytes()


def test_format_option(data, tmp_path):
    odd = tmp_path / "data.txt"
    odd.write_bytes((data / "s.csv").read_bytes())
    error("--source", str(odd), needles=("data.txt", "--format"))
    ok("--source", str(odd), "--format", "csv", "--out", str(tmp_path / "o.csv"))
    assert len(read_out(tmp_path / "o.csv")) == len(pd.read_csv(odd))


def test_column_options_and_features(data, tmp_path):
    df = pd.read_parquet(data / "s.parquet").rename(
        columns={"series_id": "sensor", "timestamp": "ts", "value": "reading"})
    df.to_parquet(tmp_path / "r.parquet")
    # the network alone: on 50 values a series' combination may leave it no weight
    # (it joins after experts.NET_WARMUP values, and only when it beats the others)
    ok("--source", str(tmp_path / "r.parquet"), "--series-col", "sensor", "--time-col", "ts",
       "--target-col", "reading", "--experts", "none", "--out", str(tmp_path / "a.parquet"))
    ok("--source", str(tmp_path / "r.parquet"), "--series-col", "sensor", "--time-col", "ts",
       "--target-col", "reading", "--features", "outside_temp", "--experts", "none",
       "--out", str(tmp_path / "b.parquet"))
    a, b = read_out(tmp_path / "a.parquet"), read_out(tmp_path / "b.parquet")
    assert list(a.columns) == ["series_id", "timestamp", "y", "yhat", "yhat_lo", "yhat_hi"]
    assert not np.allclose(a.yhat.fillna(0), b.yhat.fillna(0))   # the feature is used


def test_horizon_adds_columns(data, tmp_path):
    ok("--source", str(data / "s.parquet"), "--horizon", "3", "--out", str(tmp_path / "h.parquet"))
    h = read_out(tmp_path / "h.parquet")
    assert list(h.columns) == ["series_id", "timestamp", "y", "yhat", "yhat_h2", "yhat_h3",
                               "yhat_lo", "yhat_hi", "yhat_lo_h2", "yhat_hi_h2",
                               "yhat_lo_h3", "yhat_hi_h3"]
    assert h.yhat_h3.notna().sum() > 0.9 * len(h)
    assert h.yhat_lo_h3.notna().sum() > 0.7 * len(h)    # bands once a step scored a few


def test_coverage_zero_gives_no_interval_columns(data, tmp_path):
    res = ok("--source", str(data / "s.parquet"), "--horizon", "2", "--coverage", "0",
             "--out", str(tmp_path / "h.parquet"))
    h = read_out(tmp_path / "h.parquet")
    assert list(h.columns) == ["series_id", "timestamp", "y", "yhat", "yhat_h2"]
    assert "intervals" not in res.stderr


def test_replay_warms_and_is_not_written_unless_asked(data, tmp_path):
    live, hist = str(data / "live.parquet"), str(data / "hist.parquet")
    cold = ok("--source", live, "--out", str(tmp_path / "cold.parquet"))
    warm = ok("--source", live, "--replay", hist, "--out", str(tmp_path / "warm.parquet"))
    both = ok("--source", live, "--replay", hist, "--write-replay",
              "--out", str(tmp_path / "both.parquet"))
    n_live, n_hist = (pq.ParquetFile(p).metadata.num_rows for p in (live, hist))
    c, w, b = (read_out(tmp_path / f"{k}.parquet") for k in ("cold", "warm", "both"))
    assert len(c) == len(w) == n_live and len(b) == n_live + n_hist
    assert w.yhat.notna().all()              # history gave every series a state
    assert c.yhat.isna().sum() >= 4          # cold: no forecast before a series' first value
    np.testing.assert_array_equal(b.yhat.to_numpy()[n_hist:], w.yhat.to_numpy())
    assert "replayed" in warm.stderr and "replayed" not in cold.stderr


def test_model_options_change_results(data, tmp_path):
    src = str(data / "s.parquet")
    base = ["--source", src, "--experts", "none"]     # the network alone (as above)
    variants = {"base": [], "gru": ["--cell", "gru"], "h8": ["--hidden-size", "8"],
                "layers": ["--layers", "2"], "k": ["--k1", "2", "--k2", "4"],
                "sgd": ["--optimizer", "sgd"], "lr": ["--lr", "0.05"],
                "lags": ["--lags", "1,2"], "season": ["--seasonality", "24"],
                "seed": ["--seed", "3"], "f32": ["--dtype", "float32"]}
    outs = {}
    for name, extra in variants.items():
        # FAST comes first; a later option overrides it.
        ok(*base, "--out", str(tmp_path / f"{name}.parquet"), *extra)
        outs[name] = read_out(tmp_path / f"{name}.parquet").yhat.fillna(0).to_numpy()
    for name, yhat in outs.items():
        if name != "base":
            assert not np.array_equal(yhat, outs["base"]), name
    ok(*base, "--out", str(tmp_path / "again.parquet"))
    np.testing.assert_array_equal(read_out(tmp_path / "again.parquet").yhat.fillna(0), outs["base"])


def test_metrics_window_show_and_progress(data):
    res = ok("--source", str(data / "s.parquet"), "--metrics-window", "25", "--show", "2",
             "--progress")
    assert "last 25 rows" in res.stderr
    assert "rows/s" in res.stderr and "series" in res.stderr           # the progress bar
    assert len(res.stdout.splitlines()) == 1 + 2 + 1                    # header, 2, "... more"
    assert "2 more series" in res.stdout


def test_plot_options(data, tmp_path, monkeypatch):
    src = str(data / "s.parquet")
    ids = sorted(pd.read_parquet(src).series_id.unique())
    png = tmp_path / "p.png"
    res = ok("--source", src, "--plot", str(png), "--plot-series", f"{ids[0]},nope",
             "--plot-points", "20", fast=FAST[:-1])
    assert png.exists() and f"plot: {png} ({ids[0]})" in res.stderr
    assert "--plot-series 'nope' was not in the data" in res.stderr
    monkeypatch.chdir(tmp_path)
    ok("--source", src)                                                  # FAST has --no-plot
    assert not (tmp_path / "forecast.png").exists()
    error("--source", src, "--plot", "x.txt", needles=("--plot", ".png"), fast=FAST[:-1])


def test_inspect(data, tmp_path):
    ck = tmp_path / "ck"
    ok("--source", str(data / "s.parquet"), "--checkpoint", str(ck))
    res = CliRunner().invoke(main, ["inspect", str(ck)])
    assert res.exit_code == 0, res.output
    n = pq.ParquetFile(data / "s.parquet").metadata.num_rows
    assert f"live row {n:,} (complete" in res.stdout and "series       4" in res.stdout
    assert "MAE" in res.stdout
    assert "90% intervals, after the first 20% of scored forecasts:" in res.stdout
    res = CliRunner().invoke(main, ["inspect", str(data / "s.parquet")])
    assert res.exit_code == 1 and res.stderr.startswith("Error:") and "not a streamlstm checkpoint" in res.stderr


def test_help_documents_the_data_policy():
    res = CliRunner().invoke(main, ["run", "--help"])
    assert res.exit_code == 0
    for needle in ("missing target", "out-of-order", "--on-bad-row", "--new-series",
                   "corrupt file", "checkpoint as it was"):
        assert needle in res.output
    assert CliRunner().invoke(main, ["--version"]).output.startswith("streamlstm, version")


# -- checkpoints ------------------------------------------------------------------------------
def test_checkpoint_rerun_is_idempotent(data, tmp_path):
    args = ["--source", str(data / "s.parquet"), "--checkpoint", str(tmp_path / "ck"),
            "--checkpoint-every", "50", "--out", str(tmp_path / "o.parquet")]
    ok(*args)
    first = (tmp_path / "o.parquet").read_bytes()
    ck = (tmp_path / "ck" / "checkpoint.slstm").read_bytes()
    res = ok(*args)
    assert "already complete" in res.stderr
    assert (tmp_path / "o.parquet").read_bytes() == first
    assert (tmp_path / "ck" / "checkpoint.slstm").read_bytes() == ck
    os.unlink(tmp_path / "o.parquet")          # a lost output is rewritten from the parts
    ok(*args)
    assert (tmp_path / "o.parquet").read_bytes() == first
    ok("--source", str(data / "s.parquet"), "--out", str(tmp_path / "plain.parquet"))
    assert (tmp_path / "plain.parquet").read_bytes() == first     # same bytes as no checkpoint


@pytest.mark.parametrize("every", ["abc", "0", "1.5", "-3s"])
def test_checkpoint_every_is_checked(data, tmp_path, every):
    error("--source", str(data / "s.parquet"), "--checkpoint-every", every,
          needles=("--checkpoint-every",))


def test_checkpoint_every_seconds(data, tmp_path):
    ok("--source", str(data / "s.parquet"), "--checkpoint", str(tmp_path / "ck"),
       "--checkpoint-every", "0.001s", "--batch-rows", "20")
    parts = os.listdir(tmp_path / "ck" / "parts")
    assert len(parts) >= 5                      # a checkpoint after (nearly) every batch


def test_resume_refuses_other_options_and_leaves_checkpoint(data, tmp_path):
    ck = tmp_path / "ck"
    ok("--source", str(data / "s.parquet"), "--checkpoint", str(ck))
    before = (ck / "checkpoint.slstm").read_bytes()
    error("--source", str(data / "s.parquet"), "--checkpoint", str(ck), "--hidden-size", "9",
          needles=("--hidden-size 4", "--hidden-size 9", "new --checkpoint"))
    error("--source", str(data / "live.parquet"), "--checkpoint", str(ck),
          needles=("another source", "live.parquet", "--init-from"))
    assert (ck / "checkpoint.slstm").read_bytes() == before


def test_replay_overlapping_live_with_skip_and_one_row_batches(data, tmp_path):
    """The README's recipe for a history that overlaps the live file (--replay
    + --on-bad-row skip), down to batches of one row where a whole batch is
    skipped: exit 0, the overlap counted as skipped, a checkpoint written."""
    df = pd.read_parquet(data / "s.parquet")
    df.iloc[:120].to_parquet(tmp_path / "h.parquet", index=False)
    df.iloc[100:].to_parquet(tmp_path / "l.parquet", index=False)
    res = ok("--source", str(tmp_path / "l.parquet"), "--replay", str(tmp_path / "h.parquet"),
             "--on-bad-row", "skip", "--batch-rows", "1", "--no-plot",
             "--out", str(tmp_path / "o.parquet"), "--checkpoint", str(tmp_path / "ck"))
    assert "skipped 20 rows" in res.stderr
    assert len(pd.read_parquet(tmp_path / "o.parquet")) == len(df) - 120
    assert (tmp_path / "ck" / "checkpoint.slstm").exists()


def test_rejected_run_leaves_checkpoint_then_skip_resumes(data, tmp_path):
    df = pd.read_parquet(data / "s.parquet")
    df.loc[150, "outside_temp"] = np.nan
    bad = tmp_path / "bad.parquet"
    df.to_parquet(bad)
    args = ["--source", str(bad), "--features", "outside_temp", "--checkpoint", str(tmp_path / "ck"),
            "--checkpoint-every", "40", "--batch-rows", "10", "--out", str(tmp_path / "o.parquet")]
    error(*args, needles=("bad.parquet, row 150", "'outside_temp'", "nan", "--on-bad-row skip"))
    ckfile = tmp_path / "ck" / "checkpoint.slstm"
    before = ckfile.read_bytes()
    error(*args, needles=("row 150",))
    assert ckfile.read_bytes() == before           # the failed rerun changed nothing
    assert not (tmp_path / "o.parquet").exists()
    ok(*args, "--on-bad-row", "skip")              # loosening the policy resumes
    ok("--source", str(bad), "--features", "outside_temp", "--on-bad-row", "skip",
       "--out", str(tmp_path / "fresh.parquet"))
    assert (tmp_path / "o.parquet").read_bytes() == (tmp_path / "fresh.parquet").read_bytes()


def test_init_from_and_new_series_policy(data, tmp_path):
    hist, live = str(data / "hist.parquet"), str(data / "live.parquet")
    ok("--source", hist, "--checkpoint", str(tmp_path / "h"))
    # Equivalent to --replay: the model continues from the history run.
    ok("--source", live, "--init-from", str(tmp_path / "h"), "--out", str(tmp_path / "a.parquet"))
    ok("--source", live, "--replay", hist, "--out", str(tmp_path / "b.parquet"))
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    # A series the history never had.
    df = pd.read_parquet(live)
    df.loc[df.index[5], "series_id"] = "newcomer"
    df.to_parquet(tmp_path / "new.parquet")
    new = str(tmp_path / "new.parquet")
    error("--source", new, "--replay", hist, "--new-series", "error",
          needles=("new.parquet, row 5", "series not in history", "'newcomer'"))
    res = ok("--source", new, "--replay", hist, "--new-series", "skip",
             "--out", str(tmp_path / "s.parquet"))
    assert "1 series not in history" in res.stderr and len(read_out(tmp_path / "s.parquet")) == len(df) - 1
    ok("--source", new, "--replay", hist, "--out", str(tmp_path / "al.parquet"))
    assert "newcomer" in set(read_out(tmp_path / "al.parquet").series_id)


# -- every error of the data policy --------------------------------------------------------------
def test_missing_and_empty_and_corrupt_files(data, tmp_path):
    error("--source", str(tmp_path / "nope.parquet"), needles=("nope.parquet", "no such file"))
    (tmp_path / "empty.parquet").write_bytes(b"")
    error("--source", str(tmp_path / "empty.parquet"), needles=("empty.parquet", "empty (0 bytes)"))
    (tmp_path / "empty.csv").write_bytes(b"")
    error("--source", str(tmp_path / "empty.csv"), needles=("empty.csv", "empty"))
    (tmp_path / "head.csv").write_text("series_id,timestamp,value\n")
    error("--source", str(tmp_path / "head.csv"), needles=("head.csv", "no rows"))
    pd.DataFrame({"series_id": pd.Series([], dtype=str), "timestamp": pd.Series([], dtype="datetime64[ns]"),
                  "value": pd.Series([], dtype=float)}).to_parquet(tmp_path / "zero.parquet")
    error("--source", str(tmp_path / "zero.parquet"), needles=("zero.parquet", "no rows"))
    raw = (data / "s.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(raw[: len(raw) // 2])
    error("--source", str(tmp_path / "cut.parquet"), needles=("cut.parquet", "not a readable Parquet"))
    (tmp_path / "junk.parquet").write_bytes(b"hello world, not parquet at all" * 10)
    error("--source", str(tmp_path / "junk.parquet"), needles=("junk.parquet",))


def test_corrupt_data_inside_a_parquet_file(data, tmp_path):
    """A flipped page in a later row group: the error names the row group and rows."""
    raw = bytearray((data / "s.parquet").read_bytes())
    pf = pq.ParquetFile(data / "s.parquet")
    col = pf.metadata.row_group(2).column(2)                 # 'value' of row group 2
    start = col.data_page_offset
    for k in range(start + 40, start + 60):
        raw[k] ^= 0xFF
    (tmp_path / "flip.parquet").write_bytes(bytes(raw))
    error("--source", str(tmp_path / "flip.parquet"),
          needles=("flip.parquet: corrupt data in row group 2 (rows 80 to 119)", "re-export"))


def test_missing_column(data):
    error("--source", str(data / "s.parquet"), "--target-col", "temperature",
          needles=("s.parquet", "no column 'temperature'", "'value'", "--target-col"))
    error("--source", str(data / "s.csv"), "--features", "humidity",
          needles=("s.csv", "no column 'humidity'", "--features"))


def test_non_numeric_columns(data, tmp_path):
    df = pd.read_parquet(data / "s.parquet")
    d2 = df.assign(value=df.value.astype(str))
    d2.loc[7, "value"] = "abc"
    d2.to_parquet(tmp_path / "txt.parquet")
    error("--source", str(tmp_path / "txt.parquet"),
          needles=("txt.parquet, row 7", "'value'", "not a number", "'abc'"))
    df.assign(value=df.value > 30).to_parquet(tmp_path / "bool.parquet")
    error("--source", str(tmp_path / "bool.parquet"),
          needles=("bool.parquet", "'value'", "type bool", "--target-col"))
    csv = (data / "s.csv").read_text().splitlines()
    parts = csv[12].split(",")
    parts[3] = "warm"                              # outside_temp of line 13 = data row 11
    csv[12] = ",".join(parts)
    (tmp_path / "f.csv").write_text("\n".join(csv) + "\n")
    error("--source", str(tmp_path / "f.csv"), "--features", "outside_temp",
          needles=("f.csv, row 11 (line 13)", "'outside_temp'", "'warm'"))


def test_non_finite_values(data, tmp_path):
    df = pd.read_parquet(data / "s.parquet")
    d = df.copy()
    d.loc[9, "value"] = np.inf
    d.to_parquet(tmp_path / "inf.parquet")
    error("--source", str(tmp_path / "inf.parquet"),
          needles=("inf.parquet, row 9", "'value'", "infinite target", "inf"))
    d = df.copy()
    d.loc[11, "outside_temp"] = -np.inf
    d.to_parquet(tmp_path / "feat.parquet")
    error("--source", str(tmp_path / "feat.parquet"), "--features", "outside_temp",
          needles=("feat.parquet, row 11", "'outside_temp'", "non-finite feature", "-inf"))
    res = ok("--source", str(tmp_path / "feat.parquet"), "--features", "outside_temp",
             "--on-bad-row", "skip", "--out", str(tmp_path / "o.parquet"))
    assert "1 non-finite feature" in res.stderr and len(read_out(tmp_path / "o.parquet")) == len(df) - 1


def test_missing_target_is_not_an_error(data, tmp_path):
    df = pd.read_parquet(data / "s.parquet")
    assert df.value.isna().sum() > 0                      # the generator makes NaN readings
    res = ok("--source", str(data / "s.parquet"), "--out", str(tmp_path / "o.parquet"))
    out = read_out(tmp_path / "o.parquet")
    assert out.y.isna().sum() == df.value.isna().sum()
    assert out.yhat[out.y.isna()].notna().any()          # forecast although the value is missing
    assert f"{df.value.isna().sum():,} live rows with a missing target" in res.stderr


def test_duplicate_and_out_of_order_timestamps(data, tmp_path):
    df = pd.read_parquet(data / "s.parquet")
    sid = df.series_id.iloc[20]
    rows = df.index[df.series_id == sid]
    d = df.copy()
    d.loc[rows[6], "timestamp"] = d.loc[rows[5], "timestamp"]
    d.to_parquet(tmp_path / "dup.parquet")
    error("--source", str(tmp_path / "dup.parquet"),
          needles=(f"dup.parquet, row {rows[6]}", "'timestamp'", "duplicate timestamp"))
    d = df.copy()
    d.loc[rows[6], "timestamp"] = d.loc[rows[2], "timestamp"]
    d.to_parquet(tmp_path / "ooo.parquet")
    error("--source", str(tmp_path / "ooo.parquet"),
          needles=(f"ooo.parquet, row {rows[6]}", "out-of-order timestamp", "sort the rows"))
    res = ok("--source", str(tmp_path / "ooo.parquet"), "--on-bad-row", "skip")
    assert "1 out-of-order timestamp" in res.stderr


def test_bad_timestamps_and_ids_in_csv(data, tmp_path):
    lines = (data / "s.csv").read_text().splitlines()
    t = list(lines)
    p = t[8].split(",")
    p[1] = "yesterday"
    t[8] = ",".join(p)
    (tmp_path / "t.csv").write_text("\n".join(t) + "\n")
    error("--source", str(tmp_path / "t.csv"),
          needles=("t.csv, row 7 (line 9)", "'timestamp'", "unreadable timestamp", "'yesterday'"))
    t = list(lines)
    p = t[5].split(",")
    p[0] = ""
    t[5] = ",".join(p)
    (tmp_path / "i.csv").write_text("\n".join(t) + "\n")
    error("--source", str(tmp_path / "i.csv"),
          needles=("i.csv, row 4 (line 6)", "'series_id'", "missing series id"))


def test_timestamp_kinds_must_agree(data, tmp_path):
    df = pd.read_parquet(data / "live.parquet")
    df.assign(timestamp=np.arange(len(df))).to_parquet(tmp_path / "int.parquet")
    error("--source", str(tmp_path / "int.parquet"), "--replay", str(data / "hist.parquet"),
          needles=("int.parquet", "int timestamps", "datetime"))


def test_option_errors(data, tmp_path):
    src = str(data / "s.parquet")
    error("--source", src, "--k1", "9", "--k2", "3", needles=("--k1", "k1 <= k2"))
    error("--source", src, "--lags", "a,b", needles=("--lags",))
    error("--source", src, "--out", str(tmp_path / "o.xlsx"), needles=("--out", ".parquet"))
    error("--source", src, "--series-col", "value", needles=("'value'", "used twice"))
    (tmp_path / "file").write_text("x")
    error("--source", src, "--checkpoint", str(tmp_path / "file"), needles=("file",))


def test_corrupt_checkpoint_is_refused_and_kept(data, tmp_path):
    ck = tmp_path / "ck"
    args = ["--source", str(data / "s.parquet"), "--checkpoint", str(ck), "--checkpoint-every", "40"]
    ok(*args)
    f = ck / "checkpoint.slstm"
    raw = f.read_bytes()
    f.write_bytes(raw[:-100])                                   # a torn copy
    error(*args, needles=(str(f), "truncated"))
    assert f.read_bytes() == raw[:-100]                         # left for the user to inspect
    res = CliRunner().invoke(main, ["inspect", str(ck)])
    assert res.exit_code == 1 and "truncated" in res.stderr


def test_unavailable_backend_is_one_error_line(data):
    import numba.cuda
    if numba.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: --backend cuda is available")
    error("--source", str(data / "s.parquet"), "--backend", "cuda", needles=("cuda",))
