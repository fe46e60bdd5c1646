"""What the one-row path pays per arriving value besides the kernels' own work:
the hand-over of each state's argument tuple, Numba's dispatch of the intervals'
tuple, and the intervals' update inside ``learn_row`` (issues 12 and 13).

    python bench/onerow_pieces.py

Each figure is the best of 7 blocks, ns per call, in one process.  These pieces
are too small (0.05-0.5 us) to resolve on the user path of ``hotpath.py`` when
the machine is loaded (its per-value figures then vary by more than a
microsecond from run to run), so they are timed alone here.  It reaches into
the forecaster's core (``_core``) to time its internal hand-overs.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from streamlstm.forecast import intervals  # noqa: E402
from streamlstm.forecast.estimators import LSTMForecaster  # noqa: E402


def best_ns(fn, n, blocks=7):
    best = math.inf
    for _ in range(blocks):
        t0 = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t0) / n * 1e9)
    return best


@njit
def _empty(a, b):
    return 0


@njit
def _update_loop(Y, slots, iva):
    """intervals.update_rows as learn_row calls it (one row, H = 1, no band kept)."""
    yh = np.zeros((1, 1))
    y = np.empty(1)
    for i in range(Y.shape[0]):
        y[0] = Y[i]
        intervals.update_rows(slots, y, yh, *iva, None, None, None)


def main():
    m = LSTMForecaster()
    for t in range(300):
        m.learn_one(math.sin(t / 5))
        m.forecast(1)
    core = m._core
    n = 100_000

    def loop(f):
        def run():
            for _ in range(n):
                f()
        return run

    rows = [("features kernel_arrays()", core._feats.kernel_arrays),
            ("features next_arrays()", core._feats.next_arrays),
            ("network cpu_kernel_args()", core._net.cpu_kernel_args),
            ("experts kernel_arrays()", core._ex.kernel_arrays),
            ("intervals kernel_arrays()", core._iv.kernel_arrays)]
    total = 0.0
    print("| piece, per call | ns |\n|---|---:|")
    for name, f in rows:
        t = best_ns(loop(f), n)
        total += t * (2 if "cpu_kernel_args" in name or "experts" in name else 1)  # twice per value
        print(f"| {name} | {t:.0f} |")
    print(f"| all seven per value (learn_one + forecast(1)) | {total:.0f} |")

    iva = core._iv.kernel_arrays()
    _empty(1, iva)
    _empty(1, None)
    with_t = best_ns(loop(lambda: _empty(1, iva)), n)
    none_t = best_ns(loop(lambda: _empty(1, None)), n)
    print(f"| dispatch of the intervals' tuple (an empty @njit with it minus with None) | "
          f"{with_t - none_t:.0f} |")

    from streamlstm.forecast.intervals import IntervalState
    st = IntervalState(0.9, 1)
    st.resize(1)
    Y = np.random.default_rng(0).normal(size=20_000)
    slots = np.zeros(1, np.int64)
    _update_loop(Y, slots, st.kernel_arrays())
    t = best_ns(lambda: _update_loop(Y, slots, st.kernel_arrays()), Y.size)
    print(f"| intervals' update in learn_row, H = 1, no band kept (no dispatch) | {t:.0f} |")


if __name__ == "__main__":
    main()
