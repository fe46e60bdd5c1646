"""The two arenas a CPU model's kernel arrays live in: one flat array ``F`` of
the model's float dtype (weights, optimizer moments, gradient, per-series state
and windows, workspace, activation cache) and one int64 array ``I`` (counts,
offsets, ``cfg``, the cache's bookkeeping, statistics), each array a
C-contiguous view at a fixed offset.  A kernel call then passes two arrays
instead of twenty: Numba unboxes every argument array on each call (a type
lookup, a reference count and a struct each, ~0.1 us), which was ~2 us of
the ~4 us a one-row ``step`` spends in the kernel.

``I`` starts with a directory of ``DIR_W`` int64 per entry: ``[offset, ndim,
d0, .., d5]``, the offset into ``F`` for the float entries (``F_*``) and into
``I`` for the int entries (``I_*``).  ``pack`` (Python) writes it;
``view1`` .. ``view6`` (Numba intrinsics) read an entry back as the same view.
"""
import numpy as np

from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

# c_st0, c_act0, c_ver0: the activation cache's arrays with no rows (the same
# types), for the forwards that must not touch the cache (forecasts).
FLOATS = ("kp", "km", "kv", "grad", "state", "entry", "win_u", "win_y",
          "ws0", "ws1", "ws2", "ws3", "ws4", "ws5", "c_st", "c_act", "c_st0", "c_act0")
INTS = ("opt_step", "win_len", "count", "koff", "cfg", "c_ver", "ver", "stats", "c_ver0")
(F_KP, F_KM, F_KV, F_GRAD, F_STATE, F_ENTRY, F_WIN_U, F_WIN_Y,
 F_WS0, F_WS1, F_WS2, F_WS3, F_WS4, F_WS5, F_CST, F_CACT, F_CST0, F_CACT0) = range(len(FLOATS))
(I_OPT_STEP, I_WIN_LEN, I_COUNT, I_KOFF, I_CFG, I_CVER, I_VER, I_STATS, I_CVER0) = range(
    len(FLOATS), len(FLOATS) + len(INTS))
N_ENTRIES = len(FLOATS) + len(INTS)
DIR_W = 8               # offset, ndim, up to six dimensions
_ALIGN = 8              # entries start at multiples of 8 elements (a cache line for float64)


def _offsets(arrays, start):
    offs, o = [], start
    for a in arrays:
        o = -(-o // _ALIGN) * _ALIGN
        offs.append(o)
        o += a.size
    return offs, o


def pack(floats, ints, dtype):
    """``floats`` / ``ints``: dicts name -> array with the names of FLOATS / INTS.
    Returns ``(F, I, views)``: the arenas holding copies of every array, and
    ``views`` name -> the array's view in its arena (same shape and values)."""
    fl = [np.asarray(floats[k]) for k in FLOATS]
    it = [np.asarray(ints[k]) for k in INTS]
    f_off, f_size = _offsets(fl, 0)
    i_off, i_size = _offsets(it, N_ENTRIES * DIR_W)
    F = np.zeros(max(f_size, 1), dtype=dtype)
    I = np.zeros(i_size, dtype=np.int64)
    views = {}
    for e, (name, a, arena, o) in enumerate(
            [(k, a, F, o) for k, a, o in zip(FLOATS, fl, f_off)]
            + [(k, a, I, o) for k, a, o in zip(INTS, it, i_off)]):
        assert a.ndim <= DIR_W - 2
        I[e * DIR_W] = o
        I[e * DIR_W + 1] = a.ndim
        I[e * DIR_W + 2:e * DIR_W + 2 + a.ndim] = a.shape
        v = arena[o:o + a.size].reshape(a.shape)
        v[...] = a
        views[name] = v
    return F, I, views


# -- the views, in the kernels --------------------------------------------------------
def _view_intrinsic(nd):
    """An ``@intrinsic`` ``view(A, I, e)``: directory entry ``e``'s array, a
    C-contiguous ``nd``-D view into ``A`` (F or I itself) sharing its memory
    (and reference count), built directly from the directory - without
    ``reshape``, whose stride computation is a runtime call (~25 ns a view, and
    a call makes twenty).  Nothing is checked: ``pack`` wrote the directory
    from the arrays themselves."""

    @intrinsic
    def view(typingctx, A, I, e):
        if not (isinstance(A, types.Array) and A.ndim == 1 and A.layout == "C"
                and isinstance(I, types.Array) and I.ndim == 1 and I.dtype == types.int64
                and isinstance(e, types.Integer)):
            raise TypeError(f"view{nd}(A, I, e) takes two 1-D arenas and an index, "
                            f"got {A}, {I}, {e}")
        rty = types.Array(A.dtype, nd, "C")

        def codegen(context, builder, sig, args):
            aty, ity, ety = sig.args
            src = context.make_array(aty)(context, builder, args[0])
            idx = context.make_array(ity)(context, builder, args[1])
            e_val = context.cast(builder, args[2], ety, types.intp)
            base = builder.mul(e_val, context.get_constant(types.intp, DIR_W))

            def entry(k):
                at = builder.add(base, context.get_constant(types.intp, k))
                return builder.load(builder.gep(idx.data, [at]))

            dims = [entry(2 + j) for j in range(nd)]
            itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
                context.get_data_type(aty.dtype)))
            strides, acc = [], itemsize
            for d in reversed(dims):
                strides.insert(0, acc)
                acc = builder.mul(acc, d)
            out = context.make_array(rty)(context, builder)
            populate_array(out, data=builder.gep(src.data, [entry(0)]),
                           shape=cgutils.pack_array(builder, dims),
                           strides=cgutils.pack_array(builder, strides),
                           itemsize=itemsize, meminfo=src.meminfo, parent=src.parent)
            return impl_ret_borrowed(context, builder, rty, out._getvalue())
        return rty(A, I, e), codegen
    return view


view1, view2, view3, view4, view5, view6 = (_view_intrinsic(nd) for nd in range(1, 7))
