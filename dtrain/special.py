"""torch.special: the special functions under their torch.special names."""
import math

import numpy as np

from . import (digamma, erf, erfc, erfinv as _erfinv, exp2, expm1, i0, lgamma, log1p, log_softmax as _log_softmax,
               logit, logsumexp, mvlgamma, polygamma, round, sigmoid, sinc, softmax as _softmax, xlogy)
from ._ops._util import out_copy, to_float
from ._ops.arith import _binary
from ._ops.special import Xlog1py, _special
from .autograd.graph import Function

__all__ = ["digamma", "entr", "erf", "erfc", "erfcx", "erfinv", "exp2", "expit", "expm1", "gammaln", "i0", "i0e", "i1",
           "i1e", "log1p", "log_ndtr", "log_softmax", "logit", "logsumexp", "multigammaln", "ndtr", "ndtri",
           "polygamma", "psi", "round", "sinc", "softmax", "xlog1py", "xlogy"]

_SQRT1_2 = math.sqrt(0.5)
_SQRT_2PI = math.sqrt(2 * math.pi)
_2_OVER_SQRT_PI = 2 / math.sqrt(math.pi)

expit = sigmoid
gammaln = lgamma
psi = digamma
multigammaln = mvlgamma


def erfinv(input, *, out=None):
    return out_copy(_erfinv(input), out)


def softmax(input, dim, *, dtype=None):
    return _softmax(input, dim, dtype)


def log_softmax(input, dim, *, dtype=None):
    return _log_softmax(input, dim, dtype)


def ndtr(input, *, out=None):
    """The standard normal CDF."""
    return out_copy(erfc(to_float(input) * -_SQRT1_2) * 0.5, out)


class Entr(Function):
    """-x * log(x); 0 at 0 and -inf below it.

    NOTE: hand-written: -xlogy(x, x) gives nan below 0 and a nan gradient at 0 where torch has -inf and +inf."""
    _grad_fn_name = "SpecialEntrBackward0"  # torch.special's ops: Special<Op>, a capital after a digit

    def forward(ctx, x):
        xp = ctx.xp
        ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.where(x < 0, -math.inf, xp.where(x == 0, 0, -x * xp.log(x)))

    def backward(ctx, g):
        (x,) = ctx.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * -(1 + ctx.xp.log(x))


class Ndtri(Function):
    _grad_fn_name = "SpecialNdtriBackward0"

    def forward(ctx, p):
        y = _special(ctx.xp, "ndtri", p)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g * _SQRT_2PI * ctx.xp.exp(y * y * 0.5)


class LogNdtr(Function):
    _grad_fn_name = "SpecialLogNdtrBackward0"

    def forward(ctx, x):
        y = _special(ctx.xp, "log_ndtr", x)
        ctx.save_for_backward(x, y)
        return y

    def backward(ctx, g):
        x, y = ctx.saved
        # NOTE: pdf / cdf as exp(-x^2 / 2 - log_ndtr(x)): finite far in the left tail, where cdf underflows
        return g * ctx.xp.exp(-(y + x * x * 0.5)) / _SQRT_2PI


class Erfcx(Function):
    _grad_fn_name = "SpecialErfcxBackward0"

    def forward(ctx, x):
        y = _special(ctx.xp, "erfcx", x)
        ctx.save_for_backward(x, y)
        return y

    def backward(ctx, g):
        x, y = ctx.saved
        return g * (2 * x * y - _2_OVER_SQRT_PI)


class I0e(Function):
    _grad_fn_name = "SpecialI0EBackward0"

    def forward(ctx, x):
        y = _special(ctx.xp, "i0e", x)
        ctx.save_for_backward(x, y)
        return y

    def backward(ctx, g):
        x, y = ctx.saved
        return g * (_special(ctx.xp, "i1e", x) - ctx.xp.sign(x) * y)


class I1(Function):
    _grad_fn_name = "SpecialI1Backward0"

    def forward(ctx, x):
        y = _special(ctx.xp, "i1", x)
        ctx.save_for_backward(x, y)
        return y

    def backward(ctx, g):
        x, y = ctx.saved
        xp = ctx.xp
        nz = xp.where(x == 0, 1, x)
        return g * xp.where(x == 0, 0.5, _special(xp, "i0", x) - y / nz)


class I1e(Function):
    _grad_fn_name = "SpecialI1EBackward0"

    def forward(ctx, x):
        y = _special(ctx.xp, "i1e", x)
        ctx.save_for_backward(x, y)
        return y

    def backward(ctx, g):
        x, y = ctx.saved
        xp = ctx.xp
        nz = xp.where(x == 0, 1, x)
        return g * xp.where(x == 0, 0.5, _special(xp, "i0e", x) - y * (xp.sign(x) + 1 / nz))


def _unary(cls, name):
    def fn(input, *, out=None):
        return out_copy(cls.apply(to_float(input)), out)
    fn.__name__ = name
    return fn


entr, ndtri, log_ndtr, erfcx = _unary(Entr, "entr"), _unary(Ndtri, "ndtri"), _unary(LogNdtr, "log_ndtr"), \
    _unary(Erfcx, "erfcx")
i0e, i1, i1e = _unary(I0e, "i0e"), _unary(I1, "i1"), _unary(I1e, "i1e")


def xlog1py(input, other, *, out=None):
    """input * log1p(other), 0 where input is 0; either may be a Python scalar."""
    return _binary(Xlog1py, input, other, out, float_result=True)
