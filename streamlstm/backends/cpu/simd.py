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
    sigmoid(v), tanh(v), vexp(v)         polynomial-exp nonlinearities (scalar or Vec)
    vload_n / vstore_n(arr, i, [v,] n)   the first n < VL lanes only (masked)
    + - * / unary -, math.exp, math.tanh on Vec: so cellmath's scalar cell math
                                         runs unchanged on vectors

Callers guarantee ``i + VL <= arr.size`` (the kernels pad every vectorised row
to a multiple of VL); nothing here checks bounds.
"""
import math
import operator

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model


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


def _suffix(ty):
    """LLVM's intrinsic name suffix for a float scalar or vector type (f32, v16f32, ...)."""
    if isinstance(ty, ir.VectorType):
        return _fname(ty)
    return "f32" if ty == ir.FloatType() else "f64"


def _fma_ir(builder, a, b, c):
    ty = a.type
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty] * 3),
                                        f"llvm.fma.{_suffix(ty)}")
    return builder.call(fn, [a, b, c])


def _vec_binop(name, build, op):
    """The intrinsic ``name(a, b)`` on two vectors of one type - the instruction
    ``build(builder, a, b)``, an ``ir.IRBuilder`` method (fadd, fsub, ...) - and
    the operator ``op`` on Vec as that intrinsic, so that cellmath's scalar
    cell math runs unchanged on vectors."""
    def typer(typingctx, a, b):
        if not _vec_pair(a, b):
            raise TypeError(f"{name} needs two vectors of one type, got {a}, {b}")

        def codegen(context, builder, sig, args):
            return build(builder, args[0], args[1])
        return a(a, b), codegen
    typer.__name__ = typer.__qualname__ = name
    vec_op = intrinsic(typer)

    def impl(a, b):
        return vec_op(a, b)
    # A qualname of its own per operator.  Numba names a compiled function by its
    # module, qualname, argument types and a number counting this process's
    # compiles, and four implementations of one qualname (as four lambdas here
    # were) differ by that number alone.  Another process numbers them in another
    # order, and code it saved to the on-disk cache, linked into a caller compiled
    # here, shares each symbol with a different operator: LLVM keeps one
    # definition per name, so a subtraction could run as an addition
    # (tests/test_symbol_names.py; a GRU's update went wrong that way in CI).
    impl.__name__ = impl.__qualname__ = f"{name}_impl"

    @overload(op)
    def _ov(a, b):
        if _vec_pair(a, b):
            return impl
    return vec_op


def _vec_pair(a, b):
    return isinstance(a, Vec) and a == b


@intrinsic
def vfma(typingctx, a, b, c):
    if not (isinstance(a, Vec) and a == b == c):
        raise TypeError(f"vfma needs three vectors of one type, got {a}, {b}, {c}")

    def codegen(context, builder, sig, args):
        return _fma_ir(builder, *args)
    return a(a, b, c), codegen


vadd = _vec_binop("vadd", ir.IRBuilder.fadd, operator.add)
vsub = _vec_binop("vsub", ir.IRBuilder.fsub, operator.sub)
vmul = _vec_binop("vmul", ir.IRBuilder.fmul, operator.mul)
vdiv = _vec_binop("vdiv", ir.IRBuilder.fdiv, operator.truediv)


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
        return _fma_ir(builder, *args)
    return a(a, b, c), codegen


def _mask(builder, lanes_, n):
    """<lanes x i1>: lane < n."""
    idx = ir.Constant(ir.VectorType(ir.IntType(64), lanes_), list(range(lanes_)))
    nv = builder.insert_element(ir.Constant(ir.VectorType(ir.IntType(64), lanes_), ir.Undefined),
                                n, ir.Constant(ir.IntType(32), 0))
    nv = builder.shuffle_vector(nv, nv, ir.Constant(ir.VectorType(ir.IntType(32), lanes_),
                                                    [0] * lanes_))
    return builder.icmp_signed("<", idx, nv)


@intrinsic
def vload_n(typingctx, arr, i, n):
    """arr[i:i+n] in the first n lanes (n < VL), zeros elsewhere; reads nothing
    past arr[i+n-1]."""
    _check_float_array(arr)
    vt = Vec(arr.dtype, _nlanes(arr.dtype))

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        vty = context.get_value_type(vt)
        vptr = builder.bitcast(builder.gep(a.data, [args[1]]), ir.PointerType(vty))
        mask = _mask(builder, vt.lanes, args[2])
        fnty = ir.FunctionType(vty, [vptr.type, ir.IntType(32), mask.type, vty])
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.{_fname(vty)}.p0")
        align = ir.Constant(ir.IntType(32), sig.args[0].dtype.bitwidth // 8)
        return builder.call(fn, [vptr, align, mask, ir.Constant(vty, None)])
    return vt(arr, types.intp, types.intp), codegen


@intrinsic
def vstore_n(typingctx, arr, i, v, n):
    """arr[i:i+n] = the first n lanes of v (n < VL); writes nothing else."""
    _check_float_array(arr)

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        vty = args[2].type
        vptr = builder.bitcast(builder.gep(a.data, [args[1]]), ir.PointerType(vty))
        mask = _mask(builder, vty.count, args[3])
        fnty = ir.FunctionType(ir.VoidType(), [vty, vptr.type, ir.IntType(32), mask.type])
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.store.{_fname(vty)}.p0")
        align = ir.Constant(ir.IntType(32), sig.args[0].dtype.bitwidth // 8)
        builder.call(fn, [args[2], vptr, align, mask])
        return context.get_dummy_value()
    return types.void(arr, types.intp, v, types.intp), codegen


# -- exp-based nonlinearities ------------------------------------------------------------
# libm's exp/tanh are scalar calls (~10-20 ns each, and no SVML here): they were
# most of a step's time.  exp(x) = 2^n p(r): Cody-Waite reduction r = x - n ln2
# (|r| <= ln2/2, n = floor(x log2e + 1/2)), a Taylor polynomial of degree 13
# (float64) / 7 (float32) - truncation below half an ulp - and 2^n built in the
# exponent bits.  Measured over [-40, 40]: sigmoid within 2.3e-16 absolute
# (float64) and 9e-8 (float32) of the exactly rounded value; tanh within 3.4e-16.
# The same IR is emitted for scalars and vectors, so a lane and a scalar agree.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.693359375                 # few mantissa bits: n * _LN2_HI is exact
_LN2_LO = -2.1219444005469058277e-4   # ln 2 - _LN2_HI


def _const(ty, value):
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [value] * ty.count)
    return ir.Constant(ty, value)


def _exp_ir(builder, x):
    ty = x.type
    vec = isinstance(ty, ir.VectorType)
    et = ty.element if vec else ty
    f32 = et == ir.FloatType()
    c = lambda v: _const(ty, v)  # noqa: E731
    xmin, xmax = (-87.0, 88.0) if f32 else (-708.0, 709.0)
    x = builder.select(builder.fcmp_ordered("<", x, c(xmin)), c(xmin), x)
    x = builder.select(builder.fcmp_ordered(">", x, c(xmax)), c(xmax), x)
    fl = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty]),
                                        f"llvm.floor.{_suffix(ty)}")
    n = builder.call(fl, [_fma_ir(builder, x, c(_LOG2E), c(0.5))])
    nn = builder.fneg(n)
    r = _fma_ir(builder, nn, c(_LN2_HI), x)
    r = _fma_ir(builder, nn, c(_LN2_LO), r)
    degree = 7 if f32 else 13
    fact = [1.0]
    for k in range(1, degree + 1):
        fact.append(fact[-1] * k)
    p = c(1.0 / fact[degree])
    for k in range(degree - 1, -1, -1):
        p = _fma_ir(builder, p, r, c(1.0 / fact[k]))
    ity = ir.IntType(32 if f32 else 64)
    ivt = ir.VectorType(ity, ty.count) if vec else ity
    bits = builder.shl(builder.add(builder.fptosi(n, ivt), _const(ivt, 127 if f32 else 1023)),
                       _const(ivt, 23 if f32 else 52))
    return builder.fmul(p, builder.bitcast(bits, ty))


def _is_floatlike(x):
    return isinstance(x, Vec) or x in (types.float32, types.float64)


@intrinsic
def sigmoid(typingctx, x):
    """1 / (1 + exp(-x)) for a float scalar or a Vec."""
    if not _is_floatlike(x):
        raise TypeError(f"sigmoid needs a float scalar or vector, got {x}")

    def codegen(context, builder, sig, args):
        one = _const(args[0].type, 1.0)
        e = _exp_ir(builder, builder.fneg(args[0]))
        return builder.fdiv(one, builder.fadd(one, e))
    return x(x), codegen


@intrinsic
def tanh(typingctx, x):
    """tanh(x) = 2 / (1 + exp(-2x)) - 1 for a float scalar or a Vec (absolute
    error ~ an ulp of 1, also near 0)."""
    if not _is_floatlike(x):
        raise TypeError(f"tanh needs a float scalar or vector, got {x}")

    def codegen(context, builder, sig, args):
        ty = args[0].type
        one, two = _const(ty, 1.0), _const(ty, 2.0)
        e = _exp_ir(builder, builder.fmul(args[0], _const(ty, -2.0)))
        return builder.fsub(builder.fdiv(two, builder.fadd(one, e)), one)
    return x(x), codegen


@intrinsic
def vneg(typingctx, a):
    if not isinstance(a, Vec):
        raise TypeError(f"vneg needs a vector, got {a}")

    def codegen(context, builder, sig, args):
        return builder.fneg(args[0])
    return a(a), codegen


@intrinsic
def vexp(typingctx, x):
    """exp(x) by the polynomial above (float scalar or Vec)."""
    if not _is_floatlike(x):
        raise TypeError(f"vexp needs a float scalar or vector, got {x}")

    def codegen(context, builder, sig, args):
        return _exp_ir(builder, args[0])
    return x(x), codegen


# -- the rest of the arithmetic on Vec (+ - * / are registered by _vec_binop), so that
# the scalar cell math of cellmath runs on vectors: ``lstm_cell(ai, af, ag, ao, c, one)``
# with Vec arguments and ``one = vsplat(1)`` compiles to SIMD code; math.exp /
# math.tanh of a Vec are the polynomial ones.
@overload(operator.neg)
def _ov_neg(a):
    if isinstance(a, Vec):
        return lambda a: vneg(a)


@overload(math.exp)
def _ov_exp(x):
    if isinstance(x, Vec):
        return lambda x: vexp(x)


@overload(math.tanh)
def _ov_tanh(x):
    if isinstance(x, Vec):
        return lambda x: tanh(x)
