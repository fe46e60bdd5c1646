"""Kernel argument tuples kept from call to call, for the per-row path.

A state object (``SeriesFeatures``, ``ExpertState``, ``IntervalState``) hands its
arrays and settings to the compiled one-row calls (``onerow.py``) as a tuple, on
every arriving value.  Made afresh, each tuple costs 0.1-0.4 us of Python per
call (dict lookups, attribute reads, the tuple); kept, one attribute read.  So
the objects keep them, and whatever replaces one of their arrays (growth, a
wider horizon, new feature columns, a restore) calls ``forget_args()``.  A kept
tuple is never pickled (it holds the same arrays): it is made again on first use.
"""
from __future__ import annotations


class KeptArgs:
    """Mixin: ``_KEPT`` names the attributes holding kept tuples (None: make it)."""

    _KEPT: tuple = ()

    def forget_args(self):
        """Drop the kept tuples (an array was replaced: they hold the old one)."""
        for name in self._KEPT:
            setattr(self, name, None)

    def __getstate__(self):
        state = dict(self.__dict__)
        for name in self._KEPT:
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.forget_args()
