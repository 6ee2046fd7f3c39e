"""Special and number-theoretic elementwise functions: erfc, exp2, lgamma, digamma, xlogy, gcd, ... (torch's names),
and the views between complex tensors and pairs of reals."""
import math

import numpy as np

from .. import _dtype, _parallel
from .._backend import kernels
from .._tensor import Tensor
from ..autograd.graph import Function
from ._lowp import widened
from ._util import cast, method, nondiff, out_copy, promote, to_float, unbroadcast
from .arith import _bcast_check, _binary, _inplace, assign_, mul
from .pointwise import _unary
from .reduce import _named
from ..amp._dispatch import autocast_op

_LN2 = math.log(2.0)
_PI_OVER_180 = math.pi / 180
_180_OVER_PI = 180 / math.pi
_2_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_LOG_PI = math.log(math.pi)


def _scipy_special(xp, name):
    """`name` from scipy.special for NumPy arrays, from cupyx.scipy.special for CuPy ones."""
    return kernels[xp].special(name)


def _special(xp, name, x, *args):
    """scipy.special's `name(*args, x)` in x's dtype (SciPy computes float16 in float32)."""
    k = kernels[xp]
    fn = k.special(name)
    if k.host and x.size >= 2 * _parallel.MIN_SLICE:
        # SciPy's special functions are slow and single-threaded: every core on large arrays
        return _parallel.map_flat(lambda part: fn(*args, part), np.ascontiguousarray(x))
    return fn(*args, x).astype(x.dtype, copy=False)


def _check_tensors(fn, names, *args):
    for pos, (x, name) in enumerate(zip(args, names), 1):
        if not isinstance(x, Tensor):
            raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be Tensor, not {type(x).__name__}")


# ------------------------------------------------------------------------------------------------ unary
class Erfc(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _special(ctx.xp, "erfc", x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g * -_2_OVER_SQRT_PI * ctx.xp.exp(-x * x)


class Exp2(Function):
    def forward(ctx, x):
        y = ctx.xp.exp2(x)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y * _LN2


class Sinc(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(invalid="ignore"):  # sinc(inf) is nan, as in torch
            return ctx.xp.sinc(x)

    def backward(ctx, g):
        (x,) = ctx.saved
        xp = ctx.xp
        nz = xp.where(x == 0, 1, x)  # the derivative at 0 is 0: keep 0/0 out of the way
        px = math.pi * nz
        d = (px * xp.cos(px) - xp.sin(px)) / (px * nz)
        return g * xp.where(x == 0, 0, d)


class Deg2Rad(Function):
    def forward(ctx, x):
        return x * _PI_OVER_180

    def backward(ctx, g):
        return g * _PI_OVER_180


class Rad2Deg(Function):
    def forward(ctx, x):
        return x * _180_OVER_PI

    def backward(ctx, g):
        return g * _180_OVER_PI


class Lgamma(Function):
    @widened  # SciPy's gammaln answers float32 for bfloat16: compute there, round back
    def forward(ctx, x):
        ctx.save_for_backward(x)
        y = _special(ctx.xp, "gammaln", x)
        return ctx.xp.where(x == -math.inf, math.inf, y)  # C's lgamma(-inf) is +inf, SciPy's -inf

    @widened
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * _special(ctx.xp, "digamma", x)


class Polygamma(Function):
    """The n-th derivative of digamma; n = 0 is digamma itself."""

    def forward(ctx, x, n=0):
        ctx.save_for_backward(x)
        ctx.n = n
        return _polygamma(ctx.xp, n, x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g * _polygamma(ctx.xp, ctx.n + 1, x)

    def name(self):
        return "DigammaBackward0" if self.n == 0 else "PolygammaBackward0"


def _polygamma(xp, n, x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return _special(xp, "digamma", x) if n == 0 else _special(xp, "polygamma", x, xp.asarray(n))


class I0(Function):
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _special(ctx.xp, "i0", x)

    def backward(ctx, g):
        (x,) = ctx.saved
        return g * _special(ctx.xp, "i1", x)


erfc, exp2, sinc, deg2rad, rad2deg = (_unary(c) for c in (Erfc, Exp2, Sinc, Deg2Rad, Rad2Deg))
lgamma, i0 = _unary(Lgamma), _unary(I0)


@method()
def digamma(input, *, out=None):
    return out_copy(Polygamma.apply(to_float(input), n=0), out)


def polygamma(n, input, *, out=None):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"polygamma(): argument 'n' (position 1) must be int, not {type(n).__name__}")
    if n < 0:
        raise RuntimeError("polygamma(n, x) does not support negative n.")
    return out_copy(Polygamma.apply(to_float(input), n=int(n)), out)


@method()
def mvlgamma(input, p, *, out=None):
    """The log of the multivariate gamma function of dimension p: sum of lgamma(x - j/2), j < p, plus a constant."""
    if p < 1:
        raise RuntimeError("p has to be greater than or equal to 1")
    x = to_float(input)
    from .creation import tensor
    halves = tensor(np.arange(p) * -0.5, dtype=x.dtype, device=x.device)
    return out_copy(lgamma(x.unsqueeze(-1) + halves).sum(-1) + p * (p - 1) * 0.25 * _LOG_PI, out)


Tensor.digamma_, Tensor.mvlgamma_ = _inplace(digamma), _inplace(mvlgamma)
Tensor.polygamma = lambda self, n: polygamma(n, self)
Tensor.polygamma_ = lambda self, n: assign_(self, polygamma(n, self))


# ----------------------------------------------------------------------------------------------- binary
class LogAddExp(Function):
    """log(e^a + e^b) as NumPy's logaddexp: exact at infinities (inf with anything is inf), where the composite
    m + log(e^(a-m) + e^(b-m)) gives nan."""
    _grad_fn_name = "LogaddexpBackward0"

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.logaddexp(a, b)

    def backward(ctx, g):
        a, b = ctx.saved
        xp = ctx.xp
        nig = ctx.needs_input_grad
        # NOTE: e^a / (e^a + e^b) written as 1 / (1 + e^(b - a)): no overflow for large a, b
        return (unbroadcast(g / (1 + xp.exp(b - a)), a.shape) if nig[0] else None,
                unbroadcast(g / (1 + xp.exp(a - b)), b.shape) if nig[1] else None)


class LogAddExp2(Function):
    _grad_fn_name = "Logaddexp2Backward0"

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        with np.errstate(invalid="ignore"):
            return ctx.xp.logaddexp2(a, b)

    def backward(ctx, g):
        a, b = ctx.saved
        xp = ctx.xp
        nig = ctx.needs_input_grad
        # NOTE: 2^a / (2^a + 2^b) written as 1 / (1 + 2^(b - a)): no overflow for large a, b
        with np.errstate(over="ignore", invalid="ignore"):
            return (unbroadcast(g / (1 + xp.exp2(b - a)), a.shape) if nig[0] else None,
                    unbroadcast(g / (1 + xp.exp2(a - b)), b.shape) if nig[1] else None)


def _xlogy_array(xp, x, y, log1p=False):
    """x * log(y) (x * log1p(y)), 0 where x is 0 (unless y is nan)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return xp.where((x == 0) & ~xp.isnan(y), 0, x * (xp.log1p(y) if log1p else xp.log(y)))


class Xlogy(Function):
    log1p = False  # Xlog1py: x * log1p(y), the same rules at y + 1

    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return _xlogy_array(ctx.xp, x, y, ctx.log1p)

    def backward(ctx, g):
        x, y = ctx.saved
        xp = ctx.xp
        nig = ctx.needs_input_grad
        y1 = y + 1 if ctx.log1p else y  # the argument of the log
        gx = gy = None
        if nig[0]:
            # torch's rule: the gradient is 0 where x == 0 and the log is not finite
            gx = unbroadcast(xp.where((x == 0) & (y1 <= 0), 0, _xlogy_array(xp, g, y, ctx.log1p)), x.shape)
        if nig[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gy = unbroadcast(g * x / y1, y.shape)
        return gx, gy


class Xlog1py(Xlogy):
    _grad_fn_name = "SpecialXlog1PyBackward0"
    log1p = True


@method()
def logaddexp(input, other, *, out=None):
    _check_tensors("logaddexp", ("input", "other"), input, other)
    dt = _dtype.result_type_of([input, other])
    if not dt.is_floating_point:
        raise NotImplementedError(f"\"logaddexp_cpu\" not implemented for '{_dtype.scalar_name(dt)}'")
    return _binary(LogAddExp, input, other, out)


@method()
def logaddexp2(input, other, *, out=None):
    _check_tensors("logaddexp2", ("input", "other"), input, other)
    dt = _dtype.result_type_of([input, other])
    if not dt.is_floating_point:
        raise NotImplementedError(f"\"logaddexp2_cpu\" not implemented for '{_dtype.scalar_name(dt)}'")
    return _binary(LogAddExp2, input, other, out)


@method()
def xlogy(input, other, *, out=None):
    return _binary(Xlogy, input, other, out, float_result=True)


def _integer_binary(name):
    def fn(input, other, *, out=None):
        _check_tensors(name, ("input", "other"), input, other)
        (a, b), dt = promote(input, other)
        if dt.is_floating_point or dt.is_complex or dt is _dtype.bool:
            raise NotImplementedError(f"\"{name}_cpu\" not implemented for '{_dtype.scalar_name(dt)}'")
        _bcast_check(a, b)
        return out_copy(nondiff(getattr(a._device.xp, name), a, b), out)
    fn.__name__ = name
    setattr(Tensor, name, fn)
    return fn


gcd, lcm = _integer_binary("gcd"), _integer_binary("lcm")


class Frexp(Function):
    def forward(ctx, x):
        m, e = ctx.xp.frexp(x)
        ctx.save_for_backward(e)
        ctx.mark_non_differentiable(1)
        return m, e.astype(np.int32, copy=False)

    def backward(ctx, g, _):
        (e,) = ctx.saved
        return ctx.xp.ldexp(g, -e)  # g / 2 ** exponent


return_frexp = _named("frexp", ("mantissa", "exponent"))


@method()
def frexp(input, *, out=None):
    """(mantissa, exponent) with input = mantissa * 2 ** exponent, |mantissa| in [0.5, 1); exponent int32."""
    if not input.is_floating_point():
        raise RuntimeError("torch.frexp() only supports floating-point dtypes")
    m, e = Frexp.apply(input)
    if out is not None:
        out_copy(m, out[0]), out_copy(e, out[1])
        return return_frexp(*out)
    return return_frexp(m, e)


@method()
def ldexp(input, other, *, out=None):
    """input * 2 ** other, in the promoted floating dtype."""
    _check_tensors("ldexp", ("input", "other"), input, other)
    if other.dtype is _dtype.bool and (input.is_floating_point() or input.is_complex()):
        raise NotImplementedError("\"ldexp_cpu_exp\" not implemented for 'Bool'")
    dt = _dtype.result_type_of([input, other])
    if not (dt.is_floating_point or dt.is_complex):
        dt = _dtype.get_default_dtype()
    return out_copy(mul(_as(input, dt), exp2(_as(other, dt))), out)


def _as(t, dt):
    return t if t._data.dtype == dt.np else cast(t, dt)


Tensor.xlogy_, Tensor.gcd_, Tensor.lcm_, Tensor.ldexp_ = (_inplace(f) for f in (xlogy, gcd, lcm, ldexp))


# --------------------------------------------------------------------------------------------- predicates
@method()
def isreal(input):
    """True where the imaginary part is 0: everywhere for a real tensor."""
    if input.is_complex():
        return nondiff(lambda a: a.imag == 0, input)
    xp = input._device.xp
    return nondiff(lambda a: xp.ones(a.shape, bool), input)


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """Whether each element of `elements` is in `test_elements` (either may be a Python scalar)."""
    if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
        raise TypeError(f"isin() received an invalid combination of arguments - got ({type(elements).__name__}, "
                        f"{type(test_elements).__name__}), but expected at least one Tensor")
    for t in (elements, test_elements):
        if isinstance(t, Tensor) and (t.dtype is _dtype.bool or t.is_complex()):
            raise RuntimeError(f"Unsupported input type encountered for isin(): {_dtype.scalar_name(t.dtype)}")
    (a, b), _ = promote(elements, test_elements)
    xp = a._device.xp
    return nondiff(lambda e, s: xp.isin(e, s, assume_unique=assume_unique, invert=invert), a, b)


# ------------------------------------------------------------------------------------------------ complex
def _complex_dtype(real):
    return np.result_type(real, np.complex64)


class Complex(Function):
    def forward(ctx, re, im):
        ctx.shapes = re.shape, im.shape
        z = ctx.xp.empty(np.broadcast_shapes(re.shape, im.shape), _complex_dtype(re.dtype))
        z.real, z.imag = re, im
        return z

    def backward(ctx, g):
        sr, si = ctx.shapes
        nig = ctx.needs_input_grad
        # copies: views into the complex gradient must not become a leaf's .grad
        return (unbroadcast(g.real, sr).copy() if nig[0] else None,
                unbroadcast(g.imag, si).copy() if nig[1] else None)


class Polar(Function):
    def forward(ctx, r, theta):
        xp = ctx.xp
        c, s = xp.cos(theta), xp.sin(theta)
        ctx.save_for_backward(r, c, s)
        z = xp.empty(np.broadcast_shapes(r.shape, theta.shape), _complex_dtype(r.dtype))
        z.real, z.imag = r * c, r * s
        return z

    def backward(ctx, g):
        r, c, s = ctx.saved
        nig = ctx.needs_input_grad
        gx, gy = g.real, g.imag  # dL/d(real part), dL/d(imaginary part)
        xp = ctx.xp
        # torch's rule: the abs gradient goes through sgn(result), so it is 0 at abs == 0 and flips below it
        return (unbroadcast(xp.sign(r) * (gx * c + gy * s), r.shape) if nig[0] else None,
                unbroadcast(r * (gy * c - gx * s), c.shape) if nig[1] else None)


def _check_real_pair(fn, names, a, b):
    _check_tensors(fn, names, a, b)
    if not (a.is_floating_point() and b.is_floating_point()):
        raise RuntimeError(f"Expected both inputs to be Half, Float or Double tensors but got "
                           f"{_dtype.scalar_name(a.dtype)} and {_dtype.scalar_name(b.dtype)}")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"Expected object of scalar type {_dtype.scalar_name(a.dtype)} but got scalar type "
                           f"{_dtype.scalar_name(b.dtype)} for second argument")
    if a._data.dtype.itemsize < 4:  # complex32 (ComplexHalf) does not exist in dtrain
        raise NotImplementedError(f"\"{fn}_cpu\" not implemented for '{_dtype.scalar_name(a.dtype)}'")
    _bcast_check(a, b)


def complex(real, imag, *, out=None):
    """The complex tensor real + i * imag."""
    _check_real_pair("complex", ("real", "imag"), real, imag)
    return out_copy(Complex.apply(real, imag), out)


@autocast_op("polar")
def polar(abs, angle, *, out=None):
    """The complex tensor abs * (cos(angle) + i * sin(angle))."""
    _check_real_pair("polar", ("abs", "angle"), abs, angle)
    return out_copy(Polar.apply(abs, angle), out)


class ViewAsReal(Function):
    _view = True

    def forward(ctx, z):
        re = z.real  # a view of the same memory, in the real dtype; the imaginary part is one item further on
        return ctx.xp.lib.stride_tricks.as_strided(re, z.shape + (2,), z.strides + (re.itemsize,))

    def backward(ctx, g):
        return ctx.xp.ascontiguousarray(g).view(_complex_dtype(g.dtype))[..., 0]


class ViewAsComplex(Function):
    _view = True

    def forward(ctx, x):
        return x.view(_complex_dtype(x.dtype))[..., 0]

    def backward(ctx, g):
        return ctx.xp.stack([g.real, g.imag], axis=-1)


def view_as_real(input):
    """A real view of a complex tensor, real and imaginary parts along a new last dimension of size 2."""
    if not input.is_complex():
        raise RuntimeError("view_as_real is only supported for complex tensors")
    return ViewAsReal.apply(input)


@autocast_op("view_as_complex")
def view_as_complex(input):
    """A complex view of a real tensor whose last dimension (of size 2, stride 1) holds real and imaginary parts."""
    if input.dtype not in (_dtype.float32, _dtype.float64):
        if input.dtype is _dtype.float16:  # complex32 (ComplexHalf) does not exist in dtrain
            raise NotImplementedError("view_as_complex: complex32 tensors are not supported")
        raise RuntimeError(f"view_as_complex is only supported for half, float and double tensors, but got a tensor "
                           f"of scalar type: {_dtype.scalar_name(input.dtype)}")
    if input.ndim == 0:
        raise RuntimeError("Input tensor must have one or more dimensions")
    if input.shape[-1] != 2:
        raise RuntimeError("Tensor must have a last dimension of size 2")
    strides = input.stride()
    if strides[-1] != 1:
        raise RuntimeError("Tensor must have a last dimension with stride 1")
    if any(s % 2 for s in strides[:-1]):
        raise RuntimeError("Tensor must have a stride divisible by 2 for all but last dimension")
    # an odd storage offset is what leaves the complex items misaligned: asked of the address, on any device
    if input.data_ptr() % (2 * input.element_size()):
        raise RuntimeError("Tensor must have a storage_offset divisible by 2")
    return ViewAsComplex.apply(input)


def real(input):
    """The real part: a view of a complex tensor's memory (writes go through); a real tensor itself."""
    return view_as_real(input).select(-1, 0) if input.is_complex() else input


def imag(input):
    """The imaginary part of a complex tensor, a view of its memory."""
    if not input.is_complex():
        raise RuntimeError("imag is not implemented for tensors with non-complex dtypes.")
    return view_as_real(input).select(-1, 1)


@method()
def is_conj(input):
    """False: dtrain's conj() computes the conjugate, so no tensor carries a conjugate bit."""
    return False


@method()
def is_neg(input):
    """False: nor a negative bit."""
    return False


Tensor.real = property(real, lambda self, value: real(self).copy_(value))
Tensor.imag = property(imag, lambda self, value: imag(self).copy_(value))


@method()
def resolve_conj(input):
    """`input` itself: dtrain's conj() computes the conjugate, so no tensor carries a conjugate bit to resolve."""
    return input


@method()
def resolve_neg(input):
    """`input` itself: no dtrain tensor carries a negative bit to resolve."""
    return input
