"""The actual-vs-forecast plot a run draws at its end (a PNG, no display needed)."""
from __future__ import annotations


def plot_forecasts(path, curves, title="actual vs one-step forecast"):
    """Write a PNG with one panel per series: ``curves`` is a list of
    ``(label, time, y, yhat[, lo, hi])`` (NumPy arrays; the prediction band
    ``lo..hi`` is shaded when given).  Uses matplotlib's Agg backend, so it works
    without a display."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = max(1, len(curves))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.4 * n + 0.6), squeeze=False, sharex=False)
    for ax, (label, t, y, yhat, *band) in zip(axes[:, 0], curves):
        if band:
            ax.fill_between(t, band[0], band[1], color="tab:orange", alpha=0.2, lw=0,
                            label="interval")
        ax.plot(t, y, lw=1.0, color="0.25", label="actual")
        ax.plot(t, yhat, lw=1.0, color="tab:orange", label="forecast")
        ax.set_title(str(label), fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
