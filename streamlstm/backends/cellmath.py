"""Scalar LSTM/GRU cell math, written once for every compiled backend
(docs/spec.md section 1; gate order as PyTorch).

Each function works on ONE hidden unit: the caller has already formed the gate
pre-activations (the matrix-vector products are the backend's business) and
loops over units.  The functions are plain ``@njit`` so that the Numba CPU
kernels and the ``@cuda.jit`` kernels use the same arithmetic (the CUDA backend
compiles their Python source for the device, without the CPU fast-math flags:
``backends/cuda/kernels.py``).  The CPU backward calls the ``*_backward``
functions unit by unit (LLVM vectorises those loops); the CPU forward states
the same few lines on SIMD vectors in ``cpu/forward.py`` because its sigmoid and
tanh must be the vectorisable polynomial exp of ``cpu/simd.py`` (``math.exp``
is a scalar libm call on CPUs without SVML, and was most of a step's time).

``one`` is the number 1 in the working dtype.  Kernels pass it (e.g.
``one = theta.dtype.type(1)``) instead of writing ``1.0``: in Numba a Python
float literal is float64 and silently promotes float32 arithmetic to float64,
so a float32 model would neither be float32 nor fast.  Nothing here allocates
or raises.

The expressions follow ``reference.py`` operand for operand (same products in
the same order), so a backend using them differs from the NumPy oracle only by
libm rounding and FMA contraction.

Stable API (the CUDA backend imports it)::

    sigmoid(x, one)
    lstm_cell(ai, af, ag, ao, c, one)                 -> (i, f, g, o, c2, tc, h2)
    lstm_cell_backward(dh2, dc2, i, f, g, o, c, tc, one)
                                                      -> (dai, daf, dag, dao, dc)
    lstm_cell_backward_c2(dh2, dc2, i, f, g, o, c, c2, one)    (the same, from c2)
    gru_cell(gir, giz, gin, ghr, ghz, ghn, h, one)    -> (r, z, n, h2)
    gru_cell_backward(dh2, r, z, n, ghn, h, one)      -> (dar, daz, dan, dhn, dh)
"""
import math

from streamlstm.backends.cache import cached_njit
from streamlstm.backends.specialize import INNER

# Fast-math flags of the CPU kernels: FMA contraction only.  Never 'nnan'/'ninf'
# (NaN target masks must survive) nor 'afn' (approximate exp/tanh).  'reassoc'
# and 'arcp' are left out on purpose: they let LLVM re-associate differently
# wherever a function gets inlined and re-optimised, and we measured a
# cache-loaded kernel disagreeing in the last bit with the same kernel freshly
# compiled - which would break "resume = uninterrupted" across processes.  The
# hot loops are AXPYs that vectorise without them.
FASTMATH = {"contract"}


@cached_njit(fastmath=FASTMATH, **INNER)
def sigmoid(x, one):
    """1 / (1 + exp(-x)), as torch; exp overflow -> inf -> 0 is the right limit."""
    return one / (one + math.exp(-x))


@cached_njit(fastmath=FASTMATH, **INNER)
def lstm_cell(ai, af, ag, ao, c, one):
    """SPEC 1, one unit: pre-activations of gates (i, f, g, o) and the old cell
    state -> gate activations, new cell c2, tanh(c2) and new hidden h2."""
    i = sigmoid(ai, one)
    f = sigmoid(af, one)
    g = math.tanh(ag)
    o = sigmoid(ao, one)
    c2 = f * c + i * g
    tc = math.tanh(c2)
    h2 = o * tc
    return i, f, g, o, c2, tc, h2


@cached_njit(fastmath=FASTMATH, **INNER)
def lstm_cell_backward(dh2, dc2, i, f, g, o, c, tc, one):
    """Gradients w.r.t. h2 and c2 of one unit -> gradients w.r.t. the four gate
    pre-activations and the old cell state c (reference.lstm_backward)."""
    do = dh2 * tc
    dc = dc2 + dh2 * o * (one - tc * tc)
    di = dc * g
    dg = dc * i
    df = dc * c
    dc_prev = dc * f
    return (di * i * (one - i), df * f * (one - f), dg * (one - g * g),
            do * o * (one - o), dc_prev)


@cached_njit(fastmath=FASTMATH, **INNER)
def lstm_cell_backward_c2(dh2, dc2, i, f, g, o, c, c2, one):
    """lstm_cell_backward from the new cell state c2 instead of tanh(c2), for a
    caller that keeps c2 only (the CUDA window cache, where c2 is also the next
    step's old state)."""
    return lstm_cell_backward(dh2, dc2, i, f, g, o, c, math.tanh(c2), one)


@cached_njit(fastmath=FASTMATH, **INNER)
def gru_cell(gir, giz, gin, ghr, ghz, ghn, h, one):
    """SPEC 1, one unit: input parts (W_i* x + b_i*) and hidden parts
    (W_h* h + b_h*) of (r, z, n) and the old h -> r, z, n and the new h2."""
    r = sigmoid(gir + ghr, one)
    z = sigmoid(giz + ghz, one)
    n = math.tanh(gin + r * ghn)
    h2 = (one - z) * n + z * h
    return r, z, n, h2


@cached_njit(fastmath=FASTMATH, **INNER)
def gru_cell_backward(dh2, r, z, n, ghn, h, one):
    """Gradient w.r.t. h2 of one unit -> (dar, daz, dan) for the input-side
    pre-activations, dhn = dan * r for the hidden-side n pre-activation
    (W_hn h + b_hn), and the direct part dh2 * z of the gradient w.r.t. the old
    h (reference.gru_backward; the r and z parts are the same on both sides)."""
    dn = dh2 * (one - z)
    dz = dh2 * (h - n)
    dan = dn * (one - n * n)
    dar = dan * ghn * r * (one - r)
    daz = dz * z * (one - z)
    return dar, daz, dan, dan * r, dh2 * z
