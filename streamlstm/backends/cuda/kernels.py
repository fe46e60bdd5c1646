"""Compiling the CUDA backend's kernels for one model (docs/spec.md sections 1,
3, 4).

The kernels are module-level functions of ``forward.py`` (the step),
``window.py`` (the window re-run, its backward and the window move),
``grad.py`` (the gradient) and ``optimizer.py`` (clip and update), built from
the layer functions of ``layers.py`` and the scalar cell math of
``backends/cellmath.py``; their arguments are the bundles of ``args.py``.

``build(dtype, cell, norm_lanes, rows_per_thread)`` gives each kernel as
``(python function, signature)`` for one model dtype and cell, and
``kernels(...)`` compiles them with ``cuda.jit`` (cached).  Each kernel is
built over a copy of its module's namespace (``rebind``) in which

* the compile-time constants of ``spec.py`` hold this model's values;
* the device functions of ``layers.py`` and of the module itself are their
  ``@njit(inline="always")`` versions (over such copies too): numba.cuda
  compiles an ``@njit`` function called in a kernel for the device, and
  inlines this one into the kernel at Numba IR level, so the kernel compiles
  as one function with its local arrays in registers (``cuda.jit(device=True,
  inline=...)`` would not do: Numba 0.68's built-in CUDA target drops that
  option).  The simulator runs them as plain Python;
* cellmath's functions are compiled from their own Python source, over a copy
  of cellmath's namespace (so ``lstm_cell`` calls the copy's ``sigmoid``), as
  ``@njit(inline="always")`` functions, likewise inlined: ``cellmath_twins``.
  Not cellmath's ``@njit`` objects themselves: numba.cuda compiles an ``@njit``
  function called in a kernel with that function's own options, and its CUDA
  target takes the CPU option ``fastmath={"contract"}`` as full fast math
  (approximate float32 ``expf``, ``tanhf`` and division), which would change
  float32 results.  The copies get the CUDA target's IEEE defaults.  Under the
  simulator they run as Numba CPU functions, as kernels' cell math always has.

On a GPU each kernel is compiled eagerly from its signature; under
``NUMBA_ENABLE_CUDASIM=1`` the same functions run in Numba's simulator.
"""
from __future__ import annotations

import types as pytypes
from functools import lru_cache

from numba import cuda, njit
from numba.core import config

from streamlstm.backends import cellmath
from streamlstm.backends.cuda import forward, grad, layers, optimizer, spec, window
from streamlstm.backends.cuda.args import params, signature

MODULES = (forward, window, grad, optimizer)
#: cellmath's functions, compiled for the device by ``cellmath_twins``.
CELLMATH = ("sigmoid", "lstm_cell", "lstm_cell_backward", "lstm_cell_backward_c2",
            "gru_cell", "gru_cell_backward")


def rebind(module, wraps: dict, bound: dict) -> dict:
    """The functions named in ``wraps`` of ``module``, over one copy of its
    namespace in which the names in ``bound`` it has hold ``bound``'s values,
    each wrapped by ``wraps[name](function)``; the copy binds every one of them
    to its wrapped self, so that they call each other's compiled versions.
    (Numba reads a function's globals when it compiles it: they are its
    compile-time constants, like a closure's cells.)"""
    space = dict(vars(module))
    space.update({k: v for k, v in bound.items() if k in space})
    out = {}
    for name, wrap in wraps.items():
        fn = getattr(space[name], "py_func", space[name])
        copy = pytypes.FunctionType(fn.__code__, space, name, fn.__defaults__, fn.__closure__)
        copy.__qualname__, copy.__doc__ = fn.__qualname__, fn.__doc__
        out[name] = space[name] = wrap(copy)
    return out


def cellmath_twins() -> dict:
    """cellmath's functions as the kernels call them (module docstring): name ->
    ``@njit(inline="always")`` function compiled from cellmath's source."""
    return rebind(cellmath, dict.fromkeys(CELLMATH, njit(inline="always")), {})


def device(fn):
    """A device function (module docstring)."""
    return fn if config.ENABLE_CUDASIM else njit(inline="always")(fn)


def build(dtype: str, cell: str, norm_lanes: int, rows_per_thread: int) -> dict:
    """Kernels for one dtype ('float32'/'float64') and cell ('lstm'/'gru'):
    ``{name: (python function, signature)}``.  ``rows_per_thread`` (R) rows
    share each weight load in the matrix-vector products; ``rows_per_block``
    passed to the row-tile kernels must be a multiple of R."""
    bound = spec.constants(dtype, cell, rows_per_thread, norm_lanes)
    bound.update(cellmath_twins())
    bound.update(rebind(layers, dict.fromkeys(layers.DEVICE_FUNCTIONS, device), bound))
    out = {}
    for module in MODULES:
        wraps = {**dict.fromkeys(module.DEVICE_FUNCTIONS, device),
                 **dict.fromkeys(module.KERNELS, lambda fn: fn)}
        built = rebind(module, wraps, bound)
        out.update({name: (built[name], signature(built[name], dtype))
                    for name in module.KERNELS})
    return out


class KernelSet:
    """The compiled kernels of one model; ``launch`` takes arguments by name."""

    def __init__(self, built: dict):
        self.compiled = {name: cuda.jit(sig)(fn) for name, (fn, sig) in built.items()}
        self.params = {name: params(fn) for name, (fn, _) in built.items()}

    def launch(self, name, grid, block, **args):
        names = self.params[name]
        if len(args) != len(names) or any(n not in args for n in names):
            raise TypeError(f"{name} takes {', '.join(names)}; got {', '.join(args)}")
        self.compiled[name][grid, block](*(args[n] for n in names))


@lru_cache(maxsize=None)
def kernels(dtype: str, cell: str, norm_lanes: int, rows_per_thread: int) -> KernelSet:
    """The compiled kernels for one dtype and cell (``build``)."""
    return KernelSet(build(dtype, cell, norm_lanes, rows_per_thread))
