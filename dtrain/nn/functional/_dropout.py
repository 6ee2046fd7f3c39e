"""Dropout: a random mask scaled by 1/(1-p) in training, the identity otherwise."""
from ..._ops.arith import assign_
from ...autograd.graph import Function
from ...random import default_generator_for
from ..._ops._layout import pointwise
from ..._ops._util import on_input_device

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"]


class _Dropout(Function):
    """y = x * mask, with mask in {0, 1/(1-p)} and broadcast over the dims where `mask` has size 1."""
    _grad_fn_name = "MulBackward0"  # torch's dropout multiplies by the scaled mask

    def forward(ctx, x, mask):
        ctx.mask = mask
        return x * mask

    def backward(ctx, g):
        return g * ctx.mask


pointwise(_Dropout)  # laid out as torch's input * mask (a channels-last input gives a channels-last result)


@on_input_device
def _mask(input, p, shape):
    gen = default_generator_for(input._device)
    u = gen.uniform(shape, input._data.dtype, input._device, 0.0, 1.0)
    dt = input._data.dtype
    mask = (u >= p).astype(dt)
    mask *= dt.type(1.0 / (1.0 - p) if p < 1 else 0.0)
    return mask


def _apply(input, p, training, inplace, shape):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    out = _Dropout.apply(input, mask=_mask(input, p, shape))
    return assign_(input, out) if inplace else out


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability p and scale the rest by 1/(1-p), when training."""
    return _apply(input, p, training, inplace, input.shape)


def _feature_dropout(input, p, training, inplace, spatial, name):
    nd = input.ndim
    if nd not in (spatial + 1, spatial + 2):
        raise RuntimeError(f"{name}: Expected {spatial + 1}D or {spatial + 2}D input, but received a {nd}D input.")
    batched = nd == spatial + 2
    lead = input.shape[:2] if batched else input.shape[:1]
    return _apply(input, p, training, inplace, tuple(lead) + (1,) * spatial)


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    return _feature_dropout(input, p, training, inplace, 1, "dropout1d")


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels (dim 1 of an (N, C, H, W) input) with probability p."""
    if input.ndim == 3:
        # torch treats 3-D input as (N, C, L) here for backward compatibility (with a warning)
        return _apply(input, p, training, inplace, tuple(input.shape[:2]) + (1,)) if training and p else input
    return _feature_dropout(input, p, training, inplace, 2, "dropout2d")


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    return _feature_dropout(input, p, training, inplace, 3, "dropout3d")


@on_input_device
def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1:
        return input * 0
    alpha = 1.7580993408473766
    keep_prob = 1 - p
    from ..._tensor import _wrap
    gen = default_generator_for(input._device)
    keep = gen.uniform(input.shape, input._data.dtype, input._device, 0.0, 1.0) >= p
    a = (keep_prob + alpha ** 2 * keep_prob * (1 - keep_prob)) ** -0.5
    b = -a * alpha * (1 - keep_prob)
    mask = _wrap((keep * a).astype(input._data.dtype), input._device)
    shift = _wrap(((~keep) * (-alpha * a) + b).astype(input._data.dtype), input._device)
    out = input * mask + shift
    return assign_(input, out) if inplace else out


@on_input_device
def feature_alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False):
    """Alpha dropout of whole channels: a dropped channel is set to SELU's negative saturation value, then every
    channel is rescaled so that mean and variance are kept (torch's affine constants)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if input.ndim < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    if p == 1:
        return assign_(input, input * 0) if inplace else input * 0
    from ..._tensor import _wrap
    alpha = 1.7580993408473766
    dt = input._data.dtype
    shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    keep = (default_generator_for(input._device).uniform(shape, dt, input._device, 0.0, 1.0) >= p).astype(dt)
    a = 1.0 / ((alpha * alpha * p + 1) * (1 - p)) ** 0.5
    shift = (keep - 1) * dt.type(alpha * a) + dt.type(alpha * a * p)
    out = input * _wrap(keep * dt.type(a), input._device) + _wrap(shift, input._device)
    return assign_(input, out) if inplace else out
