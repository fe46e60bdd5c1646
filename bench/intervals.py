"""Prediction intervals on River datasets (issue 12): coverage, width, Winkler score.

For every value ``y_t`` of a dataset, in order: ``LSTMForecaster(coverage=0.9)``
(defaults) gives ``forecast(h, xs)`` and ``forecast_interval(h, xs)`` for the next
``h`` values (``xs``: their ``x``, as River's ``evaluate`` passes them), then
learns ``y_t``.  The step-j band is scored against ``y_{t+j-1}``.  Compared with:

* (a) **jackknife**: the same forecasts +- a rolling empirical quantile
  (alpha/2, 1 - alpha/2) of the model's own last ``W`` signed errors of that
  step (River's ``conf.RegressionJackknife`` style);
* (b) **conformal naive**: the last value +- a rolling empirical quantile of
  the naive forecast's last ``W`` errors of that step.

Scored on the forecasts after the first 20% where all three have a band:
coverage (overall and the worst over rolling windows of ``WINDOW`` forecasts),
mean width, mean Winkler interval score (width + 2/alpha * the miss distance).

    python bench/intervals.py            # prints Markdown, writes bench/out/intervals.json
    bench/.venv-stats/bin/python bench/intervals.py --panel   # every single series of
                                         # bench/accuracy.py's panel (bench/panel_data.py)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from river import datasets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import streamlstm  # noqa: E402
import panel_data as pdata  # noqa: E402

PANEL = {"AirlinePassengers": 12, "WaterFlow": 24, "TrumpApproval": 7}
COVERAGE = 0.9
W = 100          # rolling window of the baselines' error quantiles
MIN_ERRORS = 5   # a baseline gives a band once it has this many errors of a step
WINDOW = 50      # rolling window of the worst local coverage
SKIP = 0.2


def run_model(dataset, h, coverage=COVERAGE, seed=0):
    """(y (T,), yhat (T, h), lo, hi, seconds): row t holds what was issued *before*
    learning y_t; column j targets y_{t+j}."""
    rows = list(dataset)
    T = len(rows)
    model = streamlstm.LSTMForecaster(coverage=coverage, seed=seed)
    yhat, lo, hi = (np.full((T, h), np.nan) for _ in range(3))
    t0 = time.perf_counter()
    for t, (x, y) in enumerate(rows):
        xs = [rows[min(t + j, T - 1)][0] for j in range(h)]
        yhat[t] = model.forecast(h, xs)
        band = model.forecast_interval(h, xs)
        lo[t], hi[t] = [b[0] for b in band], [b[1] for b in band]
        model.learn_one(y, x)
    y = np.array([float(r[1]) for r in rows])
    return y, yhat, lo, hi, time.perf_counter() - t0


def rolling_quantile_band(y, center, h, alpha):
    """Bands ``center +- rolling quantiles`` of each step's last W signed errors,
    using only errors whose targets were already seen when the band is issued."""
    T = len(y)
    lo, hi = np.full((T, h), np.nan), np.full((T, h), np.nan)
    for j in range(h):
        errs = []
        for t in range(T):
            # forecasts issued at s <= t - 1 - j for step j have targets s + j <= t - 1: seen
            s = t - 1 - j
            if s >= 0 and not math.isnan(center[s, j]):
                errs.append(y[s + j] - center[s, j])
            if len(errs) >= MIN_ERRORS and not math.isnan(center[t, j]):
                e = np.array(errs[-W:])
                lo[t, j] = center[t, j] + np.quantile(e, alpha / 2)
                hi[t, j] = center[t, j] + np.quantile(e, 1 - alpha / 2)
    return lo, hi


def naive_center(y, h):
    c = np.full((len(y), h), np.nan)
    c[1:] = y[:-1, None]
    return c


def scores(y, lo, hi, h, alpha, common):
    """Per step: coverage, worst rolling coverage, width, Winkler."""
    out = []
    T = len(y)
    for j in range(h):
        t = np.arange(T - j)
        ok = common[t, j]
        idx = t[ok]
        idx = idx[int(math.ceil(SKIP * idx.size)):]
        tgt = y[idx + j]
        l, u = lo[idx, j], hi[idx, j]
        inside = (tgt >= l) & (tgt <= u)
        pen = np.where(tgt < l, l - tgt, 0.0) + np.where(tgt > u, tgt - u, 0.0)
        wink = (u - l) + 2.0 / alpha * pen
        k = min(WINDOW, idx.size)
        roll = np.convolve(inside.astype(float), np.ones(k) / k, "valid")
        out.append({"n": int(idx.size), "coverage": float(inside.mean()),
                    "worst": float(roll.min()), "width": float((u - l).mean()),
                    "winkler": float(wink.mean())})
    return out


def panel_series(held_out=False):
    """name -> (rows, h) of the panel's single series whose package is installed
    (``held_out``: of the held-out series, ``panel_data.holdout``)."""
    out = {}
    for d in pdata.holdout() if held_out else pdata.panel():
        if d.form not in ("river", "series"):
            continue
        try:
            data = d.load(pdata.DEFAULT_CAP)
        except pdata.Missing as e:
            print(f"skipped {d.name}: {e}", file=sys.stderr)
            continue
        out[d.name] = (list(data) if d.form == "river" else pdata.with_dates(d, data), d.horizon)
    return out


def evaluate_dataset(name, h, seed=0, rows=None):
    ds = getattr(datasets, name)() if rows is None else rows
    alpha = 1 - COVERAGE
    y, yhat, lo, hi, secs = run_model(ds, h, seed=seed)
    bands = {"streamlstm": (lo, hi),
             "jackknife (a)": rolling_quantile_band(y, yhat, h, alpha),
             "conformal naive (b)": rolling_quantile_band(y, naive_center(y, h), h, alpha)}
    common = np.ones_like(lo, dtype=bool)
    for l, u in bands.values():
        common &= ~np.isnan(l) & ~np.isnan(u)
    res = {k: scores(y, l, u, h, alpha, common) for k, (l, u) in bands.items()}
    return {"horizon": h, "seconds": secs, "rows": len(y), "methods": res}


def summary(steps):
    return {k: float(np.mean([s[k] for s in steps])) for k in ("coverage", "worst", "width",
                                                                "winkler")} | {
        "min_cov": min(s["coverage"] for s in steps), "max_cov": max(s["coverage"] for s in steps)}


def render(report):
    lines = [f"\n{COVERAGE:.0%} nominal; forecasts after the first {SKIP:.0%}; mean over the "
             f"horizon steps (min..max coverage over steps); worst = lowest coverage over "
             f"rolling windows of {WINDOW} forecasts\n",
             "| dataset (h) | method | coverage | min..max | worst | width | Winkler |",
             "|---|---|---:|---:|---:|---:|---:|"]
    ratios = {}
    for name, d in report["datasets"].items():
        ref = summary(d["methods"]["conformal naive (b)"])["winkler"]
        for m, steps in d["methods"].items():
            s = summary(steps)
            ratios.setdefault(m, []).append(s["winkler"] / ref)
            lines.append(f"| {name} ({d['horizon']}) | {m} | {s['coverage']:.1%} | "
                         f"{s['min_cov']:.1%}..{s['max_cov']:.1%} | {s['worst']:.0%} | "
                         f"{s['width']:.4g} | {s['winkler']:.4g} |")
    lines.append("\nWinkler score relative to conformal naive (b), geometric mean over the "
                 "panel: " + ", ".join(f"{m} {math.exp(np.mean(np.log(r))):.3f}"
                                       for m, r in ratios.items()))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(PANEL))
    p.add_argument("--panel", action="store_true",
                   help="every single series of bench/accuracy.py's panel")
    p.add_argument("--holdout", action="store_true",
                   help="the held-out series of bench/panel_data.py (no default was chosen on them)")
    p.add_argument("--seed", type=int, default=0, help="the model's seed (default 0)")
    p.add_argument("--out", default=HERE / "out" / "intervals.json")
    a = p.parse_args(argv)
    report = {"versions": {"streamlstm": streamlstm.__version__}, "seed": a.seed, "datasets": {}}
    jobs = (panel_series(a.holdout) if a.panel or a.holdout
            else {n: (None, PANEL[n]) for n in a.datasets.split(",")})
    for name, (rows, h) in jobs.items():
        report["datasets"][name] = evaluate_dataset(name, h, seed=a.seed, rows=rows)
        print(f"{name}: done ({report['datasets'][name]['seconds']:.1f} s)", file=sys.stderr)
    print(render(report))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
