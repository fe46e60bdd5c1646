"""What the CLI tells a person: one-line errors and the metric summary table."""
from __future__ import annotations

import math

import click
import numpy as np

from streamlstm.stream.metrics import METRIC_NAMES

# The interval summary leaves out this leading share of each step's scored forecasts.
INTERVAL_SKIP = 0.2


def fail(exc):
    """A user error: one ``Error:`` line, exit status 1, no traceback."""
    raise click.ClickException(str(exc)) from None


def series_label(runner):
    """Dense series index -> the id as the user wrote it."""
    return lambda i: str(runner.ids[i])


def format_summary(s, series_name=None, out=None):
    """The metric table printed at the end of a run (list of lines)."""
    series_name = series_name or (lambda i: str(i))
    lines = []
    if s["scored"] == 0:
        lines.append("no scored rows (every target was missing): no metrics")
        return lines
    w = 18
    lines.append(f"{'':{w}}" + "".join(f"{n:>12}" for n in METRIC_NAMES))

    def row(label, vals):
        cells = [f"{vals['MAE']:>12.4g}", f"{vals['RMSE']:>12.4g}", f"{vals['SMAPE']:>11.3g}%"]
        return f"{label:{w}}" + "".join(cells)

    lines.append(row(f"all {s['scored']:,} rows", s["overall"]))
    lines.append(row(f"last {s['rolling_rows']:,} rows", s["rolling"]))
    naive, model = s["naive"]["MAE"], s["overall"]["MAE"]
    if naive > 0:
        lines.append(f"naive last-value forecast: MAE {naive:.4g} (the model's is "
                     f"{abs(1 - model / naive):.0%} {'lower' if model <= naive else 'higher'})")
    if s["worst"]:
        worst = ", ".join(f"{series_name(i)} {mae:.4g} ({n:,} rows)" for i, mae, n in s["worst"])
        lines.append(f"worst series by MAE: {worst}")
    if s.get("steps"):
        lines += format_steps(s["steps"])
    return lines


def pool_steps(reports):
    """Per-step reports (``StepMetrics.report``) of several runners (Kafka
    partitions) pooled exactly: each metric is a mean of per-row terms, so the
    pooled one weighs each runner's by its rows (RMSE through its square)."""
    def weighted(steps, key, weight="scored", f=lambda v: v):
        w = sum(r[weight] for r in steps)
        return sum(r[weight] * f(r[key]) for r in steps if r[weight]) / w if w else math.nan

    return [{"step": steps[0]["step"], "scored": sum(r["scored"] for r in steps),
             "naive_scored": sum(r["naive_scored"] for r in steps),
             "MAE": weighted(steps, "MAE"), "SMAPE": weighted(steps, "SMAPE"),
             "RMSE": math.sqrt(weighted(steps, "RMSE", f=lambda v: v * v)),
             "naive_MAE": weighted(steps, "naive_MAE", "naive_scored")}
            for steps in zip(*reports)]


def format_steps(steps):
    """The per-horizon-step table of the summary (``StepMetrics.report``): step h
    is the forecast made h rows of its series ahead, scored against that row."""
    lines = ["per horizon step (+h: h rows of its series ahead; ratio: MAE / naive MAE "
             "of the same step):",
             f"{'':>6}{'MAE':>12}{'naive MAE':>12}{'ratio':>8}{'RMSE':>12}{'SMAPE':>10}"
             f"{'rows':>12}"]
    for r in steps:
        if not r["scored"]:
            lines.append(f"{'+' + str(r['step']):>6}  no scored forecasts")
            continue
        naive = r["naive_MAE"]
        ratio = r["MAE"] / naive if naive > 0 else float("nan")
        lines.append(f"{'+' + str(r['step']):>6}{r['MAE']:>12.4g}{naive:>12.4g}{ratio:>8.3f}"
                     f"{r['RMSE']:>12.4g}{r['SMAPE']:>9.3g}%{r['scored']:>12,}")
    return lines


def format_intervals(report, coverage, skip):
    """The interval lines of the summary: empirical coverage, mean width and mean
    Winkler score per horizon step (``CoverageTally.report``)."""
    lines = [f"{coverage:.0%} intervals, after the first {skip:.0%} of scored forecasts:"]
    for r in report:
        if not r["scored"]:
            lines.append(f"  +{r['step']}: no scored intervals")
            continue
        lines.append(f"  +{r['step']}: coverage {r['coverage']:.1%} of {r['scored']:,}, "
                     f"mean width {r['width']:.4g}, Winkler {r['winkler']:.4g}")
    return lines


def format_weights(model):
    """The experts' line of the summary: their mean weight over the series in the
    next one-step forecasts, and how many series each one leads (None without
    experts)."""
    table = model.weight_table() if hasattr(model, "weight_table") else None
    if table is None or table[1].shape[0] == 0:
        return None
    names, W = table
    w1 = W[:, 0, :]
    mean = w1.mean(axis=0)
    lead = np.bincount(w1.argmax(axis=1), minlength=len(names))
    order = np.argsort(-mean, kind="stable")
    parts = [f"{names[k]} {mean[k]:.2f}" + (f" (leads {lead[k]:,})" if lead[k] else "")
             for k in order if mean[k] > 0 or lead[k]]
    return "experts, mean weight in the next forecast: " + ", ".join(parts)


def format_time(v, kind):
    """A series' time key (int ns for datetimes, else a number) as text."""
    if kind == "datetime":
        import pandas as pd
        return str(pd.Timestamp(int(v)))
    if kind == "int":
        return str(int(v))
    return str(float(v))


def format_span(v, kind):
    """A time step as text: ``1h``, ``15min``, ``1d``, ``30s`` (datetimes), else
    the number."""
    if kind != "datetime":
        return str(int(v)) if kind == "int" else str(float(v))
    ns = int(v)
    for unit, size in (("d", 86_400 * 10**9), ("h", 3_600 * 10**9), ("min", 60 * 10**9),
                       ("s", 10**9)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    import pandas as pd
    return str(pd.Timedelta(ns))


def forecast_times(runner, index, horizon):
    """For each series ``index``: the times its next ``horizon`` forecasts are for
    (its last time + h x its inferred spacing, ``stream.spacing``), as text, or
    None when the spacing is not known (a single row, or no time kind)."""
    kind = runner.time_kind
    spacing = runner.spacing.spacing() if kind else np.zeros(0)
    out = []
    for i in index:
        sp = spacing[i] if i < spacing.size else math.nan
        if not sp == sp or sp <= 0:
            out.append(None)
            continue
        last = runner.last_time[i]
        if kind == "float":
            out.append([format_time(float(last) + h * sp, kind) for h in range(1, horizon + 1)])
        else:
            out.append([format_time(int(last) + h * int(sp), kind)
                        for h in range(1, horizon + 1)])
    return out


def latest_table(runner, order, horizon, nxt):
    """The table of latest forecasts (lines): per series ``order`` (dense
    indices) its last time, value and forecast, and ``nxt`` (id -> the next
    ``horizon`` forecasts, or empty) under the times they are for: as column
    headers when every listed series shares them, else with a column giving
    each series' first forecast time and step; ``+h`` when the times are not
    known."""
    ids = runner.ids
    head = ["series", "last time", "y", "forecast"]
    times = forecast_times(runner, order, horizon) if nxt else []
    shared = bool(times) and times[0] is not None and all(t == times[0] for t in times)
    per_row = bool(nxt) and not shared and any(t is not None for t in times)
    if per_row:
        head.append("next forecasts at")
    if nxt:
        head += times[0] if shared else [f"+{h}" for h in range(1, horizon + 1)]
    spacing = runner.spacing.spacing() if per_row else None
    rows = []
    for k, i in enumerate(order):
        r = [str(ids[i]), format_time(runner.last_time[i], runner.time_kind),
             f"{runner.last_y[i]:.4g}", f"{runner.last_yhat[i, 0]:.4g}"]
        if per_row:
            t = times[k]
            r.append("-" if t is None else
                     f"{t[0]}, every {format_span(spacing[i], runner.time_kind)}")
        if nxt:
            r += [f"{v:.4g}" for v in np.asarray(nxt[ids[i]]).ravel()[:horizon]]
        rows.append(r)
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return lines
