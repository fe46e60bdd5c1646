"""What every ``@njit`` kernel module of the Numba CPU backend agrees on: the
``cfg`` vector, the weight layout, the compile options and the constants that
are part of the numerical contract (launcher.py builds ``cfg`` and the layout).

The weights live in ``kp``, ``theta`` in the *kernel layout*
(``launcher.kernel_layout`` builds the map; the backend converts to PyTorch's
layout only when the arrays are read), and so do the optimizer moments ``km``,
``kv`` and the gradients:

    per layer k, at mo[k]:  W_ih^T (in_k rows) then W_hh^T (H rows), each row
                            G*H long, zero-padded to GHp (a multiple of the SIMD
                            width VL: 16 float32 / 8 float64 lanes)
    per layer k, at bo[k]:  b_ih (GHp), b_hh (GHp)
    at ho:                  head W (O, H) row-major, head b (O)

so that a step's gate pre-activations are AXPYs of whole W^T rows kept in SIMD
registers (``simd``).  The optimizer is elementwise, so it runs on these
arrays unchanged (padding stays exactly 0: zero gradient, zero moments).

Shapes (cached buffers named as in llm.c): ``st`` (L, S, H) one series' state;
``act`` (L, A) one step's per-layer activations: LSTM [i f g o | pad | tanh c']
(A = GHp + H), GRU [r z n | pad | W_h h + b_h] (A = 2 GHp, W_hn h + b_hn at
GHp + 2H); ``cst`` (k2+1, L, S, H) the window-entry state and the re-run
states after each row; ``cact`` (k2, L, A) their activations; ``dA`` (L, 2,
k2*GHp) the pre-activation gradients of every row (input side, hidden side).

Determinism (backends/__init__.py): every multiply-add is an exactly rounded FMA
in a fixed order per series (k ascending), so a series' forward is the same
whether it is computed alone or in a block of four; the gradient of an update
is accumulated in chunks of ``GRAD_CHUNK`` due series (ascending slot order)
dealt to a fixed number of lanes (one parallel region per update, robust on a
busy machine), and the lane sums are added in lane order, so neither the
thread count nor the order a call lists its slots changes a bit.  Reductions
(dot products) use fixed pairwise trees.

All arithmetic runs in the array dtype: constants are made with
``theta.dtype.type(...)``, never as Python float literals (which would promote
float32 to float64).  Fast-math is FMA contraction only (see cellmath.FASTMATH:
re-association would make the bits depend on where LLVM inlined a function).
"""
from streamlstm.backends.cellmath import FASTMATH
from streamlstm.backends.specialize import INNER

# Due series per gradient chunk, and at most how many lanes (partial gradient
# sums) an update spreads its chunks over: chunk c goes to lane c % lanes, each
# lane adds its chunks in order, and the lanes are added in order.  Both are
# part of this backend's numerical contract (launcher.py fixes the lane count
# from the model size, never from the thread count): changing them changes the
# last bits of a multi-series update.
GRAD_CHUNK = 8
GRAD_LANES = 16
# Multiply-adds below which a call's forward stays on the calling thread
# (launching a parallel region costs ~10 us; one series at H=32 is ~4k MACs).
PAR_FORWARD_WORK = 1 << 18

# Compile options, for backends.cache.cached_njit (which adds cache=True).
# error_model="numpy": a float division by zero gives inf/nan instead of
# raising; without it every division carries a Python-style zero check that
# keeps LLVM from vectorising the loop around it (sigmoid, Adam).
# FAST workers are compiled without Numba's reference counting (_nrt=False),
# whose atomic increments on every array view cost more than the arithmetic of
# a step; FAST_NRT ones allocate or return array views, so they keep it.
# Only step_calls and forward_rows are called from Python: everything else is
# compiled INNER (specialize.py: no Python entry point built for it).
EXACT = dict(error_model="numpy")
EXACT_INNER = dict(EXACT, **INNER)
FAST = dict(error_model="numpy", fastmath=FASTMATH, _nrt=False, **INNER)
FAST_NRT = dict(error_model="numpy", fastmath=FASTMATH, **INNER)

# Indices into the int64 ``cfg`` vector built by launcher.CPUBackend.
(C_I, C_H, C_O, C_L, C_G, C_S, C_LSTM, C_K1, C_K2, C_A, C_HO, C_P, C_GHP, C_KP) = range(14)
N_CFG = 14
