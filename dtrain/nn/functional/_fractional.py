"""Fractional max pooling (Graham, 2014): max over kernel-sized windows whose starts advance by a random,
non-integer stride, drawn once per (batch, channel) plane from `_random_samples` in [0, 1).

The window starts are integers (torch's generate_intervals, in the samples' dtype); the maximum of every
window is located over the arrays, and the output is a gather of the input at those positions, so its
gradient is the gather's (each output's gradient added into the input element it came from, as torch's)."""
import numpy as np

from ..._backend import to_numpy
from ..._tensor import _wrap
from ...autograd import graph as _graph
from ...amp._dispatch import autocast_op
from ..._ops._util import on_input_device

__all__ = ["fractional_max_pool2d", "fractional_max_pool3d", "fractional_max_pool2d_with_indices",
           "fractional_max_pool3d_with_indices"]


def _tuple(v, n):
    if isinstance(v, (tuple, list)):
        return tuple(v) if len(v) == n else tuple(v[0] for _ in range(n))
    return (v,) * n


def _intervals(sample, size, out, pool):
    """The `out` window starts over `size` inputs for windows of `pool`, from the samples (an array of any
    shape): torch's generate_intervals, computed in the samples' own dtype as torch's kernel does (the
    start of a window can move by one between float32 and float64)."""
    dt = sample.dtype.type
    starts = np.empty(sample.shape + (out,), dtype=np.int64)
    if out > 1:
        alpha = dt(size - pool) / dt(out - 1)
        i = np.arange(out - 1).astype(sample.dtype)
        starts[..., :-1] = ((i + sample[..., None]) * alpha).astype(np.int64) - \
            (sample[..., None] * alpha).astype(np.int64)
    if out > 0:
        starts[..., -1] = size - pool
    return starts


@on_input_device  # the window positions and the gather of the maxima: array code outside Function.apply
def _fractional(input, kernel_size, output_size, output_ratio, samples, nd, name):
    kernel = tuple(int(k) for k in _tuple(kernel_size, nd))
    if output_size is None and output_ratio is None:
        raise ValueError(f"{name} requires specifying either an output_size or an output_ratio")
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"{name}(): Expected {nd + 1}D or {nd + 2}D tensor, but got: {list(input.shape)}")
    sizes = tuple(input.shape[-nd:])
    if output_size is None:
        ratio = _tuple(output_ratio, nd)
        out = tuple(int(s * r) for s, r in zip(sizes, ratio))
    else:
        out = tuple(int(o) for o in _tuple(output_size, nd))
    for s, o, k, what in zip(sizes, out, kernel, ("time", "height", "width")[3 - nd:]):
        if o + k - 1 > s:
            raise RuntimeError(f"{name}_out(): pool {what} {k} too large relative to input {what} {s}")
    batched = input.ndim == nd + 2
    x = input if batched else input.unsqueeze(0)
    n, c = x.shape[0], x.shape[1]
    if samples is None:
        from ..._ops.creation import rand
        samples = rand(n, c, nd, dtype=input.dtype, device=input._device)
    if tuple(samples.shape) != (n, c, nd):
        raise RuntimeError(f"{name}(): Expected _random_samples of shape {[n, c, nd]}, but got "
                           f"{list(samples.shape)}")
    if samples.dtype is not input.dtype:
        raise RuntimeError(f"expected scalar type {input.dtype} but found {samples.dtype} for _random_samples")
    xp = x._device.xp
    s = to_numpy(samples._data)  # a few numbers per plane: the window starts are worked out on the host
    # torch's sample order: the 2-d kernel reads (width, height), the 3-d one (time, height, width)
    order = (1, 0) if nd == 2 else (0, 1, 2)
    starts = [_intervals(s[..., order[d]], sizes[d], out[d], kernel[d]) for d in range(nd)]  # (N, C, out_d)
    # every element of every window as a flat index into its plane: (N, C, *out, *kernel)
    lin = np.zeros((n, c) + out + kernel, dtype=np.int64)
    for d in range(nd):
        shape = [n, c] + [1] * (2 * nd)
        shape[2 + d] = out[d]
        kshape = [1] * (2 + 2 * nd)
        kshape[2 + nd + d] = kernel[d]
        pos = starts[d].reshape(shape) + np.arange(kernel[d]).reshape(kshape)
        lin = lin * sizes[d] + pos
    win = int(np.prod(kernel))
    lin = xp.asarray(lin.reshape(n, c, -1, win))
    flat = x.reshape(n, c, -1)
    vals = xp.take_along_axis(flat._data, lin.reshape(n, c, -1), axis=2).reshape(lin.shape)
    # the first maximum of each window, and a NaN wherever the window has one (torch's `val > max || isnan`)
    best = xp.argmax(vals, axis=-1)
    nan = xp.isnan(vals)
    if nan.any():
        last_nan = win - 1 - xp.argmax(nan[..., ::-1], axis=-1)
        best = xp.where(nan.any(-1), last_nan, best)
    idx = xp.take_along_axis(lin, best[..., None], axis=-1)[..., 0]  # (N, C, prod(out))
    y = flat.gather(2, _wrap(idx, x._device)).reshape(n, c, *out)
    indices = _wrap(idx.reshape((n, c) + out), x._device)
    if not batched:
        y, indices = y.squeeze(0), indices.squeeze(0)
    return _graph.renamed(y, f"FractionalMaxPool{nd}DBackward0"), indices  # torch's node for the whole op


@autocast_op("fractional_max_pool2d")
def fractional_max_pool2d_with_indices(input, kernel_size, output_size=None, output_ratio=None,
                                       return_indices=False, _random_samples=None):
    """torch.nn.functional.fractional_max_pool2d_with_indices: (output, indices) over (N, C, H, W)."""
    if output_size is None and output_ratio is not None and isinstance(output_ratio, (tuple, list)) \
            and len(output_ratio) > 2:
        raise ValueError("fractional_max_pool2d requires output_ratio to either be a single Int or tuple of Ints.")
    return _fractional(input, kernel_size, output_size, output_ratio, _random_samples, 2, "fractional_max_pool2d")


@autocast_op("fractional_max_pool3d")
def fractional_max_pool3d_with_indices(input, kernel_size, output_size=None, output_ratio=None,
                                       return_indices=False, _random_samples=None):
    """torch.nn.functional.fractional_max_pool3d_with_indices: (output, indices) over (N, C, T, H, W)."""
    return _fractional(input, kernel_size, output_size, output_ratio, _random_samples, 3, "fractional_max_pool3d")


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    """torch.nn.functional.fractional_max_pool2d: the pooled (N, C, oH, oW), with the flat indices into each
    input plane when return_indices."""
    y, idx = fractional_max_pool2d_with_indices(input, kernel_size, output_size, output_ratio, return_indices,
                                                _random_samples)
    return (y, idx) if return_indices else y


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    """torch.nn.functional.fractional_max_pool3d: the pooled (N, C, oT, oH, oW), with the flat indices into each
    input volume when return_indices."""
    y, idx = fractional_max_pool3d_with_indices(input, kernel_size, output_size, output_ratio, return_indices,
                                                _random_samples)
    return (y, idx) if return_indices else y
