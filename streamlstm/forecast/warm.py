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
splits the work between two processes: a forked child compiles the network's
driver (``step_calls`` with the update, the larger half) and saves it to the
cache, while this process compiles the forward and the forecast layer; the
first real calls then load both halves and compile what is left.
``compile_twins(every=True)`` (``streamlstm warmup``) splits the same way, by
window shape.  Set ``STREAMLSTM_COMPILE_PROCESSES=1`` to keep it to one process.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings

import numpy as np

from streamlstm.backends import compile_note
from streamlstm.backends.cache import has_index
from streamlstm.backends.cpu.launcher import PARALLEL_ROWS
from streamlstm.backends.cpu.update import update_due
from streamlstm.forecast.intervals import CoverageTally

#: ``STREAMLSTM_COMPILE_PROCESSES=1`` in the environment: a first run and a
#: warmup compile in one process (``_can_fork`` says no).
PROCESSES_VAR = "STREAMLSTM_COMPILE_PROCESSES"
#: the longest ``compile_in_two`` and a warmup wait for their child once their own
#: half is done (the child's half takes about ten and fifty seconds on a laptop
#: core); a warmup then compiles a half its child did not finish itself.
CHILD_LIMIT_S = 120.0


def compile_twins(model, every=False):
    """Compile (or load from Numba's cache) the kernels ``model``'s calls use:
    its k1 = k2 choice and horizon, for calls of several series (the serial
    driver with four-series blocks; a call of at most three rows, or of 64 or
    more, compiles its own specialization when it first comes).  ``every=True``
    compiles every driver specialization, for horizons 1 and 2, and the one-row
    calls of ``forecast/onerow.py`` (a River forecaster's path) at both; in two
    processes where it can (``_can_fork``): a forked child compiles the fused
    window's (k1 = k2) half while this process compiles the other.  Nothing of
    ``model`` changes.  Returns the seconds it took (the compile time on a cold
    cache, milliseconds on a warm one)."""
    t0 = time.perf_counter()
    shapes = [(1, 2), (2, 2)] if every else [(2, 2) if model.k1 == model.k2 else (1, 2)]
    child = None
    if not every:
        compile_in_two(model, 6)
    elif _can_fork(model):
        child = _fork(lambda: _compile_shapes(model, shapes[1:], every))
    try:
        _compile_shapes(model, shapes[:1] if child else shapes, every)
    except BaseException:
        if child:
            _reap(child, 0.0)
        raise
    if child and not _reap(child, CHILD_LIMIT_S):
        _compile_shapes(model, shapes[1:], every)       # the child failed: its half here
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
    processes (module doc): a forked child compiles the network's driver and
    update (and, for one row, a River forecaster's one-value call: it runs one
    on its copy of a twin) and saves them to Numba's cache while this process
    compiles the forward (a forecast of a CPU twin) and the forecast layer (a
    twin on the NumPy reference backend: features, experts, intervals); then it
    waits for the child (at most CHILD_LIMIT_S seconds).  The model's first calls load
    what the two compiled and compile the rest (the one-row calls).  Nothing of
    ``model`` changes.

    Returns the seconds it took, or None where it does not apply: a later run
    (the update is in the cache or already compiled here), or where
    ``_can_fork`` says no.  A child that fails costs only time: this process
    compiles what it missed."""
    if not _can_fork(model) or update_due.overloads or has_index(update_due):
        return None
    t0 = time.perf_counter()
    twin = _twin(model, model.k1, model.k2, model.horizon, "cpu")
    ids = [f"s{i}" for i in range(rows)]
    slots = twin.slots_of(ids, create=True)

    def child_work():
        twin.net.compile_driver(rows)
        if rows == 1:       # a River forecaster's one-value call (forecast/onerow.py)
            twin.predict_learn_slots(slots, np.zeros(1),
                                     np.zeros((1, len(model.features or ()))))
    pid = _fork(child_work)
    if pid is None:
        return None
    try:
        interval = model.coverage is not None
        twin.forecast(min(2, model.horizon), ids, interval=interval)   # the forward
        ref = _twin(model, model.k1, model.k2, model.horizon, "reference")
        F = len(model.features or ())
        y = np.linspace(0.0, 1.0, 4 * rows)
        ref.predict_learn(ids * 4, y, np.zeros((4 * rows, F)) if F else None,
                          interval=interval)                  # the forecast layer
        ref.forecast(2, ids, interval=interval)
    except BaseException:
        _reap(pid, 0.0)
        raise
    _reap(pid, CHILD_LIMIT_S)
    return time.perf_counter() - t0


def _can_fork(model):
    """Whether compiling ``model``'s kernels may take a second process: not with
    ``STREAMLSTM_COMPILE_PROCESSES=1``, a backend other than the CPU, no ``fork``
    (not Linux), or other Python threads running besides the timers of
    streamlstm's own "compiling ..." notes (a forked child has none of them, and
    a lock one of them holds would stay held there)."""
    return (model.backend == "cpu" and sys.platform.startswith("linux")
            and not _other_threads() and os.environ.get(PROCESSES_VAR, "").strip() != "1")


def _fork(work):
    """Run ``work()`` in a forked child, quiet, that then leaves at once (no atexit
    handlers, none of this process's code after the fork); returns its pid, or
    None where ``fork`` fails.  What the child compiles reaches this process
    only through Numba's cache."""
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # fork with threads (3.12+)
        try:
            pid = os.fork()
        except OSError:
            return None
    if pid:
        return pid
    status = 1
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):     # not the parent's handlers:
            signal.signal(sig, signal.SIG_DFL)          # a Ctrl-C just ends the child
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        with compile_note.quiet():
            work()
        status = 0
    finally:
        os._exit(status)


def _other_threads():
    """Whether threads run here besides the main one and ``threading.Timer``s (the
    CLI's and compile_note's notes: they wait, then print a line)."""
    return any(t is not threading.main_thread() and not isinstance(t, threading.Timer)
               for t in threading.enumerate())


def _reap(pid, limit_s):
    """Wait for the child ``pid`` at most ``limit_s`` seconds, then kill it.
    Returns whether it finished its work (exit status 0)."""
    deadline = time.monotonic() + limit_s
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(0.02)
    return os.waitstatus_to_exitcode(done[1]) == 0
