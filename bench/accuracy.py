"""Forecast accuracy on a panel of real datasets, every model with its defaults.

    python bench/accuracy.py --panel          # the whole panel (bench/README.md's table)
    python bench/accuracy.py --panel --readme # ... and write its tables into bench/README.md
    python bench/accuracy.py                  # River's ForecastingTrack only
    python bench/accuracy.py --panel --fast   # smoke run: series capped to 600 values
    python bench/accuracy.py --datasets taylor,co2 --no-stats --seeds 3
    python bench/accuracy.py --check          # our loops == river.evaluate.iter_evaluate etc.
    python bench/accuracy.py --holdout --seeds 3   # the 9 held-out series (panel_data.holdout)

The datasets (``bench/panel_data.py``) ship inside PyPI packages (river, statsmodels,
pmdarima, sktime); nothing is downloaded.  ``bash bench/stats_env.sh`` makes a
virtualenv with them, statsforecast and streamlstm (editable); run the bench with its
python.  Without them the river datasets still run and the rest are skipped.

Protocol (``bench/panel_models.py``): single series as River 0.26's
``evaluate.iter_evaluate`` (forecast(h) of the next h values, MAE per step, then
learn; x = {"date": timestamp} as River's datasets give it, the real ones for River's
datasets); many-series panels through ``MultiSeriesForecaster.predict_learn``, a row
per series per time step; deterministic sequences as the seed experiment (forecast
the next value, learn it, 300 passes).

Columns: streamlstm as shipped ("streamlstm default" = ``LSTMForecaster()``, with its
90% intervals scored for coverage; ``GRUForecaster()``), "network alone"
(``experts=None``) when the forecaster takes ``experts``, "known period"
(``seasonality=m``: a user telling the season), "global scaling" on panels when
``MultiSeriesForecaster`` takes ``scaling``; naive, seasonal naive, River
``HoltWinters`` (docstring constants, additive; multiplicative on positive series)
and ``SNARIMAX(p=m, d=1, q=m, m=m, sd=1)`` as the ForecastingTrack bench had them,
statsforecast ``AutoETS``/``AutoTheta`` refit every 100 values (``--no-stats`` or not
installed: none); on the many-series panels the River and statsforecast models run one
per series, deep-river on every single series (its own venv,
``bench/deepriver_env.sh``; ``--no-deepriver``).  Nothing is tuned per dataset.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import streamlstm  # noqa: E402
import panel_data as pdata  # noqa: E402
import panel_models as pm  # noqa: E402
import panel_report  # noqa: E402

TRACK = ("AirlinePassengers", "WaterFlow")   # the run without --panel


def deepriver(venv, spec):
    """deep-river's columns, from its own virtualenv: ``_deepriver_part.py panel``."""
    py = Path(venv) / "bin" / "python"
    if not py.exists():
        return None, f"not run: create it with `bash bench/deepriver_env.sh` ({py} missing)"
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "series.json"
        file.write_text(json.dumps(spec))
        out = subprocess.run([str(py), str(HERE / "_deepriver_part.py"), "panel", "--file",
                              str(file)], stdout=subprocess.PIPE, text=True, check=False)
    if out.returncode:
        return None, f"failed (exit {out.returncode}; its stderr above)"
    return json.loads(out.stdout), None


def deepriver_spec(report, chosen, cap, limit):
    """What ``_deepriver_part.py panel`` runs: the single series of this run with
    values x horizon <= ``limit`` (deep-river's forecast(24) takes ~0.3 s a value)."""
    spec = {}
    for d in chosen:
        if d.name not in report["datasets"] or d.form not in ("river", "series"):
            continue
        if report["datasets"][d.name]["n"] * d.horizon > limit:
            report["datasets"][d.name]["deepriver_skipped"] = f"values x horizon > {limit}"
            continue
        if d.form == "river":
            spec[d.name] = {"h": d.horizon, "river": d.name}
        else:
            pairs = pairs_of(d, cap)
            spec[d.name] = {"h": d.horizon, "y": [y for _, y in pairs],
                            "dates": [x["date"].isoformat() for x, _ in pairs]}
    return spec


def pairs_of(d, cap):
    data = d.load(cap)
    if d.form == "river":
        return list(data)
    return pdata.with_dates(d, data)


def single_jobs(d, a, cap):
    """(label, thunk) for every column of a single-series dataset."""
    pairs = pairs_of(d, cap)
    ys = np.array([y for _, y in pairs], dtype=float)
    h = d.horizon
    jobs = []
    for label, make in pm.streamlstm_columns(d.period).items():
        jobs.append((label, lambda make=make, bands=label == "streamlstm default":
                     _banded(make(), pairs, h, bands)))
    stats = not a.no_stats and pm.stats_available()
    for label, make in pm.baseline_columns(d.period, bool(ys.min() > 0), stats).items():
        jobs.append((label, lambda make=make: pm.run_river(make(), pairs, h)))
    make = pm.streamlstm_columns(d.period)["streamlstm default"]
    for s in range(1, a.seeds):
        jobs.append((f"seed {s}", lambda s=s: pm.run_river(make(seed=s), pairs, h)))
    return len(pairs), jobs


def _banded(model, pairs, h, bands):
    return pm.run_river(model, pairs, h, bands=bands and getattr(model, "coverage", None) is not None)


def sequence_jobs(d, a, cap):
    y = d.load(cap)
    jobs = [(label, lambda make=make: pm.run_sequence(make(), y, d.period))
            for label, make in pm.streamlstm_columns(d.period).items()]
    jobs += [("naive", lambda: pm.run_sequence(pm.Naive(1), y, d.period)),
             ("seasonal naive", lambda: pm.run_sequence(pm.Naive(d.period), y, d.period))]
    return y.size, jobs


def panel_jobs(d, a, cap):
    series = d.load(cap)
    h = d.horizon
    jobs = [(label, lambda make=make: pm.run_panel_model(make(h), series, h))
            for label, make in pm.streamlstm_columns(d.period, single=False).items()]
    jobs += [("naive", lambda: pm.run_panel_naive(series, h, 1)),
             ("seasonal naive", lambda: pm.run_panel_naive(series, h, d.period))]
    positive = all(v.min() > 0 for v in series.values())
    stats = not a.no_stats and pm.stats_available()
    for label, make in pm.baseline_columns(d.period, positive, stats, lead=0).items():
        if label not in ("naive", "seasonal naive"):
            jobs.append((label, lambda make=make: pm.run_panel_river(make, series, h)))
    return sum(v.size for v in series.values()), jobs


def dataset_jobs(d, a):
    cap = pdata.FAST_CAP if a.fast else pdata.DEFAULT_CAP
    maker = {"panel": panel_jobs, "sequence": sequence_jobs}.get(d.form, single_jobs)
    return maker(d, a, cap)


def run(a):
    chosen = pdata.select(a.datasets.split(",") if a.datasets else None, a.holdout)
    if not a.panel and not a.datasets and not a.holdout:
        chosen = [d for d in chosen if d.name in TRACK]
    report = {"versions": versions(a), "cap": pdata.FAST_CAP if a.fast else pdata.DEFAULT_CAP,
              "refit_every": pm.REFIT_EVERY, "fit_window": pm.FIT_WINDOW,
              "datasets": {}, "skipped": {}}
    planned = []
    for d in chosen:
        try:
            n, jobs = dataset_jobs(d, a)
        except pdata.Missing as e:
            report["skipped"][d.name] = str(e)
            continue
        planned.append((d, n, jobs))
    bar = tqdm(total=sum(len(j) for *_, j in planned), unit="run", file=sys.stderr)
    for d, n, jobs in planned:
        cols, seeds = {}, []
        for label, job in jobs:
            bar.set_description(f"{d.name}: {label}")
            res = job()
            if label.startswith("seed "):
                seeds.append(statistics.mean(res["per_step"]))
            else:
                cols[label] = res
            bar.update()
        report["datasets"][d.name] = {
            "kind": d.kind, "source": d.source, "period": d.period, "horizon": d.horizon,
            "n": n, "form": d.form, "real": d.real, "columns": cols, "other_seeds": seeds}
    bar.close()
    return report


def versions(a):
    out = {"streamlstm": streamlstm.__version__}
    for name in ("river", "numpy", "statsforecast", "statsmodels", "pmdarima", "sktime"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def add_deepriver(report, a):
    if a.no_deepriver:
        return "not run (--no-deepriver)"
    chosen = pdata.panel()
    spec = deepriver_spec(report, chosen, report["cap"], a.deepriver_limit)
    skipped = [n for n, d in report["datasets"].items() if "deepriver_skipped" in d]
    too_long = (f"not run on {', '.join(skipped)} (values x horizon > {a.deepriver_limit}, "
                f"--deepriver-limit)") if skipped else None
    if not spec:
        return too_long
    print(f"deep-river: {len(spec)} series in its own venv ...", file=sys.stderr)
    dr, note = deepriver(a.venv, spec)
    if dr:
        report["versions"].update({f"deep-river env {k}": v for k, v in dr["versions"].items()})
        for n in spec:
            report["datasets"][n]["columns"]["deep-river LSTM"] = dr[n]
    return "; ".join(x for x in (note, too_long) if x) or None


def check():
    """Our River loop gives River's own ``iter_evaluate`` numbers."""
    from river import datasets, evaluate, metrics
    ds, h = datasets.AirlinePassengers(), 12
    for make in (lambda: pm.Naive(12, 1), lambda: streamlstm.LSTMForecaster()):
        last = None
        for *_, hm in evaluate.iter_evaluate(ds, make(), metrics.MAE(), horizon=h):
            last = hm
        theirs = [m.get() for m in last.metrics]
        ours = pm.run_river(make(), list(ds), h)["per_step"]
        ok = all(math.isclose(p, q, rel_tol=1e-12) for p, q in zip(theirs, ours))
        print(f"{type(make()).__name__}: iter_evaluate {statistics.mean(theirs):.4f}, "
              f"ours {statistics.mean(ours):.4f}: {'same' if ok else 'DIFFERENT'}")
        if not ok:
            return 1
    series = pdata.sp500_prices(pdata.FAST_CAP)
    for m in (1, 5):
        a = pm.run_panel_naive(series, 5, m)["per_step"]
        b = pm.run_panel_river(lambda m=m: pm.Naive(m), series, 5)["per_step"]
        same = all(math.isclose(p, q, rel_tol=1e-12) for p, q in zip(a, b))
        print(f"panel seasonal naive m={m}: direct {statistics.mean(a):.4f}, through the "
              f"per-series River loop {statistics.mean(b):.4f}: {'same' if same else 'DIFFERENT'}")
        if not same:
            return 1
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--panel", action="store_true", help="every dataset of the panel")
    p.add_argument("--datasets", help="comma-separated names (see bench/panel_data.py)")
    p.add_argument("--holdout", action="store_true",
                   help="the held-out series instead of the panel (no default was chosen on them)")
    p.add_argument("--fast", action="store_true", help=f"cap series to {pdata.FAST_CAP} values")
    p.add_argument("--seeds", type=int, default=1,
                   help="also run the default LSTMForecaster with seeds 1..n-1")
    p.add_argument("--no-stats", action="store_true", help="skip statsforecast's models")
    p.add_argument("--no-deepriver", action="store_true")
    p.add_argument("--deepriver-limit", type=int, default=10_000,
                   help="run deep-river on series with values x horizon up to this")
    p.add_argument("--venv", default=os.environ.get("DEEPRIVER_VENV", HERE / ".venv-deepriver"))
    p.add_argument("--out", default=HERE / "out" / "accuracy.json")
    p.add_argument("--check", action="store_true", help="compare our loop with iter_evaluate")
    p.add_argument("--readme", action="store_true",
                   help="also write the tables into bench/README.md (between its markers)")
    a = p.parse_args(argv)
    if a.check:
        return check()
    t0 = time.perf_counter()
    report = run(a)
    dr_note = add_deepriver(report, a)
    report["summary"] = panel_report.summarize(report)
    report["seconds"] = time.perf_counter() - t0
    print(panel_report.render(report, dr_note))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))
    if a.readme and a.holdout:
        print("--readme writes the panel's tables only: paste the held-out table by hand",
              file=sys.stderr)
    elif a.readme and not panel_report.write_readme(report, HERE / "README.md"):
        print("bench/README.md has no accuracy panel markers: not updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
