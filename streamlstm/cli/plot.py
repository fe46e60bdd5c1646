"""The actual-vs-forecast plot a run draws at its end: a PNG (or SVG/PDF) with
matplotlib, or an interactive HTML page with plotly (``--plot report.html``).

Each panel is one series: the actual values, the one-step forecast, its
prediction band when the run made intervals, and a thin naive last-value line
(the yardstick the summary compares against); the title gives the series' MAE
and naive MAE over all its scored rows (River metrics of the run)."""
from __future__ import annotations

import math

import numpy as np

HTML_SUFFIXES = (".html", ".htm")
IMAGE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg")


def naive_line(y):
    """The naive last-value forecast of each point: the latest non-missing value
    before it (NaN before the first).

    >>> naive_line(np.array([1.0, np.nan, 3.0, 4.0]))
    array([nan,  1.,  1.,  3.])
    """
    y = np.asarray(y, dtype=np.float64)
    idx = np.where(~np.isnan(y), np.arange(y.size), -1)
    last = np.maximum.accumulate(idx) if y.size else idx
    prev = np.concatenate([[-1], last[:-1]]) if y.size else last
    out = np.full(y.size, np.nan)
    out[prev >= 0] = y[prev[prev >= 0]]
    return out


def panel_title(label, stats):
    """``label   MAE 1.23, naive MAE 1.45`` (``stats``: (MAE, naive MAE) or None)."""
    if not stats:
        return str(label)
    mae, naive = stats
    bits = [f"MAE {mae:.4g}" if math.isfinite(mae) else "MAE -"]
    if naive is not None and math.isfinite(naive):
        bits.append(f"naive MAE {naive:.4g}")
    return f"{label}   " + ", ".join(bits)


def plot_forecasts(path, curves, title="actual vs one-step forecast", stats=None,
                   xlabel="time", ylabel="value"):
    """Draw ``curves``, a list of ``(label, time, y, yhat[, lo, hi])`` (NumPy
    arrays; the band ``lo..hi`` is shaded when given), one panel each, into
    ``path``: HTML (plotly) when it ends in .html, else an image (matplotlib's Agg
    backend: no display needed).  ``stats``: per curve (MAE, naive MAE) or None.
    Returns the panel titles."""
    stats = list(stats) if stats is not None else [None] * len(curves)
    titles = [panel_title(c[0], s) for c, s in zip(curves, stats)]
    if str(path).lower().endswith(HTML_SUFFIXES):
        _plot_html(path, curves, titles, title, xlabel, ylabel)
    else:
        _plot_image(path, curves, titles, title, xlabel, ylabel)
    return titles


def _plot_image(path, curves, titles, title, xlabel, ylabel):
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = max(1, len(curves))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n + 0.6), squeeze=False, sharex=False)
    for ax, (label, t, y, yhat, *band), head in zip(axes[:, 0], curves, titles):
        if band:
            ax.fill_between(t, band[0], band[1], color="tab:orange", alpha=0.2, lw=0,
                            label="interval")
        ax.plot(t, naive_line(y), lw=0.7, ls="--", color="tab:blue", alpha=0.8,
                label="naive (last value)")
        ax.plot(t, y, lw=1.0, color="0.25", label="actual")
        ax.plot(t, yhat, lw=1.0, color="tab:orange", label="forecast")
        ax.set_title(head, fontsize=9, loc="left")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(xlabel, fontsize=8)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    meta = {"Title": title, "Description": "\n".join(titles)} \
        if str(path).lower().endswith(".png") else None
    fig.savefig(path, dpi=100, metadata=meta)
    plt.close(fig)


def _plot_html(path, curves, titles, title, xlabel, ylabel):
    # plotly: a maintained library writes the interactive page (zoom, hover,
    # toggling lines); the page embeds plotly.js, so it opens offline.
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    n = max(1, len(curves))
    fig = make_subplots(rows=n, cols=1, subplot_titles=titles or None, vertical_spacing=0.3 / n)
    for r, (label, t, y, yhat, *band) in enumerate(curves, start=1):
        first = r == 1      # one legend entry per kind of line
        if band:
            fig.add_trace(go.Scatter(x=t, y=band[1], mode="lines", line={"width": 0},
                                     showlegend=False, hoverinfo="skip"), row=r, col=1)
            fig.add_trace(go.Scatter(x=t, y=band[0], mode="lines", line={"width": 0},
                                     fill="tonexty", fillcolor="rgba(255,127,14,0.2)",
                                     name="interval", legendgroup="band", showlegend=first),
                          row=r, col=1)
        fig.add_trace(go.Scatter(x=t, y=naive_line(y), mode="lines", name="naive (last value)",
                                 line={"width": 0.8, "dash": "dash",
                                       "color": "rgba(31,119,180,0.8)"},
                                 legendgroup="naive", showlegend=first), row=r, col=1)
        fig.add_trace(go.Scatter(x=t, y=y, mode="lines", name="actual",
                                 line={"width": 1.2, "color": "#404040"},
                                 legendgroup="actual", showlegend=first), row=r, col=1)
        fig.add_trace(go.Scatter(x=t, y=yhat, mode="lines", name="forecast",
                                 line={"width": 1.2, "color": "#ff7f0e"},
                                 legendgroup="forecast", showlegend=first), row=r, col=1)
        fig.update_yaxes(title_text=ylabel, row=r, col=1)
    fig.update_xaxes(title_text=xlabel, row=n, col=1)
    fig.update_layout(title=title, height=280 * n + 120, template="plotly_white")
    fig.write_html(path, include_plotlyjs=True, full_html=True)
