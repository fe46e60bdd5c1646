"""What the CLI tells a person: one-line errors and the metric summary table."""
from __future__ import annotations

import click

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
