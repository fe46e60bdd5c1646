"""What each compiled function of the package is compiled as: one
specialization per argument *types*, never one per constant (``njit``), and no
Python entry point for what only compiled code calls (``INNER``).

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

``INNER`` is for functions that only compiled code calls (the CPU workers, the
forecast layer's helpers): Numba then builds no CPython wrapper (the code that
unboxes each argument of a call from Python) and no C wrapper for them - per
specialization, lowered, optimized and emitted for nothing, about a tenth of a
first run.  Calling such a function from Python raises a TypeError (Numba itself
would call a null pointer: ``compiled_callers_only``), and their own code is
never emitted, only linked into callers (link_only.py); the entry points
(``kernels.step_calls``, ``forward.forward_rows``, the forecast layer's kernels
without a leading underscore) keep theirs.
"""
import numba
from numba.core import types

# every cached function's files are saved and loaded under a lock (its module doc)
from streamlstm.backends import cache_lock  # noqa: F401
# INNER functions are linked into their callers, never emitted on their own (its module doc)
from streamlstm.backends import link_only


INNER = dict(no_cpython_wrapper=True, no_cfunc_wrapper=True)


def njit(**options):
    """``numba.njit(**options)``, compiled once per unliteral argument types."""
    def decorate(py_func):
        dispatcher = plain_constants(numba.njit(**options)(py_func))
        if options.get("no_cpython_wrapper"):
            compiled_callers_only(dispatcher)
            link_only.register(py_func)
        else:
            link_only.register_entry(py_func)
        return dispatcher
    return decorate


def compiled_callers_only(dispatcher):
    """Make a call of INNER ``dispatcher`` from Python raise a TypeError (it has no
    entry point for Python: Numba would call a null pointer).  Its compiled
    specializations stay out of the table Python calls look up, so every such
    call reaches ``_compile_for_args``, which refuses.  Returns it."""
    def add_overload(cres):
        dispatcher.overloads[tuple(cres.signature.args)] = cres

    def refuse(*args, **kws):
        raise TypeError(f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__} "
                        f"is compiled for compiled callers only (specialize.INNER): call it "
                        f"from an @njit function")

    # Numba 0.68: Dispatcher.add_overload puts a specialization in the C-level
    # table (_insert) and in .overloads, which is all that compiled callers
    # use; the C dispatcher calls _compile_for_args when the table has no match.
    dispatcher.add_overload = add_overload
    dispatcher._compile_for_args = refuse
    return dispatcher


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
