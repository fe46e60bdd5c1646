"""Forecast accuracy on River's ForecastingTrack, every model with its defaults.

Datasets and horizons are River's ``evaluate.ForecastingTrack``: AirlinePassengers
(monthly, h=12) and WaterFlow (hourly, h=24), evaluated with River's own
``evaluate.iter_evaluate`` (forecast, score every horizon step with MAE, then
learn), raw ``x`` (datetimes) passed through as River does.

Columns:

* streamlstm ``LSTMForecaster()`` and ``GRUForecaster()``, defaults (seed 0; the
  ``--seeds`` line gives the mean over seeds 0..n-1 as a robustness check);
* River ``HoltWinters`` with the smoothing constants of its docstring
  (alpha=0.3, beta=0.1, gamma=0.6), season = the dataset's period, additive and
  multiplicative (the docstring's AirlinePassengers setting);
* River ``SNARIMAX(p=m, d=1, q=m, m=m, sd=1)`` with a scaled linear regressor at
  SGD(0.001) (its default regressor diverges on WaterFlow);
* naive (last value) and seasonal naive (value one season earlier);
* deep-river 0.3.4 ``LSTMForecaster()`` (defaults), run in its own virtualenv
  (``bench/deepriver_env.sh``) as a subprocess, when that exists.

    python bench/accuracy.py                 # prints Markdown, writes bench/out/accuracy.json
    python bench/accuracy.py --no-deepriver --seeds 1
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from river import datasets, evaluate, linear_model, metrics, optim, preprocessing, time_series

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import streamlstm  # noqa: E402

PERIOD = {"AirlinePassengers": 12, "WaterFlow": 24}


class NoX(time_series.base.Forecaster):
    """Hide x from forecasters that cannot take datetimes as features."""

    def __init__(self, model):
        self.model = model

    def learn_one(self, y, x=None):
        self.model.learn_one(y)

    def forecast(self, horizon, xs=None):
        return self.model.forecast(horizon)


class Naive(time_series.base.Forecaster):
    """Seasonal naive with period m (m=1: the last value)."""

    def __init__(self, m=1):
        self.m = m
        self.hist = []

    def learn_one(self, y, x=None):
        self.hist = (self.hist + [y])[-self.m:]

    def forecast(self, horizon, xs=None):
        h = self.hist
        if not h:
            return [0.0] * horizon
        if len(h) < self.m:
            return [h[-1]] * horizon
        return [h[j % self.m] for j in range(horizon)]


def models(m):
    return {
        "streamlstm LSTM": lambda: streamlstm.LSTMForecaster(),
        "streamlstm GRU": lambda: streamlstm.GRUForecaster(),
        "HoltWinters add": lambda: time_series.HoltWinters(alpha=0.3, beta=0.1, gamma=0.6,
                                                           seasonality=m),
        "HoltWinters mul": lambda: time_series.HoltWinters(alpha=0.3, beta=0.1, gamma=0.6,
                                                           seasonality=m, multiplicative=True),
        "SNARIMAX": lambda: NoX(time_series.SNARIMAX(
            p=m, d=1, q=m, m=m, sd=1,
            regressor=preprocessing.StandardScaler()
            | linear_model.LinearRegression(optimizer=optim.SGD(0.001)))),
        "naive": lambda: Naive(1),
        "seasonal naive": lambda: Naive(m),
    }


def score(model, dataset, horizon):
    t0 = time.perf_counter()
    last = None
    for *_, hm in evaluate.iter_evaluate(dataset, model, metrics.MAE(), horizon=horizon):
        last = hm
    return {"per_step": [mm.get() for mm in last.metrics], "seconds": time.perf_counter() - t0}


def deepriver(venv):
    py = Path(venv) / "bin" / "python"
    if not py.exists():
        return None, f"not run: create it with `bash bench/deepriver_env.sh` ({py} missing)"
    out = subprocess.run([str(py), str(HERE / "_deepriver_part.py"), "accuracy"],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        return None, f"failed: {out.stderr.strip().splitlines()[-1:]}"
    return json.loads(out.stdout), None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3,
                   help="also report streamlstm's mean MAE over seeds 0..n-1")
    p.add_argument("--no-deepriver", action="store_true")
    p.add_argument("--venv", default=os.environ.get("DEEPRIVER_VENV", HERE / ".venv-deepriver"))
    p.add_argument("--out", default=HERE / "out" / "accuracy.json")
    a = p.parse_args(argv)

    track = evaluate.ForecastingTrack()
    dr, dr_note = (None, "not run (--no-deepriver)") if a.no_deepriver else deepriver(a.venv)
    report = {"versions": {"streamlstm": streamlstm.__version__}, "datasets": {}}
    if dr:
        report["versions"].update({f"deep-river env {k}": v for k, v in dr["versions"].items()})
    for ds in track.datasets:
        name, h = type(ds).__name__, track.horizons[type(ds)]
        cols = {}
        for label, make in models(PERIOD[name]).items():
            cols[label] = score(make(), ds, h)
            print(f"{name}: {label} done ({cols[label]['seconds']:.1f} s)", file=sys.stderr)
        if dr:
            cols["deep-river LSTM"] = dr[name]
        seeds = {}
        for cls in ("LSTMForecaster", "GRUForecaster"):
            means = [statistics.mean(score(getattr(streamlstm, cls)(seed=s), ds, h)["per_step"])
                     for s in range(a.seeds)]
            seeds[cls] = means
        report["datasets"][name] = {"horizon": h, "columns": cols, "seeds": seeds}

    print(render(report, dr_note))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))
    return 0


def render(report, dr_note):
    lines = []
    for name, d in report["datasets"].items():
        cols = d["columns"]
        labels = list(cols)
        lines.append(f"\n### {name} (horizon {d['horizon']}), MAE per horizon step\n")
        lines.append("| step | " + " | ".join(labels) + " |")
        lines.append("|---:|" + "---:|" * len(labels))
        for j in range(d["horizon"]):
            lines.append(f"| +{j + 1} | " + " | ".join(f"{cols[c]['per_step'][j]:.2f}"
                                                      for c in labels) + " |")
        means = {c: statistics.mean(cols[c]["per_step"]) for c in labels}
        best = min(means.values())
        lines.append("| **mean** | " + " | ".join(
            (f"**{means[c]:.2f}**" if means[c] == best else f"{means[c]:.2f}") for c in labels) + " |")
        lines.append("| seconds | " + " | ".join(f"{cols[c]['seconds']:.1f}" for c in labels) + " |")
        for cls, ms in d["seeds"].items():
            lines.append(f"\nstreamlstm {cls}, seeds 0..{len(ms) - 1}: mean MAE "
                         f"{statistics.mean(ms):.2f} (each: {', '.join(f'{v:.2f}' for v in ms)})")
    if dr_note:
        lines.append(f"\ndeep-river LSTM: {dr_note}")
    lines.append("\nversions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
