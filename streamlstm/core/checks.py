"""Argument checks shared by every layer: each refuses bad input with an
``InputError`` that names the argument, the value and what to pass instead."""
from __future__ import annotations

import math
import numbers

import numpy as np

from streamlstm.errors import InputError


def check_int(name, value, lo, hi=None):
    """An integer (not a bool) in ``[lo, hi]``; returns it as ``int``.

    >>> check_int("k1", 3, 1)
    3
    >>> check_int("k1", 0, 1)
    Traceback (most recent call last):
    ...
    streamlstm.errors.InputError: k1=0 is out of range: it must be >= 1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise InputError(f"{name}={value!r} is out of range: it must be {rng}")
    return int(value)


def check_number(owner, name, value, lo=None, lo_open=False, hi=None, hi_open=False):
    """A finite real number in the given (half-)open or closed range, as ``float``;
    messages read ``owner(name=value) must be ...``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{owner}({name}=...) must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise InputError(f"{owner}({name}={value!r}) must be finite")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise InputError(f"{owner}({name}={value!r}) must be {'>' if lo_open else '>='} {lo}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise InputError(f"{owner}({name}={value!r}) must be {'<' if hi_open else '<='} {hi}")
    return v


def as_real_array(name, value, dtype, shape_msg):
    """``np.asarray`` that refuses non-numeric input (strings, objects, complex, bool)."""
    try:
        a = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise InputError(f"{name} could not be read as an array ({exc}); pass a numeric "
                         f"array of shape {shape_msg}") from None
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise InputError(f"{name} has dtype {a.dtype}; pass real numbers (float or int) of shape "
                         f"{shape_msg}, e.g. {name}.astype(np.{np.dtype(dtype).name})")
    return a


def refuse_nonfinite(a, message):
    """Raise ``InputError(message(*index))`` at the first NaN/inf of ``a`` (C order).

    >>> refuse_nonfinite(np.array([[1.0, 2.0], [np.inf, 0.0]]),
    ...                  lambda r, c: f"row {r}, column {c} is not finite")
    Traceback (most recent call last):
    ...
    streamlstm.errors.InputError: row 1, column 0 is not finite
    >>> refuse_nonfinite(np.zeros(3), str)
    """
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        raise InputError(message(*(int(i) for i in bad[0])))


# -- fast pre-checks for the per-call hot path ------------------------------------------
# A stream calls step()/learn_one() once per arrival, so the checks above (NumPy
# ufuncs, argwhere, issubdtype: microseconds each on tiny arrays) would cost more
# than the kernel.  These answer "certainly valid?" in a few hundred nanoseconds
# for small arrays; a False sends the caller to the full checks, which raise the
# errors (so every message stays theirs) or accept the input after all.
_SMALL = 64


def all_finite(a) -> bool:
    """True when every element of the ndarray ``a`` is finite (no NaN, no inf).

    >>> all_finite(np.array([[1.0, 2.0]])), all_finite(np.array([[1.0, np.nan]]))
    (True, False)
    """
    n = a.size
    if n == 1:
        return math.isfinite(a.item())
    if n <= _SMALL:
        return all(map(math.isfinite, a.ravel().tolist()))
    return bool(np.isfinite(a).all())


def no_inf(a) -> bool:
    """True when no element of the ndarray ``a`` is +-inf (NaN is allowed).

    >>> no_inf(np.array([np.nan, 1.0])), no_inf(np.array([1.0, -np.inf]))
    (True, False)
    """
    n = a.size
    if n == 1:
        return not math.isinf(a.item())
    if n <= _SMALL:
        return not any(map(math.isinf, a.ravel().tolist()))
    return not np.isinf(a).any()


def is_ready_array(a, dtype, shape) -> bool:
    """``a`` is already an ndarray the kernels take as is: exactly ``dtype`` (an
    ``np.dtype``), ``shape`` and C-contiguous (``np.ascontiguousarray`` would
    return it unchanged)."""
    return (type(a) is np.ndarray and a.dtype is dtype and a.shape == shape
            and a.flags.c_contiguous)
