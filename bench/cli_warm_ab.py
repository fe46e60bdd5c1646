"""The issue's warm command as a whole process, this checkout against another,
alternated (issue 13, "the same command warm: <= 2 s").

    git worktree add /tmp/base 493ed98
    python bench/cli_warm_ab.py --baseline-tree /tmp/base            # 7 pairs (~1 min)
    python bench/cli_warm_ab.py --baseline-tree /tmp/base --pairs 15

Runs ``streamlstm run --source examples/sensor.parquet`` - exactly the command of
issue 13's table: the latest forecasts to stdout, ``forecast.png`` drawn - as
``python -m streamlstm`` in a fresh process, interpreter start and imports
included, in a scratch directory (where the plot goes).  Each checkout runs from
its own tree (``PYTHONPATH``) on a Numba cache of its own, filled by a first
run that is not counted.  The pairs alternate which checkout goes first, so a
loaded machine weighs on both alike.  Per process: wall-clock seconds, CPU
seconds (user + system) and peak memory (``os.wait4``'s rusage); the table gives
each side's median and range and the median of the paired ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(tree, cache, workdir, source):
    """One whole process of the command: (wall s, cpu s, peak MiB)."""
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_CACHE_DIR=str(cache))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlstm", "run", "--source", str(source)],
                            cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tree}: the command failed:\n{err}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def summary(values):
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline-tree", type=Path, required=True,
                    help="another checkout (git worktree add DIR COMMIT)")
    ap.add_argument("--pairs", type=int, default=7)
    args = ap.parse_args()
    trees = {"this": ROOT, "baseline": args.baseline_tree.resolve()}
    source = ROOT / "examples" / "sensor.parquet"
    res = {k: [] for k in trees}
    with tempfile.TemporaryDirectory() as tmp:
        caches = {k: Path(tmp) / f"cache-{k}" for k in trees}
        work = {k: Path(tmp) / f"work-{k}" for k in trees}
        for k in trees:
            work[k].mkdir()
            print(f"{k}: {trees[k]} - filling its cache (not counted)", file=sys.stderr)
            run_once(trees[k], caches[k], work[k], source)
        for p in range(args.pairs):
            order = ("this", "baseline") if p % 2 == 0 else ("baseline", "this")
            for k in order:
                res[k].append(run_once(trees[k], caches[k], work[k], source))
            print(f"pair {p + 1}: " + ", ".join(f"{k} {res[k][-1][0]:.2f} s" for k in trees),
                  file=sys.stderr)
    print(f"`streamlstm run --source examples/sensor.parquet`, warm, whole process; "
          f"{args.pairs} pairs alternated\n")
    print("| | this checkout | baseline | paired ratio this / baseline |")
    print("|---|---:|---:|---:|")
    for j, label in enumerate(("wall s", "CPU s", "peak MiB")):
        a = [r[j] for r in res["this"]]
        b = [r[j] for r in res["baseline"]]
        ratio = statistics.median(x / y for x, y in zip(a, b))
        print(f"| {label} | {summary(a)} | {summary(b)} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
