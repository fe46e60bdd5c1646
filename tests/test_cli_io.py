"""Data-engineer inputs and outputs of ``streamlstm run`` on real files: datasets
(a hive-partitioned directory, a glob), CSV dialects (``;``, decimal comma,
strptime timestamps, gzip), ``.csv.gz`` output, ``--metrics-out`` and the plot."""
import gzip
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from _streamdata import FAST, write_sensor_file
from streamlstm.cli.app import main
from streamlstm.io.files import Columns, Dialect, open_source
from streamlstm.stream.policy import DataError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One file, the same rows as a hive dataset of 3 part files (row groups of 25),
    as 3 CSV parts and as one ``;``-separated gzip CSV with decimal commas and
    day-first timestamps."""
    d = tmp_path_factory.mktemp("io")
    write_sensor_file(d / "s.parquet", sensors=4, steps=45, seed=7, row_group_rows=40)
    df = pd.read_parquet(d / "s.parquet")
    for k, ix in enumerate(np.array_split(np.arange(len(df)), 3)):
        part = d / "lake" / f"day=2024-01-0{k + 1}"
        part.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(df.iloc[ix], preserve_index=False),
                       part / "part-0.parquet", row_group_size=25)
        df.iloc[ix].to_csv(d / f"part-{k}.csv", index=False)
    (d / "lake" / "_SUCCESS").write_text("")           # Spark's marker: ignored
    with gzip.open(d / "eu.csv.gz", "wt") as f:
        df.assign(timestamp=df.timestamp.dt.strftime("%d.%m.%Y %H:%M:%S")).to_csv(
            f, index=False, sep=";", decimal=",")
    return d, df


def invoke(*args):
    return CliRunner().invoke(main, ["run", *FAST, "--no-plot", *args], catch_exceptions=False)


def ok(*args):
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    return res


def rows_of(src, start=0, batch_rows=17):
    bs = list(src.batches(start=start, batch_rows=batch_rows))
    for a, b in zip(bs, bs[1:]):
        assert b.position - len(b) == a.position          # global positions chain
    return bs


def cat(bs, f):
    return np.concatenate([f(b) for b in bs])


@pytest.mark.parametrize("spec", ["lake", "lake/*/*.parquet", "part-*.csv"])
@pytest.mark.parametrize("start", [0, 1, 57, 58, 59, 100, 173])
def test_dataset_reads_like_the_file_and_resumes_at_any_row(data, spec, start):
    d, df = data
    ref = rows_of(open_source(d / "s.parquet"))
    bs = rows_of(open_source(str(d / spec)), start)
    for f in (lambda b: b.y, lambda b: b.time, lambda b: b.ids.astype(str)):
        np.testing.assert_array_equal(cat(bs, f), cat(ref, f)[start:])
    assert bs[-1].position == len(df)
    assert list(open_source(str(d / spec)).batches(start=len(df))) == []


def test_dataset_rows_are_named_by_file_and_row_within_it(data):
    d, df = data
    bs = rows_of(open_source(str(d / "lake")))
    where = {b.where(0) for b in bs if b.rows[0] == 0}
    assert where == {f"{d / 'lake' / f'day=2024-01-0{k}' / 'part-0.parquet'}, row 0"
                     for k in (1, 2, 3)}


def test_hive_partition_key_is_a_column(data):
    d, df = data
    src = open_source(str(d / "lake"), Columns(series="day"))
    ids = cat(rows_of(src), lambda b: b.ids.astype(str))
    assert list(pd.unique(ids)) == ["2024-01-01", "2024-01-02", "2024-01-03"]


def test_semicolon_gzip_csv_with_decimal_commas(data):
    d, df = data
    src = open_source(d / "eu.csv.gz", dialect=Dialect(sep=";", decimal=",",
                                                       time_format="%d.%m.%Y %H:%M:%S"))
    ref = rows_of(open_source(d / "s.parquet"))
    bs = rows_of(src)
    np.testing.assert_array_equal(cat(bs, lambda b: b.y), cat(ref, lambda b: b.y))
    np.testing.assert_array_equal(cat(bs, lambda b: b.time), cat(ref, lambda b: b.time))


def test_cli_dataset_glob_and_eu_csv_give_the_files_forecasts(data, tmp_path):
    d, df = data
    ok("--source", str(d / "s.parquet"), "--out", str(tmp_path / "ref.parquet"))
    ok("--source", str(d / "lake"), "--out", str(tmp_path / "lake.parquet"))
    ok("--source", str(d / "part-*.csv"), "--out", str(tmp_path / "glob.csv.gz"))
    ok("--source", str(d / "eu.csv.gz"), "--csv-sep", ";", "--decimal", ",",
       "--time-format", "%d.%m.%Y %H:%M:%S", "--out", str(tmp_path / "eu.parquet"))
    ref = (tmp_path / "ref.parquet").read_bytes()
    assert (tmp_path / "lake.parquet").read_bytes() == ref
    a = pd.read_parquet(tmp_path / "ref.parquet")
    with gzip.open(tmp_path / "glob.csv.gz", "rt") as f:      # really gzip
        g = pd.read_csv(f)
    np.testing.assert_array_equal(g.yhat.to_numpy(), a.yhat.to_numpy())
    e = pd.read_parquet(tmp_path / "eu.parquet")
    np.testing.assert_array_equal(e.yhat.to_numpy(), a.yhat.to_numpy())


def test_errors_name_the_file_and_row_within_it(data, tmp_path):
    d, df = data
    lake = tmp_path / "lake"
    bad = df.copy()
    bad["value"] = bad["value"].astype(object)
    bad.loc[70, "value"] = "abc"                      # row 12 of the second part (58..115)
    for k, ix in enumerate(np.array_split(np.arange(len(df)), 3)):
        (lake / f"k={k}").mkdir(parents=True)
        bad.iloc[ix].to_csv(lake / f"k={k}" / "p.csv", index=False)
    res = invoke("--source", str(lake))
    assert res.exit_code == 1
    assert f"{lake / 'k=1' / 'p.csv'}, row 12 (line 14)" in res.stderr, res.stderr
    assert "'abc'" in res.stderr and "Traceback" not in res.output
    with pytest.raises(DataError, match="no .parquet or .csv files"):
        open_source(str(tmp_path / "nothing-*.parquet"))


def test_resume_refuses_a_changed_dataset(data, tmp_path):
    d, df = data
    lake = tmp_path / "lake"
    lake.mkdir()
    for k, ix in enumerate(np.array_split(np.arange(len(df)), 3)):
        df.iloc[ix].to_parquet(lake / f"p{k}.parquet", index=False)
    ck = str(tmp_path / "ck")
    ok("--source", str(lake), "--checkpoint", ck, "--out", str(tmp_path / "o.parquet"))
    df.iloc[:5].to_parquet(lake / "p3.parquet", index=False)       # a file added
    res = invoke("--source", str(lake), "--checkpoint", ck, "--out", str(tmp_path / "o.parquet"))
    assert res.exit_code == 1 and "another source" in res.stderr, res.stderr
    assert "4 files" in res.stderr


# -- --metrics-out ----------------------------------------------------------------------------
def river_per_series(out):
    """River MAE, RMSE, SMAPE and naive MAE per series, computed from the output file."""
    from river import metrics
    got = {}
    for sid, g in out.groupby("series_id", sort=False):
        m = [metrics.MAE(), metrics.RMSE(), metrics.SMAPE(), metrics.MAE()]
        last, n, cov = np.nan, 0, []
        for y, f, lo, hi in zip(g.y, g.yhat, g.yhat_lo, g.yhat_hi):
            if y == y and f == f:
                n += 1
                for k in range(3):
                    m[k].update(y, f)
                if last == last:
                    m[3].update(y, last)
                if lo == lo:
                    cov.append(lo <= y <= hi)
            if y == y:
                last = y
        got[sid] = (n, *(x.get() for x in m), np.mean(cov))
    return got


def test_metrics_out_one_row_per_series_equal_to_river_on_the_output(data, tmp_path):
    d, df = data
    ok("--source", str(d / "s.parquet"), "--out", str(tmp_path / "o.parquet"),
       "--metrics-out", str(tmp_path / "m.csv"))
    m = pd.read_csv(tmp_path / "m.csv")
    assert list(m.columns[:6]) == ["series_id", "rows", "MAE", "RMSE", "SMAPE", "naive_MAE"]
    assert len(m) == df.series_id.nunique()
    want = river_per_series(pd.read_parquet(tmp_path / "o.parquet"))
    for r in m.itertuples():
        n, mae, rmse, smape, naive, cov = want[r.series_id]
        assert r.rows == n
        np.testing.assert_allclose([r.MAE, r.RMSE, r.SMAPE, r.naive_MAE],
                                   [mae, rmse, smape, naive], rtol=1e-12)
        assert abs(r.coverage - cov) < 1e-12 and r.width > 0


def test_metrics_out_after_kill_and_resume_is_the_same_file(data, tmp_path):
    import subprocess
    import sys
    from _streamdata import ROOT
    d, df = data

    def run(metrics, ck, kill_at=None):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("STREAMLSTM_TEST_KILL_AT", None)
        if kill_at:
            env["STREAMLSTM_TEST_KILL_AT"] = kill_at
        args = ["run", *FAST, "--no-plot", "--source", str(d / "lake"), "--batch-rows", "16",
                "--metrics-out", str(metrics), "--checkpoint", str(ck),
                "--checkpoint-every", "30"]
        return subprocess.run([sys.executable, "-m", "streamlstm", *args], env=env,
                              capture_output=True, text=True).returncode

    assert run(tmp_path / "ref.parquet", tmp_path / "ck1") == 0
    assert run(tmp_path / "m.parquet", tmp_path / "ck2", kill_at="checkpoint:3") == -9
    assert not (tmp_path / "m.parquet").exists()
    assert run(tmp_path / "m.parquet", tmp_path / "ck2") == 0
    assert (tmp_path / "m.parquet").read_bytes() == (tmp_path / "ref.parquet").read_bytes()


# -- the plot ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["report.png", "report.html"])
def test_plot_names_each_series_with_its_mae_and_naive_mae(data, tmp_path, name):
    d, df = data
    plot = tmp_path / name
    res = CliRunner().invoke(main, ["run", *FAST[:-1], "--source", str(d / "s.parquet"),
                                    "--plot", str(plot), "--metrics-out",
                                    str(tmp_path / "m.parquet")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    m = pd.read_parquet(tmp_path / "m.parquet").set_index("series_id")
    drawn = res.stderr.split(f"plot: {plot} (")[1].split(")")[0].split(", ")
    assert len(drawn) == 3
    if name.endswith(".png"):
        from PIL import Image
        text = Image.open(plot).text["Description"]      # the panel titles
    else:
        text = plot.read_text()
        assert "plotly" in text and "naive (last value)" in text and "interval" in text
    for s in drawn:
        assert f"series_id = {s}   MAE {m.MAE[s]:.4g}, naive MAE {m.naive_MAE[s]:.4g}" in text


def test_every_run_option_has_help_and_the_help_has_examples():
    import click
    from streamlstm.cli.run import run
    for p in run.params:
        if isinstance(p, click.Option):
            assert p.help and len(p.help) > 15, p.name
    out = CliRunner().invoke(main, ["run", "--help"]).output
    for needle in ("--source lake/", "--csv-sep ';'", "--decimal ,", "--metrics-out",
                   "report.html", ".csv.gz"):
        assert needle in out


def test_bad_io_options_are_refused_with_the_option_named(data, tmp_path):
    d, df = data
    for args, needle in ((["--metrics-out", "m.txt"], "--metrics-out"),
                         (["--metrics-out", "m.csv", "--source", "kafka://h:9092/t"],
                          "--metrics-out"),
                         (["--csv-sep", ";;"], "--csv-sep"),
                         (["--csv-sep", ",", "--decimal", ","], "--csv-sep"),
                         (["--out", "f.json"], "--out")):
        argv = args if "--source" in args else ["--source", str(d / "s.parquet"), *args]
        res = invoke(*argv)
        assert res.exit_code == 2 and needle in res.stderr and "Traceback" not in res.output, \
            res.output
