"""Progress on stderr through tqdm: rows done, rows/s, series, ETA.

``Progress`` has the small interface the jobs call (``start``, ``update``,
``finish``; ``break_line`` before a message; ``note_if_slow`` around a step that
may take a while, such as compiling) and draws nothing unless enabled
(``--progress``, or by default when stderr is a terminal).  The compile notice
is said whether or not the bar is drawn: a minute of silence looks like a hang.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time

import click
from tqdm import tqdm


class Progress:
    """One tqdm bar per phase (replay, live source, a Kafka topic)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self._bar = None

    def start(self, label, total, done=0):
        self.break_line()
        if self.enabled:
            self._bar = tqdm(total=total or None, initial=done, desc=label, unit=" rows",
                             unit_scale=True, file=sys.stderr, dynamic_ncols=True,
                             mininterval=0.1)

    def update(self, rows, n_series):
        bar = self._bar
        if bar is not None:
            bar.set_postfix_str(f"{n_series:,} series", refresh=False)
            bar.update(rows - bar.n)

    def finish(self):
        self.break_line()

    @contextlib.contextmanager
    def note_if_slow(self, message, after=0.5):
        """Say ``message`` on stderr if the block runs longer than ``after`` seconds
        (then also how long it took); a fast block says nothing."""
        t0 = time.perf_counter()
        said = threading.Event()

        def say():
            said.set()
            click.echo(message + " ...", err=True)
        timer = threading.Timer(after, say)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            if said.is_set():
                click.echo(f"... done in {time.perf_counter() - t0:.1f} s", err=True)

    def break_line(self):
        """Close the bar (its last state stays on screen) before a message."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
