"""A first run with and without link-only INNER functions, alternated (issue 13).

    python bench/link_only_ab.py              # 4 rounds of 2 cold runs (~5 min)
    python bench/link_only_ab.py --rounds 2 --scenario cli
    python bench/link_only_ab.py --compare inner-opt   # their cheap vs full module pipeline
    git worktree add /tmp/base 433ad85 && python bench/link_only_ab.py --baseline-tree /tmp/base

streamlstm/backends/link_only.py gives the functions only compiled code calls
no machine code of their own; ``STREAMLSTM_EMIT_INNER=1`` keeps Numba's own
behaviour; ``--compare inner-opt`` compares instead the shipped cheap module
pipeline of those libraries with the full one (``STREAMLSTM_INNER_OPT=full``);
``--baseline-tree DIR`` compares with the code of another checkout (an earlier
commit), run from there.
Each round runs the scenario once each way, in the order of the round
(alternating which goes first), each in a fresh process on an empty
``NUMBA_CACHE_DIR`` of its own, so that a loaded machine weighs on both sides
alike; the table gives each pair and the median of the paired differences, in
wall-clock seconds and in CPU seconds (user + system of the process and the
compile child it forks and reaps: the work done, which a host's load moves less
than it moves the wall clock).

Scenarios (the calls of ``bench/compile_time.py``): ``river`` - ``import
streamlstm``, ``LSTMForecaster()``, ``learn_one`` twice and ``forecast(1)``, timed
from before the import to after the forecast; ``cli`` - ``streamlstm run --source
examples/sensor.parquet`` through ``cli.app.main``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RIVER = r'''
import json, time
t0 = time.perf_counter()
import streamlstm
m = streamlstm.LSTMForecaster()
m.learn_one(1.0)
t1 = time.perf_counter()
m.learn_one(2.0)
m.forecast(1)
print(json.dumps({"first_learn_one_s": t1 - t0, "total_s": time.perf_counter() - t0}))
'''

CLI = r'''
import json, sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
from streamlstm.cli.app import main
with tempfile.TemporaryDirectory() as tmp:
    try:
        main(["run", "--source", "examples/sensor.parquet", "--out", str(Path(tmp) / "o.parquet")],
             standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise
t = time.perf_counter() - t0
print(json.dumps({"first_learn_one_s": t, "total_s": t}))
'''


# --compare: the setting that restores the baseline, and what each side is called
COMPARE = {
    "emit": ({"STREAMLSTM_EMIT_INNER": "1"}, "Numba's own", "link-only"),
    "inner-opt": ({"STREAMLSTM_INNER_OPT": "full"}, "INNER full opt", "INNER cheap opt"),
    "entry-opt": ({"STREAMLSTM_ENTRY_OPT": "3"}, "entry points O3", "entry points O2"),
}


def cold_run(scenario, baseline_env, cwd=ROOT):
    """One cold run of ``scenario``: the shipped code, or with ``baseline_env`` set;
    from ``cwd`` (``python -c`` imports the streamlstm of its working directory)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp)
        for name in ("STREAMLSTM_EMIT_INNER", "STREAMLSTM_INNER_OPT", "STREAMLSTM_ENTRY_OPT"):
            env.pop(name, None)
        env.update(baseline_env or {})
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run([sys.executable, "-c", RIVER if scenario == "river" else CLI],
                           cwd=cwd, env=env, capture_output=True, text=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode:
            sys.exit(p.stderr[-3000:])
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        return json.loads(p.stdout.strip().splitlines()[-1])["total_s"], cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--scenario", choices=["river", "cli"], default="river")
    ap.add_argument("--compare", choices=sorted(COMPARE), default="emit",
                    help="emit: Numba's own finalization of INNER libraries (stop 37); "
                         "inner-opt: INNER libraries fully optimized (stop 38)")
    ap.add_argument("--baseline-tree", type=Path, default=None,
                    help="instead of --compare: the baseline is the checkout in this "
                         "directory (git worktree add DIR COMMIT)")
    args = ap.parse_args()
    baseline_env, name_a, name_b = COMPARE[args.compare]
    base_cwd = ROOT
    if args.baseline_tree is not None:
        if not (args.baseline_tree / "streamlstm" / "__init__.py").is_file():
            sys.exit(f"--baseline-tree {args.baseline_tree}: no streamlstm package there; "
                     f"make one with: git worktree add {args.baseline_tree} COMMIT")
        baseline_env, name_a, name_b = {}, "baseline tree", "this tree"
        base_cwd = args.baseline_tree.resolve()
    rows = []
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        t = {base: cold_run(args.scenario, baseline_env if base else None,
                            base_cwd if base else ROOT) for base in order}
        rows.append((t[True], t[False]))
        print(f"round {r + 1}: {name_a} {t[True][0]:6.1f} s ({t[True][1]:5.1f} s CPU)   "
              f"{name_b} {t[False][0]:6.1f} s ({t[False][1]:5.1f} s CPU)", flush=True)
    for k, what in ((0, "wall clock"), (1, "CPU")):
        diffs = [b[k] - a[k] for a, b in rows]
        med_a = statistics.median(a[k] for a, _ in rows)
        print(f"{args.scenario}, cold, {args.rounds} rounds, {what}: median {name_a} "
              f"{med_a:.1f} s, {name_b} {statistics.median(b[k] for _, b in rows):.1f} s, "
              f"paired median difference {statistics.median(diffs):+.1f} s "
              f"({statistics.median(diffs) / med_a:+.0%})")


if __name__ == "__main__":
    main()
