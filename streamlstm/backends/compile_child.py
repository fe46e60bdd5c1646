"""A second process for Numba's compiles: fork a child that compiles some
kernels into Numba's on-disk cache while this process compiles others
(forecast/warm.py decides what each does).  Numba compiles on one core; a first
run on two cores takes about 60% of the time this way.

What the child compiles reaches this process only through the cache (whose
files are saved under a lock: cache_lock.py).  The child is quiet (its stdout
and stderr go to /dev/null), runs none of this process's code after the fork
(it leaves with ``os._exit``: no atexit handlers, no buffers flushed twice),
takes the default action on SIGINT and SIGTERM (a Ctrl-C ends it; the
application's handlers never run in it) and dies with its parent.  A child
that fails costs only time: the caller compiles what it missed.
"""
import ctypes
import gc
import os
import select
import signal
import sys
import threading
import time
import warnings

import numba

from streamlstm.backends import compile_note

#: ``STREAMLSTM_COMPILE_PROCESSES=1`` in the environment: compile in one process.
PROCESSES_VAR = "STREAMLSTM_COMPILE_PROCESSES"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1       # linux/prctl.h


def can_fork(parallel=False):
    """Whether a compile may take a second process here: Linux (``fork``), at
    least two cores for this process, ``STREAMLSTM_COMPILE_PROCESSES`` not 1, no
    Python threads besides the main one and ``threading.Timer``s (the "compiling
    ..." notes of the CLI and compile_note: they wait, then print a line; a
    forked child has none of the threads, and a lock one of them holds would stay
    held there).  ``parallel``: the child will run parallel kernels, which GNU
    OpenMP refuses in a child of a process that already ran some (so not once
    Numba's threading layer has started here)."""
    if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2:
        return False
    if os.environ.get(PROCESSES_VAR, "").strip() == "1":
        return False
    if any(t is not threading.main_thread() and not isinstance(t, threading.Timer)
           for t in threading.enumerate()):
        return False
    if parallel:
        try:
            numba.threading_layer()         # raises until the layer has started
            return False
        except ValueError:
            pass
    return True


def fork(work):
    """Run ``work()`` in a forked child (module doc); returns its pid, or None
    where ``fork`` fails."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):     # None, closed, a broken pipe
            pass
    parent = os.getpid()
    # no SIGINT/SIGTERM between the fork and the child's own handlers
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # fork with threads (3.12+)
        try:
            pid = os.fork()
        except OSError:
            pid = None
    if pid != 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return pid
    status = 1
    try:
        gc.disable()        # no finalizer of the parent's objects runs here
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _die_with(parent)
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        with compile_note.quiet():
            work()
        status = 0
    finally:
        os._exit(status)


class Gate:
    """A one-way signal from this process to the child it forks next (a pipe, made
    before ``fork``): the child's ``wait`` returns once this process ``release``s
    it (or closes it by dying), or after ``limit_s`` seconds.  forecast/warm.py
    holds the child's last compile back until this process has saved to the
    cache what that compile would otherwise compile a second time."""

    def __init__(self):
        self._fds = os.pipe()

    def release(self):
        """In this process: let the child go on (closes this process's ends; again
        is a no-op)."""
        fds, self._fds = self._fds, ()
        for fd in fds:
            os.close(fd)

    def wait(self, limit_s):
        """In the child: wait for ``release`` (at most ``limit_s`` seconds)."""
        r, w = self._fds
        os.close(w)       # the child's copy: the end of file comes when the parent's closes
        select.select([r], [], [], limit_s)


def reap(pid, limit_s):
    """Wait for the child ``pid`` at most ``limit_s`` seconds, then kill it (also
    when the wait is interrupted).  Returns whether it finished its work (exit
    status 0); False too for a child reaped elsewhere (SIGCHLD ignored or handled
    by the application)."""
    deadline = time.monotonic() + limit_s
    try:
        while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        else:
            return os.waitstatus_to_exitcode(done[1]) == 0
    except ChildProcessError:
        return False
    except BaseException:
        _kill(pid)
        raise
    _kill(pid)
    return False


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _die_with(parent):
    """In the child: be killed when the parent dies (it would otherwise go on
    holding what it inherited, a checkpoint directory's lock say)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:      # the parent died before prctl
        os._exit(1)
