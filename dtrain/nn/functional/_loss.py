"""Loss functions, composed from core ops; cross-entropy over class indices uses the fused op."""
import math
import warnings

from ... import _backend, _dtype, log_softmax, minimum, where
from ..._ops.activation import cross_entropy_indices
from ..._ops.pointwise import clamp_min, softplus
from ..._tensor import _wrap
from ..._ops._util import on_input_device
from ...amp._dispatch import autocast_op
from ...autograd import graph as _graph

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div"]


def _reduce(loss, reduction, name=None):
    """The reduced loss; `name`: torch's node for the whole loss (MseLossBackward0), given to the top node of
    dtrain's composite (made here or by the caller just before)."""
    if reduction == "mean":
        out = loss.mean()
    elif reduction == "sum":
        out = loss.sum()
    elif reduction == "none":
        out = loss
    else:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return out if name is None else _graph.renamed(out, name)


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


@autocast_op("mse_loss")
def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _warn_size(input, target)
    d = input - target
    loss = d * d
    return _reduce(loss * weight if weight is not None else loss, reduction,
                   "MseLossBackward0" if weight is None else None)


@autocast_op("l1_loss")
def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _warn_size(input, target)
    loss = (input - target).abs()
    return _reduce(loss * weight if weight is not None else loss, reduction)


@autocast_op("smooth_l1_loss")
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
    return _reduce(loss, reduction, "SmoothL1LossBackward0")


@autocast_op("huber_loss")
def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere."""
    _check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _warn_size(input, target)
    a = (input - target).abs()
    loss = where(a < delta, a * a * 0.5, (a - 0.5 * delta) * delta)
    return _reduce(loss * weight if weight is not None else loss, reduction,
                   "HuberLossBackward0" if weight is None else None)


@autocast_op("binary_cross_entropy")
@on_input_device
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
    return _reduce(loss, reduction, "BinaryCrossEntropyBackward0")


@autocast_op("binary_cross_entropy_with_logits")
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
    return _reduce(loss, reduction, "BinaryCrossEntropyWithLogitsBackward0")


@autocast_op("kl_div")
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
    """torch's nll_loss checks, in its order: batch sizes (ValueError), target rank, target dtype, weight, the
    class indices' range."""
    shape, tshape = input._data.shape, target._data.shape  # (the arrays' tuples: no Size per look)
    n_classes = shape[1] if len(shape) > 1 else shape[0]
    if len(shape) >= 2 and len(tshape) >= 1 and shape[0] != tshape[0]:
        raise ValueError(f"Expected input batch_size ({shape[0]}) to match target batch_size ({tshape[0]}).")
    if len(shape) == 2 and len(tshape) != 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if len(shape) > 2:
        expected = [input.shape[0]] + list(input.shape[2:])
        if list(target.shape) != expected:
            raise RuntimeError(f"Expected target size {expected}, got {list(target.shape)}")
    if input.ndim == 1 and target.ndim != 0:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    _check_target_dtype(target)
    if weight is not None and (weight.ndim != 1 or weight.shape[0] != n_classes):
        raise RuntimeError(f"weight tensor should be defined either for all {n_classes} classes or no classes but "
                           f"got weight tensor of shape: {list(weight.shape)}")
    t = target._data
    if t.size:
        if target._device._gpu is None:
            # two reductions decide the usual case (every index in range); the mask is made only when one is not
            if t.min() < 0 or t.max() >= n_classes:
                _check_class_range(t, n_classes, ignore_index)
        else:
            # one test read back on a GPU (each read is a synchronisation)
            with _backend.on_device(target._device):  # array code outside an op: its device made current here
                _check_class_range(t, n_classes, ignore_index)
    return n_classes


def _check_class_range(t, n_classes, ignore_index):
    """IndexError for the first class index of `t` outside [0, n_classes) that is not `ignore_index`."""
    bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
    if bad.any():
        raise IndexError(f"Target {int(t[bad][0])} is out of bounds.")


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


@autocast_op("nll_loss")
@on_input_device
def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    """-w[t] input[n, t] averaged by the sum of the weights of the non-ignored targets ('mean')."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
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
        loss = loss.reshape(target.shape)
    else:
        loss = loss.sum() if reduction == "sum" else loss.sum() / wt.sum()
    return _graph.renamed(loss, "NllLossBackward0")


@autocast_op("cross_entropy")
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
    if target.is_floating_point() and target.shape == input.shape:
        # class probabilities: torch takes this path when the shapes agree; any other target is class indices
        # (a float one then fails nll_loss's checks, as in torch)
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
            return _graph.renamed(loss.sum() / n, "DivBackward1")  # torch's div by a Scalar
        return _reduce(loss, reduction)
    _check_class_target(input, target, weight, ignore_index)
    x, t = _as_rows(input, _long(target))
    loss = cross_entropy_indices(x, t, reduction=reduction, ignore_index=ignore_index, weight=weight,
                                 label_smoothing=label_smoothing)
    if reduction == "none":
        return _graph.renamed(loss.reshape(target.shape), "NllLossBackward0")
    return loss


# ---- margin, embedding and likelihood losses, composed from the ops above -------------------------------------
__all__ += ["margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss", "cosine_embedding_loss",
            "multilabel_soft_margin_loss", "multilabel_margin_loss", "multi_margin_loss", "triplet_margin_loss",
            "triplet_margin_with_distance_loss", "gaussian_nll_loss", "poisson_nll_loss"]


@autocast_op("margin_ranking_loss")
def margin_ranking_loss(input1, input2, target, margin: float = 0, size_average=None, reduce=None,
                        reduction: str = "mean"):
    """max(0, -target (input1 - input2) + margin)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if input1.dim() != input2.dim() or input1.dim() != target.dim():
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {input1.size()}, input2: {input2.size()}, target: {target.size()} ")
    return _reduce(clamp_min(-target * (input1 - input2) + margin, 0), reduction)


@autocast_op("hinge_embedding_loss")
def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """input where target is 1, max(0, margin - input) where target is -1 (torch adds both terms elsewhere)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    loss = where(target != 1, clamp_min(margin - input, 0), 0.0) + where(target != -1, input, 0.0)
    return _reduce(loss, reduction)


@autocast_op("soft_margin_loss")
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """log(1 + exp(-target input))."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    return _reduce(softplus(-target * input), reduction, "SoftMarginLossBackward0")


@autocast_op("cosine_embedding_loss")
def cosine_embedding_loss(input1, input2, target, margin: float = 0, size_average=None, reduce=None,
                          reduction: str = "mean"):
    """1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where target is -1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    dim = target.dim()
    if dim not in (0, 1):
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if dim == 1 and (input1.dim() != 2 or input2.dim() != 2):
        raise RuntimeError(f"1D target tensor expects 2D input tensors, but found inputs with sizes "
                           f"{list(input1.shape)} and {list(input2.shape)}.")
    if dim == 0 and (input1.dim() != 1 or input2.dim() != 1):
        raise RuntimeError(f"0D target tensor expects 1D input tensors, but found inputs with sizes "
                           f"{list(input1.shape)} and {list(input2.shape)}.")
    eps = 1e-12  # torch's: added to each squared magnitude
    cos = (input1 * input2).sum(dim) / (((input1 * input1).sum(dim) + eps) * ((input2 * input2).sum(dim) + eps)).sqrt()
    loss = where(target == 1, 1 - cos, 0.0) + where(target == -1, clamp_min(cos - margin, 0), 0.0)
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction: str = "mean"):
    """Binary cross-entropy of sigmoid(input) against 0/1 targets, averaged over the classes (last dim)."""
    from ._activation import logsigmoid
    reduction = _legacy_reduction(size_average, reduce, reduction)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    loss = loss.sum(input.dim() - 1) / input.size(input.dim() - 1)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(reduction + " is not valid")
    return _reduce(loss, reduction)


def _check_margin_target(input, target, name):
    if input.dim() > 2:
        raise RuntimeError(f"{name}: Expected non-empty vector or matrix with optional 0-dim batch size, but got: "
                           f"{list(input.shape)}")
    _check_target_dtype(target)


@autocast_op("multilabel_margin_loss")
@on_input_device
def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """sum over target classes j and non-target classes i of max(0, 1 - (x[j] - x[i])), divided by C.

    Each row of `target` lists class indices, ended by the first -1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_margin_target(input, target, "multilabel_margin_loss")
    if target.shape != input.shape:
        raise RuntimeError(f"inconsistent target size: {list(target.shape)} for input of size: "
                           f"{list(input.shape)}")
    x = input.reshape(1, -1) if input.dim() < 2 else input
    xp = input._device.xp
    t = target._data.reshape(x.shape).astype(xp.int64)
    c = x.shape[1]
    if t.size and bool(((t < -1) | (t >= c)).any()):
        raise RuntimeError(f"multilabel_margin_loss: target out of range [-1, {c})")
    listed = xp.cumprod(t != -1, axis=1).astype(bool)  # the indices before the first -1
    safe = xp.where(listed, t, 0)
    is_target = xp.zeros(x.shape, dtype=bool)
    rows = xp.broadcast_to(xp.arange(x.shape[0])[:, None], t.shape)
    is_target[rows[listed], safe[listed]] = True
    pair = listed[:, :, None] & ~is_target[:, None, :]  # (N, j, i): j a listed target, i a non-target class
    picked = x.gather(1, _wrap(safe, input._device))  # x[n, target[n, j]]
    hinge = clamp_min(1 - picked.unsqueeze(2) + x.unsqueeze(1), 0)
    loss = (hinge * _wrap(pair.astype(x._data.dtype), input._device)).sum((1, 2)) / c
    if input.dim() < 2:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


@autocast_op("multi_margin_loss")
@on_input_device
def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None, size_average=None, reduce=None,
                      reduction: str = "mean"):
    """sum over i != y of max(0, margin - x[y] + x[i])^p (times weight[y]), divided by C."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if p != 1 and p != 2:
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.dim() != 1:
        raise ValueError("weight must be one-dimensional")
    _check_margin_target(input, target, "multi_margin_loss")
    x = input.reshape(1, -1) if input.dim() < 2 else input
    n, c = x.shape
    if target.numel() != n or target.dim() > 1:
        raise RuntimeError(f"inconsistent target size, expected {n} but got {list(target.shape)}")
    xp = input._device.xp
    t = target._data.reshape(n).astype(xp.int64)
    if t.size and bool(((t < 0) | (t >= c)).any()):
        raise RuntimeError("target out of range")
    idx = _wrap(t[:, None], input._device)
    hinge = clamp_min(margin - x.gather(1, idx) + x, 0)
    if p == 2:
        hinge = hinge * hinge
    if weight is not None:
        hinge = hinge * weight.gather(0, _wrap(t, input._device)).unsqueeze(1)
    other = _wrap((xp.arange(c)[None, :] != t[:, None]).astype(x._data.dtype), input._device)
    loss = (hinge * other).sum(1) / c
    if input.dim() < 2:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


def _check_triplet_dims(anchor, positive, negative):
    a, p, n = anchor.ndim, positive.ndim, negative.ndim
    if not (a == p and p == n):
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {a}D, positive {p}D, and negative {n}D inputs")


@autocast_op("triplet_margin_loss")
def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2, eps: float = 1e-6,
                        swap: bool = False, size_average=None, reduce=None, reduction: str = "mean"):
    """max(0, margin + d(a, p) - d(a, n)) with d the p-norm pairwise distance."""
    from ._distance import pairwise_distance
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    _check_triplet_dims(anchor, positive, negative)
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(clamp_min(margin + d_pos - d_neg, 0), reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin: float = 1.0,
                                      swap: bool = False, reduction: str = "mean"):
    """triplet_margin_loss with any distance function (pairwise_distance by default)."""
    from ._distance import pairwise_distance
    _check_reduction(reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    _check_triplet_dims(anchor, positive, negative)
    dist = distance_function if distance_function is not None else pairwise_distance
    d_pos, d_neg = dist(anchor, positive), dist(anchor, negative)
    if swap:
        d_neg = minimum(d_neg, dist(positive, negative))
    return _reduce(clamp_min(margin + d_pos - d_neg, 0), reduction)


@on_input_device
def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
    """0.5 (log var + (input - target)^2 / var), var clamped below at eps without cutting its gradient."""
    from ... import ones_like
    from ...autograd.grad_mode import no_grad
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = var * ones_like(input)
    elif bool((var._data < 0).any()):
        raise ValueError("var has negative entry/entries")
    if var.shape != input.shape:
        if input.shape[:-1] == var.shape:
            var = var.unsqueeze(-1)  # one variance per row: broadcast over the last dim
        elif not (input.ndim == var.ndim and sum(b for a, b in zip(input.shape, var.shape) if a != b) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(reduction + " is not valid")
    var = var.clone()
    with no_grad():
        var.clamp_(min=eps)
    loss = 0.5 * (var.log() + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


@autocast_op("poisson_nll_loss")
def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False, size_average=None,
                     eps: float = 1e-8, reduce=None, reduction: str = "mean"):
    """exp(input) - target input (log_input), else input - target log(input + eps); full adds Stirling's term
    for targets above 1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        stirling = target * target.log() - target + 0.5 * (2 * math.pi * target).log()
        loss = loss + stirling.masked_fill(target <= 1, 0)
    return _reduce(loss, reduction)
