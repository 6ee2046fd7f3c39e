"""Unary elementwise math; each op's backward sits beside its forward."""
import math

import numpy as np

from .. import _cpu_kernels, _cuda_kernels, _dtype, _parallel
from .._backend import kernels
from .._axpy import add_scaled
from .._tensor import Tensor
from ..autograd import graph as _graph
from ..autograd.graph import Function
from ._lowp import widened
from ._layout import pointwise
from ._util import cast, method, nondiff, out_copy, promote, to_float, unbroadcast
from .arith import apply_, assign_
from ..amp._dispatch import autocast_op


# Python floats, not NumPy scalars: under NumPy 2's promotion rules a np.float64 scalar turns a float32 array
# into float64 (slower, and a cast back), while a Python float adopts the array's dtype, as in torch
_LN2, _LN10 = math.log(2.0), math.log(10.0)
_SQRT1_2 = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_2_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_1_OVER_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


# erf(z) for |z| <= 4 as z * P(z^2) / Q(z^2), the minimax fit Eigen uses for float; evaluated in double
# precision it is within 7e-8 of erf, so rounded to float32 it is within 1.6 ulp (SciPy's exact erf is ~25x
# slower per element, and GELU on float32 spent most of its time there)
_ERF_P = (-1.60960333262415e-02, -2.95459980854025e-03, -7.34990630326855e-04, -5.69250639462346e-05,
          -2.10102402082508e-06, 2.77068142495902e-08, -2.72614225801306e-10)
_ERF_Q = (-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03, -2.13374055278905e-04,
          -1.45660718464996e-05)
_GELU_BLOCKWISE = 1 << 14  # float32 elements from which GELU takes the blockwise path


def _gelu_f32(x):
    """GELU of a float32 NumPy array: (x * cdf, cdf) with cdf = Φ(x), block by block on every core."""
    xf = np.ascontiguousarray(x).reshape(-1)
    y, cdf = np.empty_like(xf), np.empty_like(xf)
    p_hi, q_hi = _ERF_P[::-1], _ERF_Q[::-1]

    def block(a, b):
        z = xf[a:b].astype(np.float64)
        z *= _SQRT1_2
        np.clip(z, -4.0, 4.0, out=z)
        z2 = z * z
        num = z2 * p_hi[0]
        for c in p_hi[1:-1]:
            num += c
            num *= z2
        num += p_hi[-1]
        num *= z  # the numerator is odd
        den = z2 * q_hi[0]
        for c in q_hi[1:-1]:
            den += c
            den *= z2
        den += q_hi[-1]
        num /= den  # erf(x / sqrt 2)
        num += 1.0
        num *= 0.5
        np.clip(num, 0.0, 1.0, out=num)  # the fit overshoots by ~1e-7 near |z| = 4
        cdf[a:b] = num
        np.multiply(xf[a:b], cdf[a:b], out=y[a:b])
    with np.errstate(invalid="ignore"):  # -inf * 0 is NaN, as in torch, without a warning
        _parallel.blockwise(block, xf.size)
    return y.reshape(x.shape), cdf.reshape(x.shape)


def _gelu_grad_f32(g, x, cdf):
    """g * GELU'(x) for float32 NumPy arrays, block by block: GELU' = Φ(x) + x φ(x)."""
    gf, xf, cf = (np.ascontiguousarray(a).reshape(-1) for a in (g, x, cdf))
    out = np.empty_like(xf)

    def block(a, b):
        xs = xf[a:b]
        t = xs * xs
        t *= -0.5
        np.exp(t, out=t)
        t *= _1_OVER_SQRT_2PI
        t *= xs
        t += cf[a:b]
        np.multiply(gf[a:b], t, out=out[a:b])
    with np.errstate(invalid="ignore", over="ignore"):
        _parallel.blockwise(block, xf.size)
    return out.reshape(x.shape)


def _gelu_tanh_f32(x):
    """tanh-approximated GELU of a float32 NumPy array: (0.5 x (1 + t), t) with t = tanh(√(2/π)(x + 0.044715 x³)),
    block by block on every core, in torch's order of operations (the cube as x·x·x, never np.power)."""
    xf = np.ascontiguousarray(x).reshape(-1)
    y, t = np.empty_like(xf), np.empty_like(xf)

    def block(a, b):
        xs, ts, ys = xf[a:b], t[a:b], y[a:b]
        np.multiply(xs, xs, out=ts)
        ts *= xs
        ts *= 0.044715
        ts += xs
        ts *= _SQRT_2_OVER_PI
        np.tanh(ts, out=ts)
        np.add(ts, 1.0, out=ys)
        ys *= xs
        ys *= 0.5
    with np.errstate(invalid="ignore"):  # tanh(±inf) terms give inf·0 = NaN at -inf, as in torch, without a warning
        _parallel.blockwise(block, xf.size)
    return y.reshape(x.shape), t.reshape(x.shape)


def _gelu_tanh_grad_f32(g, x, t):
    """g * d/dx of the tanh GELU, block by block: 0.5 (1 + t) + 0.5 x (1 - t²) √(2/π) (1 + 3·0.044715 x²)."""
    gf, xf, tf = (np.ascontiguousarray(a).reshape(-1) for a in (g, x, t))
    out = np.empty_like(xf)

    def block(a, b):
        xs, ts, o = xf[a:b], tf[a:b], out[a:b]
        u = xs * xs
        u *= 3 * 0.044715
        u += 1.0
        u *= xs
        u *= 0.5 * _SQRT_2_OVER_PI
        v = ts * ts
        np.subtract(1.0, v, out=v)
        u *= v
        np.add(ts, 1.0, out=o)
        o *= 0.5
        o += u
        o *= gf[a:b]
    with np.errstate(invalid="ignore", over="ignore"):
        _parallel.blockwise(block, xf.size)
    return out.reshape(x.shape)


def _erf(xp, x):
    k = kernels[xp]
    erf = k.special("erf")
    if k.host and x.size >= 2 * _parallel.MIN_SLICE:
        # SciPy's erf is one of the slowest elementwise functions there is: use every core on large arrays
        return _parallel.map_flat(erf, np.ascontiguousarray(x))
    return erf(x)


class Neg(Function):
    def forward(ctx, x):
        return -x

    def backward(ctx, g):
        return -g


class Exp(Function):
    def forward(ctx, x):
        y = ctx.xp.exp(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y


class Expm1(Function):
    def forward(ctx, x):
        y = ctx.xp.expm1(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (y + 1)


class Log(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g / x


class Log2(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log2(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (x * _LN2)


class Log10(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log10(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (x * _LN10)


class Log1p(Function):
    _grad_fn_name = "Log1PBackward0"  # torch capitalizes after a digit (Exp2, Log1P, Xlog1Py)

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log1p(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (x + 1)


class Sqrt(Function):
    def forward(ctx, x):
        y = ctx.xp.sqrt(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g / (2 * y)


class Rsqrt(Function):
    def forward(ctx, x):
        y = 1 / ctx.xp.sqrt(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g * -0.5 * y * y * y


class Abs(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.abs(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g * ctx.xp.sign(x)


class Sin(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.sin(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g * ctx.xp.cos(x)


class Cos(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.cos(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return -g * ctx.xp.sin(x)


class Tan(Function):
    def forward(ctx, x):
        y = ctx.xp.tan(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (1 + y * y)


class Asin(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.arcsin(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g / ctx.xp.sqrt(1 - x * x)


class Acos(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.arccos(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return -g / ctx.xp.sqrt(1 - x * x)


class Atan(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.arctan(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (1 + x * x)


class Asinh(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.arcsinh(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g / ctx.xp.sqrt(x * x + 1)


class Acosh(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.arccosh(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g / ctx.xp.sqrt(x * x - 1)


class Atanh(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.arctanh(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (1 - x * x)


class Sinh(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.sinh(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g * ctx.xp.cosh(x)


class Cosh(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.cosh(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g * ctx.xp.sinh(x)


_KERNEL_MIN = 1 << 18  # elements from which the compiled tanh/sigmoid/relu backward beats NumPy's (an MLP's 32 K
# activations: 63 us compiled against 40 us NumPy; 512 K floats: 0.66-0.82x NumPy)


class Tanh(Function):
    def forward(ctx, x):
        y = ctx.xp.tanh(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        # (a broadcast gradient, as from sum(), is left to NumPy: making it contiguous costs what the kernel saves;
        # so are small ones, where the call costs more than the pass it saves)
        fused = _cpu_kernels.get(g, y) if g.size >= _KERNEL_MIN and g.shape == y.shape and g.flags.c_contiguous \
            else None
        if fused is not None:
            return fused.tanh_backward(g, y)
        return g * (1 - y * y)


class Sigmoid(Function):
    def forward(ctx, x):
        xp = ctx.xp
        # NOTE: written as 0.5 * (1 + tanh(x / 2)) — stable for large |x| and one transcendental call
        y = xp.tanh(x * 0.5)
        y += 1
        y *= 0.5
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        # (a broadcast gradient, as from sum(), is left to NumPy: making it contiguous costs what the kernel saves;
        # so are small ones, where the call costs more than the pass it saves)
        fused = _cpu_kernels.get(g, y) if g.size >= _KERNEL_MIN and g.shape == y.shape and g.flags.c_contiguous \
            else None
        if fused is not None:
            return fused.sigmoid_backward(g, y)
        return g * y * (1 - y)


class Relu(Function):
    def forward(ctx, x):
        y = ctx.xp.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        # (a broadcast gradient, as from sum(), is left to NumPy: making it contiguous costs what the kernel saves;
        # so are small ones, where the call costs more than the pass it saves)
        fused = _cpu_kernels.get(g, y) if g.size >= _KERNEL_MIN and g.shape == y.shape and g.flags.c_contiguous \
            else None
        if fused is not None:
            return fused.relu_backward(g, y)
        # torch's threshold_backward passes the gradient unless y <= 0, so a NaN output passes it too (not y > 0).
        # NOTE: a NaN gradient where y <= 0 stays NaN here, where torch (and the compiled kernel) gives 0: a where()
        # that would match costs 6-9x this product over a random mask (2.7 against 0.37 ms over 512 K floats)
        keep = ctx.xp.less_equal(y, 0)
        keep = ctx.xp.logical_not(keep, out=keep) if keep.ndim else ~keep  # (a 0-d result is a NumPy scalar)
        if keep.ndim and g.dtype == y.dtype and y.dtype.kind == "f" and y.itemsize >= 4:
            # the mask read as 0/1 bytes: a float32 or float64 product with int8 takes NumPy's faster cast (128x256:
            # 15 against 22 us) to the same values, bit for bit, as with bool (NaN, inf and -0 included)
            return g * keep.view(np.int8)
        return g * keep


class Erf(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _erf(ctx.xp, x).astype(x.dtype, copy=False)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g * _2_OVER_SQRT_PI * ctx.xp.exp(-x * x)


class Reciprocal(Function):
    def forward(ctx, x):
        y = 1 / x
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return -g * y * y


class Square(Function):
    _grad_fn_name = "PowBackward0"  # torch's square is pow(x, 2)

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    def backward(ctx, g):
        (x,) = ctx.saved
        return 2 * g * x


class Clamp(Function):
    def forward(ctx, x, min=None, max=None):
        y = ctx.xp.clip(x, min, max)
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = min, max
        return y.astype(x.dtype, copy=False)

    _grad_fn_name = "ClampBackward1"  # clamp(Tensor, Scalar?, Scalar?); x.clamp_min(0) is ClampMinBackward0

    def backward(ctx, g):
        (x,) = ctx.saved
        keep = True
        if ctx.lo is not None:
            keep = x >= ctx.lo
        if ctx.hi is not None:
            keep = keep & (x <= ctx.hi)
        return g * keep


class ClampTensor(Function):
    _grad_fn_name = "ClampBackward0"

    def forward(ctx, x, lo, hi):
        xp = ctx.xp
        ctx.save_for_backward(x, lo, hi)
        return xp.minimum(xp.maximum(x, lo), hi)

    def backward(ctx, g):
        x, lo, hi = ctx.saved
        nig = ctx.needs_input_grad
        # torch's clamp_backward_min_max: with min > max every value is max
        return (unbroadcast(g * ((x >= lo) & (x <= hi)), x.shape) if nig[0] else None,
                unbroadcast(g * ((x < lo) & (lo < hi)), lo.shape) if nig[1] else None,
                unbroadcast(g * ((x > hi) | (hi < lo)), hi.shape) if nig[2] else None)


class ZeroGrad(Function):
    """floor / ceil / round / trunc / sign: piecewise constant, gradient zero."""

    def forward(ctx, x, fn, decimals=0):
        ctx.shape, ctx.dtype, ctx.fn = x.shape, x.dtype, fn
        if fn == "round":
            return ctx.xp.round(x, decimals)
        if fn == "sign":  # torch's sign(nan) is 0, where numpy's is nan
            return ((x > 0).astype(x.dtype) - (x < 0)).astype(x.dtype, copy=False) if x.dtype.kind != "b" else x.copy()
        return getattr(ctx.xp, fn)(x)

    def backward(ctx, g):
        return ctx.xp.zeros(ctx.shape, ctx.dtype)

    def name(self):
        return self.fn.capitalize() + "Backward0"


class Gelu(Function):
    @widened
    def forward(ctx, x, approximate="none"):
        xp = ctx.xp
        ctx.approximate = approximate
        # the compiled kernels, one pass each way: numba's on the CPU (when installed), CUDA's on a GPU
        fused = _cpu_kernels.get(x) or _cuda_kernels.get(x)
        if approximate == "tanh":
            if fused is not None:
                y, t = fused.gelu_tanh(x)
            elif kernels[xp].host and x.dtype == np.float32 and x.size >= _GELU_BLOCKWISE:
                y, t = _gelu_tanh_f32(x)
            else:
                t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x)))
                y = (0.5 * x * (1 + t)).astype(x.dtype, copy=False)
            ctx.save_for_backward(x, t)
            return y
        # the normal CDF is kept for backward, which then needs no second erf (the expensive part)
        if fused is not None:
            y, cdf = fused.gelu(x)
            ctx.save_for_backward(x, cdf)
            return y
        if kernels[xp].host and x.dtype == np.float32 and x.size >= _GELU_BLOCKWISE:
            y, cdf = _gelu_f32(x)
            ctx.save_for_backward(x, cdf)
            return y
        cdf = _erf(xp, x * _SQRT1_2)
        cdf += 1
        cdf *= 0.5
        ctx.save_for_backward(x, cdf)
        # erf may answer in a wider dtype than x's (float16 on CUDA: float32): the product rounds once to x's
        return (x * cdf).astype(x.dtype, copy=False)

    @widened
    def backward(ctx, g):
        x, c = ctx.saved
        xp = ctx.xp
        fused = (_cpu_kernels.get(g, x, c) or _cuda_kernels.get(g, x, c)) if g.shape == x.shape else None
        if fused is not None:
            return (fused.gelu_tanh_backward if ctx.approximate == "tanh" else fused.gelu_backward)(g, x, c)
        if ctx.approximate == "tanh":
            if kernels[xp].host and x.dtype == np.float32 and x.size >= _GELU_BLOCKWISE and g.shape == x.shape:
                return _gelu_tanh_grad_f32(g, x, c)
            k = _SQRT_2_OVER_PI
            d = 0.5 * (1 + c) + 0.5 * x * (1 - c * c) * k * (1 + 3 * 0.044715 * x * x)
        elif kernels[xp].host and x.dtype == np.float32 and x.size >= _GELU_BLOCKWISE and g.shape == x.shape:
            return _gelu_grad_f32(g, x, c)
        else:
            pdf = xp.exp(-0.5 * x * x)
            pdf *= _1_OVER_SQRT_2PI
            d = c + x * pdf
        return (g * d).astype(x.dtype, copy=False)


class Silu(Function):
    def forward(ctx, x):
        s = 0.5 * (1 + ctx.xp.tanh(0.5 * x))
        ctx.save_for_backward(x, s)
        return x * s

    def backward(ctx, g):
        x, s = ctx.saved
        return g * s * (1 + x * (1 - s))


class Softplus(Function):
    def forward(ctx, x, beta=1.0, threshold=20.0):
        xp = ctx.xp
        bx = x * beta
        y = xp.where(bx > threshold, x, xp.logaddexp(0, bx) / beta).astype(x.dtype, copy=False)
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        return y

    def backward(ctx, g):
        (x,) = ctx.saved
        bx = x * ctx.beta
        s = 0.5 * (1 + ctx.xp.tanh(0.5 * bx))
        return (g * ctx.xp.where(bx > ctx.threshold, 1, s)).astype(x.dtype, copy=False)


def _no_bool(input, name):
    if input._data.dtype.kind == "b":
        if name == "neg":
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
                               "invert a mask, use the `~` or `logical_not()` operator instead.")
        if name == "relu":
            raise RuntimeError("Boolean inputs not supported for relu")
        if name == "square":
            return cast(input, _dtype.int64)
        raise NotImplementedError(f"\"{name}_cpu\" not implemented for 'Bool'")
    return input


def _unary(cls, floaty=True, name=None):
    fname = name or cls._op.lower()

    def fn(input, *, out=None):
        if floaty:
            x = to_float(input) if input._data.dtype.kind in "biu" else input
        else:
            x = _no_bool(input, fname)
        r = cls.apply(x)
        return r if out is None else out_copy(r, out)
    fn.__name__ = fname
    fn = autocast_op(fname)(fn)  # exp, log, rsqrt, ...: float32 under CUDA autocast
    setattr(Tensor, fn.__name__, fn)
    setattr(Tensor, fn.__name__ + "_", lambda self: apply_(self, fn))
    return fn


exp, expm1, log, log2, log10, log1p = (_unary(c) for c in (Exp, Expm1, Log, Log2, Log10, Log1p))
sqrt, rsqrt, sin, cos, tan = (_unary(c) for c in (Sqrt, Rsqrt, Sin, Cos, Tan))
asin, acos, atan = _unary(Asin), _unary(Acos), _unary(Atan)
asinh, acosh, atanh = _unary(Asinh), _unary(Acosh), _unary(Atanh)
arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh
for _alias, _name in dict(arcsin="asin", arccos="acos", arctan="atan", arcsinh="asinh", arccosh="acosh",
                          arctanh="atanh").items():
    setattr(Tensor, _alias, getattr(Tensor, _name))
    setattr(Tensor, _alias + "_", getattr(Tensor, _name + "_"))
sinh, cosh, tanh, sigmoid, erf, reciprocal = (_unary(c) for c in (Sinh, Cosh, Tanh, Sigmoid, Erf, Reciprocal))
neg = _unary(Neg, floaty=False)
negative = neg
Tensor.negative, Tensor.negative_ = neg, Tensor.neg_
abs = _unary(Abs, floaty=False)
absolute = abs
Tensor.absolute, Tensor.absolute_ = abs, Tensor.abs_
relu = _unary(Relu, floaty=False)
square = _unary(Square, floaty=False)
Tensor.__neg__ = neg
Tensor.__abs__ = abs
Tensor.__pos__ = lambda self: self


def _piecewise(fn_name):
    def fn(input, *, out=None, decimals=0):
        if input._data.dtype.kind in "biu" and fn_name != "sign":
            return out_copy(input.clone(), out)
        return out_copy(ZeroGrad.apply(input, fn=fn_name, decimals=decimals), out)
    fn.__name__ = fn_name
    setattr(Tensor, fn_name, fn)
    setattr(Tensor, fn_name + "_", lambda self, **kw: apply_(self, fn, (), kw))
    return fn


floor, ceil, round, trunc, sign = (_piecewise(n) for n in ("floor", "ceil", "round", "trunc", "sign"))
fix = trunc
Tensor.fix, Tensor.fix_ = Tensor.trunc, Tensor.trunc_


class Frac(Function):
    def forward(ctx, x):
        return x - ctx.xp.trunc(x)

    def backward(ctx, g):
        return g


class Logit(Function):
    def forward(ctx, x, eps=None):
        xp = ctx.xp
        z = x if eps is None else xp.clip(x, eps, 1 - eps)
        ctx.save_for_backward(x)
        ctx.eps = eps
        return xp.log(z / (1 - z))

    def backward(ctx, g):
        (x,) = ctx.saved
        gx = g / (x * (1 - x))
        if ctx.eps is not None:  # zero outside [eps, 1 - eps], as torch
            gx = gx * ((x >= ctx.eps) & (x <= 1 - ctx.eps))
        return gx


@method()
def frac(input, *, out=None):
    if input._data.dtype.kind in "biu":
        raise NotImplementedError(f"\"frac_cpu\" not implemented for '{_dtype.scalar_name(input.dtype)}'")
    return out_copy(Frac.apply(input), out)


@method()
def logit(input, eps=None, *, out=None):
    return out_copy(Logit.apply(to_float(input), eps=eps), out)


Tensor.frac_ = lambda self: assign_(self, frac(self))
Tensor.sgn_ = lambda self: assign_(self, sgn(self))
Tensor.logit_ = lambda self, eps=None: assign_(self, logit(self, eps))


@method()
def sgn(input):
    return sign(input)


@method()
def signbit(input):
    return nondiff(input._device.xp.signbit, input)


@method()
def clamp(input, min=None, max=None, *, out=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        x = input
        lo = min if min is not None else x.new_full((), -np.inf)
        hi = max if max is not None else x.new_full((), np.inf)
        (x, lo, hi), _ = promote(x, lo, hi)
        return out_copy(ClampTensor.apply(x, lo, hi), out)
    dt = _dtype.result_type_of([b for b in (input, min, max) if b is not None])
    if dt.np != input._data.dtype:
        input = cast(input, dt)
    return out_copy(Clamp.apply(input, min=min, max=max), out)


clip = clamp
Tensor.clip = clamp
Tensor.clamp_ = Tensor.clip_ = lambda self, min=None, max=None: apply_(self, clamp, (min, max))


@method()
def clamp_min(input, min):
    # torch's overloads: clamp_min(Tensor, Scalar) ClampMinBackward0, (Tensor, Tensor) ClampMinBackward1
    return _graph.renamed(clamp(input, min=min), f"ClampMinBackward{int(isinstance(min, Tensor))}")


@method()
def clamp_max(input, max):
    return _graph.renamed(clamp(input, max=max), f"ClampMaxBackward{int(isinstance(max, Tensor))}")


Tensor.clamp_min_ = lambda self, min: apply_(self, clamp, (), {'min': min})
Tensor.clamp_max_ = lambda self, max: apply_(self, clamp, (), {'max': max})


@method()
def positive(input):
    if input._data.dtype.kind == "b":
        raise RuntimeError("The `+` operator, on a bool tensor is not supported.")
    return input


class Angle(Function):
    def forward(ctx, x):
        xp = ctx.xp
        ctx.save_for_backward(x)
        if x.dtype.kind == "c":
            return xp.angle(x)
        # torch: pi below zero, 0 at and above it (-0.0 included), NaN kept
        return xp.where(x < 0, math.pi, xp.where(x == x, 0, x)).astype(x.dtype, copy=False)

    def backward(ctx, g):
        (x,) = ctx.saved
        xp = ctx.xp
        if x.dtype.kind != "c":
            return xp.zeros_like(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.where(x == 0, 0, g * x / (x * x.conj()).real * 1j).astype(x.dtype, copy=False)


@method()
def angle(input, *, out=None):
    """The argument of each element: atan2(imag, real) for complex input; pi or 0 by sign for real input."""
    return out_copy(Angle.apply(to_float(input)), out)


def _floating_only(input, kernel):
    """torch's activation kernels are compiled for floating dtypes only: an integer or bool input raises."""
    if not (input.dtype.is_floating_point or input.dtype.is_complex):  # (bfloat16's NumPy kind is "V")
        raise NotImplementedError(f'"{kernel}" not implemented for \'{_dtype.scalar_name(input.dtype)}\'')


@method()
def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"approximate argument must be either none or tanh.")
    _floating_only(input, "GeluKernelImpl")
    return Gelu.apply(input, approximate=approximate)


@method()
def silu(input):
    _floating_only(input, "silu_cpu")
    return Silu.apply(input)


def softplus(input, beta=1.0, threshold=20.0):
    return Softplus.apply(input, beta=beta, threshold=threshold)


@method()
def relu_(input):
    return apply_(input, relu)  # (torch's overlap rules: overlapping unfold windows are written one by one)


@method()
def sigmoid_(input):
    return apply_(input, sigmoid)


@method()
def isnan(input):
    return nondiff(input._device.xp.isnan, input)


@method()
def isinf(input):
    return nondiff(input._device.xp.isinf, input)


@method()
def isfinite(input):
    return nondiff(input._device.xp.isfinite, input)


@method()
def isposinf(input):
    return nondiff(input._device.xp.isposinf, input)


@method()
def isneginf(input):
    return nondiff(input._device.xp.isneginf, input)


class NanToNum(Function):
    def forward(ctx, x, nan=0.0, posinf=None, neginf=None):
        ctx.save_for_backward(x)
        return ctx.xp.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g * ctx.xp.isfinite(x)


@method()
def nan_to_num(input, nan=0.0, posinf=None, neginf=None, *, out=None):
    if input._data.dtype.kind not in "fc":
        return out_copy(input.clone(), out)
    return out_copy(NanToNum.apply(input, nan=nan, posinf=posinf, neginf=neginf), out)


Tensor.nan_to_num_ = lambda self, nan=0.0, posinf=None, neginf=None: assign_(self, nan_to_num(self, nan, posinf, neginf))


class Lerp(Function):
    """input + weight*(end - input) for a number `weight`, by torch's two formulas: below 0.5 from `input`,
    else end - (1 - weight)*(end - input), exact at both ends; each rounded once as torch's CPU kernel does."""

    def forward(ctx, a, b, weight):
        ctx.shapes, ctx.weight = (a.shape, b.shape), weight
        d = b - a
        if -0.5 < weight < 0.5:  # (this module's `abs` is the tensor op)
            return add_scaled(a, d, weight)
        return add_scaled(b, d, -(a.dtype.type(1) - a.dtype.type(weight)))  # 1 - weight in the tensors' dtype

    def backward(ctx, g):
        sa, sb = ctx.shapes
        w = ctx.weight
        return (unbroadcast(g * (1 - w), sa) if ctx.needs_input_grad[0] else None,
                unbroadcast(g * w, sb) if ctx.needs_input_grad[1] else None)


def _lerp_check(input, end, weight):
    """torch's lerp does not promote: `end` (and a tensor `weight`) must have input's dtype, a floating one."""
    for name, t in (("end", end), ("weight", weight)):
        if isinstance(t, Tensor) and t.dtype is not input.dtype:
            raise RuntimeError(f"expected dtype {_dtype._CPP_NAMES[input.dtype.name]} for `{name}` but got dtype "
                               f"{_dtype._CPP_NAMES[t.dtype.name]}")
    if not (input.dtype.is_floating_point or input.dtype.is_complex):  # (bfloat16's NumPy kind is "V")
        kernel = "lerp_kernel_tensor" if isinstance(weight, Tensor) else "lerp_kernel_scalar"
        raise NotImplementedError(f'"{kernel}" not implemented for \'{_dtype.scalar_name(input.dtype)}\'')


@method()
def lerp(input, end, weight):
    _lerp_check(input, end, weight)
    if (not isinstance(weight, Tensor) and input.dtype is end.dtype and input._data.dtype.kind == "f"
            and input.device == end.device):
        return Lerp.apply(input, end, weight=float(weight))
    return input + weight * (end - input)


def _value_in(value, *tensors):
    """addcmul's `value` takes the tensors' result type, as torch's kernel casts it: an integral result
    truncates a float value (1.5 -> 1) instead of promoting to float."""
    if isinstance(value, float) and all(t._data.dtype.kind in "biu" for t in tensors if isinstance(t, Tensor)):
        return int(value)
    return value


@method()
@autocast_op("addcmul")
def addcmul(input, tensor1, tensor2, *, value=1):
    if all(isinstance(t, Tensor) and t._data.dtype.kind == "b" for t in (input, tensor1, tensor2)):
        raise NotImplementedError("\"addcmul_cpu_out\" not implemented for 'Bool'")
    # the product first, as torch's Addcmul saves tensor1 and tensor2 themselves: writing into either before
    # the backward is caught (value * tensor1 would save a temporary)
    return input + tensor1 * tensor2 * _value_in(value, input, tensor1, tensor2)


@method()
@autocast_op("addcdiv")
def addcdiv(input, tensor1, tensor2, *, value=1):
    if all(isinstance(t, Tensor) and t._data.dtype.kind in "biu" for t in (tensor1, tensor2)):
        raise RuntimeError(
            "Integer division with addcdiv is no longer supported, and in a future  release addcdiv will perform "
            "a true division of tensor1 and tensor2. The historic addcdiv behavior can be implemented as (input + "
            "value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for integer inputs and as (input + value * "
            "tensor1 / tensor2) for float inputs. The future addcdiv behavior is just the latter implementation: "
            "(input + value * tensor1 / tensor2), for all dtypes.")
    return input + tensor1 / tensor2 * value


Tensor.addcmul_ = lambda self, t1, t2, *, value=1: apply_(self, addcmul, (t1, t2), {"value": value})
Tensor.addcdiv_ = lambda self, t1, t2, *, value=1: apply_(self, addcdiv, (t1, t2), {"value": value})
Tensor.lerp_ = lambda self, end, weight: apply_(self, lerp, (end, weight))


pointwise(Neg, Exp, Expm1, Log, Log2, Log10, Log1p, Sqrt, Rsqrt, Abs, Sin, Cos, Tan, Asin, Acos, Atan, Asinh, Acosh,
          Atanh, Sinh, Cosh, Tanh, Sigmoid, Relu, Erf, Reciprocal, Square, Clamp, ClampTensor, ZeroGrad, Gelu, Silu,
          Softplus, Frac, Logit, Angle, NanToNum, Lerp)
