"""interpolate (nearest, linear, bilinear, trilinear, area), pixel (un)shuffle and channel shuffle, composed from gathers and
arithmetic so NumPy and CuPy share them and gradients come from the primitives."""
import math

import numpy as np

from ..._memory_format import contiguous_format
from ..._ops.conversion import suggest_memory_format
from ..._tensor import _wrap
from ...amp._dispatch import autocast_op
from ..._ops._util import on_input_device
from ...autograd import graph as _graph

__all__ = ["interpolate", "upsample", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle"]


def _out_size(input, size, scale_factor, nd):
    if size is not None:
        return [int(s) for s in (size if isinstance(size, (list, tuple)) else [size] * nd)]
    if scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    sf = scale_factor if isinstance(scale_factor, (list, tuple)) else [scale_factor] * nd
    return [int(math.floor(input.shape[2 + i] * sf[i])) for i in range(nd)]


def _take(x, dim, idx):
    return x.index_select(dim, _wrap(x._device.xp.asarray(idx), x._device))


@autocast_op("interpolate")
@on_input_device  # the source positions and weights become arrays here
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """torch.nn.functional.interpolate over (N, C, *spatial) input."""
    nd = input.ndim - 2
    if nd < 1:
        raise ValueError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D)")
    if mode in ("nearest", "nearest-exact") and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                         "bicubic | trilinear")
    if size is not None and isinstance(size, (list, tuple)) and len(size) != nd:
        raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input with "
                         f"spatial dimensions of {list(input.shape[2:])} and output size of {tuple(size)}. Please "
                         f"provide input tensor in (N, C, d1, d2, ...,dK) format and output size in (o1, o2, ...,oK) "
                         f"format.")
    linear = {"linear": 1, "bilinear": 2, "trilinear": 3}
    if mode in linear and linear[mode] != nd:
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {linear[mode] + 2}D input")
    if antialias:
        if mode not in ("bilinear", "bicubic"):
            raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and requires a 4-D "
                             "tensor as input")
        raise NotImplementedError("interpolate: antialias=True is not supported by dtrain")
    out = _out_size(input, size, scale_factor, nd)
    if mode == "area":  # torch's area mode is adaptive average pooling to the output size
        from . import _pool
        return getattr(_pool, f"adaptive_avg_pool{nd}d")(input, out)
    sf = None if size is not None or recompute_scale_factor else (
        scale_factor if isinstance(scale_factor, (list, tuple)) else [scale_factor] * nd)
    x = input
    for i in range(nd):
        d, n_in, n_out = 2 + i, input.shape[2 + i], out[i]
        # torch uses 1/scale_factor when one was given (not in/out), which matters for non-integer scales
        scale = 1.0 / sf[i] if sf is not None and sf[i] else n_in / n_out
        j = np.arange(n_out)
        if mode == "nearest":
            x = _take(x, d, np.minimum(np.floor(j * scale).astype(np.int64), n_in - 1))
        elif mode == "nearest-exact":
            x = _take(x, d, np.minimum(np.floor((j + 0.5) * scale).astype(np.int64), n_in - 1))
        elif mode in linear:
            if align_corners:
                src = j * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
            else:
                src = np.maximum((j + 0.5) * scale - 0.5, 0.0)
            lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
            hi = np.minimum(lo + 1, n_in - 1)
            w = (src - lo).astype(x._data.dtype)
            shape = [1] * x.ndim
            shape[d] = n_out
            wt = _wrap(x._device.xp.asarray(w.reshape(shape)), x._device)
            a, b = _take(x, d, lo), _take(x, d, hi)
            x = a + (b - a) * wt
        else:
            raise NotImplementedError(f"interpolate: mode '{mode}' is not supported")
    # one node in torch: UpsampleNearest2DBackward0, UpsampleNearestExact1DBackward0, UpsampleBilinear2DBackward0
    kind = {"nearest": "Nearest", "nearest-exact": "NearestExact"}.get(mode) or mode.capitalize()
    if x is input:
        return x
    if not input._data.flags.c_contiguous:
        fmt = suggest_memory_format(input)  # torch's upsampling kernels write in the input's suggested format
        if fmt is not contiguous_format:
            x = x.contiguous(memory_format=fmt)
    return _graph.renamed(x, f"Upsample{kind}{nd}DBackward0")


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


def pixel_shuffle(input, upscale_factor: int):
    r = upscale_factor
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    n = len(lead)
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor: int):
    r = downscale_factor
    *lead, c, h, w = input.shape
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    n = len(lead)
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)


def channel_shuffle(input, groups: int):
    """(N, C, *) with its C channels, seen as (groups, C / groups), transposed to (C / groups, groups)."""
    if groups <= 0:
        raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of groups:{groups}")
    if input.dim() <= 2:
        raise RuntimeError(f"channel_shuffle expects input with > 2 dims, but got input with sizes "
                           f"{list(input.shape)}")
    n, c, *rest = input.shape
    if c % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels and {groups} groups.")
    return input.reshape(n, groups, c // groups, *rest).transpose(1, 2).reshape(input.shape)


native_channel_shuffle = channel_shuffle
