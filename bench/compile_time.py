"""First-run time: what a newcomer waits for while Numba compiles (issue 13).

    python bench/compile_time.py              # both scenarios: cold, cold in one process, warm (~3 min)
    python bench/compile_time.py --only river # one scenario

Each scenario runs twice in a fresh Python process: first with an empty
``NUMBA_CACHE_DIR`` (a fresh install: everything compiles), then again with the
cache that run left (later runs: the kernels load).  Scenarios, the calls a user
makes:

* ``river``: ``import streamlstm``; ``LSTMForecaster()``: ``learn_one`` twice and
  ``forecast(1)`` - the first values of a River user's stream;
* ``cli``: ``streamlstm run --source examples/sensor.parquet --out <tmp>.parquet
  --plot <tmp>.png`` through the CLI's own entry point (``cli.app.main``), minus
  the interpreter's start.

A first run compiles in two processes (forecast/warm.py ``compile_in_two``: a
forked child compiles the driver while the first process compiles the rest),
so each scenario also runs cold with ``STREAMLSTM_COMPILE_PROCESSES=1`` (one
process, its own empty cache) for comparison; and (both scenarios only) ``river``
on the cache a cold ``cli`` run left, a second configuration's first run.

Per compiled function, Numba's ``numba:compile`` events give the seconds spent
in it, inclusive (with the callees compiled from inside it) and exclusive (its
own typing, lowering and LLVM optimization); the table lists the largest
exclusive times of the one-process cold run (the two-process run's events miss
what its child compiled), which is what each kernel costs to compile.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import json, sys, time
t0 = time.perf_counter()
from numba.core import event as ev
rec = []
def _name(e):
    f = e.data["dispatcher"].py_func
    return f.__module__ + "." + f.__qualname__
class _L(ev.Listener):
    def on_start(self, e):
        rec.append(("s", _name(e), time.perf_counter()))
    def on_end(self, e):
        rec.append(("e", _name(e), time.perf_counter()))
ev.register("numba:compile", _L())
scenario, out = sys.argv[1], sys.argv[2]
import streamlstm
t1 = time.perf_counter()
if scenario == "river":
    m = streamlstm.LSTMForecaster()
    m.learn_one(1.0)
    m.learn_one(2.0)
    m.forecast(1)
else:
    from streamlstm.cli.app import main
    try:
        main(["run", "--source", "examples/sensor.parquet", "--out", out,
              "--plot", out + ".png"], standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise
t2 = time.perf_counter()
stack, excl, incl = [], {}, {}
for kind, name, t in rec:
    if kind == "s":
        stack.append([name, t, 0.0])
    else:
        n, ts, child = stack.pop()
        d = t - ts
        incl[n] = incl.get(n, 0.0) + d
        excl[n] = excl.get(n, 0.0) + d - child
        if stack:
            stack[-1][2] += d
print(json.dumps({"import_s": t1 - t0, "calls_s": t2 - t1, "excl": excl, "incl": incl}))
'''


def run_child(scenario, cache, tmp, processes=None):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    env.pop("STREAMLSTM_COMPILE_PROCESSES", None)
    if processes:
        env["STREAMLSTM_COMPILE_PROCESSES"] = str(processes)
    out = Path(tmp) / f"{scenario}.parquet"
    p = subprocess.run([sys.executable, "-c", CHILD, scenario, str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{scenario} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["river", "cli"])
    ap.add_argument("--top", type=int, default=12, help="functions listed per scenario")
    a = ap.parse_args(argv)
    scenarios = [a.only] if a.only else ["river", "cli"]
    goals = {"river": 10.0, "cli": 15.0}
    rows = []
    for sc in scenarios:
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "numba_cache"
            t = time.perf_counter()
            cold = run_child(sc, cache, tmp)
            cold_wall = time.perf_counter() - t
            t = time.perf_counter()
            warm = run_child(sc, cache, tmp)
            warm_wall = time.perf_counter() - t
            one = run_child(sc, Path(tmp) / "numba_cache_one", tmp, processes=1)
        rows.append((sc, cold, one, warm))
        print(f"\n### {sc}: cold {_total(cold):.1f} s (import {cold['import_s']:.1f} s; "
              f"process {cold_wall:.1f} s; one process {_total(one):.1f} s), "
              f"warm {_total(warm):.1f} s (process {warm_wall:.1f} s); "
              f"goal <= {goals[sc]:.0f} s cold\n")
        print("| function (cold run, one process) | exclusive s | inclusive s |")
        print("|---|---:|---:|")
        top = sorted(one["excl"].items(), key=lambda kv: -kv[1])[:a.top]
        for name, v in top:
            print(f"| `{name.replace('streamlstm.', '')}` | {v:.2f} | {one['incl'][name]:.2f} |")
        print(f"| all {len(one['excl'])} compiled functions | {sum(one['excl'].values()):.2f} | |")
    if not a.only:
        print(after_cli())
    print("\n| scenario | cold (import + calls) | cold, one process | warm | goal |")
    print("|---|---:|---:|---:|---:|")
    for sc, cold, one, warm in rows:
        print(f"| {sc} | {_total(cold):.1f} s | {_total(one):.1f} s | {_total(warm):.1f} s "
              f"| <= {goals[sc]:.0f} s |")


def after_cli():
    """A second configuration's first run: ``river`` on the cache a cold ``cli``
    run left (other driver specializations: calls of one row, not six), in two
    processes and in one."""
    out = {}
    for processes in (None, 1):
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "numba_cache"
            run_child("cli", cache, tmp, processes)
            out[processes] = _total(run_child("river", cache, tmp, processes))
    return (f"\nriver after a cold cli run in the same cache: {out[None]:.1f} s "
            f"(one process {out[1]:.1f} s)")


def _total(run):
    return run["import_s"] + run["calls_s"]


if __name__ == "__main__":
    main()
