"""End-to-end throughput through a Kafka broker (tansu) against the Parquet path,
with one worker and with two workers in one consumer group.

    python bench/kafka.py                  # 1,000 sensors x 200 steps, 4 partitions
    python bench/kafka.py --quick          # 1,000 sensors x 40 steps, 1 repeat
    python bench/kafka.py --threads 1      # one core per process: scale-out on one box

What is measured, on the same rows (``examples/make_sensor_data.py``):

* Parquet: ``FileJob`` (what ``streamlstm run --source F.parquet --out G.parquet``
  runs) in this process: read, data policy, forecaster, River metrics, write.
* Kafka, 1 and 2 workers: each worker a process of its own running ``KafkaJob``
  (what ``streamlstm run --source kafka://... --group G --sink kafka://...``
  runs: consume, decode JSON, one runner per partition, metrics, JSON forecasts
  produced to the sink topic, snapshots at the end).  The rows are produced
  first (keyed by series id; the producer's rate is reported on its own), then
  the workers start together and join the group in one generation; the clock
  runs from the first message any worker receives to the last one processed
  (forecasts sent).  Process start, group join and the final ``--max-idle``
  wait are outside the clock.

Messages/s are medians of ``--repeats``.  Each worker also reports the CPU
seconds it spent processing: ``messages / max(worker CPU)`` is the rate the
workers reach with a free core each - on a shared machine the measured
two-worker rate is bounded by whatever else runs.  The Kafka runs learn per partition
(``--partitions`` models of about 1,000/P series each, SPEC: weights shared
within a partition) while the Parquet run has one model for all series, so the
kernels see different batch shapes; ``--partitions 1`` compares like with like.
The producer's own rate is reported too.  Results go to ``bench/out/kafka.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

WORKER = """
import json, sys, time
from streamlstm.io.filejob import JobConfig
from streamlstm.io.kafka.job import KafkaJob, KafkaOptions
from streamlstm.io.files import Columns
a = json.loads(sys.argv[1])
cfg = JobConfig(source=a["source"], columns=Columns(features=tuple(a["features"])),
                checkpoint=a["checkpoint"], every_rows=None, every_seconds=None,
                backend=a["backend"], model=a["model"])
res = KafkaJob(cfg, KafkaOptions(**a["kafka"])).run()
s = res.summary
print(json.dumps({"messages": s.messages, "forecasts": s.forecasts, "first_at": s.first_at,
                  "last_at": s.last_at, "busy": s.busy_seconds, "cpu": s.busy_cpu_seconds,
                  "partitions": sorted(s.held)}))
"""


def make_frame(sensors, steps):
    import importlib.util

    import pyarrow as pa
    spec = importlib.util.spec_from_file_location(
        "make_sensor_data", os.path.join(ROOT, "examples", "make_sensor_data.py"))
    g = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(g)
    tables = list(g.sensor_table(sensors, steps, "2024-01-01T00:00:00", 3600, 0,
                                 gap_rate=0.02, nan_rate=0.01, late_frac=0.1))
    return pa.concat_tables(tables).to_pandas()


def model_options(args):
    return {"hidden_size": args.hidden_size, "k1": args.k1, "k2": args.k2}


def features(args):
    return ["outside_temp"] if args.features else []


def parquet_run(path, out, args):
    from streamlstm.io.filejob import FileJob, JobConfig
    from streamlstm.io.files import Columns
    cfg = JobConfig(source=path, columns=Columns(features=tuple(features(args))), out=out,
                    backend=args.backend, model=model_options(args), every_seconds=None)
    t0 = time.perf_counter()
    res = FileJob(cfg).run()
    return res.runner.rows_forecast, time.perf_counter() - t0


class Worker:
    def __init__(self, broker, src, out, group, ck, args):
        spec = {"source": broker.url(src), "features": features(args), "checkpoint": ck,
                "backend": args.backend, "model": model_options(args),
                "kafka": {"group": group, "sink": broker.url(out), "max_idle": args.max_idle,
                          "session_timeout_ms": 10000, "batch_size": args.poll}}
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        self.holding = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if "now holding" in line:
                self.holding = json.loads(line.rsplit("now holding ", 1)[1])

    def result(self, timeout):
        out, _ = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError("worker failed:\n" + "\n".join(self.lines[-20:]))
        return json.loads(out.strip().splitlines()[-1])


def kafka_run(broker, frame, n_workers, args, tag):
    """Produce every row first (timed on its own), then start ``n_workers`` at
    once: tansu's JoinGroup waits session.timeout/2 for members, so they all land
    in the first generation and split the partitions from the start."""
    from streamlstm.io.kafka.codec import MessageFormat
    from streamlstm.io.kafka.produce import produce_frame
    src = broker.create_topic(broker.new_name(f"bench-src-{tag}"), args.partitions)
    out = broker.create_topic(broker.new_name(f"bench-out-{tag}"), args.partitions)
    group = broker.new_name("bench")
    t0 = time.perf_counter()
    produce_frame(broker.url(src), frame, MessageFormat(features=tuple(features(args))))
    produce_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="streamlstm-kbench-") as ck:
        workers = [Worker(broker, src, out, group, ck, args) for _ in range(n_workers)]
        results = [w.result(timeout=3600) for w in workers]
    moves = sum(sum("revoked partitions" in line for line in w.lines) for w in workers)
    msgs = sum(r["messages"] for r in results)
    assert msgs == len(frame), (msgs, len(frame))
    assert sum(r["forecasts"] for r in results) == len(frame)
    span = max(r["last_at"] for r in results) - min(r["first_at"] for r in results)
    # CPU seconds each worker used while busy: with a core each (separate machines, no
    # other load) the slowest one bounds the span, so msgs / max(cpu) is the
    # contention-free rate; the measured span also pays for whatever else runs here.
    cpu = [r["cpu"] for r in results]
    return msgs, span, produce_s, [r["partitions"] for r in results], moves, cpu


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1,000 sensors x 40 steps, 1 repeat")
    p.add_argument("--sensors", type=int, default=1000)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2")
    p.add_argument("--backend", default="cpu", choices=["cpu", "cuda", "reference"])
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--k1", type=int, default=1, help="default: the CLI's default")
    p.add_argument("--k2", type=int, default=16)
    p.add_argument("--features", action="store_true", help="use the outside_temp feature")
    p.add_argument("--poll", type=int, default=5000, help="messages per poll (batch)")
    p.add_argument("--max-idle", type=float, default=3.0,
                   help="a worker stops after this long without a message (outside the clock)")
    p.add_argument("--threads", type=int, default=None,
                   help="Numba threads per process (NUMBA_NUM_THREADS; default: all cores).  "
                        "On one machine, --threads 1 gives each worker a core of its own, as "
                        "on separate machines")
    args = p.parse_args(argv)
    if args.threads:
        os.environ["NUMBA_NUM_THREADS"] = str(args.threads)   # before numba is imported
    try:
        from streamlstm.backends import backend_class
        backend_class(args.backend)
    except (ImportError, RuntimeError) as exc:
        sys.exit(f"backend {args.backend!r} is not available here ({exc}); pass "
                 f"--backend reference (slow) or another one")
    steps = args.steps or (40 if args.quick else 200)
    repeats = args.repeats or (1 if args.quick else 3)
    counts = [int(c) for c in args.workers.split(",")]

    from kafka_broker import TansuBroker
    frame = make_frame(args.sensors, steps)
    rows = len(frame)
    print(f"data: {args.sensors:,} sensors x {steps:,} steps = {rows:,} rows; "
          f"{args.partitions} partitions; backend={args.backend} hidden={args.hidden_size} "
          f"k1={args.k1} k2={args.k2} features={','.join(features(args)) or '-'}; "
          f"{os.cpu_count()} CPUs, Numba threads per process: {args.threads or 'all'}")
    res = {"parquet": [], **{f"kafka_{n}": [] for n in counts}}
    produce = []
    cpu_bound = {f"kafka_{n}": [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="streamlstm-kbench-") as d:
        path = os.path.join(d, "sensors.parquet")
        frame.to_parquet(path, index=False)
        # Warm-up (compiles and caches the kernels for the worker processes too).
        warm = os.path.join(d, "warm.parquet")
        frame.iloc[:min(rows, 5000)].to_parquet(warm, index=False)
        parquet_run(warm, os.path.join(d, "w.parquet"), args)
        broker = TansuBroker().start()
        try:
            for r in range(repeats):
                n, secs = parquet_run(path, os.path.join(d, "out.parquet"), args)
                assert n == rows
                res["parquet"].append(rows / secs)
                line = f"  run {r + 1}: parquet {rows / secs:>9,.0f} rows/s"
                for k in counts:
                    msgs, span, prod, split, moves, cpu = kafka_run(broker, frame, k, args,
                                                                   f"{r}-{k}")
                    res[f"kafka_{k}"].append(msgs / span)
                    cpu_bound[f"kafka_{k}"].append(msgs / max(cpu))
                    produce.append(rows / prod)
                    line += (f" | kafka x{k} {msgs / span:>8,.0f} msgs/s {split} "
                             f"(CPU-bound {msgs / max(cpu):,.0f})")
                    if moves:
                        line += f" ({moves} rebalance moves)"
                print(line, flush=True)
        finally:
            broker.stop()
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"\nParquet -> Parquet (1 process)        {med['parquet']:>10,.0f} rows/s")
    cmed = {k: statistics.median(v) for k, v in cpu_bound.items()}
    for k in counts:
        print(f"Kafka -> Kafka, {k} worker{'s' if k > 1 else ' '}             "
              f"{med[f'kafka_{k}']:>10,.0f} msgs/s   ({med[f'kafka_{k}'] / med['parquet']:.2f} "
              f"x Parquet); CPU-bound {cmed[f'kafka_{k}']:,.0f} msgs/s")
    print("(CPU-bound: messages / the busiest worker's CPU seconds - the rate with a free core "
          "per worker)")
    print(f"(producer alone: {statistics.median(produce):,.0f} msgs/s)")
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "kafka.json"), "w") as f:
        json.dump({"rows": rows, "sensors": args.sensors, "steps": steps,
                   "partitions": args.partitions, "backend": args.backend,
                   "hidden_size": args.hidden_size, "k1": args.k1, "k2": args.k2,
                   "features": args.features, "repeats": repeats, "cpus": os.cpu_count(),
                   "threads": args.threads,
                   "runs": res, "median": med, "cpu_bound_runs": cpu_bound,
                   "cpu_bound_median": cmed,
                   "producer_msgs_per_s": statistics.median(produce)}, f, indent=2)


if __name__ == "__main__":
    main()
