"""Batch, layer, group and RMS normalization.

# NOTE: batch_norm and layer_norm are one hand-written op (`_Norm`): statistics, normalization and the affine
# step in a single forward, and the closed-form backward gx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat *
# xhat)). Composed from primitives they would keep ~8 temporaries per call and a backward graph of ~12 nodes;
# the closed form is also the numerically stable one. group_norm reuses `_Norm` on a (N, G, -1) view and applies
# its per-channel affine with ordinary ops; rms_norm is composed (one reduction, cheap as is)."""
import numpy as np

from ... import _cpu_kernels, _cuda_kernels
from ..._tensor import Tensor, _wrap
from ...autograd import grad_mode
from ...autograd import graph as _graph
from ...autograd.graph import Function
from ..._ops._layout import channels_last_format, in_input_format
from ..._ops._lowp import widened
from ..._ops._util import on_input_device
from ...amp._dispatch import autocast_op

__all__ = ["batch_norm", "layer_norm", "group_norm", "rms_norm", "instance_norm"]


def _rsum(xp, a, axes):
    """a.sum(axes, keepdims=True), as a matrix-vector product with a ones vector where the layout allows.

    # NOTE: NumPy's reductions over short rows or over non-contiguous axes (batch norm's (0, 2, 3)) run 4-5x
    # slower than a BLAS gemv over the same data; the statistics and all gradient sums of `_Norm` go through here."""
    nd = a.ndim
    keep = tuple(1 if i in axes else s for i, s in enumerate(a.shape))
    if not axes or a.size == 0 or not a.flags.c_contiguous:
        return a.sum(axis=axes, keepdims=True)
    k = len(axes)
    if axes == tuple(range(nd - k, nd)):  # trailing dims (layer norm, group norm)
        r = xp.matmul(a.reshape(-1, a.size // _prod(a.shape[:nd - k])), xp.ones(_prod(a.shape[nd - k:]), a.dtype))
    elif axes == tuple(range(k)):  # leading dims (layer norm's weight and bias)
        r = xp.matmul(xp.ones(_prod(a.shape[:k]), a.dtype), a.reshape(_prod(a.shape[:k]), -1))
    elif nd > 2 and axes == (0,) + tuple(range(2, nd)):  # batch norm: all but the channel dim
        r = xp.matmul(a.reshape(a.shape[0], a.shape[1], -1), xp.ones(_prod(a.shape[2:]), a.dtype)).sum(0)
    else:
        return a.sum(axis=axes, keepdims=True)
    return r.reshape(keep)


def _prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


class _Norm(Function):
    """y = (x - mean) * rstd * w + b with statistics over `axes`; w, b broadcast as `pshape`.

    `stats` = (mean, var) arrays to normalize with constants (eval-mode batch norm); otherwise they are the
    batch's own and the backward includes their dependence on x."""

    @widened
    def forward(ctx, x, *wb, axes=(), eps=1e-5, stats=None, pshape=None, has_w=False, has_b=False, stats_out=None,
                keep_format=False):
        xp = ctx.xp
        if stats is None:
            n = _prod(x.shape[i] for i in axes)
            mean = _rsum(xp, x, axes) / n
            xc = x - mean
            var = _rsum(xp, xc * xc, axes) / n
            if stats_out is not None:  # batch norm updates its running statistics from these
                stats_out += [mean, var]
        else:
            mean, var = stats
            xc = x - mean
        rstd = 1.0 / xp.sqrt(var + eps)
        xhat = xc
        xhat *= rstd
        w = wb[0].reshape(pshape) if has_w else None
        b = wb[-1].reshape(pshape) if has_b else None
        y = xhat * w if has_w else xhat.copy()
        if has_b:
            y += b
        ctx.save_for_backward(xhat, rstd, *((w,) if has_w else ()))
        ctx.cfg = (axes, stats is None, has_w, has_b)
        ctx.pshape = pshape
        ctx.wb_shape = wb[0].shape if wb else None
        return in_input_format(ctx, y, x) if keep_format else y

    @widened
    def backward(ctx, g):
        xhat, rstd = ctx.saved[:2]
        xp = ctx.xp
        axes, own_stats, has_w, has_b = ctx.cfg
        nig = ctx.needs_input_grad
        gx = gw = gb = None
        g = xp.ascontiguousarray(g)
        # the dims that w and b broadcast over: their gradients sum across them
        lead = g.ndim - len(ctx.pshape) if ctx.pshape is not None else g.ndim
        red = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(ctx.pshape or ()) if s == 1)
        gxh = g * xhat if has_w or own_stats else None
        if has_w:
            w = ctx.saved[2]
            if nig[1]:
                gw = _rsum(xp, gxh, red).reshape(ctx.wb_shape)
            gxhat = g * w
        else:
            gxhat = g
        if has_b and nig[-1]:
            gb = _rsum(xp, g, red).reshape(ctx.wb_shape)
        if nig[0]:
            if own_stats:
                n = _prod(g.shape[i] for i in axes)
                if has_w:
                    gxh *= w  # now gxhat * xhat
                gx = xhat * (_rsum(xp, gxh, axes) / n)
                xp.subtract(gxhat, gx, out=gx)
                gx -= _rsum(xp, gxhat, axes) / n
                gx *= rstd
            else:
                gx = gxhat * rstd
        out = (gx,) + ((gw,) if has_w else ()) + ((gb,) if has_b else ())
        return out if len(out) > 1 else gx


class _FusedLayerNorm(Function):
    """layer_norm over the trailing `size` elements by the compiled CPU kernels: statistics, normalization and
    the affine step in one pass, dx, dweight and dbias in one pass back (torch's native_layer_norm). Saves x
    and each row's mean and rstd (float64), where `_Norm` keeps a normalized copy of x."""
    _grad_fn_name = "NativeLayerNormBackward0"

    def forward(ctx, x, *wb, size, eps, has_w, has_b):
        k = ctx.k = _kernels(x, *wb)
        xr = x.reshape(-1, size) if x.flags.c_contiguous else ctx.xp.ascontiguousarray(x).reshape(-1, size)
        w = wb[0].reshape(-1) if has_w else None
        y, mean, rstd = k.layer_norm(xr, w, wb[-1].reshape(-1) if has_b else None, eps)
        ctx.save_for_backward(xr, mean, rstd, *((w,) if has_w else ()))
        ctx.cfg = (x.shape, wb[0].shape if wb else None, has_w, has_b)
        return y.reshape(x.shape)

    def backward(ctx, g):
        xr, mean, rstd = ctx.saved[:3]
        shape, wb_shape, has_w, has_b = ctx.cfg
        w = ctx.saved[3] if has_w else None
        gx, gw, gb = ctx.k.layer_norm_backward(g.reshape(xr.shape), xr, mean, rstd, w)
        out = ((gx.reshape(shape),) + ((gw.reshape(wb_shape),) if has_w else ())
               + ((gb.reshape(wb_shape),) if has_b else ()))
        return out if len(out) > 1 else out[0]


class _FusedRMSNorm(Function):
    """rms_norm over the trailing `size` elements by the compiled CPU kernels, forward and backward in one pass
    each (torch composes it: its top node is the product with the weight, or with the rstd)."""
    _grad_fn_name = "MulBackward0"

    def forward(ctx, x, *w, size, eps):
        k = ctx.k = _kernels(x, *w)
        xr = x.reshape(-1, size) if x.flags.c_contiguous else ctx.xp.ascontiguousarray(x).reshape(-1, size)
        wv = w[0].reshape(-1) if w else None
        y, rstd = k.rms_norm(xr, wv, eps)
        ctx.save_for_backward(xr, rstd, *w)
        ctx.cfg = (x.shape, w[0].shape if w else None)
        return y.reshape(x.shape)

    def backward(ctx, g):
        xr, rstd = ctx.saved[:2]
        shape, w_shape = ctx.cfg
        w = ctx.saved[2].reshape(-1) if w_shape is not None else None
        gx, gw = ctx.k.rms_norm_backward(g.reshape(xr.shape), xr, rstd, w)
        return (gx.reshape(shape), gw.reshape(w_shape)) if w is not None else gx.reshape(shape)


def _kernels(*arrays):
    """The compiled kernels for these arrays: numba's for NumPy ones (when installed), CUDA's for CuPy ones."""
    return _cpu_kernels.get(*arrays) or _cuda_kernels.get(*arrays)


def _fits_kernels(input, *params):
    """Whether the compiled kernels take this norm: float32/float64 tensors of one dtype, not empty."""
    return input.numel() > 0 and _kernels(input._data, *(p._data for p in params if p is not None)) is not None


def _norm(x, weight, bias, axes, eps, stats, pshape, stats_out=None, name="NativeBatchNormBackward0"):
    args = [x] + [t for t in (weight, bias) if t is not None]
    # batch norm's result keeps a channels-last input's layout, as torch's kernel (layer norm's is contiguous)
    return _Norm.named(name).apply(*args, axes=axes, eps=float(eps), stats=stats, pshape=pshape,
                                   has_w=weight is not None, has_b=bias is not None, stats_out=stats_out,
                                   keep_format=name == "NativeBatchNormBackward0")


class _SyncNorm(Function):
    """Batch norm over the whole process group's batch (SyncBatchNorm in training).

    Each rank's (count, mean, M2) per channel is gathered and combined by Chan's parallel formula (exact, and
    stable where sums of squares are not; a rank with an empty batch counts for nothing). Backward all-reduces
    the two per-channel sums the input gradient needs, sum(g) and sum(g * xhat); the weight and bias gradients
    stay this rank's own, for DistributedDataParallel to average like any other."""
    _grad_fn_name = "SyncBatchNormBackward"  # torch's SyncBatchNorm is a custom Function

    def forward(ctx, x, *wb, eps, group, device, has_w, has_b, stats_out):
        from ... import distributed as dist
        xp = ctx.xp
        c = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        pshape = (c,) + (1,) * (x.ndim - 2)
        n = x.size // c
        if n:
            mean = _rsum(xp, x, axes) / n
            xc = x - mean
            m2 = _rsum(xp, xc * xc, axes)
        else:
            mean = m2 = xp.zeros((1,) + pshape, x.dtype)
        mine = xp.concatenate([xp.asarray([n], dtype=xp.float64), mean.reshape(-1).astype(xp.float64),
                               m2.reshape(-1).astype(xp.float64)])
        world = dist.get_world_size(group)
        every = _wrap(xp.empty((world, 2 * c + 1), dtype=xp.float64), device)
        dist.all_gather_into_tensor(every, _wrap(mine, device), group=group)
        g = every._data
        counts, means, m2s = g[:, :1], g[:, 1:c + 1], g[:, c + 1:]
        total = float(counts.sum())
        if total <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {int(total)}")
        gmean = (counts * means).sum(0) / total
        gm2 = (m2s + counts * (means - gmean) ** 2).sum(0)
        var = gm2 / total
        stats_out += [gmean, gm2 / (total - 1)]  # the running statistics take the unbiased variance
        rstd = (1.0 / xp.sqrt(var + eps)).astype(x.dtype).reshape((1,) + pshape)
        xhat = x - gmean.astype(x.dtype).reshape((1,) + pshape)
        xhat *= rstd
        w = wb[0].reshape(pshape) if has_w else None
        y = xhat * w if has_w else xhat.copy()
        if has_b:
            y += wb[-1].reshape(pshape)
        ctx.save_for_backward(xhat, rstd, *((w,) if has_w else ()))
        ctx.cfg = (axes, has_w, has_b, total, group, device)
        return y

    def backward(ctx, g):
        from ... import distributed as dist
        xhat, rstd = ctx.saved[:2]
        xp = ctx.xp
        axes, has_w, has_b, total, group, device = ctx.cfg
        nig = ctx.needs_input_grad
        g = xp.ascontiguousarray(g)
        c = g.shape[1]
        sum_g = _rsum(xp, g, axes)
        sum_gx = _rsum(xp, g * xhat, axes)
        gw = sum_gx.reshape(c) if has_w and nig[1] else None
        gb = sum_g.reshape(c).copy() if has_b and nig[-1] else None
        gx = None
        if nig[0]:
            both = _wrap(xp.concatenate([sum_g.reshape(-1), sum_gx.reshape(-1)]), device)
            dist.all_reduce(both, group=group)
            s = both._data
            gx = xhat * (s[c:].reshape(sum_g.shape) / total)
            xp.subtract(g, gx, out=gx)
            gx -= s[:c].reshape(sum_g.shape) / total
            gx *= rstd if not has_w else rstd * ctx.saved[2]
        out = (gx,) + ((gw,) if has_w else ()) + ((gb,) if has_b else ())
        return out if len(out) > 1 else gx


def sync_batch_norm(input, running_mean, running_var, weight, bias, momentum, eps, group):
    """Training-mode batch norm with statistics over every rank of `group` (SyncBatchNorm's forward); updates
    the running statistics in place as batch_norm does."""
    stats = []
    args = [input] + [t for t in (weight, bias) if t is not None]
    y = _SyncNorm.apply(*args, eps=float(eps), group=group, device=input._device, has_w=weight is not None,
                        has_b=bias is not None, stats_out=stats)
    mean, var = stats
    with grad_mode.no_grad():
        for running, batch in ((running_mean, mean), (running_var, var)):
            if running is not None:
                running.mul_(1 - momentum).add_(_wrap(batch.astype(running._data.dtype), input._device),
                                                alpha=momentum)
    return y


@on_input_device
def batch_norm(input: Tensor, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """Normalizes each channel (dim 1) over the batch and spatial dims; in training also updates the running
    statistics in place (unbiased variance, exponential average with `momentum`)."""
    c = input.shape[1] if input.ndim > 1 else None
    if input.ndim < 2:
        raise ValueError(f"Expected 2D or more input (got {input.ndim}D input)")
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
    axes = (0,) + tuple(range(2, input.ndim))
    pshape = (c,) + (1,) * (input.ndim - 2)
    if training:
        n = input.numel() // c
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
        batch_stats = []
        y = _norm(input, weight, bias, axes, eps, None, pshape, batch_stats)
        if running_mean is not None or running_var is not None:
            mean, var = (a.reshape(-1) for a in batch_stats)
            with grad_mode.no_grad():
                if running_mean is not None:
                    running_mean.mul_(1 - momentum).add_(_wrap(mean.astype(running_mean._data.dtype), input._device),
                                                         alpha=momentum)
                if running_var is not None:  # unbiased, as torch
                    running_var.mul_(1 - momentum).add_(
                        _wrap((var * (n / (n - 1))).astype(running_var._data.dtype), input._device), alpha=momentum)
        return y
    if running_mean is None or running_var is None:
        return _norm(input, weight, bias, axes, eps, None, pshape)
    dt = input._data.dtype
    stats = (running_mean._data.astype(dt, copy=False).reshape(pshape),
             running_var._data.astype(dt, copy=False).reshape(pshape))
    return _norm(input, weight, bias, axes, eps, stats, pshape)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalizes each (sample, channel) plane over its spatial dims."""
    n, c = input.shape[:2]
    y = _norm(input.reshape((1, n * c) + tuple(input.shape[2:])), None, None, tuple(range(2, input.ndim)), eps,
              None, None)
    y = y.reshape(input.shape)
    if weight is not None:
        y = y * weight.reshape((c,) + (1,) * (input.ndim - 2))
    if bias is not None:
        y = y + bias.reshape((c,) + (1,) * (input.ndim - 2))
    return y


@autocast_op("layer_norm")
def layer_norm(input: Tensor, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalizes over the trailing `normalized_shape` dims, then scales by weight and shifts by bias."""
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    if k == 0 or tuple(input.shape[input.ndim - k:]) != ns or input.ndim < k:
        raise RuntimeError(f"Given normalized_shape={list(ns)}, expected input with shape [*, "
                           f"{', '.join(map(str, ns))}], but got input of size{list(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != ns:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                               f"{list(t.shape)} and normalized_shape = {list(ns)}")
    if _fits_kernels(input, weight, bias):
        args = [input] + [t for t in (weight, bias) if t is not None]
        return _FusedLayerNorm.apply(*args, size=_prod(ns), eps=float(eps), has_w=weight is not None,
                                     has_b=bias is not None)
    axes = tuple(range(input.ndim - k, input.ndim))
    return _norm(input, weight, bias, axes, eps, None, ns, name="NativeLayerNormBackward0")


@autocast_op("group_norm")
def group_norm(input: Tensor, num_groups: int, weight=None, bias=None, eps=1e-5):
    """Normalizes each group of num_groups channel groups over its channels and spatial dims."""
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.ndim}")
    n, c = input.shape[:2]
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(input.shape)} and num_groups={num_groups}")
    y = _norm(input.reshape(n, num_groups, -1), None, None, (2,), eps, None, None).reshape(input.shape)
    pshape = (c,) + (1,) * (input.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(pshape)
    if bias is not None:
        y = y + bias.reshape(pshape)
    fmt = channels_last_format(input._data)
    if fmt is not None:  # torch's kernel writes a channels-last input's result channels-last
        y = y.contiguous(memory_format=fmt)
    return _graph.renamed(y, "NativeGroupNormBackward0")  # one node in torch, affine included


@autocast_op("rms_norm")
def rms_norm(input: Tensor, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) over the trailing dims; eps=None uses the dtype's machine epsilon, as torch."""
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    if tuple(input.shape[input.ndim - k:]) != ns:
        raise RuntimeError(f"Given normalized_shape={list(ns)}, expected input with shape [*, "
                           f"{', '.join(map(str, ns))}], but got input of size{list(input.shape)}")
    if eps is None:
        eps = float(np.finfo(input._data.dtype).eps)
    if k and (weight is None or tuple(weight.shape) == ns) and _fits_kernels(input, weight):
        args = [input] + ([weight] if weight is not None else [])
        return _FusedRMSNorm.apply(*args, size=_prod(ns), eps=float(eps))
    dims = tuple(range(input.ndim - k, input.ndim))
    y = input * ((input * input).mean(dims, keepdim=True) + eps).rsqrt()
    return y * weight if weight is not None else y
