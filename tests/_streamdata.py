"""Shared helpers of the stream/CLI tests: sensor data from the example
generator, and small fast model options."""
from __future__ import annotations

import importlib.util
import os

import pyarrow as pa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "sensor.parquet")

# Small and fast: the NumPy reference backend needs no compilation.
FAST = ["--backend", "reference", "--hidden-size", "4", "--k1", "4", "--k2", "8", "--no-plot"]
FAST_MODEL = dict(hidden_size=4, k1=4, k2=8, backend="reference")


def generator():
    spec = importlib.util.spec_from_file_location(
        "make_sensor_data", os.path.join(ROOT, "examples", "make_sensor_data.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sensor_table(sensors=5, steps=60, seed=1, **kw):
    g = generator()
    args = dict(start="2024-01-01T00:00:00", freq_s=3600, seed=seed, gap_rate=0.05,
                nan_rate=0.03, late_frac=0.3)
    args.update(kw)
    return pa.concat_tables(list(g.sensor_table(sensors, steps, **args)))


def write_sensor_file(path, sensors=5, steps=60, seed=1, row_group_rows=64, **kw):
    g = generator()
    args = dict(start="2024-01-01T00:00:00", freq_s=3600, seed=seed, gap_rate=0.05,
                nan_rate=0.03, late_frac=0.3)
    args.update(kw)
    return g.write(os.fspath(path), g.sensor_table(sensors, steps, **args), row_group_rows)
