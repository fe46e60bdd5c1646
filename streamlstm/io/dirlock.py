"""One run per checkpoint directory: an advisory lock (``flock``) on ``DIR/.lock``.

Two runs writing the same checkpoint would tear each other's parts and
checkpoint apart; the second is refused at once with the holder's PID.  The lock
is the operating system's, so it goes away with the process that held it - a run
killed with ``kill -9`` never leaves a stale lock behind.
"""
from __future__ import annotations

import errno
import os

from streamlstm.stream.policy import DataError

LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:       # Windows: no flock; runs there are not protected
    fcntl = None


class DirectoryInUse(DataError):
    """Another process holds the directory's lock."""


class DirectoryLock:
    """``with DirectoryLock(dir):`` - exclusive use of ``dir`` by this process."""

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, LOCK_FILE)
        self._fd = None

    def __enter__(self):
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise DirectoryInUse(
                    f"{self.directory}: another streamlstm run is using this checkpoint "
                    f"directory (PID {holder}); wait for it to finish or stop it, or pass "
                    f"another --checkpoint directory", origin=self.directory) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)          # closing the descriptor releases the flock
            self._fd = None
