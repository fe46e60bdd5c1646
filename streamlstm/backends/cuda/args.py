"""The arguments of the CUDA kernels: named bundles and one type table.

Kernels take their arrays in bundles (namedtuples: Numba passes them to the GPU
field by field, and a kernel reads ``model.theta``, ``due.slots``, ...) and a
few plain arguments.  ``PARAMS`` gives the type of every kernel parameter by
name, a bundle standing for its fields' types; ``signature`` derives a
kernel's signature from its own parameter list, and ``KernelSet.launch``
(``kernels.py``) takes the arguments by the same names.  So the ``def`` line of
a kernel is the one place that says what it takes and in which order.

No numba.cuda here: the launcher imports these bundles on machines where
numba.cuda may not even import (it then reports why, launcher.py).
"""
from __future__ import annotations

import inspect
from collections import namedtuple

import numpy as np
from numba import from_dtype, types


def bundle(name: str, doc: str, **fields: str):
    """A namedtuple of kernel arguments; ``fields`` give their type codes
    (``arg_type``)."""
    cls = namedtuple(name, tuple(fields))
    cls.__doc__ = doc
    cls.codes = tuple(fields.values())
    return cls


Model = bundle("Model", "The weights: packed theta, the transposed recurrent matrices wt "
               "(``optimizer.refresh_transposed``), per-layer tensor offsets, head offsets.",
               theta="f1", wt="f1", offs="i2", head_w="i", head_b="i")
Windows = bundle("Windows", "Every series' window of (u, y) rows and its length.",
                 win_u="f3", win_y="f3", win_len="i1")
Call = bundle("Call", "Rows lo..hi-1 of one call: row r steps slot series[s0 + r - lo] on "
              "U[r], its target Y[r], its forecast into yhat[r].",
              series="i1", s0="i", lo="i", hi="i", U="f2", Y="f2", yhat="f2")
Due = bundle("Due", "Due row c < n of a chunk is slot slots[lo + c].",
             slots="i1", lo="i", n="i")
Chunk = bundle("Chunk", "The backward temporaries of one chunk of due rows (window.py).",
               cache="f4", dy="f3", carry="f4", dxb="f2", tlen="i1")
Optim = bundle("Optim", "Optimizer moments and step count, hyperparameters (core/optim.py) "
               "and the update coefficients of ``optimizer.update_prepare``.",
               opt_m="f1", opt_v="f1", opt_step="i1", hyper="d1", upd="d1")

#: Kernel parameters by name: a bundle, or a type code (``arg_type``).
PARAMS = {
    "model": Model, "win": Windows, "call": Call, "due": Due, "chunk": Chunk, "opt": Optim,
    "state": "f4", "entry": "f4", "scratch": "f3", "win_u": "f3", "partial": "f2",
    "src": "f2", "out": "f2", "theta": "f1", "wt": "f1", "grad": "f1",
    "series": "i1", "count": "i1", "M": "i1", "ptab": "i2",
    "rows_per_block": "i", "append": "i", "k1": "i", "n_tiles": "i", "seg": "i",
    "n_segs": "i", "first": "i",
}


def arg_type(what, dtype):
    """The Numba type of a type code or bundle: 'i' int64, 'iN' / 'fN' / 'dN' an
    N-d C-contiguous array of int64 / the model dtype / float64."""
    if isinstance(what, type):
        return types.BaseTuple.from_types([arg_type(c, dtype) for c in what.codes], what)
    base = {"i": types.int64, "f": from_dtype(np.dtype(dtype)), "d": types.float64}[what[0]]
    return types.Array(base, int(what[1:]), "C") if len(what) > 1 else base


def params(fn) -> tuple:
    return tuple(inspect.signature(fn).parameters)


def signature(fn, dtype):
    """``void(...)`` of the kernel ``fn``, from its parameter names."""
    return types.void(*(arg_type(PARAMS[p], dtype) for p in params(fn)))
