"""Who compiles what, and when, in a River forecaster's first run (issue 13).

    python bench/compile_timeline.py            # an empty cache of its own (~30-60 s)

Runs ``import streamlstm``, ``LSTMForecaster()``, two ``learn_one`` and
``forecast(1)`` in a fresh process on an empty ``NUMBA_CACHE_DIR`` and prints, per
process (the first run forks a second one: forecast/warm.py ``compile_in_two``),
each outermost Numba compile and its direct callees over 0.3 s, with their start
and end in seconds since the start of the process, from Numba's ``numba:compile``
events (the forked child's too: each process appends its own lines to one file).
What ``bench/compile_time.py`` sums per function, laid out in time: which
process waits for which.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import json, os, sys, time
T0 = time.perf_counter()
from numba.core import event as ev
LOG = sys.argv[1]
stacks = {}
def _name(e):
    f = e.data["dispatcher"].py_func
    return f.__module__.replace("streamlstm.", "") + "." + f.__qualname__
class _L(ev.Listener):
    def on_start(self, e):
        stacks.setdefault(os.getpid(), []).append((_name(e), time.perf_counter()))
    def on_end(self, e):
        st = stacks[os.getpid()]
        n, ts = st.pop()
        with open(LOG, "a") as f:
            f.write(json.dumps([os.getpid(), n, ts - T0, time.perf_counter() - T0, len(st)]) + "\n")
ev.register("numba:compile", _L())
import streamlstm
t1 = time.perf_counter()
m = streamlstm.LSTMForecaster()
m.learn_one(1.0)
t2 = time.perf_counter()
m.learn_one(2.0)
m.forecast(1)
print(json.dumps({"pid": os.getpid(), "import_s": t1 - T0, "first_learn_one_s": t2 - t1,
                  "total_s": time.perf_counter() - T0}))
'''


def main():
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "events.jsonl"
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "cache"))
        p = subprocess.run([sys.executable, "-c", CHILD, str(log)], cwd=ROOT, env=env,
                           capture_output=True, text=True)
        if p.returncode:
            sys.exit(p.stderr[-3000:])
        head = json.loads(p.stdout.strip().splitlines()[-1])
        rows = [json.loads(line) for line in log.read_text().splitlines()]
    print(f"import {head['import_s']:.1f} s, first learn_one {head['first_learn_one_s']:.1f} s, "
          f"total {head['total_s']:.1f} s")
    for pid in sorted({r[0] for r in rows}, key=lambda q: q != head["pid"]):
        print("the process" if pid == head["pid"] else "its forked child")
        for _pid, name, t0, t1, depth in sorted((r for r in rows if r[0] == pid),
                                                 key=lambda r: r[2]):
            if depth == 0 or (depth == 1 and t1 - t0 > 0.3):
                print(f"  {'    ' * depth}{t0:6.2f} - {t1:6.2f} s  {t1 - t0:6.2f} s  {name}")


if __name__ == "__main__":
    main()
