"""Room for series: the per-series parts of a model (the network's state, the
features', the experts' and the intervals') grow together, to the same number of
slots, or not at all.

A growth that runs out of memory (a seasonal period of 10**9 steps, say) is an
``InputError`` that names what to change, not numpy's traceback; a part left
smaller by it catches up on the next growth, so the parts never disagree when a
series is added (``MultiSeriesForecaster`` registers an id only after its room
exists).
"""
from __future__ import annotations

from streamlstm.errors import InputError


def capacity(parts):
    """The slots every part has."""
    return min(part.n_series for part in parts)


def resize(parts, cap, periods):
    """Grow every part to the same room, at least ``cap`` slots (``periods``: the
    model's seasonal periods, for the message when memory runs out)."""
    cap = max(cap, *(part.n_series for part in parts))
    try:
        for part in parts:
            if part.n_series < cap:
                part.resize(cap)
    except MemoryError as exc:
        names = ", ".join(f"{p:g}" for p in periods) or "none"
        raise InputError(
            f"not enough memory for {cap:,} series ({exc}; seasonal periods: {names}, each "
            f"step of a period keeps ~32 bytes per series): use a shorter seasonality or "
            f"fewer series; no series was added") from None
