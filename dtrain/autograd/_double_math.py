"""Double-backward formulas (see dtrain.autograd._double) for pointwise math, activations and the softmax
family (reductions, scans and cross-entropy are in dtrain.autograd._double_reduce, with the helpers here).

Each formula is the op's first derivative written with differentiable tensor ops, so that it is recorded and can
be differentiated again. Masks, comparisons and argmax indices are piecewise constant: they enter as constants.
Ops whose forward runs in float32 for a lower-precision dtype (`widened`) saved float32 arrays: they are cast to
the gradient's dtype before they become tensors, so a formula computes in the dtype of the graph it extends."""
import math

import numpy as np

from .. import _dtype
from . import graph
from ._double import const, formula, input_t, output_t, sum_to

_BF16 = _dtype.bfloat16.np  # (ml_dtypes' dtype: its kind is "V", not "f")
_SQRT1_2 = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_1_OVER_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_2_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


def _as(a, g):
    """Saved array `a` in the dtype of gradient `g` (widened ops saved float32 copies of half-precision ones).
    Complex ones raise: torch's complex derivatives take conjugates, which these formulas (and the products'
    own) do not."""
    d = g._data.dtype
    if a.dtype.kind == "c" or d.kind == "c":
        raise NotImplementedError(f"create_graph=True through an op on complex tensors ({a.dtype}, shape "
                                  f"{tuple(a.shape)}): dtrain's higher-order gradients are for real tensors")
    return a.astype(d) if a.dtype != d and a.dtype.kind == "f" and (d.kind == "f" or d == _BF16) else a


def _in(node, a, g, i=0):
    return input_t(node, i, _as(a, g))


def _out(node, a, g, nr=0):
    return output_t(node, _as(a, g), nr)


def _where(cond, a, b):
    """torch.where over tensors or numbers with an array condition: a select, so that an inf or NaN in the
    branch not taken stays out of the gradient (as in the ops' own backwards)."""
    from .. import where
    return where(const(cond), a, b)


def _unreduce(g, shape, axes, keepdim):
    """The gradient of a reduction over `axes` (None: all) reshaped to broadcast against the input's `shape`."""
    from .._ops.reduce import _expand_back
    return _expand_back(g, shape, tuple(range(len(shape))) if axes is None else axes, keepdim)


# -------------------------------------------------------------------------------------------- activations
@formula("Gelu")
def _gelu(node, g):
    # On the CPU the forward kept Φ(x) (tanh term): reused as the value of a recorded function of x, it saves a
    # second erf (the expensive part) and gives the ordinary backward's first-order gradient to the last bit. The
    # CUDA kernels keep x itself instead (recomputing is cheap on a GPU): there the formula recomputes too.
    from .._backend import kernels
    x, c = node.saved
    xt = _in(node, x, g)
    kept = kernels[node.xp].host
    if node.approximate == "tanh":
        k = _SQRT_2_OVER_PI
        t = GeluTanhInner.apply(xt, value=_as(c, g)) if kept else (k * (xt + 0.044715 * (xt * xt * xt))).tanh()
        return g * (0.5 * (1 + t) + 0.5 * xt * (1 - t * t) * k * (1 + 3 * 0.044715 * xt * xt))
    cdf = NormalCdf.apply(xt, value=_as(c, g)) if kept else 0.5 * (1 + (xt * _SQRT1_2).erf())
    return g * (cdf + xt * (-0.5 * xt * xt).exp() * _1_OVER_SQRT_2PI)


class NormalCdf(graph.Function):
    """Φ(x), its value given (GELU's forward computed it): d/dx = φ(x)."""

    def forward(ctx, x, value):
        ctx.save_for_backward(x)
        return value

    def backward(ctx, g):
        (x,) = ctx.saved
        return g * ctx.xp.exp(-0.5 * x * x) * _1_OVER_SQRT_2PI


class GeluTanhInner(graph.Function):
    """tanh(√(2/π)(x + 0.044715 x³)), its value given (the tanh GELU's forward computed it)."""

    def forward(ctx, x, value):
        ctx.save_for_backward(x, value)
        return value

    def backward(ctx, g):
        x, t = ctx.saved
        return g * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)


@formula("NormalCdf")
def _normal_cdf(node, g):
    (x,) = node.saved
    xt = _in(node, x, g)
    return g * (-0.5 * xt * xt).exp() * _1_OVER_SQRT_2PI


@formula("GeluTanhInner")
def _gelu_tanh_inner(node, g):
    x, t = node.saved
    xt, tt = _in(node, x, g), _out(node, t, g)
    return g * (1 - tt * tt) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * xt * xt)


@formula("Silu")
def _silu(node, g):
    x, _ = node.saved
    xt = _in(node, x, g)
    s = xt.sigmoid()
    return g * s * (1 + xt * (1 - s))


@formula("Softplus")
def _softplus(node, g):
    (x,) = node.saved
    xt = _in(node, x, g)
    return _where(x * node.beta > node.threshold, g, g * (xt * node.beta).sigmoid())


@formula("Elu")
def _elu(node, g):
    # the node keeps (x > 0, alpha * expm1(min(x, 0))): the second is the output where x <= 0, so the derivative
    # there, alpha * e^x = output + alpha, is a function of the node's own output (0 where x > 0: unused there)
    pos, neg = node.saved
    y = _out(node, neg, g)
    return _where(pos, g, g * (y + node.alpha))


@formula("LeakyRelu")
def _leaky_relu(node, g):
    (pos,) = node.saved
    return _where(pos, g, g * node.slope)


@formula("Hardtanh")
def _hardtanh(node, g):
    (inside,) = node.saved
    gx = _where(inside, g, 0.0)
    if node.name() == "HardsigmoidBackward0":  # F.hardsigmoid, made of hardtanh: torch stops at its gradient
        # (x's tensor only makes the result depend on x, as torch's does; its value is not read)
        xt = _in(node, node.xp.zeros(inside.shape, g._data.dtype), g)
        return NotImplementedNode.apply(gx, xt, message="derivative for aten::hardsigmoid_backward is not "
                                                        "implemented")
    return gx


class NotImplementedNode(graph.Function):
    """The gradient of an op whose double backward torch does not implement: the value passes, and a backward
    through it raises torch's error, where torch's does (its node is torch::autograd::NotImplemented). The
    op's input is an input here too, so that the gradient depends on it as torch's does."""

    def forward(ctx, g, x, message):
        ctx.message = message
        return g.copy()

    def backward(ctx, g):
        raise RuntimeError(ctx.message)

    def name(self):
        return "torch::autograd::NotImplemented"


@formula("NotImplementedNode")
def _not_implemented(node, g):
    raise RuntimeError(node.message)


@formula("Softmax")
def _softmax(node, g):
    (y,) = node.saved
    yt = _out(node, y, g)
    gy = g * yt
    return gy - yt * gy.sum(node.dim, keepdim=True)


@formula("LogSoftmax")
def _log_softmax(node, g):
    (z,) = node.saved
    return g - _out(node, z, g).exp() * g.sum(node.dim, keepdim=True)


@formula("Logsumexp")
def _logsumexp(node, g):
    x, y = node.saved  # y kept its reduced dims
    out = y if node.keepdim else y.reshape([s for i, s in enumerate(x.shape) if i not in node.axes])
    yt = _unreduce(_out(node, out, g), x.shape, node.axes, node.keepdim)
    return _unreduce(g, x.shape, node.axes, node.keepdim) * (_in(node, x, g) - yt).exp()


# ----------------------------------------------------------------------------------------- selection
@formula("Where")
def _where_op(node, g):
    c = node.cond
    sx, sy = node.shapes
    nig = node.needs_input_grad
    gx = sum_to(_where(c, g, 0.0), sx) if nig[0] else None
    gy = sum_to(_where(c, 0.0, g), sy) if nig[1] else None
    return gx, gy, None


@formula("MaskedFill")
def _masked_fill(node, g):
    return sum_to(_where(node.mask, 0.0, g), node.shape), None


# --------------------------------------------------------------------------------------------- casts
# (softmax(x, dtype=) and friends cast first: the cast's node is To, whose class is _To under torch's name
# ToCopyBackward0; the gradient goes back to the source's dtype and device, itself a recorded cast)
@formula("To")
def _to(node, g):
    return g.to(device=node.src_device, dtype=_dtype.from_numpy_dtype(node.src_dtype))


# ------------------------------------------------------------------------------------------ pointwise math
_LN2, _LN10 = math.log(2.0), math.log(10.0)


def _unary(*names):
    """A formula g * d(x) of a unary op that saved its input x, with d a tensor function of x."""
    def deco(d):
        @formula(*names)
        def run(node, g):
            (x,) = node.saved
            return g * d(_in(node, x, g))
        return d
    return deco


def _unary_of_output(*names):
    """The same for an op that saved its output y, with d a tensor function of y."""
    def deco(d):
        @formula(*names)
        def run(node, g):
            (y,) = node.saved
            return g * d(_out(node, y, g))
        return d
    return deco


_unary("Log1p")(lambda x: 1 / (x + 1))
_unary("Log2")(lambda x: 1 / (x * _LN2))
_unary("Log10")(lambda x: 1 / (x * _LN10))
_unary("Erf")(lambda x: _2_OVER_SQRT_PI * (-x * x).exp())
_unary("Erfc")(lambda x: -_2_OVER_SQRT_PI * (-x * x).exp())
_unary("Sinh")(lambda x: x.cosh())
_unary("Cosh")(lambda x: x.sinh())
_unary("Asin")(lambda x: 1 / (1 - x * x).sqrt())
_unary("Acos")(lambda x: -1 / (1 - x * x).sqrt())
_unary("Atan")(lambda x: 1 / (1 + x * x))
_unary("Asinh")(lambda x: 1 / (x * x + 1).sqrt())
_unary("Acosh")(lambda x: 1 / (x * x - 1).sqrt())
_unary("Atanh")(lambda x: 1 / (1 - x * x))
_unary("Lgamma")(lambda x: x.digamma())
_unary("Entr")(lambda x: -(1 + x.log()))
_unary_of_output("Expm1")(lambda y: y + 1)
_unary_of_output("Exp2")(lambda y: y * _LN2)
_unary_of_output("Reciprocal")(lambda y: -y * y)
_unary_of_output("Rsqrt")(lambda y: -0.5 * y * y * y)
_unary_of_output("Tan")(lambda y: 1 + y * y)
_unary_of_output("Erfinv")(lambda y: (math.sqrt(math.pi) / 2) * (y * y).exp())
_unary_of_output("Ndtri")(lambda y: math.sqrt(2 * math.pi) * (y * y * 0.5).exp())


@_unary("I0")
def _i0(x):
    from ..special import i1
    return i1(x)


@formula("Deg2Rad", "Rad2Deg")
def _degrees(node, g):
    return g * (math.pi / 180 if type(node)._op == "Deg2Rad" else 180 / math.pi)


@formula("Frac")
def _frac(node, g):
    return g


@formula("ZeroGrad")
def _zero_grad(node, g):
    # floor, ceil, round, trunc, sign: piecewise constant
    return g.new_zeros(node.shape)


@formula("Frexp")
def _frexp(node, g, _=None):
    # the mantissa x / 2^e, e piecewise constant
    (e,) = node.saved
    return g * const(node.xp.ldexp(node.xp.ones(e.shape, g._data.dtype), -e))


@formula("Poisson")
def _poisson(node, g):
    # the counts are not differentiable in the rates
    return g.new_zeros(tuple(g.shape)), None


@formula("Angle")
def _angle(node, g):
    (x,) = node.saved
    if x.dtype.kind != "c":  # pi or 0 by sign: piecewise constant
        return g.new_zeros(x.shape)
    _as(x, g)  # raises: complex


@formula("Polygamma")
def _polygamma(node, g):
    from .. import polygamma
    (x,) = node.saved
    return g * polygamma(node.n + 1, _in(node, x, g))


@formula("Sinc")
def _sinc(node, g):
    # as the op's backward (and torch's): 0 at x == 0, where 0/0 is kept out of the way by a select
    (x,) = node.saved
    zero = x == 0
    nz = _where(zero, 1.0, _in(node, x, g))
    px = math.pi * nz
    return _where(zero, 0.0, g * (px * px.cos() - px.sin()) / (px * nz))


@formula("LogNdtr")
def _log_ndtr(node, g):
    x, y = node.saved
    return g * (-(_out(node, y, g) + _in(node, x, g) ** 2 * 0.5)).exp() / math.sqrt(2 * math.pi)


@formula("Erfcx")
def _erfcx(node, g):
    x, y = node.saved
    return g * (2 * _in(node, x, g) * _out(node, y, g) - _2_OVER_SQRT_PI)


@formula("I0e")
def _i0e(node, g):
    from ..special import i1e
    x, y = node.saved
    return g * (i1e(_in(node, x, g)) - const(node.xp.sign(x)) * _out(node, y, g))


@formula("I1", "I1e")
def _i1(node, g):
    from ..special import i0, i0e
    x, y = node.saved
    zero = x == 0
    nz = _where(zero, 1.0, _in(node, x, g))
    yt = _out(node, y, g)
    if type(node)._op == "I1":
        d = i0(nz) - yt / nz
    else:
        d = i0e(nz) - yt * (const(node.xp.sign(x)) + 1 / nz)
    return g * _where(zero, 0.5, d)


@formula("Logit")
def _logit(node, g):
    (x,) = node.saved
    xt = _in(node, x, g)
    gx = g / (xt * (1 - xt))
    if node.eps is not None:  # zero outside [eps, 1 - eps], as torch
        gx = _where((x >= node.eps) & (x <= 1 - node.eps), gx, 0.0)
    return gx


@formula("NanToNum")
def _nan_to_num(node, g):
    (x,) = node.saved
    return _where(node.xp.isfinite(x), g, 0.0)


@formula("Clamp")
def _clamp(node, g):
    (x,) = node.saved
    keep = node.xp.ones(x.shape, bool)
    if node.lo is not None:
        keep &= x >= node.lo
    if node.hi is not None:
        keep &= x <= node.hi
    return _where(keep, g, 0.0)


@formula("ClampTensor")
def _clamp_tensor(node, g):
    x, lo, hi = node.saved
    nig = node.needs_input_grad
    # torch's clamp_backward_min_max: with min > max every value is max
    return (sum_to(_where((x >= lo) & (x <= hi), g, 0.0), x.shape) if nig[0] else None,
            sum_to(_where((x < lo) & (lo < hi), g, 0.0), lo.shape) if nig[1] else None,
            sum_to(_where((x > hi) | (hi < lo), g, 0.0), hi.shape) if nig[2] else None)


@formula("Maximum", "Minimum")
def _maximum(node, g):
    a, b = node.saved
    # ties split the gradient evenly, as torch does; the weights are piecewise constant
    w = ((a > b) if type(node)._op == "Maximum" else (a < b)) + 0.5 * (a == b)
    nig = node.needs_input_grad
    return (sum_to(g * const(w.astype(g._data.dtype)), a.shape) if nig[0] else None,
            sum_to(g * const((1 - w).astype(g._data.dtype)), b.shape) if nig[1] else None)


@formula("Fmax")
def _fmax(node, g):
    a, b = node.saved
    xp = node.xp
    to_a = ((a >= b) if node.is_max else (a <= b)) | xp.isnan(b)
    nig = node.needs_input_grad
    return (sum_to(_where(to_a, g, 0.0), a.shape) if nig[0] else None,
            sum_to(_where(to_a, 0.0, g), b.shape) if nig[1] else None)


@formula("Atan2")
def _atan2(node, g):
    a, b = node.saved
    at, bt = _in(node, a, g, 0), _in(node, b, g, 1)
    d = at * at + bt * bt
    nig = node.needs_input_grad
    return (sum_to(g * bt / d, a.shape) if nig[0] else None), (sum_to(-g * at / d, b.shape) if nig[1] else None)


@formula("Lerp")
def _lerp(node, g):
    sa, sb = node.shapes
    w = node.weight
    nig = node.needs_input_grad
    return (sum_to(g * (1 - w), sa) if nig[0] else None), (sum_to(g * w, sb) if nig[1] else None)


@formula("LogAddExp", "LogAddExp2")
def _logaddexp(node, g):
    # d/da log(e^a + e^b) = sigmoid(a - b) (base 2: of (a - b) ln 2), stable for large |a - b|
    a, b = node.saved
    k = 1.0 if type(node)._op == "LogAddExp" else _LN2
    at, bt = _in(node, a, g, 0), _in(node, b, g, 1)
    nig = node.needs_input_grad
    return (sum_to(g * ((at - bt) * k).sigmoid(), a.shape) if nig[0] else None,
            sum_to(g * ((bt - at) * k).sigmoid(), b.shape) if nig[1] else None)


@formula("Xlogy", "Xlog1py")
def _xlogy(node, g):
    # torch's: xlogy(g, y) masked to 0 where x == 0 and the log is not finite; x / y for y
    from .. import xlogy
    from ..special import xlog1py
    x, y = node.saved
    xt, yt = _in(node, x, g, 0), _in(node, y, g, 1)
    log1p = node.log1p  # Xlog1py: x * log1p(y)
    nig = node.needs_input_grad
    gx = gy = None
    if nig[0]:
        gx = sum_to(_where((x == 0) & ((y + 1 if log1p else y) <= 0), 0.0,
                           (xlog1py if log1p else xlogy)(g, yt)), x.shape)
    if nig[1]:
        gy = sum_to(g * xt / ((yt + 1) if log1p else yt), y.shape)
    return gx, gy


@formula("Copysign")
def _copysign(node, g):
    a, y = node.saved
    xp = node.xp
    with np.errstate(invalid="ignore", divide="ignore"):
        flip = xp.where(a == 0, 0, y / a).astype(g._data.dtype)  # ±1: whether the sign flipped, piecewise constant
    return sum_to(g * const(flip), a.shape), g.new_zeros(node.b_shape)


@formula("Remainder", "Fmod")
def _remainder(node, g):
    a, b = node.saved
    xp = node.xp
    q = (xp.floor if type(node)._op == "Remainder" else xp.trunc)(a / b)  # the quotient is piecewise constant
    nig = node.needs_input_grad
    return (sum_to(g, a.shape) if nig[0] else None), (sum_to(-g * const(q), b.shape) if nig[1] else None)
