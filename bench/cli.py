"""End-to-end throughput of ``streamlstm run`` (Parquet -> Parquet) against the
core's kernel-only throughput on the very same rows.

    python bench/cli.py            # 1,000 sensors x 2,000 steps (~1.9M rows)
    python bench/cli.py --quick    # 200 sensors x 500 steps

What is measured, in one process and on the same data:

* end to end: ``FileJob`` reading the Parquet file by record batch, the data
  policy, the forecaster (features, scaling, id map), the network, River
  metrics and writing the forecasts to Parquet - what the CLI runs, minus the
  plot and the process start;
* kernel only: the exact ``OnlineRNN.step_rows`` calls that run made (captured
  during it), replayed on a fresh network with the same seed - the core alone.

The overhead share is ``1 - kernel_only / end_to_end`` (target: <= 30%).  A
breakdown of the end-to-end time by stage comes from timers wrapped around the
stage functions; its non-kernel share is a second estimate of the overhead,
measured inside one run (so it does not suffer from load changing between the
end-to-end and the kernel-only runs on a shared machine).  End-to-end and
kernel-only runs alternate; medians of ``--repeats`` runs.  Results also go to
``bench/out/cli.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402


def make_data(path, sensors, steps):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "make_sensor_data", os.path.join(ROOT, "examples", "make_sensor_data.py"))
    g = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(g)
    return g.write(path, g.sensor_table(sensors, steps, "2024-01-01T00:00:00", 3600, 0,
                                        gap_rate=0.02, nan_rate=0.01, late_frac=0.1))


class Timers:
    """Wrap functions (by owner and name) with cumulative wall-clock timers."""

    def __init__(self):
        self.t, self._undo = {}, []

    def wrap(self, owner, name, label, capture=None):
        fn = getattr(owner, name)
        self.t.setdefault(label, 0.0)

        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.t[label] += time.perf_counter() - t0
                if capture is not None:
                    capture(a, kw)
        setattr(owner, name, timed)
        self._undo.append((owner, name, fn))

    def restore(self):
        for owner, name, fn in reversed(self._undo):
            setattr(owner, name, fn)
        self._undo.clear()


def one_run(src, out, args, capture):
    from streamlstm import OnlineRNN
    from streamlstm.io.filejob import FileJob, JobConfig
    from streamlstm.forecast.multiseries import MultiSeriesForecaster
    from streamlstm.stream.metrics import ForecastMetrics
    from streamlstm.io.sinks import ForecastFile
    from streamlstm.io.files import Columns
    from streamlstm.stream.runner import StreamRunner

    calls = []
    timers = Timers()
    # The forecaster steps through the trusted path (it validated the rows already).
    timers.wrap(OnlineRNN, "step_rows_trusted", "kernel (step_rows)",
                capture=(lambda a, kw: calls.append(tuple(np.array(v, copy=True) for v in a[1:4])))
                if capture else None)
    timers.wrap(MultiSeriesForecaster, "predict_learn", "forecaster")
    timers.wrap(ForecastMetrics, "update", "metrics (River's, as running means)")
    timers.wrap(StreamRunner, "process", "runner")
    timers.wrap(ForecastFile, "write", "write Parquet")
    cfg = JobConfig(source=src, columns=Columns(features=("outside_temp",) if args.features else ()),
                    out=out, backend=args.backend, batch_rows=args.batch_rows,
                    model={"hidden_size": args.hidden_size, "k1": args.k1, "k2": args.k2})
    try:
        t0 = time.perf_counter()
        res = FileJob(cfg).run()
        total = time.perf_counter() - t0
    finally:
        timers.restore()
    t = timers.t
    stages = {
        "kernel (step_rows)": t["kernel (step_rows)"],
        "forecaster features/ids": t["forecaster"] - t["kernel (step_rows)"],
        "metrics (River)": t["metrics (River)"],
        "runner policy/bookkeeping": t["runner"] - t["forecaster"] - t["metrics (River)"],
        "write Parquet": t["write Parquet"],
        "read Parquet + rest": total - t["runner"] - t["write Parquet"],
    }
    return total, res.runner.rows_forecast, stages, calls


def kernel_only(calls, args):
    """Replay the captured step_rows calls on a fresh network with the same config."""
    from streamlstm import OnlineRNN
    from streamlstm.forecast.multiseries import MultiSeriesForecaster
    m = MultiSeriesForecaster(hidden_size=args.hidden_size, k1=args.k1, k2=args.k2,
                              features=["outside_temp"] if args.features else None,
                              backend=args.backend)
    cfg = m.net.config()
    cfg["n_series"] = max(int(c[0].max()) for c in calls if c[0].size) + 1
    cfg["optimizer"] = m.net.optimizer
    net = OnlineRNN(**cfg)
    t0 = time.perf_counter()
    for s, U, Y in calls:
        net.step_rows(s, U, Y)
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="200 sensors x 500 steps, 1 repeat")
    p.add_argument("--sensors", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda", "reference"])
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--k1", type=int, default=1, help="default: the CLI's default")
    p.add_argument("--k2", type=int, default=16)
    p.add_argument("--features", action="store_true", help="use the outside_temp feature")
    p.add_argument("--batch-rows", type=int, default=16384)
    args = p.parse_args(argv)
    sensors = args.sensors or (200 if args.quick else 1000)
    steps = args.steps or (500 if args.quick else 2000)
    repeats = args.repeats or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory(prefix="streamlstm-bench-") as d:
        src, out = os.path.join(d, "sensors.parquet"), os.path.join(d, "forecasts.parquet")
        t0 = time.perf_counter()
        rows = make_data(src, sensors, steps)
        print(f"data: {sensors:,} sensors x {steps:,} steps = {rows:,} rows "
              f"({os.path.getsize(src) / 1e6:.1f} MB Parquet, {time.perf_counter() - t0:.1f} s to "
              f"generate); backend={args.backend} hidden={args.hidden_size} k1={args.k1} "
              f"k2={args.k2} features={'outside_temp' if args.features else '-'}")
        # Warm-up: compile the kernels (Numba caches them) on a small prefix.
        import pyarrow.parquet as pq
        warm = os.path.join(d, "warm.parquet")
        pq.write_table(pq.read_table(src).slice(0, min(rows, 5000)), warm)
        one_run(warm, os.path.join(d, "w.parquet"), args, capture=False)

        e2e, kern, stage_runs = [], [], []
        for r in range(repeats):
            total, n, stages, calls = one_run(src, out, args, capture=True)
            assert n == rows
            assert pq.ParquetFile(out).metadata.num_rows == rows
            e2e.append(total)
            stage_runs.append(stages)
            kern.append(kernel_only(calls, args))
            del calls
            print(f"  run {r + 1}: end to end {total:.2f} s ({rows / total:,.0f} rows/s), "
                  f"kernel only {kern[-1]:.2f} s ({rows / kern[-1]:,.0f} rows/s)")
        te, tk = statistics.median(e2e), statistics.median(kern)
        share = 1 - tk / te
        print(f"\nend to end   {rows / te:>12,.0f} rows/s   (median {te:.2f} s)")
        print(f"kernel only  {rows / tk:>12,.0f} rows/s   (median {tk:.2f} s)")
        print(f"I/O + bookkeeping share of total time: {share:.1%}  (target <= 30%)")
        print("\nbreakdown of the end-to-end time (median over runs):")
        result_stages = {}
        for k in stage_runs[0]:
            v = statistics.median(s[k] for s in stage_runs)
            result_stages[k] = v
            print(f"  {k:<28} {v:7.2f} s  {v / te:6.1%}")
        inside = statistics.median(1 - s["kernel (step_rows)"] / t for s, t in zip(stage_runs, e2e))
        print(f"non-kernel share inside the end-to-end runs: {inside:.1%}")
        os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
        with open(os.path.join(ROOT, "bench", "out", "cli.json"), "w") as f:
            json.dump({"rows": rows, "sensors": sensors, "steps": steps, "backend": args.backend,
                       "hidden_size": args.hidden_size, "k1": args.k1, "k2": args.k2,
                       "features": args.features, "repeats": repeats,
                       "end_to_end_s": e2e, "kernel_only_s": kern,
                       "end_to_end_rows_per_s": rows / te, "kernel_only_rows_per_s": rows / tk,
                       "overhead_share": share, "overhead_share_inside_run": inside,
                       "stages_s": result_stages}, f, indent=2)


if __name__ == "__main__":
    main()
