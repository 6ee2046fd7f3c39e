"""The fused CUDA kernels behind `dtrain._cuda_kernels`, with `dtrain._cpu_kernels`' interface.

Each public function takes CuPy arrays of one float dtype (float32 or float64; any layout: inputs are made
C-contiguous first), runs on the device that holds its first array (current for the call, so that what it
allocates lands there), and returns new arrays; rows are the last dim. A launch compiles the kernel's source
(`_source`) for the dtype on first use, or, on the emulated devices, runs its reference (`_reference`).

DTRAIN_CUDA_KERNELS_CHECK=1 (or setting CHECK) makes every launch on a real GPU also run the kernel's reference
on copies of its arguments and compare every array afterwards: the tests do this on a real GPU.
"""
import functools
import os

import numpy as np

from .. import _backend
from . import _reference, _source  # noqa: F401 (_reference registers the references on import)

CHECK = os.environ.get("DTRAIN_CUDA_KERNELS_CHECK", "") not in ("", "0")
_BLOCK = 256  # threads per block of the elementwise kernels
_MAX_GRID = 1 << 16  # blocks of a grid-stride launch: more gives no more parallelism on any current GPU
_compiled = {}


def _acc(dtype):
    """The kernels' compute and accumulation type (torch's opmath): float32 for float32, float64 for float64."""
    return np.dtype(dtype).type


def _launch(name, grid, block, args):
    """Runs kernel `name` for the dtype of its first array argument (compiled on first use)."""
    kernel = _compiled.get((name, args[0].dtype))
    if kernel is None:
        kernel = _compiled[name, args[0].dtype] = _backend.cupy().RawKernel(
            _source.source(name, args[0].dtype), name, options=_source.options(name))
    if CHECK and not _backend.is_emulated():
        _checked(name, kernel, grid, block, args)
        return
    kernel(grid, block, args)


def _checked(name, kernel, grid, block, args):
    """The kernel and its reference on copies of the arguments; every array must agree afterwards, within a
    tolerance from its dtype, relative to its largest value (sums of many terms round in another order)."""
    from .. import _emulate
    copy = {}  # one copy per array: an array passed twice (a placeholder for an unused pointer) stays one
    for a in args:
        if _backend.is_cupy_array(a) and id(a) not in copy:
            copy[id(a)] = a.copy()
    _emulate.get_reference(name)(*(copy.get(id(a), a) for a in args))
    kernel(grid, block, args)
    for i, a in enumerate(args):
        if _backend.is_cupy_array(a) and a.dtype.kind == "f":
            got, want = a.get(), copy[id(a)].get()
            big = max(1.0, float(np.nanmax(np.abs(want), initial=0.0, where=np.isfinite(want))))
            tol = dict(rtol=1e-4, atol=2e-6 * big) if a.dtype == np.float32 else dict(rtol=1e-10, atol=1e-13 * big)
            if not np.allclose(got, want, equal_nan=True, **tol):
                bad = np.abs(got.astype(np.float64) - want)
                raise AssertionError(f"CUDA kernel {name}: argument {i} ({a.dtype}, shape {a.shape}) differs from "
                                     f"the reference by up to {np.nanmax(bad):.3g}")


def _on_device(fn):
    """Runs `fn` with its first array's device current (CuPy allocates and launches on the current one)."""
    @functools.wraps(fn)
    def run(x, *args, **kwargs):
        with x.device:
            return fn(x, *args, **kwargs)
    return run


def _flat_grid(n):
    return (min(-(-n // _BLOCK), _MAX_GRID),), (_BLOCK,)


def _row_grid(rows, c):
    # a block per row, its threads striding over the row: C rounded up to whole warps, at most 1024
    return (min(rows, _MAX_GRID),), (min(1024, -(-c // 32) * 32),)


def _rows(xp, a):
    c = a.shape[-1] if a.ndim else 1
    return xp.ascontiguousarray(a).reshape(-1, c)


# ---- GELU (exact and tanh): saves nothing beyond x; the backward recomputes from it ----------------------------
def _pointwise(name, x, *more):
    xp = _backend.cupy()
    arrays = [xp.ascontiguousarray(a) for a in (x,) + more]
    out = xp.empty(x.shape, x.dtype)
    if out.size:
        grid, block = _flat_grid(out.size)
        _launch(name, grid, block, (*arrays, out, np.int64(out.size)))
    return out


@_on_device
def gelu(x):
    """(GELU(x), x): the second array is what the backward takes besides x, here x itself (recomputing Φ from x
    costs less on a GPU than writing and reading it back)."""
    return _pointwise("dtrain_gelu_forward", x), x


@_on_device
def gelu_backward(g, x, saved):
    return _pointwise("dtrain_gelu_backward", g, x)


@_on_device
def gelu_tanh(x):
    """(tanh-GELU(x), x): as `gelu`, the backward recomputes the tanh."""
    return _pointwise("dtrain_gelu_tanh_forward", x), x


@_on_device
def gelu_tanh_backward(g, x, saved):
    return _pointwise("dtrain_gelu_tanh_backward", g, x)


# ---- softmax and log_softmax over the last dim ------------------------------------------------------------------
def _rowwise(name, *arrays):
    xp = _backend.cupy()
    rows = [_rows(xp, a) for a in arrays]
    out = xp.empty_like(rows[0])
    n, c = out.shape
    if out.size:
        grid, block = _row_grid(n, c)
        _launch(name, grid, block, (*rows, out, np.int64(n), np.int32(c)))
    return out.reshape(arrays[0].shape)


@_on_device
def softmax(x):
    return _rowwise("dtrain_softmax_forward", x)


@_on_device
def softmax_backward(g, y):
    return _rowwise("dtrain_softmax_backward", g, y)


@_on_device
def log_softmax(x):
    return _rowwise("dtrain_log_softmax_forward", x)


@_on_device
def log_softmax_backward(g, z):
    return _rowwise("dtrain_log_softmax_backward", g, z)


# ---- cross-entropy with class indices ---------------------------------------------------------------------------
@_on_device
def cross_entropy(x, t, w, ignore_index, label_smoothing):
    """(per-row losses, the rows' target weights (0 where ignored), log_softmax(x)) of logits x (N, C) against
    class indices t (N,); the first two in the kernels' compute type."""
    xp = _backend.cupy()
    x = xp.ascontiguousarray(x)
    n, c = x.shape
    acc = _acc(x.dtype)
    loss, w_t, z = xp.empty(n, acc), xp.empty(n, acc), xp.empty_like(x)
    if n and c:
        has_w = w is not None
        grid, block = _row_grid(n, c)
        _launch("dtrain_cross_entropy_forward", grid, block,
                (x, xp.ascontiguousarray(t, dtype=xp.int64), xp.ascontiguousarray(w, dtype=x.dtype) if has_w else x,
                 z, loss, w_t,
                 np.int64(n), np.int32(c), np.int64(ignore_index), acc(label_smoothing), np.int32(has_w)))
    return loss, w_t, z


@_on_device
def cross_entropy_backward(z, t, w, w_t, scale, ignore_index, label_smoothing):
    """The gradient of sum_i scale_i * loss_i with respect to the logits, from their log_softmax z; `scale` one
    value per row (a broadcast one is fine)."""
    xp = _backend.cupy()
    n, c = z.shape
    acc = _acc(z.dtype)
    gx = xp.empty_like(z)
    if z.size:
        has_w = w is not None
        wv = xp.ascontiguousarray(w, dtype=z.dtype) if has_w else z
        wsum = wv.sum(dtype=acc).reshape(1) if has_w else w_t  # w_t: a placeholder, not read without weights
        grid, block = _row_grid(n, c)
        _launch("dtrain_cross_entropy_backward", grid, block,
                (xp.ascontiguousarray(z), xp.ascontiguousarray(t, dtype=xp.int64), wv, xp.ascontiguousarray(w_t),
                 wsum, xp.ascontiguousarray(xp.broadcast_to(scale, (n,)), dtype=acc), gx, np.int64(n), np.int32(c),
                 np.int64(ignore_index), acc(label_smoothing), np.int32(has_w)))
    return gx


# ---- layer norm and RMS norm over the last dim ------------------------------------------------------------------
def _affine_grads(g, x, mean, rstd, want_b):
    """(sum over rows of g * xhat, of g) per column: partial sums over chunks of rows in one kernel, then the
    chunks summed (two kernels instead of a product and two reductions over the whole array)."""
    xp = _backend.cupy()
    rows, c = g.shape
    acc = _acc(g.dtype)
    per_chunk = max(64, -(-rows // 1024))  # at most 1024 chunks of at least 64 rows (8 per thread row lane)
    chunks = -(-rows // per_chunk)
    part_w = xp.empty((chunks, c), acc)
    part_b = xp.empty((chunks, c), acc) if want_b else part_w
    _launch("dtrain_norm_affine_backward", (-(-c // 32), chunks), (32, 8),
            (g, x, mean if mean is not None else rstd, rstd, part_w, part_b, np.int64(rows), np.int32(c),
             np.int64(per_chunk), np.int32(mean is not None), np.int32(want_b)))
    gw = part_w.sum(0).astype(g.dtype, copy=False)
    return gw, (part_b.sum(0).astype(g.dtype, copy=False) if want_b else None)


@_on_device
def layer_norm(x, w, b, eps):
    """(y, mean, rstd) of a layer norm over the last dim; w, b of shape (C,) or None; mean and rstd, one per row,
    in the kernels' compute type."""
    xp = _backend.cupy()
    xr = _rows(xp, x)
    n, c = xr.shape
    acc = _acc(x.dtype)
    y, mean, rstd = xp.empty_like(xr), xp.empty(n, acc), xp.empty(n, acc)
    grid, block = _row_grid(n, c)
    _launch("dtrain_layer_norm_forward", grid, block,
            (xr, xp.ascontiguousarray(w) if w is not None else xr, xp.ascontiguousarray(b) if b is not None else xr,
             y, mean, rstd, np.int64(n), np.int32(c), acc(eps), np.int32(w is not None), np.int32(b is not None)))
    return y.reshape(x.shape), mean, rstd


@_on_device
def layer_norm_backward(g, x, mean, rstd, w):
    """(gx, gw, gb) of layer_norm; gw and gb as if w and b were given (the caller drops what it does not need)."""
    xp = _backend.cupy()
    xr, gr = _rows(xp, x), _rows(xp, g)
    n, c = xr.shape
    gx = xp.empty_like(xr)
    grid, block = _row_grid(n, c)
    _launch("dtrain_layer_norm_backward", grid, block,
            (gr, xr, mean, rstd, xp.ascontiguousarray(w) if w is not None else xr, gx, np.int64(n), np.int32(c),
             np.int32(w is not None)))
    gw, gb = _affine_grads(gr, xr, mean, rstd, True)
    return gx.reshape(x.shape), gw, gb


@_on_device
def rms_norm(x, w, eps):
    """(y, rstd) of an RMS norm over the last dim; w of shape (C,) or None; rstd one per row."""
    xp = _backend.cupy()
    xr = _rows(xp, x)
    n, c = xr.shape
    acc = _acc(x.dtype)
    y, rstd = xp.empty_like(xr), xp.empty(n, acc)
    grid, block = _row_grid(n, c)
    _launch("dtrain_rms_norm_forward", grid, block,
            (xr, xp.ascontiguousarray(w) if w is not None else xr, y, rstd, np.int64(n), np.int32(c), acc(eps),
             np.int32(w is not None)))
    return y.reshape(x.shape), rstd


@_on_device
def rms_norm_backward(g, x, rstd, w):
    """(gx, gw) of rms_norm (gw None without w)."""
    xp = _backend.cupy()
    xr, gr = _rows(xp, x), _rows(xp, g)
    n, c = xr.shape
    gx = xp.empty_like(xr)
    grid, block = _row_grid(n, c)
    _launch("dtrain_rms_norm_backward", grid, block,
            (gr, xr, rstd, xp.ascontiguousarray(w) if w is not None else xr, gx, np.int64(n), np.int32(c),
             np.int32(w is not None)))
    gw = _affine_grads(gr, xr, None, rstd, False)[0] if w is not None else None
    return gx.reshape(x.shape), gw


# ---- Adam / AdamW -----------------------------------------------------------------------------------------------
@_on_device
def adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, amsgrad, beta1, beta2, lr, weight_decay,
         eps, maximize, decoupled_weight_decay):
    """One Adam/AdamW step in place over C-contiguous arrays of one shape (see dtrain.optim._functional.adam)."""
    if not param.size:
        return
    acc = _acc(param.dtype)
    decoupled = bool(decoupled_weight_decay)
    grid, block = _flat_grid(param.size)
    _launch("dtrain_adam", grid, block,
            (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else exp_avg_sq, np.int64(param.size),
             np.int32(bool(amsgrad)), np.int32(bool(maximize)), np.int32(decoupled), np.int32(weight_decay != 0),
             acc(1 - lr * weight_decay if decoupled else weight_decay), acc(1 - beta1), acc(beta2), acc(1 - beta2),
             acc((1 - beta2 ** step) ** 0.5), acc(eps), acc(-(lr / (1 - beta1 ** step)))))
