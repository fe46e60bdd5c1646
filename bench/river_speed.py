"""Speed of the River layer, measured in one run on one machine.

1. One series: microseconds per ``learn_one`` + ``forecast(1)`` (the River
   evaluation loop) of ``streamlstm.LSTMForecaster()`` with its defaults, beside
   deep-river 0.3.4's ``LSTMForecaster()`` with its defaults (run in its own
   virtualenv, ``bench/deepriver_env.sh``, as a subprocess right after).
2. Many series: observations per second for ``--series`` series (1,000)
   stepped together, through ``MultiSeriesForecaster.learn_many`` (every arrival
   of a batch in few kernel calls, ``OnlineRNN.step_rows``) versus stepping one
   River ``LSTMForecaster`` per series, one ``learn_one`` at a time.

Medians of repeats; the first calls (Numba compilation) are excluded.

    python bench/river_speed.py                # Markdown on stdout, JSON in bench/out/
    python bench/river_speed.py --series 200 --no-deepriver
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import pandas as pd  # noqa: E402

import streamlstm  # noqa: E402
from streamlstm.forecast.multiseries import MultiSeriesForecaster  # noqa: E402


def series_value(s, t):
    return 100.0 + 10.0 * math.sin(t / 5.0 + s) + (s % 7)


def one_series(n, backend):
    """Median seconds of learn_one + forecast(1), after a warm-up."""
    model = streamlstm.LSTMForecaster(backend=backend)
    warm = 200
    times = []
    for t in range(warm + n):
        y = series_value(0, t)
        t0 = time.perf_counter()
        model.learn_one(y)
        model.forecast(1)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[warm:])


def many_series(n_series, ticks, repeats, backend):
    """Observations/s through learn_many vs one River forecaster per series."""
    ids = np.tile(np.arange(n_series), ticks)
    tt = np.repeat(np.arange(ticks), n_series)
    y = 100.0 + 10.0 * np.sin(tt / 5.0 + ids) + ids % 7
    frame = pd.DataFrame({"series_id": ids, "timestamp": tt, "value": y})

    def multi(**kw):
        m = MultiSeriesForecaster(backend=backend, **kw)
        m.learn_many(frame.iloc[:n_series])            # compile + first rows
        rest = frame.iloc[n_series:]
        t0 = time.perf_counter()
        m.learn_many(rest)
        return len(rest) / (time.perf_counter() - t0)

    def river_loop():
        models = [streamlstm.LSTMForecaster(backend=backend, seasonality=None)
                  for _ in range(n_series)]
        for s, mod in enumerate(models):
            mod.learn_one(float(y[s]))
        t0 = time.perf_counter()
        for r in range(n_series, len(y)):
            models[ids[r]].learn_one(float(y[r]))
        return (len(y) - n_series) / (time.perf_counter() - t0)

    fast = statistics.median(multi() for _ in range(repeats))
    # the River forecaster's settings (k1=1, k2=8): the same learning work per row
    same = statistics.median(multi(k1=1, k2=8) for _ in range(repeats))
    slow = statistics.median(river_loop() for _ in range(max(1, repeats - 1)))
    return fast, same, slow


def deepriver(venv, n):
    py = Path(venv) / "bin" / "python"
    if not py.exists():
        return None, f"not run: create it with `bash bench/deepriver_env.sh` ({py} missing)"
    out = subprocess.run([str(py), str(HERE / "_deepriver_part.py"), "speed", "--n", str(n)],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        return None, f"failed: {out.stderr.strip().splitlines()[-1:]}"
    return json.loads(out.stdout), None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="cpu")
    p.add_argument("--steps", type=int, default=2000, help="timed single-series steps")
    p.add_argument("--series", type=int, default=1000)
    p.add_argument("--ticks", type=int, default=30, help="rows per series in the many-series part")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-deepriver", action="store_true")
    p.add_argument("--venv", default=os.environ.get("DEEPRIVER_VENV", HERE / ".venv-deepriver"))
    p.add_argument("--out", default=HERE / "out" / "river_speed.json")
    a = p.parse_args(argv)

    ours = statistics.median(one_series(a.steps, a.backend) for _ in range(a.repeats))
    dr, note = (None, "not run (--no-deepriver)") if a.no_deepriver else deepriver(a.venv, 600)
    fast, same, slow = many_series(a.series, a.ticks, a.repeats, a.backend)
    res = {"backend": a.backend, "one_series_us": 1e6 * ours,
           "deepriver_us": dr and dr["us_per_step"], "deepriver_versions": dr and dr["versions"],
           "many_series": {"series": a.series, "ticks": a.ticks, "learn_many_obs_s": fast,
                           "learn_many_k1_1_obs_s": same, "river_loop_obs_s": slow}}
    lines = ["| one series, learn_one + forecast(1) | µs per step |", "|---|---:|",
             f"| streamlstm LSTMForecaster() ({a.backend}) | {1e6 * ours:.1f} |"]
    if dr:
        lines.append(f"| deep-river 0.3.4 LSTMForecaster() | {dr['us_per_step']:.1f} |")
        lines.append(f"| ratio | **{dr['us_per_step'] / (1e6 * ours):.0f}x** |")
    else:
        lines.append(f"| deep-river | {note} |")
    lines += ["", f"| {a.series} series x {a.ticks} steps | observations/s |", "|---|---:|",
              f"| MultiSeriesForecaster.learn_many (defaults: k1=8, k2=16) | {fast:,.0f} |",
              f"| MultiSeriesForecaster.learn_many (k1=1, k2=8 as LSTMForecaster) | {same:,.0f} |",
              f"| {a.series} LSTMForecaster(), learn_one each | {slow:,.0f} |",
              f"| ratio, same settings | **{same / slow:.1f}x** |",
              f"| ratio, defaults | **{fast / slow:.1f}x** |"]
    print("\n".join(lines))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
