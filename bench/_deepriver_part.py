"""deep-river's side of bench/accuracy.py and bench/river_speed.py.

Runs inside deep-river's own virtualenv (bench/deepriver_env.sh: deep-river
0.3.4, river 0.25, torch 2.5), never in streamlstm's environment, and prints one
JSON object on stdout that the calling bench merges into its report.

    bench/.venv-deepriver/bin/python bench/_deepriver_part.py accuracy
    bench/.venv-deepriver/bin/python bench/_deepriver_part.py panel --file series.json
    bench/.venv-deepriver/bin/python bench/_deepriver_part.py speed --n 300

``panel``: the single series of bench/accuracy.py's panel, written by it to a JSON
file: {name: {"h": h, "river": "<river dataset class>"}} or {name: {"h": h, "y": [...],
"dates": [ISO timestamps]}}; each is scored with River's ``iter_evaluate`` as the
other columns are.
"""
import argparse
import json
import statistics
import sys
import time

import torch
from river import datasets, metrics
from river.evaluate.forecasting import iter_evaluate

from deep_river.forecasting import LSTMForecaster

TRACK = {"AirlinePassengers": (datasets.AirlinePassengers, 12),
         "WaterFlow": (datasets.WaterFlow, 24)}


class NoDatetimes:
    """deep-river casts every x value to float, so River's raw x (a datetime) makes
    it raise; give it the numeric part of x only (here: nothing)."""

    def __init__(self, model):
        self.model = model

    @staticmethod
    def _numeric(x):
        return {k: v for k, v in (x or {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def learn_one(self, y, x=None):
        self.model.learn_one(y, self._numeric(x))

    def forecast(self, horizon, xs=None):
        return self.model.forecast(horizon, [self._numeric(x) for x in xs] if xs else None)


def accuracy():
    out = {}
    for name, (ds, h) in TRACK.items():
        model = NoDatetimes(LSTMForecaster())            # deep-river's defaults
        t0 = time.perf_counter()
        last = None
        for *_, hm in iter_evaluate(ds(), model, metrics.MAE(), horizon=h):
            last = hm
        out[name] = {"per_step": [m.get() for m in last.metrics],
                     "seconds": time.perf_counter() - t0}
    return out


def panel(file):
    """deep-river's defaults on every series of ``file`` (see the module docstring)."""
    import datetime
    from river import datasets
    with open(file) as f:
        spec = json.load(f)
    out = {}
    for name, d in spec.items():
        if "river" in d:
            data = getattr(datasets, d["river"])()
        else:
            data = [({"date": datetime.datetime.fromisoformat(t)}, y)
                    for t, y in zip(d["dates"], d["y"])]
        model = NoDatetimes(LSTMForecaster())
        t0 = time.perf_counter()
        last = None
        for *_, hm in iter_evaluate(data, model, metrics.MAE(), horizon=d["h"]):
            last = hm
        out[name] = {"per_step": [m.get() for m in last.metrics],
                     "seconds": time.perf_counter() - t0}
        print(f"deep-river: {name} done ({out[name]['seconds']:.0f} s)", file=sys.stderr)
    return out


def speed(n):
    """Median microseconds of one learn_one + forecast(1) on a synthetic series."""
    import math
    torch.set_num_threads(1)
    model = LSTMForecaster()
    times = []
    for t in range(n):
        y = 100.0 + 10.0 * math.sin(t / 5.0)
        t0 = time.perf_counter()
        model.learn_one(y)
        model.forecast(1)
        times.append(time.perf_counter() - t0)
    warm = times[n // 5:]
    return {"us_per_step": 1e6 * statistics.median(warm), "n": n}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["accuracy", "panel", "speed"])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--file", help="panel: the series, as bench/accuracy.py writes them")
    a = p.parse_args()
    import deep_river
    import river
    res = {"accuracy": accuracy, "panel": lambda: panel(a.file),
           "speed": lambda: speed(a.n)}[a.what]()
    res["versions"] = {"deep_river": deep_river.__version__, "river": river.__version__,
                       "torch": torch.__version__}
    json.dump(res, sys.stdout)
