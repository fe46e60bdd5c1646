"""Explicit SIMD vectors for the Numba CPU kernels: one 512-bit vector type per
dtype (16 float32 or 8 float64 lanes) and a handful of intrinsics that load,
store, broadcast, fused-multiply-add and reduce them.

Why: Numba cannot tell LLVM that two arrays do not overlap, so a
matrix-vector product written as plain loops keeps its accumulators in memory
(a load and a store per multiply-add) and a multi-row block can never stay in
registers.  With these intrinsics the kernels hold accumulators in SSA
vector values, which LLVM keeps in registers, and every multiply-add is an
exactly rounded ``llvm.fma`` - so a series' arithmetic is the same instruction
sequence whichever other series share the block.  On CPUs without AVX-512
LLVM splits each vector into two 256-bit (or four 128-bit) halves; results do
not change.

    VL = lanes(arr)                      16 (float32) or 8 (float64), a constant
    v = vload(arr, i)                    arr[i:i+VL] of a 1-D C-contiguous array
    vstore(arr, i, v)                    arr[i:i+VL] = v
    v = vsplat(x)                        every lane = scalar x
    v = vfma(a, b, c)                    a * b + c, one rounding per lane
    v = vadd(a, b)
    s = vhsum(v)                         lanes summed in a fixed pairwise tree
    s = fma(a, b, c)                     scalar a * b + c, one rounding

Callers guarantee ``i + VL <= arr.size`` (the kernels pad every vectorised row
to a multiple of VL); nothing here checks bounds.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model


class Vec(types.Type):
    """A SIMD vector of ``lanes`` numbers of ``dtype`` (an SSA value, never stored
    in arrays or passed to Python)."""

    def __init__(self, dtype, lanes):
        self.dtype = dtype
        self.lanes = lanes
        super().__init__(name=f"Vec({dtype} x {lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        be_type = ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.lanes)
        super().__init__(dmm, fe_type, be_type)


def _nlanes(dtype):
    return 512 // dtype.bitwidth


def _check_float_array(arr):
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"
            and arr.dtype in (types.float32, types.float64)):
        raise TypeError(f"SIMD intrinsics need a 1-D C-contiguous float32/float64 array, got {arr}")


def _fname(vty):
    return f"v{vty.count}{'f32' if vty.element == ir.FloatType() else 'f64'}"


@intrinsic
def lanes(typingctx, arr):
    _check_float_array(arr)
    n = _nlanes(arr.dtype)

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, n)
    return types.intp(arr), codegen


@intrinsic
def vload(typingctx, arr, i):
    _check_float_array(arr)
    vt = Vec(arr.dtype, _nlanes(arr.dtype))

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(a.data, [args[1]])
        vptr = builder.bitcast(ptr, ir.PointerType(context.get_value_type(vt)))
        return builder.load(vptr, align=sig.args[0].dtype.bitwidth // 8)
    return vt(arr, types.intp), codegen


@intrinsic
def vstore(typingctx, arr, i, v):
    _check_float_array(arr)
    if not (isinstance(v, Vec) and v.dtype == arr.dtype):
        raise TypeError(f"vstore: vector {v} does not match array {arr}")

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(a.data, [args[1]])
        vptr = builder.bitcast(ptr, ir.PointerType(args[2].type))
        builder.store(args[2], vptr, align=sig.args[0].dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.void(arr, types.intp, v), codegen


@intrinsic
def vsplat(typingctx, x):
    if x not in (types.float32, types.float64):
        raise TypeError(f"vsplat needs a float32/float64 scalar, got {x}")
    vt = Vec(x, _nlanes(x))

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vt)
        v = builder.insert_element(ir.Constant(vty, ir.Undefined), args[0],
                                   ir.Constant(ir.IntType(32), 0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), vt.lanes), [0] * vt.lanes)
        return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), mask)
    return vt(x), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    if not (isinstance(a, Vec) and a == b == c):
        raise TypeError(f"vfma needs three vectors of one type, got {a}, {b}, {c}")

    def codegen(context, builder, sig, args):
        vty = args[0].type
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                            f"llvm.fma.{_fname(vty)}")
        return builder.call(fn, args)
    return a(a, b, c), codegen


@intrinsic
def vadd(typingctx, a, b):
    if not (isinstance(a, Vec) and a == b):
        raise TypeError(f"vadd needs two vectors of one type, got {a}, {b}")

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return a(a, b), codegen


@intrinsic
def vhsum(typingctx, v):
    if not isinstance(v, Vec):
        raise TypeError(f"vhsum needs a vector, got {v}")

    def codegen(context, builder, sig, args):
        x = args[0]
        n = v.lanes
        while n > 1:                    # (lo half + hi half), halving: a fixed tree
            n //= 2
            lo = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(ir.IntType(32), n),
                                                          list(range(n))))
            hi = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(ir.IntType(32), n),
                                                          list(range(n, 2 * n))))
            x = builder.fadd(lo, hi)
        return builder.extract_element(x, ir.Constant(ir.IntType(32), 0))
    return v.dtype(v), codegen


@intrinsic
def fma(typingctx, a, b, c):
    if not (a in (types.float32, types.float64) and a == b == c):
        raise TypeError(f"fma needs three scalars of one float type, got {a}, {b}, {c}")

    def codegen(context, builder, sig, args):
        ty = args[0].type
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty] * 3),
                                            f"llvm.fma.{'f32' if ty == ir.FloatType() else 'f64'}")
        return builder.call(fn, args)
    return a(a, b, c), codegen
