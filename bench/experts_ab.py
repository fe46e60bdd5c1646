"""The experts' two per-value kernels of this checkout against another
checkout's, timed in turns in one process (paired A/B of a change to
``streamlstm/forecast/experts.py``; issue 11's cost).

    git worktree add /tmp/before <commit>
    python bench/experts_ab.py --before /tmp/before [--repeats 41]

Each side's ``experts.py`` is loaded as its own module (both on this checkout's
package for everything else), with one series of period 12 and horizon 1 warmed
by 200 values; a block is 5,000 values of ``update_rows`` (what ``learn_one``
runs) then ``combine_live`` (what ``forecast(1)`` runs), one row each, called
from Python with the same arguments on both sides, so the dispatch is the same
and the difference is the kernels'.  Prints the median µs per value of each side
and the median (and quartiles) of the paired differences, after minus before.
"""
from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(root, name):
    spec = importlib.util.spec_from_file_location(
        name, pathlib.Path(root) / "streamlstm" / "forecast" / "experts.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def state(E):
    st = E.ExpertState((12,), 1)
    st.resize(1)
    st.update(np.zeros(200, np.int64), np.sin(np.arange(200.0)), np.zeros((200, 1)))
    return st


def block(E, st, n):
    slots, y, fnet, out = np.zeros(1, np.int64), np.ones(1), np.zeros((1, 1)), np.empty((1, 1))
    ka, w = st.kernel_arrays(), st.no_weights
    update, combine = E.update_rows, E.combine_live
    t0 = time.perf_counter()
    for _ in range(n):
        update(slots, y, fnet, *ka, out)
        combine(slots, fnet, *ka, out, w)
    return (time.perf_counter() - t0) / n * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="root of the other checkout")
    p.add_argument("--repeats", type=int, default=41)
    p.add_argument("--block", type=int, default=5000, help="values per timed block")
    a = p.parse_args(argv)
    sides = [(E, state(E)) for E in (load(a.before, "experts_before"), load(ROOT, "experts_after"))]
    for E, st in sides:
        block(E, st, 100)                       # compile (or load) both
    before, after = [], []
    for _ in range(a.repeats):
        before.append(block(*sides[0], a.block))
        after.append(block(*sides[1], a.block))
    d = np.subtract(after, before)
    print(f"update_rows + combine_live per value: before {np.median(before):.3f} us, "
          f"after {np.median(after):.3f} us; paired after - before: median {np.median(d):+.3f} us "
          f"(quartiles {np.percentile(d, 25):+.3f} .. {np.percentile(d, 75):+.3f}), "
          f"{a.repeats} pairs of {a.block} values")


if __name__ == "__main__":
    main()
