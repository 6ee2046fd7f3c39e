"""Connectionist temporal classification loss (Graves et al., 2006), as torch's ctc_loss computes it.

Each target is extended with blanks (b, l1, b, l2, ..., b: 2L+1 states); forward runs the log-space alpha
recursion over time for the whole batch at once (a Python loop over time steps, arrays over batch and
states), backward the beta recursion, and the gradient is torch's formula (ctc_loss_backward_cpu):

    grad[t, c] = exp(lp[t, c]) - exp(logsumexp_{s: l'_s = c}(alpha[t, s] + beta[t, s]) + nll - lp[t, c])

which is the gradient through log_softmax of logits for normalised log_probs, and what torch returns for
log_probs whatever they are (its gradcheck tests feed log_softmax outputs, as users do). Like torch's,
it takes float32 and float64 only (autocast runs it in float32)."""
import numpy as np

from ... import _dtype
from ..._backend import to_numpy
from ..._tensor import Tensor, _wrap
from ...autograd.graph import Function
from ...amp._dispatch import autocast_op
from ..._ops._util import on_input_device

__all__ = ["ctc_loss"]

_NEG = -np.inf


def _lse(xp, *arrays):
    """logsumexp of same-shaped arrays, elementwise; all -inf gives -inf, not NaN."""
    m = arrays[0]
    for a in arrays[1:]:
        m = xp.maximum(m, a)
    safe = xp.where(xp.isfinite(m), m, 0)
    total = sum(xp.exp(a - safe) for a in arrays)
    with np.errstate(divide="ignore"):
        return xp.log(total) + safe


def _shift(xp, a, k):
    """a (N, S) moved k states to the right (k > 0) or left (k < 0), filled with -inf."""
    out = xp.full_like(a, _NEG)
    if k > 0:
        out[:, k:] = a[:, :-k]
    else:
        out[:, :k] = a[:, -k:]
    return out


class CTCLoss(Function):
    """Per-sample negative log-likelihood (N,) of log_probs (T, N, C) for the extended labels ext (N, S)."""
    _grad_fn_name = "CtcLossBackward0"

    def forward(ctx, lp, ext, in_len, tgt_len, blank, zero_infinity):
        xp = ctx.xp
        t_max, n, _ = lp.shape
        s_max = ext.shape[1]
        lp_ext = xp.take_along_axis(lp, xp.broadcast_to(ext[None], (t_max, n, s_max)), axis=2)  # (T, N, S)
        s = xp.arange(s_max)
        # a state may skip the blank before it when it is a label unlike the label two states back
        prev2 = xp.concatenate([xp.full((n, 2), blank, dtype=ext.dtype), ext[:, :-2]], axis=1)
        skip = (s >= 2) & (ext != blank) & (ext != prev2)
        alpha = xp.full((t_max, n, s_max), _NEG, dtype=lp.dtype)
        if t_max:
            alpha[0, :, :2] = lp_ext[0, :, :2]
            alpha[0, :, 1] = xp.where(tgt_len > 0, alpha[0, :, 1], _NEG)
        for t in range(1, t_max):
            a = alpha[t - 1]
            nxt = _lse(xp, a, _shift(xp, a, 1), xp.where(skip, _shift(xp, a, 2), _NEG)) + lp_ext[t]
            # a sample whose input has ended keeps its last alpha (only t = length - 1 is read)
            alpha[t] = xp.where((t < in_len)[:, None], nxt, a)
        rows = xp.arange(n)
        last = alpha[xp.maximum(in_len - 1, 0), rows]  # (N, S)
        end = last[rows, 2 * tgt_len]
        end1 = xp.where(tgt_len > 0, last[rows, xp.maximum(2 * tgt_len - 1, 0)], _NEG)
        nll = -_lse(xp, end, end1)
        ctx.bad = ~xp.isfinite(nll) if zero_infinity else None
        ctx.save_for_backward(lp, lp_ext, alpha, nll)
        ctx.meta = (ext, skip, in_len, tgt_len)
        out = xp.where(ctx.bad, 0, nll) if zero_infinity else nll
        return out

    def backward(ctx, g):
        xp = ctx.xp
        lp, lp_ext, alpha, nll = ctx.saved
        ext, skip, in_len, tgt_len = ctx.meta
        t_max, n, c = lp.shape
        s_max = ext.shape[1]
        s = xp.arange(s_max)
        final = (s == 2 * tgt_len[:, None]) | ((s == 2 * tgt_len[:, None] - 1) & (tgt_len[:, None] > 0))
        skip_next = _shift(xp, skip.astype(np.float64), -2) > 0  # may state s + 2 be reached from s
        beta = xp.full_like(alpha, _NEG)
        for t in range(t_max - 1, -1, -1):
            if t + 1 < t_max:
                b = beta[t + 1]
                rec = _lse(xp, b, _shift(xp, b, -1), xp.where(skip_next, _shift(xp, b, -2), _NEG)) + lp_ext[t]
            else:
                rec = xp.full((n, s_max), _NEG, dtype=lp.dtype)
            at_end = (t == in_len - 1)[:, None]
            beta[t] = xp.where(at_end, xp.where(final, lp_ext[t], _NEG), xp.where((t < in_len - 1)[:, None], rec,
                                                                                    _NEG))
        ab = alpha + beta  # (T, N, S); -inf past each sample's length and on padding states
        m = ab.max(axis=2, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        onehot = (ext[:, :, None] == xp.arange(c)).astype(lp.dtype)  # (N, S, C)
        summed = xp.matmul(xp.exp(ab - m).transpose(1, 0, 2), onehot).transpose(1, 0, 2)  # (T, N, C)
        # an impossible target (nll = inf) gives inf - inf here, as in torch; zero_infinity zeroes it below
        with np.errstate(divide="ignore", invalid="ignore"):
            lcab = xp.log(summed) + m
            grad = xp.exp(lp) - xp.exp(lcab + nll[None, :, None] - lp)
        grad = xp.where((xp.arange(t_max)[:, None] < in_len)[:, :, None], grad, 0)
        if ctx.bad is not None:
            grad = xp.where(ctx.bad[None, :, None], 0, grad)
        return grad * g[None, :, None]


def _lengths(v, what):
    if isinstance(v, Tensor):
        v = to_numpy(v._data)
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise RuntimeError(f"ctc_loss(): {what} must be integers, got {a.dtype}")
    return a.astype(np.int64).reshape(-1)


@autocast_op("ctc_loss")
@on_input_device  # the extended targets and lengths become arrays here
def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank: int = 0, reduction: str = "mean",
             zero_infinity: bool = False):
    """torch.nn.functional.ctc_loss: log_probs (T, N, C) or (T, C), targets (N, S) padded or the (sum of
    target_lengths,) concatenation; input_lengths and target_lengths as tensors or sequences of ints."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if not log_probs.dtype.is_floating_point:
        raise RuntimeError(f"ctc_loss(): expected log_probs to be floating point, got {log_probs.dtype}")
    if log_probs._data.dtype.itemsize < 4:
        dev = "cpu" if log_probs._device.type == "cpu" else "gpu"
        raise NotImplementedError(f'"ctc_loss_{dev}" not implemented for \'{_dtype.scalar_name(log_probs.dtype)}\'')
    unbatched = log_probs.ndim == 2
    if log_probs.ndim not in (2, 3):
        raise RuntimeError(f"ctc_loss(): expected log_probs to be 2-D or 3-D (T, N, C), but got "
                           f"{list(log_probs.shape)}")
    lp = log_probs.unsqueeze(1) if unbatched else log_probs
    t_max, n, c = lp.shape
    if not 0 <= blank < c:
        raise RuntimeError("blank must be in label range")
    xp = lp._device.xp
    in_len, tgt_len = _lengths(input_lengths, "input_lengths"), _lengths(target_lengths, "target_lengths")
    if in_len.size != n:
        raise RuntimeError(f"input_lengths must be of size batch_size, got {in_len.size} for a batch of {n}")
    if tgt_len.size != n:
        raise RuntimeError(f"target_lengths must be of size batch_size, got {tgt_len.size} for a batch of {n}")
    for i in range(n):
        if in_len[i] > t_max or in_len[i] < 0:
            raise RuntimeError(f"Expected input_lengths to have value at most {t_max}, but got value {in_len[i]} "
                               f"(while checking arguments for ctc_loss_cpu)")
    tg = to_numpy(targets._data if isinstance(targets, Tensor) else np.asarray(targets)).astype(np.int64)
    if unbatched:
        tg = tg.reshape(1, -1)
    l_max = int(tgt_len.max()) if n else 0
    ext = np.full((n, 2 * l_max + 1), blank, dtype=np.int64)
    if tg.ndim == 1 and not unbatched:  # concatenated targets
        offsets = np.concatenate([[0], np.cumsum(tgt_len)])
        if tg.size < offsets[-1]:
            raise RuntimeError(f"Expected tensor to have size at least {offsets[-1]} at dimension 1, but got size "
                               f"{tg.size} for argument #2 'targets' (while checking arguments for ctc_loss_cpu)")
        for i in range(n):
            ext[i, 1:2 * tgt_len[i]:2] = tg[offsets[i]:offsets[i + 1]]
    else:
        if tg.shape[-1] < l_max:
            raise RuntimeError(f"Expected tensor to have size at least {l_max} at dimension 1, but got size "
                               f"{tg.shape[-1]} for argument #2 'targets' (while checking arguments for "
                               f"ctc_loss_cpu)")
        for i in range(n):
            ext[i, 1:2 * tgt_len[i]:2] = tg[i, :tgt_len[i]]
    nll = CTCLoss.apply(lp, ext=xp.asarray(ext), in_len=xp.asarray(in_len), tgt_len=xp.asarray(tgt_len),
                        blank=blank, zero_infinity=zero_infinity)
    if reduction == "mean":
        # per-sample loss over its target length (at least 1), then the batch mean, as torch
        lengths = _wrap(xp.asarray(np.maximum(tgt_len, 1)).astype(nll._data.dtype), lp._device)
        return (nll / lengths).mean()
    if reduction == "sum":
        return nll.sum()
    return nll.squeeze(0) if unbatched else nll

