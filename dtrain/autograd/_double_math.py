"""Double-backward formulas (see dtrain.autograd._double) for pointwise math, activations, reductions, scans and
the softmax family.

Each formula is the op's first derivative written with differentiable tensor ops, so that it is recorded and can
be differentiated again. Masks, comparisons and argmax indices are piecewise constant: they enter as constants.
Ops whose forward runs in float32 for a lower-precision dtype (`widened`) saved float32 arrays: they are cast to
the gradient's dtype before they become tensors, so a formula computes in the dtype of the graph it extends."""
import math

from .._tensor import _wrap
from ._double import _dev_of, formula, input_t, output_t, sum_to

_SQRT1_2 = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_1_OVER_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_2_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


def _as(a, g):
    """Saved array `a` in the dtype of gradient `g` (widened ops saved float32 copies of half-precision ones)."""
    d = g._data.dtype
    return a.astype(d) if a.dtype != d and a.dtype.kind == "f" and d.kind == "f" else a


def _in(node, a, g, i=0):
    return input_t(node, i, _as(a, g))


def _out(node, a, g, nr=0):
    return output_t(node, _as(a, g), nr)


def _const(a):
    """A piecewise-constant array (mask, comparison, index) as a tensor outside every graph."""
    return _wrap(a, _dev_of(a))


def _where(cond, a, b):
    """torch.where over tensors or numbers with an array condition: a select, so that an inf or NaN in the
    branch not taken stays out of the gradient (as in the ops' own backwards)."""
    from .. import where
    return where(_const(cond), a, b)


def _unreduce(g, shape, axes, keepdim):
    """The gradient of a reduction over `axes` (None: all) reshaped to broadcast against the input's `shape`."""
    if axes is None:
        axes = tuple(range(len(shape)))
    if not keepdim and axes:
        g = g.reshape([1 if i in axes else s for i, s in enumerate(shape)])
    return g


# -------------------------------------------------------------------------------------------- activations
@formula("Gelu")
def _gelu(node, g):
    x, _ = node.saved  # the saved cdf / tanh is a constant array: rebuilt from x to be differentiable in x
    xt = _in(node, x, g)
    if node.approximate == "tanh":
        k, c = _SQRT_2_OVER_PI, 0.044715
        t = (k * (xt + c * (xt * xt * xt))).tanh()
        return g * (0.5 * (1 + t) + 0.5 * xt * (1 - t * t) * k * (1 + 3 * c * xt * xt))
    cdf = 0.5 * (1 + (xt * _SQRT1_2).erf())
    pdf = (-0.5 * xt * xt).exp() * _1_OVER_SQRT_2PI
    return g * (cdf + xt * pdf)


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
    return _where(inside, g, 0.0)


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
    from .. import _dtype
    return g.to(device=node.src_device, dtype=_dtype.from_numpy_dtype(node.src_dtype))
