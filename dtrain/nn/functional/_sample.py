"""grid_sample and affine_grid, composed from gathers and arithmetic: the input's gradient comes from the
gathers (a scatter-add into the sampled pixels), the grid's from the interpolation weights, so forward and
backward stay the few lines each primitive already has and NumPy and CuPy share them.

Sampling positions are split into an integer corner (a constant of the graph, as in torch's kernel, which
gives floor() no gradient) and the fractional weights (functions of the grid). bfloat16 and float16 are
sampled in float32 and rounded once, as torch's CPU kernels accumulate in float."""
import warnings

import numpy as np

from ..._tensor import _wrap
from ...autograd import graph as _graph
from ...amp._dispatch import autocast_op
from ..._ops._util import on_input_device

__all__ = ["grid_sample", "affine_grid"]

_ALIGN_WARNING = ("Default grid_sample and affine_grid behavior has changed to align_corners=False since 1.3.0. "
                  "Please specify align_corners=True if the old behavior is desired. See the documentation of "
                  "grid_sample for details.")
_MODES = {"bilinear": 0, "nearest": 1, "bicubic": 2}
_PADDINGS = {"zeros": 0, "border": 1, "reflection": 2}


def _unnormalize(coord, size, align_corners):
    # [-1, 1] to pixel coordinates: -1 and 1 are the centres of the corner pixels with align_corners, else
    # their outer edges
    if align_corners:
        return (coord + 1) * ((size - 1) / 2)
    return ((coord + 1) * size - 1) / 2


def _reflect(coord, twice_low, twice_high):
    # fold coord into [twice_low / 2, twice_high / 2] by reflecting at the bounds, as often as needed
    if twice_low == twice_high:
        return coord * 0
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    c = (coord - low).abs()
    extra = c.fmod(span)
    flips = (c / span).floor().detach()
    odd = _wrap((flips._data % 2) == 1, coord._device)
    return (span - extra + low).where(odd, extra + low)


def _source(coord, size, padding, align_corners):
    """Where a (float) pixel coordinate reads from, after the padding mode: border and reflection move it
    inside [0, size - 1] (with zero gradient where clipped, as torch's clip_coordinates_set_grad)."""
    if padding == 1:
        return coord.clamp(0, size - 1)
    if padding == 2:
        if align_corners:
            coord = _reflect(coord, 0, 2 * (size - 1))
        else:
            coord = _reflect(coord, -1, 2 * size - 1)
        return coord.clamp(0, size - 1)
    return coord


def _gather(flat, idx, sizes, xp, device):
    """flat (N, C, prod(sizes)) read at the integer positions idx (a tuple of (N, *out) arrays, one per spatial
    dim, slowest first); positions outside the input read zero."""
    inside = None
    lin = 0
    for i, s in zip(idx, sizes):
        ok = (i >= 0) & (i < s)
        inside = ok if inside is None else inside & ok
        lin = lin * s + xp.clip(i, 0, s - 1)
    n, c = flat.shape[0], flat.shape[1]
    lin = lin.reshape(n, 1, -1)
    vals = flat.gather(2, _wrap(xp.broadcast_to(lin, (n, c, lin.shape[2])).astype(np.int64), device))
    mask = _wrap(inside.reshape(n, 1, -1).astype(flat._data.dtype), device)
    return vals * mask


def _cubic_weights(t):
    # Keys' cubic convolution with A = -0.75 (torch's), at distances t+1, t, 1-t, 2-t from the four taps
    a = -0.75

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


@autocast_op("grid_sampler")
@on_input_device  # the corner indices and weights: array code outside Function.apply
def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """torch.nn.functional.grid_sample: input (N, C, H, W) or (N, C, D, H, W) read at grid's [-1, 1]
    coordinates (N, Ho, Wo, 2) or (N, Do, Ho, Wo, 3), last entry x (width) first."""
    if mode not in _MODES:
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', "
                         f"but got: '{mode}'")
    if padding_mode not in _PADDINGS:
        raise ValueError(f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or "
                         f"'reflection', but got: '{padding_mode}'")
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING)
        align_corners = False
    nd = input.ndim - 2
    if input.ndim not in (4, 5) or grid.ndim != input.ndim:
        raise RuntimeError(f"grid_sampler(): expected 4D or 5D input and grid with same number of dimensions, but "
                           f"got input with sizes {list(input.shape)} and grid with sizes {list(grid.shape)}")
    if input.dtype is not grid.dtype:
        raise RuntimeError(f"grid_sampler(): expected input and grid to have same dtype, but input has "
                           f"{input.dtype} and grid has {grid.dtype}")
    if input._device != grid._device:
        raise RuntimeError(f"grid_sampler(): expected input and grid to be on same device, but input is on "
                           f"{input._device} and grid is on {grid._device}")
    if grid.shape[0] != input.shape[0]:
        raise RuntimeError(f"grid_sampler(): expected grid and input to have same batch size, but got input with "
                           f"sizes {list(input.shape)} and grid with sizes {list(grid.shape)}")
    if grid.shape[-1] != nd:
        raise RuntimeError(f"grid_sampler(): expected grid to have size {nd} in last dimension, but got grid with "
                           f"sizes {list(grid.shape)}")
    if mode == "bicubic" and nd != 2:
        raise RuntimeError("grid_sampler(): bicubic interpolation only supports 4D input")
    if any(s == 0 for s in input.shape[2:]):
        raise RuntimeError(f"grid_sampler(): expected input to have non-empty spatial dimensions, but input has "
                           f"sizes {list(input.shape)} with dimension {2 + list(input.shape[2:]).index(0)} being "
                           f"empty")
    out_dtype = input.dtype
    if input._data.dtype.itemsize < 4:  # accumulate in float32, round once
        input, grid = input.float(), grid.float()
    padding = _PADDINGS[padding_mode]
    n, c, sizes = input.shape[0], input.shape[1], tuple(input.shape[2:])
    out_sp = tuple(grid.shape[1:-1])
    xp = input._device.xp
    flat = input.reshape(n, c, -1)
    # grid's last dim is (x, y[, z]): reversed, it matches the spatial dims slowest first
    coords = [_unnormalize(grid[..., nd - 1 - d], sizes[d], align_corners) for d in range(nd)]

    if mode == "bicubic":
        base = [cd.detach().floor() for cd in coords]
        w = [_cubic_weights(cd - b) for cd, b in zip(coords, base)]
        out = None
        for i in range(4):
            for j in range(4):
                taps = []
                for d, k in ((0, i), (1, j)):
                    # each tap's integer position goes through the padding mode (torch's get_value_bounded)
                    pos = base[d]._data + (k - 1)
                    if padding:
                        pos = _source(_wrap(pos, input._device), sizes[d], padding, align_corners)._data
                    taps.append(pos.astype(np.int64))
                v = _gather(flat, tuple(taps), sizes, xp, input._device) * (w[0][i] * w[1][j]).reshape(n, 1, -1)
                out = v if out is None else out + v
        return _named(out.reshape(n, c, *out_sp).to(out_dtype), nd)

    coords = [_source(cd, sizes[d], padding, align_corners) for d, cd in enumerate(coords)]
    if mode == "nearest":
        # torch rounds half to even (nearbyint); the grid's gradient is zero (not None: torch gives one)
        idx = tuple(xp.rint(cd._data).astype(np.int64) for cd in coords)
        out = _gather(flat, idx, sizes, xp, input._device) + (grid * 0).sum(-1).reshape(n, 1, -1)
        return _named(out.reshape(n, c, *out_sp).to(out_dtype), nd)

    low = [cd.detach().floor() for cd in coords]
    frac = [cd - lo for cd, lo in zip(coords, low)]  # weight of the upper neighbour, per dim
    out = None
    for corner in range(2 ** nd):
        bits = [(corner >> (nd - 1 - d)) & 1 for d in range(nd)]
        idx = tuple(low[d]._data.astype(np.int64) + bits[d] for d in range(nd))
        wt = None
        for d in range(nd):
            wd = frac[d] if bits[d] else 1 - frac[d]
            wt = wd if wt is None else wt * wd
        v = _gather(flat, idx, sizes, xp, input._device) * wt.reshape(n, 1, -1)
        out = v if out is None else out + v
    return _named(out.reshape(n, c, *out_sp).to(out_dtype), nd)


def _named(out, nd):
    # torch's node for the whole composite, on the reshape this function has just made
    return _graph.renamed(out, f"GridSampler{nd}DBackward0")


def _base_coords(steps, align_corners, dtype, device):
    from ..._ops.creation import linspace
    g = linspace(-1, 1, steps, dtype=dtype, device=device)
    if not align_corners:  # pixel centres, not the corners, at -1 + 1/steps ... 1 - 1/steps
        g = g * ((steps - 1) / steps)
    return g


def affine_grid(theta, size, align_corners=None):
    """torch.nn.functional.affine_grid: the sampling grid (N, H, W, 2) or (N, D, H, W, 3) of the affine maps
    theta (N, 2, 3) or (N, 3, 4) over an output of `size` (N, C, H, W) or (N, C, D, H, W)."""
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING)
        align_corners = False
    if not theta.dtype.is_floating_point:
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype}")
    size = [int(s) for s in size]
    if len(size) == 4:
        if theta.ndim != 3 or tuple(theta.shape[-2:]) != (2, 3):
            raise ValueError(f"Expected a batch of 2D affine matrices of shape Nx2x3 for size {tuple(size)}. Got "
                             f"{tuple(theta.shape)}.")
        spatial = size[-2:]
    elif len(size) == 5:
        if theta.ndim != 3 or tuple(theta.shape[-2:]) != (3, 4):
            raise ValueError(f"Expected a batch of 3D affine matrices of shape Nx3x4 for size {tuple(size)}. Got "
                             f"{tuple(theta.shape)}.")
        spatial = size[-3:]
    else:
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
                                  f"respectively. Got size {tuple(size)}.")
    if theta.shape[0] != size[0]:  # torch's words: its batched product finds the mismatch
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{size[0]}, {len(size) - 1}] but got: [{theta.shape[0]}, {theta.shape[2]}].")
    if min(spatial) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {tuple(size)}")
    if min(spatial) == 1 and align_corners:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size grids when "
                      "align_corners=True. This is not an intended use case of affine_grid. See the "
                      "documentation of affine_grid for details.")
    from ..._ops.stacking import stack
    nd = len(spatial)
    axes = [_base_coords(s, align_corners, theta.dtype, theta._device) for s in spatial]  # slowest first
    ones = axes[0].new_ones(tuple(spatial))
    shape = [1] * nd
    parts = []
    for d in reversed(range(nd)):  # x (the last dim) first
        sh = list(shape)
        sh[d] = spatial[d]
        parts.append(axes[d].reshape(sh).expand(*spatial))
    base = stack(parts + [ones], -1).reshape(1, -1, nd + 1)
    # (1, P, nd+1) @ (N, nd+1, nd): every output position mapped by its batch's theta
    grid = base @ theta.transpose(1, 2)
    return _graph.renamed(grid.reshape(size[0], *spatial, nd), "AffineGridGeneratorBackward0")

