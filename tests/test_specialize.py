"""A compiled helper compiles once per argument types, never once per constant
that a call site passes (streamlstm/backends/specialize.py)."""
import ast
import pathlib

import numba
import numpy as np
import pytest

from streamlstm.backends import specialize

PACKAGE = pathlib.Path(specialize.__file__).resolve().parent.parent


def _helper(a, k, flag):
    if flag:
        return a[k] + 1.0
    return a[k] - 1.0


def _callers(helper):
    @numba.njit
    def zero_true(a):
        return helper(a, 0, True)

    @numba.njit
    def one_false(a):
        return helper(a, 1, False)

    @numba.njit
    def runtime(a, k, flag):
        return helper(a, k, flag)
    return zero_true, one_false, runtime


def test_constants_at_call_sites_share_one_specialization():
    helper = specialize.njit()(_helper)
    a = np.array([1.0, 2.0])
    zero_true, one_false, runtime = _callers(helper)
    assert (zero_true(a), one_false(a), runtime(a, 1, True)) == (2.0, 1.0, 3.0)
    assert len(helper.signatures) == 1
    assert all(not isinstance(t, numba.types.Literal) for t in helper.signatures[0])


def test_numba_default_compiles_per_constant():
    """The control: plain numba.njit compiles the helper for each constant
    combination - what specialize.njit exists to avoid."""
    helper = numba.njit(_helper)
    a = np.array([1.0, 2.0])
    zero_true, one_false, runtime = _callers(helper)
    assert (zero_true(a), one_false(a), runtime(a, 1, True)) == (2.0, 1.0, 3.0)
    assert len(helper.signatures) == 3


def test_none_switches_still_prune():
    """A None argument keeps its own type, so ``arg is None`` still selects code
    at compile time (the kernels' n_threads/fuse switches)."""
    @specialize.njit()
    def pick(x, switch):
        if switch is None:
            return x
        return x + switch      # would not type with switch=None if not pruned

    @numba.njit
    def caller(x):
        return pick(x, None) + pick(x, 1.5)

    assert caller(1.0) == 3.5
    assert len(pick.signatures) == 2


def test_every_compiled_function_of_the_package_uses_it():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "specialize.py" or "cuda" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "numba" and \
                    any(a.name in ("njit", "jit") for a in node.names):
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports numba's njit")
            if isinstance(node, ast.Attribute) and node.attr in ("njit", "jit") and \
                    isinstance(node.value, ast.Name) and node.value.id == "numba":
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} uses numba.{node.attr}")
    assert not bad, "use streamlstm.backends.specialize.njit:\n" + "\n".join(bad)


def test_only_entry_points_get_a_python_wrapper():
    """The CPU workers are compiled INNER (no CPython/C wrapper built per
    specialization); only the driver and the forward, which Python calls, are not."""
    import importlib

    from numba.core.registry import CPUDispatcher
    entries = {"kernels.step_calls", "forward.forward_rows"}
    seen = set()
    for mod in ("kernels", "forward", "update", "backward", "fused", "matvec", "optimizer"):
        m = importlib.import_module(f"streamlstm.backends.cpu.{mod}")
        for name, d in vars(m).items():
            if isinstance(d, CPUDispatcher) and d.py_func.__module__ == m.__name__:
                inner = d.targetoptions.get("no_cpython_wrapper", False)
                assert inner == (f"{mod}.{name}" not in entries), f"{mod}.{name}"
                seen.add(f"{mod}.{name}")
    assert entries < seen and len(seen) > 30


def test_an_inner_function_called_from_python_says_so():
    @specialize.njit(**specialize.INNER)
    def inner(x):
        return x + 1

    @specialize.njit()
    def entry(x):
        return inner(x) * 2

    assert entry(1) == 4
    with pytest.raises(TypeError, match="compiled callers only"):
        inner(1)
    with pytest.raises(TypeError, match="compiled callers only"):
        inner(1.5)                   # nor one that is not compiled yet
    assert entry(2.0) == 6.0
