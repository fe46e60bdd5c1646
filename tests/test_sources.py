"""Row sources: Parquet, CSV and pandas go through one path, resume exactly at a
row, parse and flag values with their row, and stream in flat memory."""
import gzip
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _streamdata import ROOT, write_sensor_file
from streamlstm.stream.policy import DataError
from streamlstm.io.files import Columns, open_source


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    write_sensor_file(d / "s.parquet", sensors=6, steps=40, seed=2, row_group_rows=50)
    df = pd.read_parquet(d / "s.parquet")
    df.to_csv(d / "s.csv", index=False)
    df.to_csv(d / "s.tsv", index=False, sep="\t")
    with gzip.open(d / "s.csv.gz", "wt") as f:
        df.to_csv(f, index=False)
    return d, df


def collect(src, start=0, batch_rows=37):
    parts = list(src.batches(start=start, batch_rows=batch_rows))
    assert all(len(b) <= batch_rows for b in parts)
    for a, b in zip(parts, parts[1:]):
        assert b.rows[0] == a.position            # positions chain without gaps
    cat = lambda f: np.concatenate([f(b) for b in parts])  # noqa: E731
    X = np.concatenate([b.X for b in parts]) if parts and parts[0].X is not None else None
    return {"ids": cat(lambda b: b.ids.astype(object)), "time": cat(lambda b: b.time),
            "y": cat(lambda b: b.y), "rows": cat(lambda b: b.rows), "X": X,
            "kinds": {b.time_kind for b in parts}, "problems": sum(len(b.problems) for b in parts)}


def assert_same(a, b):
    for k in ("ids", "time", "y", "rows"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    if a["X"] is not None or b["X"] is not None:
        np.testing.assert_array_equal(a["X"], b["X"])
    assert a["kinds"] == b["kinds"]


def test_parquet_csv_tsv_gz_and_frame_read_the_same(files):
    d, df = files
    cols = Columns(features=("outside_temp",))
    ref = collect(open_source(d / "s.parquet", cols))
    assert len(ref["y"]) == len(df) and ref["kinds"] == {"datetime"} and ref["problems"] == 0
    np.testing.assert_array_equal(ref["y"], df.value.to_numpy())
    np.testing.assert_array_equal(ref["time"], df.timestamp.to_numpy().astype("datetime64[ns]").astype(np.int64))
    for name in ("s.csv", "s.tsv", "s.csv.gz"):
        assert_same(collect(open_source(d / name, cols)), ref)
    assert_same(collect(open_source(df, cols)), ref)


@pytest.mark.parametrize("name", ["s.parquet", "s.csv"])
@pytest.mark.parametrize("start", [0, 1, 49, 50, 51, 137])
def test_resume_at_any_row(files, name, start):
    d, df = files
    src = open_source(d / name)
    full = collect(src, batch_rows=1000)
    tail = collect(src, start=start, batch_rows=23)
    for k in ("ids", "time", "y", "rows"):
        np.testing.assert_array_equal(tail[k], full[k][start:])


def test_resume_at_the_end_yields_nothing(files):
    d, df = files
    assert list(open_source(d / "s.parquet").batches(start=len(df))) == []


def test_text_numbers_and_missing_markers(tmp_path):
    (tmp_path / "a.csv").write_text(
        "series_id,timestamp,value\n"
        "a,1, 1.5\n"
        "a,2,\n"
        "a,3,NA\n"
        "a,4,nan\n"
        "a,5,1e3\n"
        "b,1,abc\n")
    (b,) = open_source(tmp_path / "a.csv").batches()
    np.testing.assert_array_equal(b.y[:5], [1.5, np.nan, np.nan, np.nan, 1000.0])
    assert b.time_kind == "int" and b.time.tolist() == [1, 2, 3, 4, 5, 1]
    (p,) = b.problems
    assert p.mask.tolist() == [False] * 5 + [True] and p.column == "value" and p.value(5) == "abc"


@pytest.mark.parametrize("values, kind, expect", [
    (["2024-01-01 00:00:00", "2024-01-01T01:00:00"], "datetime", [1704067200, 1704070800]),
    (["2024-01-01T00:00:00+01:00", "2024-01-01T00:00:00Z"], "datetime", [1704063600, 1704067200]),
    (["2024-01-01", "2024-01-02"], "datetime", [1704067200, 1704153600]),
    (["10", "11"], "int", [10, 11]),
    (["0.5", "1.25"], "float", [0.5, 1.25]),
])
def test_csv_timestamp_kinds(tmp_path, values, kind, expect):
    rows = "".join(f"a,{v},1\n" for v in values)
    (tmp_path / "t.csv").write_text("series_id,timestamp,value\n" + rows)
    (b,) = open_source(tmp_path / "t.csv").batches()
    assert b.time_kind == kind
    got = b.time // 10**9 if kind == "datetime" else b.time
    np.testing.assert_array_equal(got, expect)


def test_parquet_types(tmp_path):
    t = pa.table({
        "series_id": pa.array([1, 2, 1], pa.int32()),
        "timestamp": pa.array([0, 0, 3_600_000_000], pa.timestamp("us", tz="Europe/Paris")),
        "value": pa.array([1, 2, 3], pa.int16()),
        "f": pa.array([True, False, True]),
        "g": pa.array(["1", "2", "3"]).dictionary_encode(),
    })
    pq.write_table(t, tmp_path / "t.parquet")
    (b,) = open_source(tmp_path / "t.parquet", Columns(features=("f", "g"))).batches()
    assert b.ids.tolist() == [1, 2, 1] and b.time_kind == "datetime"
    assert b.time.tolist() == [0, 0, 3_600_000_000_000]
    np.testing.assert_array_equal(b.X, [[1, 1], [0, 2], [1, 3]])
    assert b.columns["time"].type == pa.timestamp("us", tz="Europe/Paris")  # kept for the output
    cat = pd.DataFrame({"series_id": pd.Categorical(["x", "y"]), "timestamp": [1.0, 2.0],
                        "value": [1.0, 2.0]})
    cat.to_parquet(tmp_path / "c.parquet")
    (b,) = open_source(tmp_path / "c.parquet").batches()
    assert b.ids.tolist() == ["x", "y"] and b.time_kind == "float"


def test_schema_errors_name_file_and_column(tmp_path):
    pq.write_table(pa.table({"series_id": [1.5], "timestamp": [1], "value": [1.0]}),
                   tmp_path / "f.parquet")
    with pytest.raises(DataError, match=r"f.parquet: column 'series_id' has type double; "
                                        r"series ids must be strings or integers"):
        open_source(tmp_path / "f.parquet")
    pq.write_table(pa.table({"series_id": ["a"], "timestamp": [[1]], "value": [1.0]}),
                   tmp_path / "l.parquet")
    with pytest.raises(DataError, match="column 'timestamp' has type list"):
        open_source(tmp_path / "l.parquet")
    with pytest.raises(DataError, match="no column 'value'"):
        open_source(pd.DataFrame({"series_id": ["a"], "timestamp": [1]}))


def test_unreadable_first_timestamp_stops_at_once(tmp_path):
    (tmp_path / "t.csv").write_text("series_id,timestamp,value\na,noon,1\n")
    with pytest.raises(DataError, match=r"t.csv, row 0: column 'timestamp' value 'noon' is not a timestamp"):
        list(open_source(tmp_path / "t.csv").batches())


def test_memory_stays_flat_on_a_large_file(tmp_path):
    """Parquet source -> runner (a trivial model, real metrics and policy) ->
    Parquet output over 1.2M rows, in a subprocess: resident memory does not grow
    from the second to the last quarter of the file, although the second half
    decodes to several times the allowed growth (a reader that kept what it read
    would grow by all of it)."""
    script = textwrap.dedent(f"""
        import sys, os, numpy as np
        sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, "tests")!r}]
        from _streamdata import write_sensor_file
        from streamlstm.io.files import open_source, Columns
        from streamlstm.stream.runner import StreamRunner
        from streamlstm.io.sinks import ForecastFile

        class Naive:   # last value per series: memory per series, none per row
            def __init__(self): self.last = {{}}
            def predict_learn(self, ids, y, X=None):
                out = np.empty((len(y), 1))
                for r, (i, v) in enumerate(zip(ids.tolist(), y.tolist())):
                    out[r, 0] = self.last.get(i, np.nan)
                    if v == v: self.last[i] = v
                return out

        path = {str(tmp_path / "big.parquet")!r}
        rows = write_sensor_file(path, sensors=1000, steps=1200, seed=0, row_group_rows=65536,
                                 id_prefix="site-berlin/building-07/floor-3/")
        def rss():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        src = open_source(path, Columns(features=("outside_temp",)))
        runner = StreamRunner(Naive(), metrics_window=1000)
        out = ForecastFile({str(tmp_path / "out.parquet")!r})
        samples, decoded = [], []
        for b in src.batches(batch_rows=16384):
            fc = runner.process(b)
            t = fc.to_arrow()
            out.write(t)
            decoded.append(t.nbytes + b.X.nbytes + sum(len(s) for s in b.ids[:100]) * len(b) // 100)
            samples.append(rss())
        out.close()
        n = len(samples)
        q2 = int(np.median(samples[n // 4:n // 2]))      # second quarter
        q4 = int(np.median(samples[3 * n // 4:]))        # last quarter
        print(rows, runner.rows_forecast, sum(decoded[n // 2:]), q2, q4, max(samples[n // 4:]))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    rows, forecast, second_half, q2, q4, peak = map(int, res.stdout.split())
    assert rows == forecast > 1_000_000
    assert pq.ParquetFile(tmp_path / "out.parquet").metadata.num_rows == rows
    assert second_half > 50e6
    # RSS wobbles by +-15 MB as allocators cache and row groups fill; the trend is
    # what matters: median RSS of the last quarter vs the second quarter.
    # A reader that kept what it read would grow by most of `second_half` between the
    # two medians; allocator arenas under a loaded machine have been seen to add ~16 MB.
    growth = q4 - q2
    assert growth < 0.4 * second_half, \
        f"RSS grew {growth / 1e6:.1f} MB while reading {second_half / 1e6:.0f} MB"
    assert peak - q2 < 40e6
