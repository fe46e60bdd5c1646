"""Room for series: the per-series parts of a model (the network's state, the
features', the experts' and the intervals') grow together, to the same number of
slots, or not at all.

A growth that runs out of memory (a seasonal period of 10**9 steps, say) is an
``InputError`` that names what to change, not numpy's traceback, and leaves
every part as it was (the parts that had grown get their arrays back), so the
model goes on and saves as before; ``MultiSeriesForecaster`` registers an id
only after its room exists.
"""
from __future__ import annotations

from streamlstm.errors import InputError
from streamlstm.forecast.kept_args import KeptArgs


def capacity(parts):
    """The slots every part has."""
    return min(part.n_series for part in parts)


def resize(parts, cap, periods):
    """Grow every part to the same room, at least ``cap`` slots, or (out of
    memory) none: the parts grown so far get their arrays back.  ``parts``:
    ``KeptArgs`` states, then the network last (its own ``resize`` is all or
    nothing); ``periods``: the model's seasonal periods, for the message."""
    cap = max(cap, *(part.n_series for part in parts))
    grown = []
    try:
        for part in parts:
            if part.n_series < cap:     # (noted first: a part may fail half-grown)
                grown.append((part, dict(part.a) if isinstance(part, KeptArgs) else None))
                part.resize(cap)
    except MemoryError as exc:
        for part, before in grown:
            if before is not None:
                part.a = before
                part.forget_args()
        names = ", ".join(f"{p:g}" for p in periods) or "none"
        raise InputError(
            f"not enough memory for {cap:,} series ({exc}; seasonal periods: {names}, each "
            f"step of a period keeps ~32 bytes per series): use a shorter seasonality or "
            f"fewer series; no series was added") from None
