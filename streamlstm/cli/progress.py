"""Progress on stderr through tqdm: rows done, rows/s, series, ETA.

``Progress`` has the small interface the jobs call (``start``, ``update``,
``finish``; ``break_line`` before a message) and draws nothing unless enabled
(``--progress``, or by default when stderr is a terminal).
"""
from __future__ import annotations

import sys

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

    def break_line(self):
        """Close the bar (its last state stays on screen) before a message."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
