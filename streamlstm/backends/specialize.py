"""One compiled specialization per argument *types*, never one per constant.

Inside compiled code Numba types a constant argument by its value - ``mv1(act,
0, x, ..., 2)`` passes ``Literal[int](0)`` and ``Literal[int](2)``, a ``True``
passes ``Literal[bool](True)`` - and a dispatcher called with literal types
compiles a specialization for exactly those values.  So every distinct
combination of constants at the call sites of a helper compiled (and emitted,
and linked into each caller) the helper again: the matrix-vector workers four
times each, the gate functions and ``forward_rows`` twice.  That was about a
fifth of a first run's compile time (bench/compile_time.py) and bought nothing
at run time: the branches a constant selects are outside the inner loops.

``njit`` here is ``numba.njit`` whose dispatcher drops the literal part of the
argument types before it picks or compiles a specialization, so a helper
compiles once per array/scalar types.  A ``None`` argument keeps its own type
(``none`` is not a literal): the kernels' compile-time switches (``n_threads``
None, ``fuse`` None) work as before.  Every compiled function of the package
uses it, through ``backends.cache.cached_njit`` or directly.
"""
import numba
from numba.core import types


def njit(**options):
    """``numba.njit(**options)``, compiled once per unliteral argument types."""
    def decorate(py_func):
        return plain_constants(numba.njit(**options)(py_func))
    return decorate


def plain_constants(dispatcher):
    """Make ``dispatcher`` type constant arguments of callers as their plain types
    (module doc).  Returns it."""
    pick = dispatcher.get_call_template

    def get_call_template(args, kws):
        return pick(tuple(types.unliteral(a) for a in args),
                    {k: types.unliteral(v) for k, v in kws.items()})

    # Numba's typing of a call to a dispatcher goes through this method
    # (numba.core.types.Dispatcher.get_call_type, Numba 0.68).
    dispatcher.get_call_template = get_call_template
    return dispatcher
