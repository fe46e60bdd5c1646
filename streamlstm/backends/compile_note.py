"""One line on stderr while Numba compiles the package's kernels (issue 13).

A model's first call in a fresh environment compiles its kernels - about twenty
seconds on a small machine (bench/compile_time.py) - and then loads them from
Numba's on-disk cache in about a second.  So that a first ``learn_one`` does
not look hung, a listener on Numba's ``numba:compile`` events (which fire only
for real compiles, never for cache loads) says, once the compile of a
streamlstm function has taken ``AFTER`` seconds::

    streamlstm: compiling kernels (first run only: Numba caches them; `streamlstm warmup` compiles ahead) ...
    streamlstm: ... done in 16.3 s

(and for a later slow compile in the same process, "compiling more kernels").

Nothing is said for a fast compile nor on the per-call path (no cost there:
the listener runs only while Numba compiles).  ``quiet()`` silences it where
the caller says the same in its own words (the CLI's progress output).
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time

from numba.core import event

AFTER = 2.0
MESSAGE = ("streamlstm: compiling kernels (first run only: Numba caches them; "
           "`streamlstm warmup` compiles ahead) ...")
MORE = "streamlstm: compiling more kernels (first run only) ..."


class _Note(event.Listener):
    def __init__(self):
        self.depth = 0          # nested compiles (callees compile inside their caller)
        self.quiet = 0
        self.timer = None
        self.t0 = 0.0
        self.said = threading.Event()
        self.first = True

    def _ours(self, ev):
        return ev.data["dispatcher"].py_func.__module__.startswith("streamlstm.")

    def on_start(self, ev):
        if self.depth == 0:
            if not self._ours(ev) or self.quiet:
                return
            self.t0 = time.perf_counter()
            self.said.clear()
            self.timer = threading.Timer(AFTER, self._say)
            self.timer.daemon = True
            self.timer.start()
        self.depth += 1

    def on_end(self, ev):
        if self.depth == 0:
            return
        self.depth -= 1
        if self.depth == 0:
            self.timer.cancel()
            self.timer.join()           # a note being printed finishes first
            if self.said.is_set():
                print(f"streamlstm: ... done in {time.perf_counter() - self.t0:.1f} s",
                      file=sys.stderr, flush=True)

    def _say(self):
        self.said.set()
        print(MESSAGE if self.first else MORE, file=sys.stderr, flush=True)
        self.first = False


_NOTE = _Note()
event.register("numba:compile", _NOTE)


@contextlib.contextmanager
def quiet():
    """No note inside this block (its caller announces the compile itself)."""
    _NOTE.quiet += 1
    try:
        yield
    finally:
        _NOTE.quiet -= 1
