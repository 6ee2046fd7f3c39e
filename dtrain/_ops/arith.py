"""Binary arithmetic, comparisons and logical ops, with torch's promotion and broadcasting; in-place forms."""
import contextlib
import numbers

import numpy as np

from .. import _backend, _dtype
from .._axpy import add_scaled
from .._tensor import Tensor, _wrap
from ..autograd import grad_mode
from ..autograd import graph as _graph
from ..autograd.graph import Function, _hooks_live
from ._layout import iterator_layout, pointwise
from ._util import method, nondiff, on_input_device, out_copy, promote, scalar_array, shape_only, unbroadcast
from ..amp._dispatch import autocast_op


def _mismatch(sa, sb):
    n = max(len(sa), len(sb))
    pa, pb = (1,) * (n - len(sa)) + tuple(sa), (1,) * (n - len(sb)) + tuple(sb)
    for i in range(n - 1, -1, -1):
        if pa[i] != pb[i] and pa[i] != 1 and pb[i] != 1:
            return pa[i], pb[i], i
    return None, None, None


def _bcast_check(a, b):
    if a.shape != b.shape:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            x, y, i = _mismatch(a.shape, b.shape)
            raise RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b ({y}) at non-singleton "
                               f"dimension {i}") from None


class Add(Function):
    def forward(ctx, a, b, alpha=1):
        ctx.shapes = a.shape, b.shape
        ctx.alpha = alpha
        return a + b if alpha == 1 else add_scaled(a, b, alpha)  # torch rounds a + alpha*b once

    def backward(ctx, g):
        sa, sb = ctx.shapes
        gb = unbroadcast(g, sb) if ctx.needs_input_grad[1] else None
        if gb is not None and ctx.alpha != 1:
            gb = gb * ctx.alpha
        return unbroadcast(g, sa) if ctx.needs_input_grad[0] else None, gb


class Sub(Function):
    def forward(ctx, a, b, alpha=1):
        ctx.shapes = a.shape, b.shape
        ctx.alpha = alpha
        return a - b if alpha == 1 else add_scaled(a, b, -alpha)

    def backward(ctx, g):
        sa, sb = ctx.shapes
        gb = -unbroadcast(g, sb) * ctx.alpha if ctx.needs_input_grad[1] else None
        return unbroadcast(g, sa) if ctx.needs_input_grad[0] else None, gb


class Mul(Function):
    def forward(ctx, a, b):
        # save only what a gradient needs, so in-place changes to the other operand stay legal (as in torch)
        need = ctx.needs_input_grad
        ctx.save_for_backward(a if need[1] else None, b if need[0] else None)
        ctx.shapes = a.shape, b.shape
        return a * b

    def backward(ctx, g):
        a, b = ctx.saved
        sa, sb = ctx.shapes
        return (unbroadcast(g * b.conj(), sa) if ctx.needs_input_grad[0] else None,
                unbroadcast(g * a.conj(), sb) if ctx.needs_input_grad[1] else None)


class Div(Function):
    def forward(ctx, a, b):
        # the dividend only for the divisor's gradient, as torch saves it: writing into `x` after `x / 2` stays
        # legal. Where it is not needed, a stand-in of its shape and dtype (no memory) keeps its place, since
        # the double-backward formula reads the saved operands' shapes
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else shape_only(ctx.xp, a.shape, a.dtype), b)
        return a / b

    def backward(ctx, g):
        a, b = ctx.saved
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = unbroadcast(g / b, a.shape)
        if ctx.needs_input_grad[1]:
            gb = unbroadcast(-g * a / (b * b), b.shape)
        return ga, gb


# Exponents that torch's CPU pow kernel computes without pow(), and how: the same formulas give the same
# bits, and cost one or two multiplications where NumPy's float power takes ~100x longer (x ** 3.0 on
# 131 K float32: 8 ms against 0.1 ms).
_SCALAR_POW = {
    2.0: lambda xp, a: a * a,
    3.0: lambda xp, a: a * a * a,
    0.5: lambda xp, a: xp.sqrt(a),
    -0.5: lambda xp, a: 1 / xp.sqrt(a),
    -1.0: lambda xp, a: 1 / a,
    -2.0: lambda xp, a: 1 / (a * a),
    1.0: lambda xp, a: a.copy(),
}


def _scalar_pow(xp, a, e):
    """a ** e for a Python number e, through _SCALAR_POW where it has e (None: use xp.power); a new array."""
    if a.dtype.kind not in "fc":
        return None
    if e == 2.0 or e == 3.0:  # products only (nothing to silence): in place, one temporary fewer for the cube
        y = a * a
        if e == 3.0:
            y = xp.multiply(y, a, out=y) if y.ndim else y * a  # (a 0-d product is a NumPy scalar)
        return y
    f = _SCALAR_POW.get(e)
    if f is None:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):  # torch says nothing of sqrt(-1) or 1 / 0 either
        return f(xp, a)


def _int_pow(xp, a, b):
    """torch's integer pow, where NumPy refuses a negative exponent: 1 for a base of 1, -1 or 1 (by the
    exponent's parity) for -1, and 0 for any other base (0 included)."""
    neg = b < 0
    if not neg.any():
        return xp.power(a, b)
    y = xp.power(a, xp.where(neg, 0, b))
    small = xp.where(a == 1, 1, xp.where(a == -1, 1 - 2 * (b % 2), 0))
    return xp.where(neg, small, y).astype(y.dtype, copy=False)


class Pow(Function):
    def forward(ctx, a, b, scalar=None):
        # scalar: the exponent as a Python number, when it was one (b is then that number as an array)
        ctx.scalar = scalar
        y = _scalar_pow(ctx.xp, a, scalar) if scalar is not None else None
        if y is None:
            y = _int_pow(ctx.xp, a, b) if a.dtype.kind in "iu" and b.dtype.kind in "i" else ctx.xp.power(a, b)
        # the result only for the exponent's gradient, as torch: writing into `x ** 2` in place stays legal
        ctx.save_for_backward(a, b, y if ctx.needs_input_grad[1] else None)
        return y

    def name(self):
        return "PowBackward0" if self.scalar is not None else "PowBackward1"

    def backward(ctx, g):
        a, b, y = ctx.saved
        xp = ctx.xp
        ga = gb = None
        e = ctx.scalar
        if ctx.needs_input_grad[0] and e is not None and e != 0 and e - 1 in _SCALAR_POW and a.dtype.kind in "fc":
            # torch's pow_backward: grad * (exponent * self.pow(exponent - 1)), the pow through the same table
            ga = _scalar_pow(xp, a, e - 1)  # a new array: the two products below go into it
            if ga.ndim and ga.dtype == g.dtype and ga.shape == g.shape:  # (a 0-d power is a NumPy scalar)
                xp.multiply(ga, ga.dtype.type(e), out=ga)
                xp.multiply(ga, g, out=ga)
            else:
                ga = g * (e * ga).astype(a.dtype, copy=False)
        elif ctx.needs_input_grad[0]:
            # torch: grad is 0 where the exponent is 0 (even at a == 0)
            ga = unbroadcast(xp.where(b == 0, 0, g * b * xp.power(a, b - 1)), a.shape).astype(a.dtype, copy=False)
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = unbroadcast(xp.where((a == 0) & (b >= 0), 0, g * y * xp.log(a)), b.shape).astype(b.dtype, copy=False)
        return ga, gb


class Maximum(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.maximum(a, b)

    def backward(ctx, g):
        a, b = ctx.saved
        # ties split the gradient evenly, as torch does
        w = (a > b) + 0.5 * (a == b)
        return (unbroadcast(g * w, a.shape).astype(a.dtype, copy=False) if ctx.needs_input_grad[0] else None,
                unbroadcast(g * (1 - w), b.shape).astype(b.dtype, copy=False) if ctx.needs_input_grad[1] else None)


class Minimum(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.minimum(a, b)

    def backward(ctx, g):
        a, b = ctx.saved
        w = (a < b) + 0.5 * (a == b)
        return (unbroadcast(g * w, a.shape).astype(a.dtype, copy=False) if ctx.needs_input_grad[0] else None,
                unbroadcast(g * (1 - w), b.shape).astype(b.dtype, copy=False) if ctx.needs_input_grad[1] else None)


class Atan2(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.arctan2(a, b)

    def backward(ctx, g):
        a, b = ctx.saved
        d = a * a + b * b
        return unbroadcast(g * b / d, a.shape), unbroadcast(-g * a / d, b.shape)


def _keeps_dtype(t, s, float_result):
    """Is `t op s` for a Python scalar `s` of t's dtype? (the common case, kept off the promotion path)"""
    k = t._data.dtype.kind
    return type(s) is float and k in "fc" or type(s) is int and k in ("fc" if float_result else "fciu")


# Python numbers as op operands: 0-d tensors of the other operand's dtype (torch's wrapped numbers). On the CPU the
# common ones are made once: a wrapped number is no one's but the ops' (never written, never handed out), and
# making it (array, tensor, version counter) was a fifth of a small op's cost. Not while saved-tensor hooks
# run, which are handed the operands; zeros (0.0 and -0.0 are one key) and NaN (no key) are made each time.
_SCALARS = {}
_SCALARS_MAX = 256


def _scalar_operand(value, np_dtype, dev):
    """A Python int or float as the 0-d tensor of dtype `np_dtype` on `dev` that an op takes it as."""
    if dev._gpu is not None or not value or value != value or _hooks_live[0]:
        return _wrap(scalar_array(value, np_dtype, dev), dev)
    key = (value, np_dtype)
    t = _SCALARS.get(key)
    if t is None:
        if len(_SCALARS) >= _SCALARS_MAX:
            _SCALARS.clear()
        t = _SCALARS[key] = _wrap(scalar_array(value, np_dtype, dev), dev)
    return t


def _binary(cls, a, b, out=None, float_result=False, **kw):
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            if a._data.dtype == b._data.dtype and not float_result:
                if a._data.shape != b._data.shape:
                    _bcast_check(a, b)
                return out_copy(cls.apply(a, b, **kw), out)
        elif _keeps_dtype(a, b, float_result):
            return out_copy(cls.apply(a, _scalar_operand(b, a._data.dtype, a._device), **kw), out)
    elif isinstance(b, Tensor) and _keeps_dtype(b, a, float_result):
        return out_copy(cls.apply(_scalar_operand(a, b._data.dtype, b._device), b, **kw), out)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{cls._op.lower()}(): expected at least one Tensor argument")
    for x in (a, b):
        if not isinstance(x, (Tensor, numbers.Number, np.generic)):
            raise TypeError(f"unsupported operand type for {cls._op.lower()}: '{type(x).__name__}'")
    if float_result:
        dt = _dtype.result_type_of((a, b))
        if not (dt.is_floating_point or dt.is_complex):
            # integers meet as floats, Python numbers included (uint8 / 300 divides by 300, not by 300 wrapped
            # into uint8)
            from ._util import cast
            dt = _dtype.get_default_dtype()
            a, b = (cast(x, dt) if isinstance(x, Tensor) else x for x in (a, b))
    (a, b), dt = promote(a, b)
    _bcast_check(a, b)
    return out_copy(cls.apply(a, b, **kw), out)


# the one test a dense add or sub pays, a set lookup of the operands' types: a sparse tensor's type
# (dtrain.sparse registers it) sends the op to the sparse code
SPARSE_TYPES = set()


@method()
def add(input, other, *, alpha=1, out=None):
    if type(input) in SPARSE_TYPES or type(other) in SPARSE_TYPES:
        from ..sparse import _add_any
        return out_copy(_add_any(input, other, alpha), out)
    return _binary(Add, input, other, out, alpha=alpha) if alpha != 1 else _binary(Add, input, other, out)


@method()
def sub(input, other, *, alpha=1, out=None):
    # torch's sub_check: a Python bool counts as a bool tensor (a wrapped number), on either side
    a_bool, b_bool = _is_bool(input), _is_bool(other)
    if a_bool and b_bool:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or "
                           "`logical_xor()` operator instead.")
    if a_bool or b_bool:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying "
                           "to invert a mask, use the `~` or `logical_not()` operator instead.")
    if type(input) in SPARSE_TYPES or type(other) in SPARSE_TYPES:
        from ..sparse import _add_any
        return out_copy(_add_any(input, other, -alpha), out)
    return _binary(Sub, input, other, out, alpha=alpha) if alpha != 1 else _binary(Sub, input, other, out)


subtract = sub
Tensor.subtract = sub


@method()
def mul(input, other, *, out=None):
    return _binary(Mul, input, other, out)


multiply = mul
Tensor.multiply = mul


@method()
def div(input, other, *, rounding_mode=None, out=None):
    if rounding_mode is None:
        return _binary(Div, input, other, out, float_result=True)
    (a, b), dt = promote(input, other)
    xp = a._device.xp
    if rounding_mode == "trunc":
        fn = lambda x, y: xp.trunc(x / y).astype(x.dtype, copy=False)
    elif rounding_mode == "floor":
        fn = xp.floor_divide
    else:
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                           f"'{rounding_mode}'")
    return out_copy(nondiff(fn, a, b), out)


divide = true_divide = div
Tensor.divide = Tensor.true_divide = div


@method()
@autocast_op("pow")
def pow(input, exponent, *, out=None):
    if isinstance(input, Tensor) and isinstance(exponent, numbers.Number) and not isinstance(exponent, bool):
        if input._data.dtype.kind in "biu" and isinstance(exponent, int) and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        if float(exponent) in _SCALAR_POW and input._data.dtype.kind in "fc":
            return _binary(Pow, input, exponent, out, scalar=float(exponent))
    return _binary(Pow, input, exponent, out)


@method()
def float_power(input, exponent, *, out=None):
    """pow in double precision: float64, or complex128 when either operand is complex."""
    complex_ = any(isinstance(x, complex) or isinstance(x, Tensor) and x.is_complex() for x in (input, exponent))
    dt = _dtype.complex128 if complex_ else _dtype.float64
    return pow(input.to(dt) if isinstance(input, Tensor) else input,
               exponent.to(dt) if isinstance(exponent, Tensor) else exponent, out=out)


def _float_power_(self, exponent):
    complex_ = isinstance(exponent, complex) or isinstance(exponent, Tensor) and exponent.is_complex()
    want = _dtype.complex128 if complex_ or self.is_complex() else _dtype.float64
    if self.dtype is not want:
        raise RuntimeError(f"the base given to float_power_ has dtype {_dtype.scalar_name(self.dtype)} but the "
                           f"operation's result requires dtype {_dtype.scalar_name(want)}")
    return assign_(self, float_power(self, exponent))


@method()
def maximum(input, other, *, out=None):
    return _binary(Maximum, input, other, out)


@method()
def minimum(input, other, *, out=None):
    return _binary(Minimum, input, other, out)


class Fmax(Function):
    """maximum that ignores NaN; the gradient goes to `a` on ties (torch's rule, unlike maximum's even split)."""

    def forward(ctx, a, b, is_max=True):
        xp = ctx.xp
        ctx.save_for_backward(a, b)
        ctx.is_max = is_max
        return xp.fmax(a, b) if is_max else xp.fmin(a, b)

    def name(self):
        return "FmaxBackward0" if self.is_max else "FminBackward0"

    def backward(ctx, g):
        a, b = ctx.saved
        xp = ctx.xp
        to_a = ((a >= b) if ctx.is_max else (a <= b)) | xp.isnan(b)
        return (unbroadcast(xp.where(to_a, g, 0), a.shape).astype(a.dtype, copy=False),
                unbroadcast(xp.where(to_a, 0, g), b.shape).astype(b.dtype, copy=False))


def _fmaxmin(name, input, other, out, is_max):
    for arg, pos, x in (("input", 1, input), ("other", 2, other)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}(): argument '{arg}' (position {pos}) must be Tensor, not {type(x).__name__}")
    if input.is_complex() or other.is_complex():
        raise RuntimeError(f"{name} not implemented for complex tensors.")
    return _binary(Fmax, input, other, out, is_max=is_max)


@method()
def fmax(input, other, *, out=None):
    return _fmaxmin("fmax", input, other, out, True)


@method()
def fmin(input, other, *, out=None):
    return _fmaxmin("fmin", input, other, out, False)


class Copysign(Function):
    def forward(ctx, a, b):
        y = ctx.xp.copysign(a, b)
        ctx.save_for_backward(a, y)
        ctx.b_shape = b.shape
        return y

    def backward(ctx, g):
        a, y = ctx.saved
        xp = ctx.xp
        with np.errstate(invalid="ignore", divide="ignore"):
            ga = xp.where(a == 0, 0, g * (y / a))  # ±1: whether the sign flipped
        return unbroadcast(ga, a.shape).astype(a.dtype, copy=False), xp.zeros(ctx.b_shape, g.dtype)


@method()
def copysign(input, other, *, out=None):
    """input's magnitude with other's sign (of -0.0 too); integer operands give the default float dtype."""
    return _binary(Copysign, input, other, out, float_result=True)


@method()
def nextafter(input, other, *, out=None):
    """The next representable float after input towards other (not differentiable)."""
    (a, b), dt = promote(input, other)
    if not dt.is_floating_point:
        raise NotImplementedError(f"\"nextafter_cpu\" not implemented for '{_dtype.scalar_name(dt)}'")
    _bcast_check(a, b)
    return out_copy(nondiff(a._device.xp.nextafter, a, b), out)


@method()
@autocast_op("atan2")
def atan2(input, other, *, out=None):
    return _binary(Atan2, input, other, out, float_result=True)


arctan2 = atan2
Tensor.arctan2 = atan2


@method()
def remainder(input, other, *, out=None):
    (a, b), _ = promote(input, other)
    _bcast_check(a, b)
    return out_copy(_Remainder.apply(a, b), out)


class _Remainder(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.shapes = a.shape, b.shape
        return ctx.xp.remainder(a, b)

    def backward(ctx, g):
        a, b = ctx.saved
        return unbroadcast(g, a.shape), unbroadcast(-g * ctx.xp.floor(a / b), b.shape)


class _Fmod(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.fmod(a, b)

    def backward(ctx, g):
        a, b = ctx.saved
        return unbroadcast(g, a.shape), unbroadcast(-g * ctx.xp.trunc(a / b), b.shape)


@method()
def fmod(input, other, *, out=None):
    (a, b), _ = promote(input, other)
    _bcast_check(a, b)
    return out_copy(_Fmod.apply(a, b), out)


@method()
def floor_divide(input, other, *, out=None):
    return div(input, other, rounding_mode="floor", out=out)


# ---------------------------------------------------------------------------------------------- comparisons
def _laid_out(r, a, b):
    """r, computed elementwise from tensors a and b outside Function.apply, laid out as torch lays it out."""
    x, y, o = a._data, b._data, r._data
    if o.ndim > 1 and not (x.flags.c_contiguous and y.flags.c_contiguous and
                           (x.shape == o.shape or 1 not in x.shape or _graph._c_strides(x)) and
                           (y.shape == o.shape or 1 not in y.shape or _graph._c_strides(y))):
        with _backend.on_device(r._device) if r._device._gpu is not None else contextlib.nullcontext():
            r._data = iterator_layout(r._device.xp, r._data, (a._data, b._data))
    return r


def _compare(name):
    def fn(input, other, *, out=None):
        (a, b), _ = promote(input, other)
        _bcast_check(a, b)
        ufunc = getattr(a._device.xp, name)
        return out_copy(_laid_out(nondiff(ufunc, a, b), a, b), out)
    fn.__name__ = name
    return fn


eq, ne, lt, le, gt, ge = (_compare(n) for n in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"))
for _n, _f in dict(eq=eq, ne=ne, lt=lt, le=le, gt=gt, ge=ge).items():
    _f.__name__ = _n
    setattr(Tensor, _n, _f)
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
Tensor.greater, Tensor.greater_equal, Tensor.less, Tensor.less_equal, Tensor.not_equal = gt, ge, lt, le, ne


def _logical(name):
    def fn(input, other, *, out=None):
        b = other if isinstance(other, Tensor) else _wrap(input._device.xp.asarray(other), input._device)
        return out_copy(_laid_out(nondiff(getattr(input._device.xp, name), input, b), input, b), out)
    fn.__name__ = name
    setattr(Tensor, name, fn)
    return fn


logical_and, logical_or, logical_xor = (_logical(n) for n in ("logical_and", "logical_or", "logical_xor"))


@method()
def logical_not(input, *, out=None):
    return out_copy(nondiff(input._device.xp.logical_not, input), out)


def _bitwise(name, np_name):
    def fn(input, other, *, out=None):
        (a, b), dt = promote(input, other)
        if dt.is_floating_point or dt.is_complex:
            raise NotImplementedError(f"\"{name}_cpu\" not implemented for '{_dtype.scalar_name(dt)}'")
        return out_copy(nondiff(getattr(a._device.xp, np_name), a, b), out)
    fn.__name__ = name
    setattr(Tensor, name, fn)
    return fn


bitwise_and = _bitwise("bitwise_and", "bitwise_and")
bitwise_or = _bitwise("bitwise_or", "bitwise_or")
bitwise_xor = _bitwise("bitwise_xor", "bitwise_xor")


@method()
def bitwise_not(input, *, out=None):
    if input.is_floating_point() or input.is_complex():
        raise NotImplementedError(f"\"bitwise_not_cpu\" not implemented for '{_dtype.scalar_name(input.dtype)}'")
    return out_copy(nondiff(input._device.xp.invert, input), out)


@method()
@on_input_device
def equal(input, other):
    """True when both tensors have the same shape and elements."""
    return input.shape == other.shape and bool((input._data == other._data).all())


@method()
@on_input_device
def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(input._device.xp.allclose(input._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


@method()
def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return nondiff(lambda a, b: input._device.xp.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan), input, other)


# ------------------------------------------------------------------------------------------------- in-place
# the write itself and autograd's view bookkeeping live in inplace.py; the `op_` methods are built here
from .inplace import apply_, assign_, check_inplace  # noqa: E402,F401 - imported from here by other op families


def _inplace(fn):
    def op_(self, *args, **kwargs):
        return apply_(self, fn, args, kwargs)
    op_.__name__ = fn.__name__ + "_"
    return op_


for _name, _fn in dict(add=add, sub=sub, mul=mul, div=div, pow=pow, remainder=remainder, fmod=fmod,
                       floor_divide=floor_divide, maximum=maximum, minimum=minimum, atan2=atan2, arctan2=atan2,
                       copysign=copysign, nextafter=nextafter,
                       logical_and=logical_and, logical_or=logical_or, logical_xor=logical_xor,
                       logical_not=logical_not, bitwise_and=bitwise_and, bitwise_or=bitwise_or,
                       bitwise_xor=bitwise_xor, bitwise_not=bitwise_not,
                       eq=eq, ne=ne, lt=lt, le=le, gt=gt, ge=ge, greater=gt, greater_equal=ge, less=lt,
                       less_equal=le, not_equal=ne).items():
    setattr(Tensor, _name + "_", _inplace(_fn))
Tensor.float_power_ = _float_power_
Tensor.subtract_, Tensor.multiply_, Tensor.divide_, Tensor.true_divide_ = Tensor.sub_, Tensor.mul_, Tensor.div_, Tensor.div_


# -------------------------------------------------------------------------------------------- operators
# torch's node names for a Python number on the left: rsub(x, 1), x.reciprocal() * 2, pow(2, x)
def _rsub(self, other):
    return _graph.renamed(sub(other, self), "RsubBackward1")


def _rdiv(self, other):
    return _graph.renamed(div(other, self), "MulBackward0")


def _rpow(self, other):
    return _graph.renamed(pow(other, self), "PowBackward2")


def _rfloordiv(self, other):
    return floor_divide(other, self)


def _rmod(self, other):
    return remainder(other, self)


def _and(a, b):
    return bitwise_and(a, b) if not (a.dtype is _dtype.bool and _is_bool(b)) else logical_and(a, b)


def _or(a, b):
    return bitwise_or(a, b) if not (a.dtype is _dtype.bool and _is_bool(b)) else logical_or(a, b)


def _xor(a, b):
    return bitwise_xor(a, b) if not (a.dtype is _dtype.bool and _is_bool(b)) else logical_xor(a, b)


def _is_bool(b):
    return isinstance(b, bool) or (isinstance(b, Tensor) and b.dtype is _dtype.bool)


def _invert(a):
    if a.is_floating_point() or a.is_complex():
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    return logical_not(a) if a.dtype is _dtype.bool else bitwise_not(a)


def _operator(cls, general, kinds):
    """The Python operator of op `cls` (`a + b`, and `b + a` with self first). The common case goes straight
    to the op: a dense tensor with a Python float (a tensor of floating or complex dtype, which a float
    keeps) or int (one of `kinds`, the dtype kinds an int keeps), or with a dense tensor of the same dtype
    (of `kinds`) and shape. Everything else (promotion, broadcasting, sparse tensors, their errors) goes
    through `general`, the torch function: two fewer calls and no keyword handling per operator."""
    def op(a, b):
        tb = type(b)
        if tb is float or tb is int:
            ad = a._data
            if type(a) not in SPARSE_TYPES and ad.dtype.kind in ("fc" if tb is float else kinds):
                return cls.apply(a, _scalar_operand(b, ad.dtype, a._device))
        elif isinstance(b, Tensor):
            ad, bd = a._data, b._data
            if type(a) not in SPARSE_TYPES and tb not in SPARSE_TYPES and ad.dtype == bd.dtype and \
                    ad.shape == bd.shape and ad.dtype.kind in kinds:
                return cls.apply(a, b)
        return general(a, b)
    op.__name__ = f"__{cls._op.lower()}__"
    return op


Tensor.__add__ = Tensor.__radd__ = _operator(Add, lambda a, b: add(a, b), "fciu")
Tensor.__sub__ = _operator(Sub, lambda a, b: sub(a, b), "fciu")  # (a bool tensor is sub's error)
Tensor.__rsub__ = _rsub
Tensor.__mul__ = Tensor.__rmul__ = _operator(Mul, lambda a, b: mul(a, b), "fciu")
Tensor.__truediv__ = _operator(Div, lambda a, b: div(a, b), "fc")  # integers divide into floats
Tensor.__rtruediv__ = _rdiv
Tensor.__floordiv__ = lambda a, b: floor_divide(a, b)
Tensor.__rfloordiv__ = _rfloordiv
Tensor.__mod__ = lambda a, b: remainder(a, b)
Tensor.__rmod__ = _rmod
Tensor.__pow__ = lambda a, b: pow(a, b)
Tensor.__rpow__ = _rpow
Tensor.__eq__ = lambda a, b: eq(a, b) if isinstance(b, (Tensor, numbers.Number, np.generic)) else False
Tensor.__ne__ = lambda a, b: ne(a, b) if isinstance(b, (Tensor, numbers.Number, np.generic)) else True
Tensor.__lt__ = lambda a, b: lt(a, b)
Tensor.__le__ = lambda a, b: le(a, b)
Tensor.__gt__ = lambda a, b: gt(a, b)
Tensor.__ge__ = lambda a, b: ge(a, b)
Tensor.__and__ = Tensor.__rand__ = _and
Tensor.__or__ = Tensor.__ror__ = _or
Tensor.__xor__ = Tensor.__rxor__ = _xor
Tensor.__invert__ = _invert
Tensor.__iadd__ = lambda a, b: Tensor.add_(a, b)
Tensor.__isub__ = lambda a, b: Tensor.sub_(a, b)
Tensor.__imul__ = lambda a, b: Tensor.mul_(a, b)
Tensor.__itruediv__ = lambda a, b: Tensor.div_(a, b)
Tensor.__ipow__ = lambda a, b: Tensor.pow_(a, b)
Tensor.__imod__ = lambda a, b: Tensor.remainder_(a, b)
Tensor.__ifloordiv__ = lambda a, b: Tensor.floor_divide_(a, b)
Tensor.__iand__ = lambda a, b: Tensor.bitwise_and_(a, b)
Tensor.__ior__ = lambda a, b: Tensor.bitwise_or_(a, b)
Tensor.__ixor__ = lambda a, b: Tensor.bitwise_xor_(a, b)
# numpy scalars on the left (np.float32(2) * t) defer to the tensor's reflected operators, as with torch
Tensor.__array_priority__ = 1000


pointwise(Add, Sub, Mul, Div, Pow, Maximum, Minimum, Atan2, Fmax, Copysign, _Remainder, _Fmod)
