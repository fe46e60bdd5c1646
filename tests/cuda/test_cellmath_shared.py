"""The CUDA kernels compute the cell with backends/cellmath.py, the CPU
kernels' own scalar cell math, not a copy of it: the layer functions import
cellmath's functions, the kernels are compiled from cellmath's code objects,
and an error planted in cellmath's source (forward, backward, or ``sigmoid``
reached only through the cell functions) is caught by the comparison of the
CUDA backend against the NumPy reference."""
import inspect
import math

import numpy as np
import pytest
from numba import njit

from test_cuda_backend import F64_TOL, data, make, max_diff

from streamlstm.backends import cellmath
from streamlstm.backends.cuda import kernels, layers


def test_layers_import_cellmath_and_kernels_compile_its_code():
    for name in ("lstm_cell", "lstm_cell_backward_c2", "gru_cell", "gru_cell_backward"):
        assert getattr(layers, name) is getattr(cellmath, name), name
    twins = kernels.cellmath_twins()
    assert set(twins) >= {"sigmoid", "lstm_cell", "lstm_cell_backward", "gru_cell",
                          "gru_cell_backward"}
    for name, twin in twins.items():
        assert twin.py_func.__code__ is getattr(cellmath, name).py_func.__code__, name


def _mutant(name, old, new):
    """cellmath's function ``name`` with the one occurrence of ``old`` in its
    source replaced by ``new``, as an @njit function like the original."""
    src = inspect.getsource(getattr(cellmath, name).py_func)
    assert src.count(old) == 1, (name, old)
    src = "\n".join(line for line in src.replace(old, new).splitlines()
                    if not line.startswith("@"))
    space = {"math": math}
    exec(compile(src, f"<mutant of cellmath.{name}>", "exec"), space)  # noqa: S102
    return njit(space[name])


def _learn(cell):
    """Reference and CUDA twins after 8 learning steps (4 updates)."""
    U, Y = data(8, 3, seed=31)
    ref = make("reference", cell=cell, k1=2, k2=3)
    gpu = make("cuda", cell=cell, k1=2, k2=3)
    ref.run(U, Y)
    gpu.run(U, Y)
    assert int(gpu.arrays()["opt_step"][0]) == 4
    return max(max_diff(ref.arrays(), gpu.arrays()).values())


@pytest.fixture
def fresh_kernels():
    """Kernels compiled anew for this test, and again for the tests after it."""
    kernels.kernels.cache_clear()
    yield
    kernels.kernels.cache_clear()


@pytest.mark.parametrize("cell,name,old,new", [
    ("lstm", "lstm_cell_backward", "dc2 + dh2 * o * (one - tc * tc)",
     "dc2 + dh2 * o * (one + tc * tc)"),
    ("gru", "gru_cell_backward", "r * (one - r)", "r * (one + r)"),
    ("lstm", "lstm_cell", "f * c + i * g", "f * c - i * g"),
    ("gru", "sigmoid", "one + math.exp(-x)", "one + math.exp(x)"),
])
def test_planted_cellmath_error_is_caught_against_the_reference(monkeypatch, fresh_kernels,
                                                                  cell, name, old, new):
    assert _learn(cell) <= F64_TOL                  # as shipped: cuda = reference
    kernels.kernels.cache_clear()
    monkeypatch.setattr(cellmath, name, _mutant(name, old, new))
    assert _learn(cell) > 1e3 * F64_TOL             # the CUDA kernels computed the error
