"""Compiling a model's kernels ahead of its first rows (``MultiSeriesForecaster.
compile_kernels``, the CLI before it reads, ``streamlstm warmup``).

Numba specializes on types, not sizes, so stepping a two-unit twin with the same
cell, layers, dtype, backend, features, experts and intervals through learning
and a multi-step forecast compiles exactly the code the model will run.  The CPU
driver comes in specializations chosen by argument types (backends/cpu/kernels.py,
launcher._modes): small calls (at most 3 rows: serial, one row at a time),
calls of up to 63 rows (serial, blocks of four series) and larger ones (the
parallel launchers too), each with or without the fused k1 = k2 window; a
one-series stream needs only the smallest, about half the code
(bench/compile_time.py).
"""
from __future__ import annotations

import time

import numpy as np

from streamlstm.backends.cpu.launcher import PARALLEL_ROWS
from streamlstm.forecast.intervals import CoverageTally


def compile_twins(model, every=False):
    """Compile (or load from Numba's cache) the kernels ``model``'s calls use:
    its k1 = k2 choice and horizon, for calls of several series (the serial
    driver with four-series blocks; a call of at most three rows, or of 64 or
    more, compiles its own specialization when it first comes).  ``every=True``
    compiles every driver specialization, for horizons 1 and 2, and the one-row
    calls of ``forecast/onerow.py`` (a River forecaster's path) at both.  Nothing of
    ``model`` changes.  Returns the seconds it took (the compile time on a cold
    cache, milliseconds on a warm one)."""
    t0 = time.perf_counter()
    F = len(model.features or ())
    interval = model.coverage is not None
    shapes = [(1, 2), (2, 2)] if every else [(2, 2) if model.k1 == model.k2 else (1, 2)]
    # rows per call: small, serial with blocks of four, parallel (launcher._modes)
    widths = (2, 6, PARALLEL_ROWS) if every else (6,)
    # horizon > 1 learns call group by call group (one row per call when k1 = 1)
    horizons = (1, 2) if every else (model.horizon,)
    band = None
    for k1, k2 in shapes:
        for width in widths:
            for horizon in horizons:
                twin = type(model)(cell=model.cell, hidden_size=2, n_layers=model.n_layers,
                                   k1=k1, k2=k2, optimizer=model.optimizer,
                                   features=model.features, horizon=horizon,
                                   backend=model.backend, dtype=model.dtype, lags=model.lags,
                                   seasonality=model.seasonality,
                                   differencing=model.differencing, clip_norm=model.clip_norm,
                                   trend=model.trend, coverage=model.coverage,
                                   scaling=model.scaling, experts=model.experts)
                ids = [f"s{i}" for i in range(width)] * 4
                y = np.linspace(0.0, 1.0, len(ids))
                X = np.zeros((len(ids), F)) if F else None
                band = twin.predict_learn(ids, y, X, interval=interval)
                twin.forecast(2, interval=interval)
                if every and width == widths[0]:
                    # one arriving value and one series' forecasts (forecast/onerow.py):
                    # what a River forecaster or a stream of one row per call runs
                    # (with bands asked for, as a stream asks, and not, as learn_one)
                    for banded in {False, interval}:
                        twin.predict_learn(ids[:1], y[:1], None if X is None else X[:1],
                                           interval=banded)
                    for h in (1, 2):
                        twin.forecast(h, ids[0], interval=interval)
    if interval:     # and the runner's coverage tally
        CoverageTally(twin.horizon).update(band.scores)
    return time.perf_counter() - t0
