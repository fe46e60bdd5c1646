"""What a user does that must never lose work or show a traceback (issue 14):
SIGTERM, two runs on one checkpoint directory, --init-from with other model
options, file modes, a mostly-skipped input, a closed stdout pipe."""
import os
import re
import signal
import stat
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from _streamdata import FAST, ROOT, write_sensor_file
from streamlstm.cli.app import main
from streamlstm.io.dirlock import DirectoryLock


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("hard")
    write_sensor_file(d / "s.parquet", sensors=4, steps=60, seed=7, row_group_rows=50)
    return d


def invoke(*args):
    return CliRunner().invoke(main, ["run", *FAST, "--no-plot", *args], catch_exceptions=False)


def spawn(args, kill_at=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("STREAMLSTM_TEST_KILL_AT", None)
    if kill_at:
        env["STREAMLSTM_TEST_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "streamlstm", "run", *FAST, "--no-plot", *args],
                          env=env, capture_output=True, text=True, timeout=600)


def test_sigterm_checkpoints_cleans_up_and_resumes(data, tmp_path):
    src = str(data / "s.parquet")
    ref = tmp_path / "ref.parquet"
    assert invoke("--source", src, "--out", str(ref), "--batch-rows", "20").exit_code == 0
    out, ck = tmp_path / "o.parquet", tmp_path / "ck"
    args = ["--source", src, "--out", str(out), "--batch-rows", "20", "--checkpoint", str(ck),
            "--checkpoint-every", "1000000"]
    p = spawn(args, kill_at="batch:4:TERM")
    assert p.returncode == 143, p.stderr
    assert re.search(r"terminated \(SIGTERM\): checkpoint written at live row [1-9]\d*; rerun",
                     p.stderr)
    assert "Traceback" not in p.stderr
    assert not out.exists() and not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    res = invoke(*args)
    assert res.exit_code == 0 and "resumed from checkpoint" in res.stderr
    assert out.read_bytes() == ref.read_bytes()


def test_sigterm_without_checkpoint_leaves_no_temp_file(data, tmp_path):
    out = tmp_path / "o.csv"
    p = spawn(["--source", str(data / "s.parquet"), "--out", str(out), "--batch-rows", "20"],
              kill_at="written:2:TERM")
    assert p.returncode == 143 and "no --checkpoint, nothing saved" in p.stderr, p.stderr
    assert os.listdir(tmp_path) == []


def test_second_run_on_a_checkpoint_directory_is_refused(data, tmp_path):
    ck = tmp_path / "ck"
    with DirectoryLock(ck):     # as a running job holds it
        res = invoke("--source", str(data / "s.parquet"), "--checkpoint", str(ck))
    assert res.exit_code == 1
    assert f"Error: {ck}: another streamlstm run is using this checkpoint directory " \
           f"(PID {os.getpid()})" in res.stderr
    assert not (ck / "checkpoint.slstm").exists()
    assert invoke("--source", str(data / "s.parquet"), "--checkpoint", str(ck)).exit_code == 0


def test_init_from_refuses_other_model_options(data, tmp_path):
    df = pd.read_parquet(data / "s.parquet")
    df.iloc[:120].to_parquet(tmp_path / "h.parquet", index=False)
    df.iloc[120:].to_parquet(tmp_path / "l.parquet", index=False)
    src = str(tmp_path / "l.parquet")
    assert invoke("--source", str(tmp_path / "h.parquet"),
                  "--checkpoint", str(tmp_path / "h")).exit_code == 0
    res = CliRunner().invoke(main, ["run", "--no-plot", "--source", src, "--init-from",
                                    str(tmp_path / "h"), "--hidden-size", "7", "--cell", "gru"])
    assert res.exit_code == 1
    assert "--cell gru (the model has lstm)" in res.stderr
    assert "--hidden-size 7 (the model has" in res.stderr and "Traceback" not in res.stderr
    # Options not given are the model's own: accepted, and recorded for inspect.
    res = CliRunner().invoke(main, ["run", "--no-plot", "--source", src, "--init-from",
                                    str(tmp_path / "h"), "--checkpoint", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "g")]).output
    assert "None" not in shown.splitlines()[1] and "lstm" in shown


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_follow_the_umask(data, tmp_path, umask):
    old = os.umask(umask)
    try:
        res = invoke("--source", str(data / "s.parquet"), "--out", str(tmp_path / "o.parquet"),
                     "--checkpoint", str(tmp_path / "ck"))
    finally:
        os.umask(old)
    assert res.exit_code == 0
    for f in (tmp_path / "o.parquet", tmp_path / "ck" / "checkpoint.slstm"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


def test_mostly_skipped_input_warns(data, tmp_path):
    df = pd.read_parquet(data / "s.parquet").sample(frac=1.0, random_state=3)
    df.to_parquet(tmp_path / "shuffled.parquet", index=False)
    res = invoke("--source", str(tmp_path / "shuffled.parquet"), "--on-bad-row", "skip")
    assert res.exit_code == 0
    warn = [l for l in res.stderr.splitlines() if l.startswith("Warning:")]
    assert len(warn) == 1 and "of the rows were skipped" in warn[0]
    clean = invoke("--source", str(data / "s.parquet"), "--on-bad-row", "skip")
    assert "Warning:" not in clean.stderr


def test_closed_stdout_pipe_exits_quietly(tmp_path):
    # Enough rows that the CSV outgrows any pipe buffer after `head` has gone.
    write_sensor_file(tmp_path / "long.parquet", sensors=4, steps=1500, seed=2)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = (f"{sys.executable} -m streamlstm run {' '.join(FAST)} --no-plot --source "
           f"{tmp_path / 'long.parquet'} --out - --batch-rows 100 | head -n 2")
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], env=env, capture_output=True,
                       text=True, timeout=600)
    assert len(p.stdout.splitlines()) == 2
    assert "Error" not in p.stderr and "Traceback" not in p.stderr and "Exception" not in p.stderr
    assert p.returncode == 128 + signal.SIGPIPE, p.stderr


def test_csv_output_has_iso_timestamps_and_empty_missing_cells(tmp_path):
    df = pd.DataFrame({"series_id": ["a", "a", "b", "a"],
                       "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00",
                                                    "2024-01-01 11:00", "2024-01-01 12:00"]
                                                   ).astype("datetime64[s]"),
                       "value": [1.0, None, 2.0, 3.0]})
    df.to_parquet(tmp_path / "in.parquet", index=False)
    res = invoke("--source", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "o.csv"))
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "o.csv").read_text().splitlines()
    # no forecast (nor interval: yhat_lo, yhat_hi) yet: empty cells, not nan
    assert lines[1] == '"a","2024-01-01T10:00:00",1,,,'
    assert lines[2].startswith('"a","2024-01-01T11:00:00",,')   # missing target: empty
    assert "nan" not in "".join(lines) and ".000" not in "".join(lines)
    invoke("--source", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "o.parquet"))
    a = pd.read_parquet(tmp_path / "o.parquet")
    b = pd.read_csv(tmp_path / "o.csv", parse_dates=["timestamp"])
    assert (a.timestamp.to_numpy() == b.timestamp.to_numpy()).all()
    pd.testing.assert_series_equal(a.yhat, b.yhat)


def test_warmup_compiles_and_a_slow_compile_is_announced(data, tmp_path, monkeypatch):
    res = CliRunner().invoke(main, ["warmup", "--backend", "reference", "--cell", "gru",
                                    "--dtype", "float32"])
    assert res.exit_code == 0 and "gru/float32 on reference: compiled and cached" in res.output
    # A run whose first compile is slow says so before its progress bar starts.
    import time
    from streamlstm.forecast.multiseries import MultiSeriesForecaster
    calls = []

    def slow(self):
        calls.append(self.cell)
        time.sleep(0.8)
        return 0.8
    monkeypatch.setattr(MultiSeriesForecaster, "compile_kernels", slow)
    res = invoke("--source", str(data / "s.parquet"), "--cell", "gru")
    assert res.exit_code == 0 and calls == ["gru"]
    assert "compiling the gru/float64 kernels for the reference backend (first run only" \
        in res.stderr and "... done in" in res.stderr
    # the summary names the compile and leaves it out of the rate
    import re
    rows = int(re.search(r"read ([\d,]+) rows", res.stderr).group(1).replace(",", ""))
    took, rate = re.search(r"rows forecast, \S+ series, ([\d.]+) s \(0\.8 s of it compiling, "
                           r"first run only; ([\d,]+) rows/s\)", res.stderr).groups()
    rate = int(rate.replace(",", ""))
    assert rate > 1.5 * rows / float(took)         # the 0.8 s are not in it
    monkeypatch.setattr(MultiSeriesForecaster, "compile_kernels", lambda self: 0.0)
    assert "compiling" not in invoke("--source", str(data / "s.parquet")).stderr


def test_out_json_lines_matches_the_parquet_output(data, tmp_path):
    src = str(data / "s.parquet")
    assert invoke("--source", src, "--out", str(tmp_path / "o.parquet")).exit_code == 0
    res = invoke("--source", src, "--out", str(tmp_path / "o.jsonl"))
    assert res.exit_code == 0, res.output
    import json
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    ref = pd.read_parquet(tmp_path / "o.parquet")
    assert len(rows) == len(ref) and list(rows[0]) == list(ref.columns)
    got = pd.DataFrame(rows)
    assert got.yhat.isna().sum() == ref.yhat.isna().sum() > 0       # NaN travels as null
    pd.testing.assert_series_equal(got.yhat.astype(float), ref.yhat)
    assert (pd.to_datetime(got.timestamp).to_numpy() == ref.timestamp.to_numpy()).all()
    assert rows[0]["timestamp"].startswith("2024-01-01T")             # ISO 8601 text
