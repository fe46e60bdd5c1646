"""Numba's on-disk cache for the compiled backends, keyed on ALL their sources.

``numba.njit(cache=True)`` stamps a function's cache entry with a hash of its
own source file (and of its own bytecode) only.  But a compiled kernel also
holds code from other files: the ``@njit`` functions it calls (linked in and
inlined: cellmath's cell functions, the CPU workers of other modules), the
SIMD intrinsics of cpu/simd.py and the constants it reads (config.py's
``cfg`` indices, core/optim.py's ``H_*``).  After an edit to one of those,
Numba would still load the kernel compiled from the old code - silently
wrong numbers, and one of the "bit for bit" checks lying about the code under
test.

So every backend function is compiled with ``cached_njit``, and this module
puts ``BackendSourcesLocator`` first in Numba's list of cache locators: for a
function defined under ``streamlstm/backends`` it keeps Numba's own choice of
cache directory (``NUMBA_CACHE_DIR``, ``__pycache__`` or the user-wide one)
but stamps the entry with a hash of every file in ``source_files()``.  Any
edit to any of them recompiles every backend function once; nothing stale can
load.  (Numba reads its locator list only while it is not overridden by the
``NUMBA_CACHE_LOCATOR_CLASSES`` environment variable: leave that unset.)

A cached function outside backends/ that calls compiled functions of other
files (``forecast/combined.py``) declares them with ``stamp_with`` before its
``@njit(cache=True)``: its entries are then stamped with a hash of those files.
"""
import functools
import hashlib
import os
import pathlib

# _CacheLocator and CacheImpl._locator_classes are Numba's (0.68) extension
# point for cache locators: the base class of its own locators and the list
# it tries, in order, for each cached function; FunctionCache is an @njit
# function's cache and CompileResultCacheImpl names its files (is_cached).
from numba.core.caching import CacheImpl, CompileResultCacheImpl, FunctionCache, _CacheLocator

from streamlstm.backends.specialize import njit

_BACKENDS = pathlib.Path(__file__).resolve().parent
_PACKAGE = _BACKENDS.parent


def source_files():
    """Every source file compiled backend code can depend on: all modules of
    streamlstm/backends and core/optim.py (whose ``H_*`` indices the optimizer
    kernels compile in as constants)."""
    return sorted(_BACKENDS.rglob("*.py")) + [_PACKAGE / "core" / "optim.py"]


def sources_stamp() -> str:
    """A hash of the names and contents of ``source_files()``."""
    return _stamp_of(source_files())


@functools.lru_cache(maxsize=4)
def _hash_files(stats):
    # Keyed on (path, mtime, size) like Numba's own source hash, so that a file
    # edited while the process runs is hashed again.
    h = hashlib.sha256()
    for path, _mtime, _size in stats:
        p = pathlib.Path(path)
        try:
            name = str(p.relative_to(_PACKAGE))
        except ValueError:
            name = p.name
        h.update(name.encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()


# Defining file (resolved, str) -> the source files its cached functions are stamped with.
_STAMPED = {}


def stamp_with(py_file, files):
    """Stamp the cache entries of the ``@njit(cache=True)`` functions defined in
    ``py_file`` (outside backends/, declared after this call) with a hash of
    ``files``, the sources they compile in, instead of ``py_file`` alone."""
    _STAMPED[str(pathlib.Path(py_file).resolve())] = tuple(
        sorted(pathlib.Path(f).resolve() for f in files))


def _stamp_of(files):
    return _hash_files(tuple((str(p), st.st_mtime_ns, st.st_size)
                             for p, st in ((p, p.stat()) for p in files)))


def _stamped_files(py_file):
    """The files whose hash stamps ``py_file``'s cached functions, or None for
    Numba's own stamp."""
    if _is_backend_source(py_file):
        return source_files()
    return _STAMPED.get(str(pathlib.Path(py_file).resolve()))


def _is_backend_source(py_file):
    try:
        pathlib.Path(py_file).resolve().relative_to(_BACKENDS)
    except ValueError:
        return False
    return True


class BackendSourcesLocator(_CacheLocator):
    """Numba's own locator for the function (the first that accepts it), with
    the source stamp of all backend sources (or of the files given to
    ``stamp_with``) instead of the function's file."""

    def __init__(self, inner, files):
        self._inner = inner
        self._files = files

    def ensure_cache_path(self):
        self._inner.ensure_cache_path()

    def get_cache_path(self):
        return self._inner.get_cache_path()

    def get_source_stamp(self):
        return _stamp_of(self._files)

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @property
    def _py_file(self):
        # Numba names the source file from its locator's _py_file when it warns
        # that a function cannot be cached (numba/core/caching.py, check_cachable)
        return self._inner._py_file

    @classmethod
    def from_function(cls, py_func, py_file):
        files = _stamped_files(py_file)
        if files is None:
            return None                 # not ours: Numba's locators as usual
        for numba_locator in _NUMBA_LOCATORS:
            inner = numba_locator.from_function(py_func, py_file)
            if inner is not None:
                return cls(inner, files)
        return None


_NUMBA_LOCATORS = tuple(c for c in CacheImpl._locator_classes if c is not BackendSourcesLocator)
CacheImpl._locator_classes = [BackendSourcesLocator, *_NUMBA_LOCATORS]


def is_cached(dispatcher, types):
    """Whether Numba's on-disk cache holds ``dispatcher``'s function compiled for
    the argument ``types`` (a tuple of Numba types, as ``dispatcher.compile``
    takes them) from today's sources.  Reads the cache's index only: loading the
    code would take a quarter of a second for the driver (forecast/warm.py asks
    this before its first calls).  Numba has no public call for it; this is the
    lookup ``Cache.load_overload`` makes (its ``_index_key`` and index file, Numba
    0.60-0.68).  Should those change, it says whether the function has an index
    at all (a run that compiled anything of it counts as cached)."""
    cache = FunctionCache(dispatcher.py_func)
    try:
        key = cache._index_key(types, dispatcher.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except (AttributeError, TypeError):
        impl = CompileResultCacheImpl(dispatcher.py_func)
        return os.path.exists(os.path.join(impl.locator.get_cache_path(),
                                           impl.filename_base + ".nbi"))


def cached_njit(**options):
    """``numba.njit(cache=True, **options)`` for backend functions: cached on
    disk, the cache entry stamped with all backend sources (module doc), one
    specialization per argument types (specialize.py)."""
    return njit(cache=True, **options)
