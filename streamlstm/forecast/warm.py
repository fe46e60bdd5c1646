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

Numba compiles on one core.  On a first run (a cold cache) ``compile_in_two``
splits the work between two processes (backends/compile_child.py): a forked
child compiles the network's update and the driver (``step_calls``) around it,
or a River forecaster's one-value call (forecast/onerow.py, which inlines the
driver's one call: no driver), the larger half, and saves them to the cache,
while this process compiles the forward and the forecast layer; the first real
calls then load both halves and compile what is left.  For the one-value call
the two split the forecast layer too (the child the features' pass, this
process the experts' and intervals' updates), and the child waits for this
process's part before compiling the call around it (``compile_child.Gate``):
nothing it links is compiled twice.  ``compile_every`` (``streamlstm warmup``) splits by window shape.
Set ``STREAMLSTM_COMPILE_PROCESSES=1`` to keep it to one process.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from streamlstm.backends import compile_child
from streamlstm.backends.cpu.launcher import PARALLEL_ROWS
from streamlstm.forecast.intervals import CoverageTally

#: the longest ``compile_in_two`` and ``compile_every`` wait for their child once
#: their own half is done (the child's half takes about ten and fifty seconds on
#: a laptop core); ``compile_every`` then compiles a half its child did not finish.
CHILD_LIMIT_S = 120.0


def compile_twins(model, every=False):
    """Compile (or load from Numba's cache) the kernels ``model``'s calls use:
    its k1 = k2 choice and horizon, for calls of several series (the serial
    driver with four-series blocks; a call of at most three rows, or of 64 or
    more, compiles its own specialization when it first comes).  ``every=True``
    compiles every driver specialization, for horizons 1 and 2, and the one-row
    calls of ``forecast/onerow.py`` (a River forecaster's path) at both
    (``compile_every``).  Nothing of ``model`` changes.  Returns the seconds it
    took (the compile time on a cold cache, milliseconds on a warm one)."""
    if every:
        return compile_every([model])
    t0 = time.perf_counter()
    compile_in_two(model, 6)
    _compile_shapes(model, [(2, 2) if model.k1 == model.k2 else (1, 2)], every)
    return time.perf_counter() - t0


def compile_every(models):
    """``compile_twins(model, every=True)`` for each of ``models`` (``streamlstm
    warmup``), in two processes where it can (``compile_child.can_fork``): one
    forked child compiles the fused window's (k1 = k2) half of every model while
    this process compiles the other half.  A child that fails or runs past
    CHILD_LIMIT_S leaves its half to this process, with a RuntimeWarning.
    Returns the seconds it took."""
    t0 = time.perf_counter()
    halves = [(1, 2)], [(2, 2)]
    child = None
    if all(m.backend == "cpu" for m in models) and compile_child.can_fork(parallel=True):
        child = compile_child.fork(
            lambda: [_compile_shapes(m, halves[1], True) for m in models])
    try:
        for m in models:
            _compile_shapes(m, halves[0] if child else halves[0] + halves[1], True)
    except BaseException:
        if child:
            compile_child.reap(child, 0.0)
        raise
    if child and not compile_child.reap(child, CHILD_LIMIT_S):
        warnings.warn("streamlstm: the second compile process did not finish; compiling "
                      "its half in this one", RuntimeWarning, stacklevel=2)
        for m in models:
            _compile_shapes(m, halves[1], True)
    return time.perf_counter() - t0


def _compile_shapes(model, shapes, every):
    """``compile_twins``'s work for these (k1, k2) ``shapes``."""
    F = len(model.features or ())
    interval = model.coverage is not None
    # rows per call: small, serial with blocks of four, parallel (launcher._modes)
    widths = (2, 6, PARALLEL_ROWS) if every else (6,)
    # horizon > 1 learns call group by call group (one row per call when k1 = 1)
    horizons = (1, 2) if every else (model.horizon,)
    band = None
    for k1, k2 in shapes:
        for width in widths:
            for horizon in horizons:
                twin = _twin(model, k1, k2, horizon, model.backend)
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


def _twin(model, k1, k2, horizon, backend):
    """A two-unit model like ``model`` (what Numba specializes on) with these."""
    return type(model)(cell=model.cell, hidden_size=2, n_layers=model.n_layers,
                       k1=k1, k2=k2, optimizer=model.optimizer, features=model.features,
                       horizon=horizon, backend=backend, dtype=model.dtype, lags=model.lags,
                       seasonality=model.seasonality, differencing=model.differencing,
                       clip_norm=model.clip_norm, trend=model.trend, coverage=model.coverage,
                       scaling=model.scaling, experts=model.experts)


def compile_in_two(model, rows):
    """On a first run, compile ``model``'s kernels for calls of ``rows`` rows in two
    processes (module doc): a forked child compiles the network's update and
    the driver around it - or, for one row, a River forecaster's one-value call
    (it runs one on its copy of a twin), which inlines the driver's one call
    unless the model fuses k1 = k2 windows - and saves them to Numba's cache,
    while this process compiles what the child's second half needs - the
    forward, the forecast layer (a twin on the NumPy reference backend:
    features, experts, intervals; for one row only the experts' and intervals'
    updates, the child compiling the features' pass and waiting for them) -
    and then a forecast of a CPU twin; then it waits for the child (at most
    CHILD_LIMIT_S seconds).  The model's first calls load
    what the two compiled and compile the rest.  Nothing of ``model`` changes.

    Returns the seconds it took, or None where it does not apply: a later run
    of this configuration (its update, or driver, is compiled here or saved in
    the cache: ``OnlineRNN.driver_ready``), a backend other than the CPU, or where
    ``compile_child.can_fork`` says no.  A child that fails costs only time: the
    first calls compile what it missed."""
    if model.backend != "cpu" or not compile_child.can_fork():
        return None
    t0 = time.perf_counter()
    twin = _twin(model, model.k1, model.k2, model.horizon, "cpu")
    ids = [f"s{i}" for i in range(rows)]
    slots = twin.slots_of(ids, create=True)
    # A River forecaster's one-value call (forecast/onerow.py) inlines the driver's
    # one call (kernels.step_row) unless the model fuses windows (k1 = k2): it needs
    # the update, not the driver.
    driver = rows > 1 or twin.net.cpu_kernel_args()[3] is not None
    if twin.net.driver_ready(rows, driver):
        return None

    X = np.zeros((rows, len(model.features or ())))
    # One value (a River forecaster): the one-value call (forecast/onerow.py) links
    # the features', experts' and intervals' kernels.  The child compiles the
    # features' and this process the others, and the child compiles the call
    # around them only once this process has saved its part: nothing is compiled
    # twice (bench/README.md, "First run", stop 39).
    gate = compile_child.Gate() if rows == 1 else None

    def child_work():
        twin.net.compile_driver(rows, driver)   # first: the forward is the parent's
        if gate is not None:        # the one-value call around it
            twin.compile_one_row(("features",), slots, X)
            gate.wait(CHILD_LIMIT_S)
            twin.predict_learn_slots(slots, np.zeros(1), X)
    pid = compile_child.fork(child_work)
    if pid is None:
        if gate is not None:
            gate.release()
        return None
    try:
        interval = model.coverage is not None
        # First what the child needs once the update is done (about two thirds of
        # its time): the network's forward, then the forecast layer; the forecast
        # (the rest of the forward path) last.
        net = twin.net
        net.forward_live_trusted(slots, np.zeros((rows, net.n_inputs), dtype=net.numpy_dtype))
        ref = _twin(model, model.k1, model.k2, model.horizon, "reference")
        if gate is not None:
            twin.compile_one_row(("scoring",), slots, X)
            gate.release()
            ref.slots_of(ids, create=True)
        else:
            y = np.linspace(0.0, 1.0, 4 * rows)
            ref.predict_learn(ids * 4, y, np.zeros((4 * rows, X.shape[1])) if X.shape[1]
                              else None, interval=interval)       # the forecast layer
        ref.forecast(2, ids, interval=interval)
        twin.forecast(min(2, model.horizon), ids, interval=interval)
    except BaseException:
        compile_child.reap(pid, 0.0)
        raise
    finally:
        if gate is not None:
            gate.release()
    compile_child.reap(pid, CHILD_LIMIT_S)
    return time.perf_counter() - t0
