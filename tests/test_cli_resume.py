"""kill -9 at any point, rerun the same command: the output equals one
uninterrupted run, byte for byte, with no row missing or written twice - and so
does the metric summary.  Real SIGKILLs: at chosen instants (the process kills
itself at a fault-injection point: mid-batch, between an output part and its
checkpoint, right after a checkpoint, while writing the final file) and at
random instants from outside."""
import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from _streamdata import FAST, ROOT, write_sensor_file
from streamlstm.cli.app import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    write_sensor_file(d / "all.parquet", sensors=8, steps=160, seed=11, row_group_rows=100)
    df = pd.read_parquet(d / "all.parquet")
    cut = df["timestamp"].iloc[len(df) // 3]
    df[df.timestamp < cut].to_parquet(d / "hist.parquet", index=False)
    df[df.timestamp >= cut].to_parquet(d / "live.parquet", index=False)
    return d


def command(d, out, ck=None, every="40"):
    args = ["run", *FAST, "--source", str(d / "live.parquet"), "--replay", str(d / "hist.parquet"),
            "--write-replay", "--features", "outside_temp", "--horizon", "2", "--out", str(out),
            "--batch-rows", "16"]
    if ck is not None:
        args += ["--checkpoint", str(ck), "--checkpoint-every", every]
    return args


def metric_lines(stderr):
    return [l for l in stderr.splitlines()
            if l.startswith(("all ", "last ", "worst series", "naive"))]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.parquet"
    res = CliRunner().invoke(main, command(data, out))
    assert res.exit_code == 0, res.output
    return out.read_bytes(), metric_lines(res.stderr)


def spawn(args, kill_at=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("STREAMLSTM_TEST_KILL_AT", None)
    if kill_at:
        env["STREAMLSTM_TEST_KILL_AT"] = kill_at
    return subprocess.Popen([sys.executable, "-m", "streamlstm", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(data, out, ck, reference):
    res = CliRunner().invoke(main, command(data, out, ck))
    assert res.exit_code == 0, res.output
    assert "resumed from checkpoint" in res.stderr or "already complete" in res.stderr
    assert out.read_bytes() == reference[0]
    assert metric_lines(res.stderr) == reference[1]
    n = pd.read_parquet(out)
    assert not n.duplicated(["series_id", "timestamp"]).any()


def test_self_kill_at_every_dangerous_instant(data, reference, tmp_path):
    out, ck = tmp_path / "out.parquet", tmp_path / "ck"
    # One run killed five times, each at another instant, then completed.
    for point in ("part:2", "batch:7", "written:3", "checkpoint:4", "final:1"):
        p = spawn(command(data, out, ck), kill_at=point)
        _, err = p.communicate(timeout=300)
        assert p.returncode == -signal.SIGKILL, (point, err)
    assert not out.exists()          # killed while writing it: only a temp file existed
    assert any(n.startswith(".tmp-") for n in os.listdir(tmp_path))
    finish(data, out, ck, reference)


def test_random_kill_9_from_outside(data, reference, tmp_path):
    out, ck = tmp_path / "out.parquet", tmp_path / "ck"
    rng = random.Random(1234)
    killed_mid_run = 0
    for attempt in range(4):
        p = spawn(command(data, out, ck, every="16"))
        deadline = time.monotonic() + 120
        while not (ck / "checkpoint.slstm").exists() and p.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        p.communicate(timeout=120)
        if p.returncode == 0:
            break
    assert killed_mid_run >= 1
    finish(data, out, ck, reference)


def test_ctrl_c_checkpoints_at_a_batch_boundary(data, reference, tmp_path):
    out, ck = tmp_path / "out.parquet", tmp_path / "ck"
    p = spawn(command(data, out, ck, every="1000000"))     # no periodic checkpoint
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        # Wait until the run is past start-up (its output part exists), then interrupt.
        if (ck / "parts").exists() and any(n.startswith(".tmp-") for n in os.listdir(ck / "parts")):
            break
        time.sleep(0.02)
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted: checkpoint written at" in err and "Traceback" not in err
    assert (ck / "checkpoint.slstm").exists()
    finish(data, out, ck, reference)
