"""Generate realistic multi-sensor data in long format, for trying ``streamlstm run``.

Columns: ``series_id`` (e.g. ``temp-03``), ``timestamp`` (hourly by default),
``value`` (the reading) and ``outside_temp`` (a weather feature known at forecast
time).  Three kinds of sensors with their own units and shapes:

* ``temp``  room temperature (deg C): daily cycle, weekday/weekend difference,
  slow drift, follows the outside temperature a little;
* ``power`` electric load (kW): office-hours peak on weekdays, low at weekends,
  upward trend;
* ``hum``   relative humidity (%): daily cycle opposite to temperature.

On top: AR(1) noise, gaps (hours a sensor did not report: the row is absent),
missing readings (the row is there, the value is NaN), and sensors that start
reporting late.  Rows are in arrival order (time, then sensor).  The stream is
written chunk by chunk, so very large files need little memory::

    python examples/make_sensor_data.py                       # examples/sensor.parquet
    python examples/make_sensor_data.py --sensors 1000 --steps 2000 --out big.parquet
    python examples/make_sensor_data.py --out sensor.csv      # CSV instead
    python examples/make_sensor_data.py --out lake/           # hive: lake/date=.../part-0.parquet
    python examples/make_sensor_data.py --out eu.csv.gz --csv-sep ';' --decimal , \
                                        --time-format '%d.%m.%Y %H:%M'
"""
from __future__ import annotations

import argparse
import gzip
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

KINDS = ("temp", "power", "hum")


def sensor_table(n_sensors, steps, start, freq_s, seed, gap_rate, nan_rate, late_frac,
                 chunk_steps=256, id_prefix=""):
    """Yield pyarrow tables of consecutive time chunks (arrival order)."""
    rng = np.random.default_rng(seed)
    kinds = np.array([KINDS[i % 3] for i in range(n_sensors)])
    ids = np.array([f"{id_prefix}{k}-{i // 3 + 1:02d}" if n_sensors <= 300
                    else f"{id_prefix}{k}-{i // 3 + 1:04d}"
                    for i, k in enumerate(kinds)], dtype=object)
    level = rng.normal(0, 1, n_sensors)
    amp = rng.uniform(0.7, 1.3, n_sensors)
    phase = rng.uniform(-1.5, 1.5, n_sensors)            # hours
    trend = rng.normal(0, 1, n_sensors)
    # Late starters: a fraction of sensors begins somewhere in the first half.
    first = np.zeros(n_sensors, dtype=np.int64)
    late = rng.random(n_sensors) < late_frac
    first[late] = rng.integers(steps // 10, max(steps // 2, steps // 10 + 1), late.sum())
    noise = np.zeros(n_sensors)
    t0 = np.datetime64(start, "s")
    for c0 in range(0, steps, chunk_steps):
        c1 = min(steps, c0 + chunk_steps)
        T = c1 - c0
        k = np.arange(c0, c1)
        secs = k * freq_s
        hour = (secs / 3600.0) % 24
        day = (secs // 86400 + 0) % 7                  # start is a Monday
        weekend = (day >= 5).astype(float)
        outside = 10 + 6 * np.sin(2 * np.pi * (hour - 9) / 24) + 3 * np.sin(2 * np.pi * secs / (86400 * 17))
        # AR(1) noise, per sensor, sequential in time.
        eps = rng.normal(0, 1, (T, n_sensors))
        ar = np.empty((T, n_sensors))
        for j in range(T):
            noise = 0.8 * noise + 0.6 * eps[j]
            ar[j] = noise
        h = (hour[:, None] - phase[None, :])
        days = (secs / 86400.0)[:, None]
        vals = np.empty((T, n_sensors))
        m = kinds == "temp"
        vals[:, m] = (21 + level[m] + 2.5 * amp[m] * np.sin(2 * np.pi * (h[:, m] - 9) / 24)
                      - 1.5 * weekend[:, None] + 0.15 * (outside[:, None] - 10)
                      + 0.03 * trend[m] * days[:, 0:1] + 0.4 * ar[:, m])
        m = kinds == "power"
        office = np.exp(-0.5 * ((h[:, m] - 13) / 3.0) ** 2)
        vals[:, m] = (40 + 5 * level[m] + 35 * amp[m] * office * (1 - 0.8 * weekend[:, None])
                      + 0.2 * np.abs(trend[m]) * days[:, 0:1] + 3 * ar[:, m])
        m = kinds == "hum"
        vals[:, m] = (45 + 4 * level[m] - 8 * amp[m] * np.sin(2 * np.pi * (h[:, m] - 9) / 24)
                      + 1.5 * ar[:, m])
        # Which (step, sensor) rows exist: started, and not in a gap.
        present = (k[:, None] >= first[None, :]) & (rng.random((T, n_sensors)) >= gap_rate)
        missing = rng.random((T, n_sensors)) < nan_rate
        vals = np.round(vals, 3)
        vals[missing] = np.nan
        tt, ss = np.nonzero(present)                     # time-major: arrival order
        stamps = t0 + (secs[tt]).astype("timedelta64[s]")
        yield pa.table({
            "series_id": pa.array(ids[ss], type=pa.string()),
            "timestamp": pa.array(stamps.astype("datetime64[s]"), type=pa.timestamp("s")),
            "value": pa.array(vals[tt, ss], type=pa.float64()),
            "outside_temp": pa.array(np.round(outside[tt], 2), type=pa.float64()),
        })


def write_hive(path, tables, row_group_rows=65536):
    """A hive-partitioned dataset: ``path/date=YYYY-MM-DD/part-N.parquet``, one
    part file per day and chunk."""
    rows = 0
    for n, t in enumerate(tables):
        day = pc.strftime(t["timestamp"], format="%Y-%m-%d").to_numpy(zero_copy_only=False)
        for d in sorted(set(day.tolist())):
            part = os.path.join(path, f"date={d}")
            os.makedirs(part, exist_ok=True)
            sub = t.filter(pa.array(day == d))
            pq.write_table(sub, os.path.join(part, f"part-{n}.parquet"),
                           row_group_size=row_group_rows, compression="zstd")
            rows += sub.num_rows
    return rows


def write_text(path, tables, sep=",", decimal=".", time_format=None):
    """CSV in any dialect (gzip for .gz): separator, decimal mark, time format."""
    rows = 0
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "wt", newline="") as f:
        for n, t in enumerate(tables):
            t.to_pandas().to_csv(f, sep=sep, decimal=decimal, date_format=time_format,
                                 index=False, header=n == 0)
            rows += t.num_rows
    return rows


def write(path, tables, row_group_rows=65536):
    rows = 0
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        return write_hive(path, tables, row_group_rows)
    if path.lower().endswith((".csv.gz", ".tsv")):
        return write_text(path, tables, sep="\t" if path.lower().endswith(".tsv") else ",")
    if path.lower().endswith(".csv"):
        writer = None
        for t in tables:
            if writer is None:
                writer = pcsv.CSVWriter(path, t.schema)
            writer.write_table(t)
            rows += t.num_rows
        writer.close()
        return rows
    writer = None
    for t in tables:
        if writer is None:
            writer = pq.ParquetWriter(path, t.schema, compression="zstd")
        writer.write_table(t, row_group_size=row_group_rows)
        rows += t.num_rows
    writer.close()
    return rows


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(here, "sensor.parquet"),
                   help="output .parquet, .csv or .csv.gz, or a directory (ending in /) for a "
                        "hive-partitioned dataset by day (default: examples/sensor.parquet)")
    p.add_argument("--sensors", type=int, default=12, help="number of sensors (default 12)")
    p.add_argument("--steps", type=int, default=24 * 21, help="time steps (default 3 weeks hourly)")
    p.add_argument("--freq", type=int, default=3600, help="seconds between steps (default 3600)")
    p.add_argument("--start", default="2024-01-01T00:00:00", help="first timestamp (a Monday)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--gap-rate", type=float, default=0.02, help="share of absent rows")
    p.add_argument("--nan-rate", type=float, default=0.01, help="share of NaN readings")
    p.add_argument("--late", type=float, default=0.25, help="share of sensors starting late")
    p.add_argument("--row-group-rows", type=int, default=65536)
    p.add_argument("--csv-sep", default=None, help="CSV field separator, e.g. ';'")
    p.add_argument("--decimal", default=".", help="CSV decimal mark, e.g. ,")
    p.add_argument("--time-format", default=None, help="strptime format of CSV timestamps, "
                                                       "e.g. '%%d.%%m.%%Y %%H:%%M'")
    a = p.parse_args(argv)
    out_dir = os.path.dirname(a.out.rstrip("/" + os.sep))
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    tables = sensor_table(a.sensors, a.steps, a.start, a.freq, a.seed, a.gap_rate, a.nan_rate,
                          a.late)
    if a.csv_sep or a.decimal != "." or a.time_format:
        if not a.out.lower().endswith((".csv", ".csv.gz", ".tsv")):
            p.error("--csv-sep, --decimal and --time-format apply to .csv/.csv.gz output")
        rows = write_text(a.out, tables, a.csv_sep or ",", a.decimal, a.time_format)
    else:
        rows = write(a.out, tables, a.row_group_rows)
    print(f"wrote {a.out}: {rows:,} rows, {a.sensors} sensors, {a.steps} steps")


if __name__ == "__main__":
    main()
