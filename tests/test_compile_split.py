"""A first run compiles in two processes (forecast/warm.py ``compile_in_two``):
a forked child compiles the CPU driver and its update (and a River
forecaster's one-value call) into Numba's cache while the first process
compiles the rest.

* ``OnlineRNN.compile_driver`` compiles exactly the specializations the real
  calls use (else the child's work would be wasted and the first process would
  compile them again);
* on an empty cache, in a fresh process, an ``LSTMForecaster``'s first calls
  leave the update and the one-value call to the child (the process itself
  never compiles them: it loads them), compile no driver (the one-value call
  inlines the driver's one call: ``kernels.step_row``), forecast bit for bit
  what this process forecasts, and ``compile_in_two`` stands aside where it
  should;
* nothing the one-value call links is compiled in both processes, even when
  this process's part comes late (the child waits at a ``compile_child.Gate``);
  the gate holds a child until released, or until its limit.
"""
import json
import os
import subprocess
import sys
import time

import numba
import numpy as np
import pytest

from streamlstm import LSTMForecaster
from streamlstm.backends import compile_child
from streamlstm.backends.cpu import kernels
from streamlstm.backends.cpu.update import update_due
from streamlstm.core.online_rnn import OnlineRNN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERIES = [float(np.sin(0.3 * t) + 0.05 * t) for t in range(40)]


@pytest.fixture(scope="module")
def uncached_driver():
    """The driver compiled afresh in this process (not loaded from the cache), so
    that compiling it types its callee, the update, for the arguments the real
    calls pass it: a loaded driver brings its update along without typing it."""
    return numba.njit(kernels.step_calls.py_func)


@pytest.mark.parametrize("k1,k2,rows", [(4, 4, 1), (1, 8, 6), (2, 4, 70)])
def test_compile_driver_compiles_what_the_calls_use(k1, k2, rows, uncached_driver, monkeypatch):
    monkeypatch.setattr(kernels, "step_calls", uncached_driver)
    m = OnlineRNN(n_inputs=2, hidden_size=3, n_series=rows, k1=k1, k2=k2)
    rng = np.random.default_rng(0)
    for _ in range(2 * k2):
        m.step_rows(np.arange(rows), rng.normal(size=(rows, 2)), rng.normal(size=(rows, 1)))
    before = (sorted(map(str, update_due.signatures)), len(uncached_driver.overloads))
    assert m.driver_ready(rows) is True
    assert m.compile_driver(rows) is True
    assert (sorted(map(str, update_due.signatures)), len(uncached_driver.overloads)) == before


def test_compile_driver_is_cpu_only():
    m = OnlineRNN(n_inputs=1, hidden_size=2, backend="reference")
    assert m.compile_driver(1) is False and m.driver_ready(1) is None


def test_a_gate_holds_the_child_until_released(tmp_path):
    gate = compile_child.Gate()
    mark = tmp_path / "went_on"

    def work():
        gate.wait(60.0)
        mark.write_text(repr(time.monotonic()))
    pid = compile_child.fork(work)
    time.sleep(0.5)
    held = mark.exists()
    released = time.monotonic()
    gate.release()
    assert compile_child.reap(pid, 30.0) is True
    assert not held and float(mark.read_text()) >= released
    gate.release()                      # again: nothing
    # never released: the child goes on after its limit
    gate = compile_child.Gate()
    pid = compile_child.fork(lambda: gate.wait(0.2))
    t0 = time.monotonic()
    assert compile_child.reap(pid, 30.0) is True and time.monotonic() - t0 < 10.0
    gate.release()


FIRST_RUN = r'''
import json, os, threading, time
from numba.core import event as ev
compiled = []
class _Listener(ev.Listener):
    def on_start(self, e):
        f = e.data["dispatcher"].py_func
        compiled.append(f.__qualname__)
        with open("compiles.txt", "a") as log:  # and the forked child's (both append)
            log.write(f"{os.getpid()} {f.__module__}.{f.__qualname__}\n")
    def on_end(self, e):
        pass
ev.register("numba:compile", _Listener())
from streamlstm import LSTMForecaster
from streamlstm.forecast.multiseries import MultiSeriesForecaster
from streamlstm.backends.compile_child import PROCESSES_VAR
from streamlstm.forecast.warm import compile_in_two

def core(backend="cpu", dtype="float64"):     # LSTMForecaster()'s types: TBPTT(1, 8)
    return MultiSeriesForecaster(hidden_size=2, k1=1, k2=8, backend=backend, dtype=dtype)

def ready(dtype="float64"):            # the one-value call's update (no driver: k1 != k2)
    return core(dtype=dtype).net.driver_ready(1, driver=False)

# a loaded machine: this process's part of the one-value call's layer comes late (the
# child waits for it rather than compiling it too)
_compile_one_row = MultiSeriesForecaster.compile_one_row
def late(self, parts, slots, X):
    if "scoring" in parts:
        time.sleep(15.0)
    return _compile_one_row(self, parts, slots, X)
MultiSeriesForecaster.compile_one_row = late

out = {"ready_before": ready()}
os.environ[PROCESSES_VAR] = "1"
out["env_1"] = compile_in_two(core(), 1)
del os.environ[PROCESSES_VAR]
out["reference"] = compile_in_two(core("reference"), 1)
stop = threading.Event()
t = threading.Thread(target=stop.wait)
t.start()
out["thread"] = compile_in_two(core(), 1)
stop.set(); t.join()
out["compiled_before"] = list(compiled)

note = threading.Timer(3600.0, print)   # a waiting note (the CLI's) does not stop it
note.daemon = True
note.start()
m = LSTMForecaster()
# one step ahead: forecasting further widens the one-value call (another specialization,
# which this process compiles itself)
preds = []
for y in json.loads(SERIES):
    preds.append(m.forecast(1))
    m.learn_one(y)
note.cancel()
out["preds"] = [[float(v).hex() for v in p] for p in preds]
out["compiled"] = compiled
out["ready_after"] = ready()
out["driver_after"] = core().net.driver_ready(1)
out["float32_ready"] = ready("float32")     # another configuration: its own first run
out["warm"] = compile_in_two(core(), 1)
out["pid"] = os.getpid()
print(json.dumps(out))
'''


def test_a_first_run_leaves_the_driver_to_a_second_process(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))
    for var in ("STREAMLSTM_COMPILE_PROCESSES", "NUMBA_DISABLE_JIT", "NUMBA_CACHE_LOCATOR_CLASSES"):
        env.pop(var, None)
    script = f"SERIES = {json.dumps(json.dumps(SERIES))}\n" + FIRST_RUN
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    # where it stands aside: it returns None and compiles nothing
    assert out["ready_before"] is False
    assert out["env_1"] is None and out["reference"] is None and out["thread"] is None
    assert out["compiled_before"] == []
    # the first calls: the child compiled (and saved) the update and the one-value
    # call around it, which inlines the driver's one call: no process compiled the
    # driver (kernels.step_row)
    for name in ("update_due", "step_calls", "learn_row"):
        assert name not in out["compiled"], name
    assert "forward_rows" in out["compiled"] or "next_row" in out["compiled"]
    assert out["ready_after"] is True and out["float32_ready"] is False
    # nothing the one-value call links is compiled twice: the child compiles the
    # update, the features' pass and the call; this process the forward and the
    # experts' and intervals' updates, which the child loads (it waits for them)
    pids = {}
    for line in (tmp_path / "compiles.txt").read_text().splitlines():
        pid, name = line.split()
        pids.setdefault(name, []).append(int(pid))
    child = {n: p for n, p in pids.items() if p != [out["pid"]] * len(p)}
    split = {"streamlstm.backends.cpu.update.update_due": "child",
             "streamlstm.forecast.features.learn_rows": "child",
             "streamlstm.forecast.onerow.learn_row": "child",
             "streamlstm.backends.cpu.forward.forward_rows": "parent",
             "streamlstm.forecast.experts.update_rows": "parent",
             "streamlstm.forecast.intervals.update_rows": "parent"}
    for name, where in split.items():
        assert len(pids.get(name, [])) == 1, (name, pids.get(name))
        assert (name in child) == (where == "child"), (name, pids[name], out["pid"])
    assert out["driver_after"] is False
    assert out["warm"] is None
    # the same forecasts as this process's model, bit for bit
    m = LSTMForecaster()
    preds = []
    for y in SERIES:
        preds.append([float(v).hex() for v in m.forecast(1)])
        m.learn_one(y)
    assert out["preds"] == preds


INTERRUPTED = r'''
import json, os, signal, threading
from streamlstm.forecast.multiseries import MultiSeriesForecaster
from streamlstm.forecast.warm import compile_in_two

def handler(signum, frame):             # the application's handler (the CLI's saves work)
    with open("handled", "a") as f:
        f.write(f"{os.getpid()}\n")
signal.signal(signal.SIGINT, handler)
# a Ctrl-C three seconds in (the child compiles from about one second to ten): the
# terminal signals the whole process group, the child too
ctrl_c = threading.Timer(3.0, os.killpg, (os.getpgrp(), signal.SIGINT))
ctrl_c.start()
m = MultiSeriesForecaster(hidden_size=2, k1=4, k2=4)
took = compile_in_two(m, 1)
ctrl_c.join()
m.predict_learn(["a"] * 3, [1.0, 2.0, 3.0])     # the model goes on as usual
print(json.dumps({"pid": os.getpid(), "took": took}))
'''


def test_a_ctrl_c_ends_the_child_and_runs_only_the_parents_handler(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))
    for var in ("STREAMLSTM_COMPILE_PROCESSES", "NUMBA_DISABLE_JIT", "NUMBA_CACHE_LOCATOR_CLASSES"):
        env.pop(var, None)
    p = subprocess.run([sys.executable, "-c", INTERRUPTED], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600, start_new_session=True)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["took"] is not None                  # it did split
    assert (tmp_path / "handled").read_text().split() == [str(out["pid"])]


AFTER_WARMUP = r'''
import json
from numba.core import event as ev
compiled = []
class _Listener(ev.Listener):
    def on_start(self, e):
        f = e.data["dispatcher"].py_func
        if f.__module__.startswith("streamlstm."):
            compiled.append(f.__qualname__)
    def on_end(self, e):
        pass
ev.register("numba:compile", _Listener())
import numpy as np
from river import datasets, evaluate, metrics
import streamlstm
from streamlstm.cli.app import main

evaluate.evaluate(datasets.AirlinePassengers(), streamlstm.LSTMForecaster(), metrics.MAE(),
                  horizon=12)
for m in (streamlstm.LSTMForecaster(), streamlstm.LSTMForecaster(k1=4, k2=4)):
    for t in range(30):             # the defaults' window, then a fused one (k1 = k2)
        m.learn_one(float(np.sin(t)))
        m.forecast(1)
fused = streamlstm.MultiSeriesForecaster(k1=4, k2=4)
for t in range(8):
    fused.predict_learn([f"s{i}" for i in range(6)], np.full(6, np.sin(t)))
try:
    main(["run", "--source", EXAMPLE, "--out", "out.csv", "--no-plot"], standalone_mode=False)
except SystemExit as e:
    assert not e.code, e.code
print(json.dumps(compiled))
'''


def test_warmup_in_two_processes_leaves_nothing_to_compile(tmp_path):
    """``streamlstm warmup`` on an empty cache (two processes: the child compiles
    the fused window's half), then a fresh process runs River's ``evaluate`` at
    horizon 12, horizon-1 loops with the default and a fused window, six series
    with a fused window and the CLI on the example: it compiles nothing."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))
    for var in ("STREAMLSTM_COMPILE_PROCESSES", "NUMBA_DISABLE_JIT", "NUMBA_CACHE_LOCATOR_CLASSES"):
        env.pop(var, None)
    p = subprocess.run([sys.executable, "-m", "streamlstm", "warmup"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and "compiled and cached" in p.stdout, p.stderr[-3000:]
    assert "second compile process" not in p.stderr     # its child did its half
    example = os.path.join(ROOT, "examples", "sensor.parquet")
    script = f"EXAMPLE = {example!r}\n" + AFTER_WARMUP
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []
