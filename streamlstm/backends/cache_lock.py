"""Numba's cache files, saved and loaded under a lock between processes.

Numba (0.60-0.68) saves a compiled function to its on-disk cache in three
unlocked steps (``IndexDataCacheFile.save``): read the function's index, give
a new signature the lowest free data-file number, write the index, then the
data file.  Two processes that save two signatures of one function at the same
moment both take number N: the index one of them writes last maps its key to
N while N holds whichever data was written last - the other signature's code,
loaded from then on for this key by every process (wrong numbers or a crash,
until the cache is cleared; numba/numba issues 4807 and 10128).  And a
process that dies between its index and its data write leaves a fresh index
pointing at a data file from older sources.

A first run here compiles in two processes at once (forecast/warm.py), and
runs of the CLI or Kafka workers start side by side, so this module replaces
``save`` and ``load`` for every cache file: each holds an exclusive
``flock`` on one lock file in the cache directory, and ``save`` writes the data
before the index (an index never names data that is not there yet).  Loads,
once per function per process, wait for a save at most.  Where the directory
cannot hold the lock file (read-only) or ``fcntl`` is missing (Windows),
Numba's own steps run unlocked, as before.
"""
import contextlib
import itertools
import os

try:
    import fcntl
except ImportError:         # not POSIX: Numba's steps as they are
    fcntl = None

# IndexDataCacheFile is Numba's index + data file pair of one cached function;
# its helpers (_load_index, _save_index, _save_data, _data_name, _cache_path)
# are the ones its own save/load use.
from numba.core.caching import IndexDataCacheFile

LOCK_NAME = "streamlstm-cache.lock"
_NUMBA_SAVE, _NUMBA_LOAD = IndexDataCacheFile.save, IndexDataCacheFile.load


@contextlib.contextmanager
def locked(directory):
    """Hold the cache directory's lock (module doc) inside the block; no lock
    where the directory cannot hold one."""
    try:
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        fd = None
    try:
        if fd is not None and fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)            # closing releases the lock


def save(self, key, data):
    """``IndexDataCacheFile.save`` under the lock, the data file before the index."""
    if not hasattr(self, "_cache_path"):
        return _NUMBA_SAVE(self, key, data)
    with locked(self._cache_path):
        overloads = self._load_index()
        data_name = overloads.get(key)
        if data_name is None:
            existing = set(overloads.values())
            data_name = next(name for name in map(self._data_name, itertools.count(1))
                             if name not in existing)
        self._save_data(data_name, data)
        if overloads.get(key) != data_name:
            overloads[key] = data_name
            self._save_index(overloads)


def load(self, key):
    """``IndexDataCacheFile.load`` under the lock."""
    if not hasattr(self, "_cache_path"):
        return _NUMBA_LOAD(self, key)
    with locked(self._cache_path):
        overloads = self._load_index()
        data_name = overloads.get(key)
        if data_name is None:
            return None
        try:
            return self._load_data(data_name)
        except OSError:         # removed while the index still names it
            return None


_HELPERS = ("_load_index", "_save_index", "_load_data", "_save_data", "_data_name")
if all(hasattr(IndexDataCacheFile, h) for h in _HELPERS):     # else Numba's own
    IndexDataCacheFile.save = save
    IndexDataCacheFile.load = load
