"""Loss functions, composed from core ops; cross-entropy over class indices uses the fused op."""
import warnings

from ... import _dtype, log_softmax, where
from ..._ops.activation import cross_entropy_indices
from ..._ops.pointwise import clamp_min, softplus
from ..._tensor import _wrap

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div"]


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _legacy_reduction(size_average, reduce, reduction):
    # torch's deprecated size_average/reduce pair, mapped to a reduction string
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _check_reduction(reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _warn_size(input, target):
    if target.shape != input.shape:
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size ({input.shape}). "
                      "This will likely lead to incorrect results due to broadcasting. Please ensure they have the "
                      "same size.", stacklevel=3)


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _warn_size(input, target)
    d = input - target
    loss = d * d
    return _reduce(loss * weight if weight is not None else loss, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _warn_size(input, target)
    loss = (input - target).abs()
    return _reduce(loss * weight if weight is not None else loss, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (L1 when beta == 0)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    _warn_size(input, target)
    a = (input - target).abs()
    if beta == 0:
        return _reduce(a, reduction)
    small = a < beta
    loss = where(small, a * a * (0.5 / beta), a - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere."""
    _check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _warn_size(input, target)
    a = (input - target).abs()
    loss = where(a < delta, a * a * 0.5, (a - 0.5 * delta) * delta)
    return _reduce(loss * weight if weight is not None else loss, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
    """-w (t log x + (1 - t) log(1 - x)), each log clamped at -100 like torch."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input size "
                         f"({input.shape}) is deprecated. Please ensure they have the same size.")
    xd = input._data
    if xd.size and (float(xd.min()) < 0 or float(xd.max()) > 1):
        raise RuntimeError("all elements of input should be between 0 and 1")
    log_x = clamp_min(input.log(), -100)
    log_1mx = clamp_min((1 - input).log(), -100)
    loss = -(target * log_x + (1 - target) * log_1mx)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    """BCE of sigmoid(input) computed stably: (1 - t) x + lw * softplus(-x), lw = 1 + (pos_weight - 1) t."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    sp = softplus(-input)  # log(1 + e^-x), thresholded to stay exact for large |x|
    if pos_weight is not None:
        log_weight = (pos_weight - 1) * target + 1
        loss = (1 - target) * input + log_weight * sp
    else:
        loss = (1 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
    """KL(target || exp(input)) pointwise: target (log target - input); input holds log-probabilities."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if reduction not in ("mean", "sum", "none", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if log_target:
        loss = target.exp() * (target - input)
    else:
        pos = target > 0
        # xlogy: 0 log 0 = 0, with the log taken of a safe value so no nan reaches the gradient
        safe = where(pos, target, 1.0)
        loss = where(pos, target * safe.log(), 0.0) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.size(0) if input.dim() != 0 else loss.sum()
    return _reduce(loss, reduction)


def _check_target_dtype(target):
    if target._data.dtype.kind not in "iub":
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {_dtype.scalar_name(target.dtype)}")


def _check_class_target(input, target, weight, ignore_index):
    n_classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    if input.ndim >= 2 and target.ndim >= 1 and input.shape[0] != target.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
                         f"({target.shape[0]}).")
    if input.ndim == 2 and target.ndim != 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if input.ndim > 2:
        expected = [input.shape[0]] + list(input.shape[2:])
        if list(target.shape) != expected:
            raise RuntimeError(f"Expected target size {expected}, got {list(target.shape)}")
    if input.ndim == 1 and target.ndim != 0:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if weight is not None and (weight.ndim != 1 or weight.shape[0] != n_classes):
        raise RuntimeError(f"weight tensor should be defined either for all {n_classes} classes or no classes but "
                           f"got weight tensor of shape: {list(weight.shape)}")
    t = target._data
    if t.size:
        bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
        if bad.any():
            raise IndexError(f"Target {int(t[bad][0])} is out of bounds.")
    return n_classes


def _as_rows(input, target):
    """(N, C, d1, ...) logits and (N, d1, ...) targets as (N*d1*..., C) and (N*d1*...,)."""
    c = input.shape[1] if input.ndim > 1 else input.shape[0]
    if input.ndim == 1:
        return input.reshape(1, c), target.reshape(1)
    if input.ndim == 2:
        return input, target
    return input.movedim(1, -1).reshape(-1, c), target.reshape(-1)


def _long(target):
    return target if target._data.dtype.kind == "i" else _wrap(target._data.astype("int64"), target._device)


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    """-w[t] input[n, t] averaged by the sum of the weights of the non-ignored targets ('mean')."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_target_dtype(target)
    if input.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.ndim})")
    _check_class_target(input, target, weight, ignore_index)
    x, t = _as_rows(input, _long(target))
    td = t._data
    xp = t._device.xp
    valid = td != ignore_index
    safe = xp.where(valid, td, 0)
    wt = weight._data[safe] * valid if weight is not None else valid.astype(x._data.dtype)
    wt = _wrap(wt.astype(x._data.dtype, copy=False), x._device)
    picked = x.gather(1, _wrap(safe[:, None], t._device)).squeeze(1)
    loss = -picked * wt
    if reduction == "none":
        return loss.reshape(target.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / wt.sum()


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross-entropy of logits (C), (N, C) or (N, C, d1, ...) against class indices or class probabilities."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if input.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.ndim})")
    c_dim = 1 if input.ndim > 1 else 0
    if target._data.dtype.kind == "f":
        # class probabilities: same shape as the input
        if target.shape != input.shape:
            if input.ndim == 2 and target.ndim == 2:
                raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
            raise RuntimeError(f"Expected target size {list(input.shape)}, got {list(target.shape)}")
        c = input.shape[c_dim]
        if weight is not None and (weight.ndim != 1 or weight.shape[0] != c):
            raise RuntimeError(f"weight tensor should be defined either for all {c} classes or no classes but got "
                               f"weight tensor of shape: {list(weight.shape)}")
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / c
        logp = log_softmax(input, c_dim)
        if weight is not None:
            wshape = [1] * input.ndim
            wshape[c_dim] = c
            logp = logp * weight.reshape(wshape)
        loss = -(logp * target).sum(c_dim)
        if reduction == "mean":
            n = input.numel() // c if input.ndim > 1 else 1
            return loss.sum() / n
        return _reduce(loss, reduction)
    _check_target_dtype(target)
    _check_class_target(input, target, weight, ignore_index)
    x, t = _as_rows(input, _long(target))
    loss = cross_entropy_indices(x, t, reduction=reduction, ignore_index=ignore_index, weight=weight,
                                 label_smoothing=label_smoothing)
    if reduction == "none":
        return loss.reshape(target.shape)
    return loss
