"""Activation functions. Most reuse the core ops; LeakyReLU, ELU and Hardtanh are small ops of their own."""
from ... import gelu as _gelu, log_softmax, sigmoid, silu as _silu, softmax, softplus as _softplus, tanh
from ..._ops._util import method, on_input_device
from ..._ops.arith import assign_
from ..._ops.pointwise import relu as _relu
from ...autograd import graph as _graph
from ...autograd.graph import Function
from ...amp._dispatch import autocast_op

__all__ = ["relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "gelu", "silu", "mish", "sigmoid",
           "tanh", "softmax", "log_softmax", "softplus", "hardtanh", "hardtanh_", "logsigmoid", "softmin"]


class LeakyRelu(Function):
    def forward(ctx, x, negative_slope):
        pos = x > 0
        ctx.save_for_backward(pos)
        ctx.slope = negative_slope
        return ctx.xp.where(pos, x, x * x.dtype.type(negative_slope))

    def backward(ctx, g):
        (pos,) = ctx.saved
        return ctx.xp.where(pos, g, g * g.dtype.type(ctx.slope))


class Elu(Function):
    def forward(ctx, x, alpha):
        xp = ctx.xp
        pos = x > 0
        neg = xp.expm1(xp.minimum(x, 0)) * x.dtype.type(alpha)  # alpha * (e^x - 1) for x <= 0
        ctx.save_for_backward(pos, neg)
        ctx.alpha = alpha
        return xp.where(pos, x, neg)

    def backward(ctx, g):
        pos, neg = ctx.saved
        # d/dx alpha*(e^x-1) = alpha*e^x = neg + alpha
        return ctx.xp.where(pos, g, g * (neg + neg.dtype.type(ctx.alpha)))


class Hardtanh(Function):
    def forward(ctx, x, lo, hi):
        inside = (x > lo) & (x < hi)  # torch: zero gradient at the bounds, unlike clamp
        ctx.save_for_backward(inside)
        return ctx.xp.clip(x, lo, hi).astype(x.dtype, copy=False)

    def backward(ctx, g):
        (inside,) = ctx.saved
        return g * inside


def _inplace(input, result, inplace, name=None):
    """`result` (composed here), written into input when inplace; `name`: torch's node for the whole op."""
    if inplace:
        return assign_(input, result)
    return result if name is None else _graph.renamed(result, name)


def relu(input, inplace: bool = False):
    return relu_(input) if inplace else _relu(input)


def relu_(input):
    from ..._ops.pointwise import relu_ as _relu_
    return _relu_(input)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    return _inplace(input, LeakyRelu.apply(input, negative_slope=negative_slope), inplace)


def leaky_relu_(input, negative_slope: float = 0.01):
    return leaky_relu(input, negative_slope, True)


def elu(input, alpha: float = 1.0, inplace: bool = False):
    return _inplace(input, Elu.apply(input, alpha=alpha), inplace)


def elu_(input, alpha: float = 1.0):
    return elu(input, alpha, True)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _inplace(input, Hardtanh.apply(input, lo=min_val, hi=max_val), inplace)


def hardtanh_(input, min_val: float = -1.0, max_val: float = 1.0):
    return hardtanh(input, min_val, max_val, True)


def relu6(input, inplace: bool = False):
    return hardtanh(input, 0.0, 6.0, inplace)


def gelu(input, approximate: str = "none"):
    return _gelu(input, approximate=approximate)


def silu(input, inplace: bool = False):
    return _inplace(input, _silu(input), inplace)


def mish(input, inplace: bool = False):
    return _inplace(input, input * tanh(_softplus(input)), inplace, "MishBackward0")


@autocast_op("softplus")
def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    return _softplus(input, beta, threshold)


def logsigmoid(input):
    # log(sigmoid(x)) = -softplus(-x), stable for large |x|
    return _graph.renamed(-_softplus(-input), "LogSigmoidBackward0")


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    return softmax(-input, dim, dtype)


# ---- composed from the ops above (their gradients follow) -----------------------------------------------
__all__ += ["hardsigmoid", "hardswish", "selu", "celu", "glu", "prelu", "threshold", "gumbel_softmax"]


def hardsigmoid(input, inplace: bool = False):
    return _inplace(input, hardtanh(input / 6 + 0.5, 0.0, 1.0), inplace, "HardsigmoidBackward0")


def hardswish(input, inplace: bool = False):
    return _inplace(input, input * hardtanh(input / 6 + 0.5, 0.0, 1.0), inplace, "HardswishBackward0")


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def selu(input, inplace: bool = False):
    return _inplace(input, elu(input, _SELU_ALPHA) * _SELU_SCALE, inplace, "EluBackward0")


def celu(input, alpha: float = 1.0, inplace: bool = False):
    return _inplace(input, elu(input / alpha, 1.0) * alpha, inplace, "CeluBackward0")


def glu(input, dim: int = -1):
    if input.shape[dim] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim % input.ndim} is size "
                           f"{input.shape[dim]}")
    a, b = input.chunk(2, dim)
    return _graph.renamed(a * sigmoid(b), "GluBackward0")


@autocast_op("prelu")
def prelu(input, weight):
    from ... import where
    w = weight.reshape([1, -1] + [1] * (input.ndim - 2)) if input.ndim >= 2 and weight.numel() > 1 else weight
    return where(input >= 0, input, w * input)


def threshold(input, threshold, value, inplace: bool = False):
    from ... import where
    return _inplace(input, where(input > threshold, input, value), inplace)


def gumbel_softmax(logits, tau: float = 1, hard: bool = False, eps: float = 1e-10, dim: int = -1):
    from ... import empty_like, zeros_like
    gumbels = -empty_like(logits).exponential_().log()  # ~Gumbel(0, 1)
    y = softmax((logits + gumbels) / tau, dim)
    if not hard:
        return y
    index = y.max(dim, keepdim=True)[1]
    y_hard = zeros_like(logits).scatter_(dim, index, 1.0)
    return y_hard - y.detach() + y  # straight-through: the forward is one-hot, the gradient is y's


# ---- shrinkage and randomized activations ----------------------------------------------------------------
__all__ += ["hardshrink", "softshrink", "softsign", "tanhshrink", "rrelu", "rrelu_"]


@method()
def hardshrink(input, lambd: float = 0.5):
    """input where |input| > lambd, 0 elsewhere."""
    from ... import where
    return where(input.abs() > lambd, input, 0.0)


def softshrink(input, lambd: float = 0.5):
    """input - lambd above lambd, input + lambd below -lambd, 0 between."""
    from ... import where
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return where(input > lambd, input - lambd, where(input < -lambd, input + lambd, 0.0))


def softsign(input):
    return input / (input.abs() + 1)


def tanhshrink(input):
    return input - tanh(input)


@on_input_device
def rrelu(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False, inplace: bool = False):
    """Leaky ReLU whose negative slope is drawn from U(lower, upper) per element in training, (lower + upper) / 2
    otherwise."""
    if not training:
        return leaky_relu(input, (lower + upper) / 2, inplace)
    from ..._tensor import _wrap
    from ...random import default_generator_for
    x = input._data
    slope = default_generator_for(input._device).uniform(x.shape, x.dtype, input._device, lower, upper)
    noise = input._device.xp.where(x > 0, x.dtype.type(1), slope)  # torch draws a slope where x <= 0
    return _inplace(input, input * _wrap(noise, input._device), inplace)


def rrelu_(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False):
    return rrelu(input, lower, upper, training, True)
