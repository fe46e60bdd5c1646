"""Soak: ten million observations through ``streamlstm run`` (Parquet in, Parquet
out, checkpoints every 500,000 rows), with the process's resident memory sampled
every half second.  The claim checked: memory stays flat once every series has
been seen (it grows with series, not with rows), and throughput does not decay.

    python bench/soak.py                   # 2,000 sensors x 5,000 steps = 10M rows
    python bench/soak.py --sensors 200 --steps 5000   # a quick 1M-row look

Reports RSS at 10%, 25%, 50%, 75% and 100% of the run, the peak, the growth from
the 10% mark to the end, and rows/s per quarter; writes ``bench/out/soak.json``.
The data is generated once into a temporary directory (``--keep`` keeps it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data(path, sensors, steps):
    """Write ``sensors x steps`` rows in time order, chunk by chunk (the
    generator yields tables, so 10M rows never sit in memory at once)."""
    import importlib.util

    import pyarrow.parquet as pq
    spec = importlib.util.spec_from_file_location(
        "make_sensor_data", os.path.join(ROOT, "examples", "make_sensor_data.py"))
    g = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(g)
    writer, rows = None, 0
    for table in g.sensor_table(sensors, steps, "2024-01-01T00:00:00", 3600, 0, gap_rate=0.0,
                                nan_rate=0.01, late_frac=0.0):
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=65536)
        rows += table.num_rows
    writer.close()
    return rows


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="streamlstm-soak-")
    src = os.path.join(tmp, "soak.parquet")
    t = time.perf_counter()
    rows = make_data(src, args.sensors, args.steps)
    print(f"data: {rows:,} rows ({os.path.getsize(src) / 2**20:.0f} MiB) in "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "streamlstm", "run", "--source", src, "--no-plot",
           "--out", os.path.join(tmp, "out.parquet"), "--checkpoint", os.path.join(tmp, "ck"),
           "--checkpoint-every", "500000", "--progress"]
    log = open(os.path.join(tmp, "progress.log"), "w")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    samples = []                        # (seconds, rss MiB, parts written so far)
    while p.poll() is None:
        r = rss_mib(p.pid)
        parts = os.path.join(tmp, "ck", "parts")
        n_parts = len(os.listdir(parts)) if os.path.isdir(parts) else 0
        if r is not None:
            samples.append((time.perf_counter() - t0, r, n_parts))
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    log.close()
    if p.returncode:
        print(open(os.path.join(tmp, "progress.log")).read()[-2000:])
        sys.exit(f"the run failed with status {p.returncode}")
    # Rows done = 500,000 x the checkpointed parts: RSS and time at each part.
    at_part = {}
    for sec, rss, n in samples:
        at_part.setdefault(n, (sec, rss))
    n_parts = max(at_part)
    marks = {}
    for frac in (0.10, 0.25, 0.50, 0.75, 1.0):
        k = max(1, min(n_parts, round(frac * rows / 500_000)))
        k = min((n for n in at_part if n >= k), default=n_parts)
        marks[f"{k * 500_000:,} rows"] = round(at_part[k][1], 1)
    marks["end"] = round(samples[-1][1], 1)
    peak = max(s[1] for s in samples)
    first = at_part[min(n for n in at_part if n >= 1)] if n_parts else samples[0][:2]
    growth = samples[-1][1] - first[1]
    quarters = []
    ks = sorted(n for n in at_part if n >= 1)
    for q in range(4):
        lo, hi = ks[q * len(ks) // 4], ks[min(len(ks) - 1, (q + 1) * len(ks) // 4)]
        dt = at_part[hi][0] - at_part[lo][0]
        quarters.append(round((hi - lo) * 500_000 / dt) if dt > 0 else None)
    result = {"rows": rows, "series": args.sensors, "wall_s": round(wall, 1),
              "rows_per_s": round(rows / wall), "rss_mib": marks, "peak_rss_mib": round(peak, 1),
              "growth_after_first_checkpoint_mib": round(growth, 1), "rows_per_s_by_quarter": quarters,
              "command": " ".join(cmd[1:]).replace(tmp, "$TMP")}
    print(json.dumps(result, indent=2))
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "soak.json"), "w") as f:
        json.dump(result, f, indent=2)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
