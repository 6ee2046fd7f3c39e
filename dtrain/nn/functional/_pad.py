"""F.pad: constant, reflect, replicate and circular padding of the trailing dims (negative pads crop)."""
import numpy as np

from ..._backend import kernels
from ..._tensor import Tensor
from ...autograd import graph as _graph
from ...autograd.graph import Function
from ...amp._dispatch import autocast_op

__all__ = ["pad"]

_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pairs(pad, ndim):
    """[(dim, before, after)] from torch's (last_lo, last_hi, prev_lo, prev_hi, ...)."""
    return [(ndim - 1 - i, pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]


class ConstantPad(Function):
    _grad_fn_name = "ConstantPadNdBackward0"

    def forward(ctx, x, pairs, value):
        shape = list(x.shape)
        src = [slice(None)] * x.ndim
        dst = [slice(None)] * x.ndim
        for d, lo, hi in pairs:
            n = x.shape[d]
            shape[d] = n + lo + hi
            # negative pads crop the input; positive ones leave room in the output
            src[d] = slice(max(-lo, 0), n - max(-hi, 0))
            dst[d] = slice(max(lo, 0), max(lo, 0) + (n - max(-lo, 0) - max(-hi, 0)))
        out = ctx.xp.full(shape, value, dtype=x.dtype)
        out[tuple(dst)] = x[tuple(src)]
        ctx.shape, ctx.src, ctx.dst = x.shape, tuple(src), tuple(dst)
        return out

    def backward(ctx, g):
        gx = ctx.xp.zeros(ctx.shape, dtype=g.dtype)
        gx[ctx.src] = g[ctx.dst]
        return gx


class IndexPad(Function):
    """reflect / replicate / circular: each output position reads one input position per padded dim."""

    def forward(ctx, x, pairs, mode):
        xp = ctx.xp
        ctx.maps, ctx.shape = [], x.shape
        y = x
        for d, lo, hi in pairs:
            idx = np.pad(np.arange(x.shape[d]), (max(lo, 0), max(hi, 0)), mode=_NP_MODES[mode])
            idx = idx[max(-lo, 0):len(idx) - max(-hi, 0)]
            idx = xp.asarray(idx)
            ctx.maps.append((d, idx))
            y = xp.take(y, idx, axis=d)
        return y

    def backward(ctx, g):
        xp = ctx.xp
        for d, idx in reversed(ctx.maps):
            shape = list(g.shape)
            shape[d] = ctx.shape[d]
            acc = xp.zeros(shape, dtype=g.dtype)
            moved = xp.moveaxis(acc, d, 0)
            gm = xp.moveaxis(g, d, 0)
            kernels[xp].scatter_add(moved, idx, gm)
            g = acc
        return g


def pad(input, pad, mode="constant", value=None):
    """torch.nn.functional.pad."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad(): argument 'input' must be Tensor, not {type(input).__name__}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.ndim:
        raise RuntimeError("Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {input.ndim}")
    pairs = _pairs(pad, input.ndim)
    if mode == "constant":
        for d, lo, hi in pairs:
            if input.shape[d] + lo + hi < 0:
                raise RuntimeError(f"The input size {input.shape[d]}, plus negative padding {lo} and {hi} resulted "
                                   f"in a negative output size, which is invalid. Check dimension {d} of your input.")
        return ConstantPad.apply(input, pairs=pairs, value=0.0 if value is None else value)
    if mode not in _NP_MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    allowed = {2: (2, 3), 4: (3, 4), 6: (4, 5)}.get(len(pad), ())
    if input.ndim not in allowed:
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    if value is not None and value != 0:
        raise RuntimeError(f"Padding mode \"{mode}\" doesn't take in value argument")
    for d, lo, hi in pairs:
        n = input.shape[d]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input dimension, "
                               f"but got: padding ({lo}, {hi}) at dimension {d} of input {list(input.shape)}")
        if mode == "circular" and (lo > n or hi > n):
            raise RuntimeError("Padding value causes wrapping around more than once.")
    if mode in ("reflect", "replicate"):  # torch's reflection_pad{1,2}d, replication_pad{1,2,3}d: autocast lists them
        name = f"{'reflection' if mode == 'reflect' else 'replication'}_pad{len(pad) // 2}d"
        return _graph.renamed(_index_pad[name](input, pairs=pairs, mode=mode),
                              name.title().replace("_", "")[:-1] + "DBackward0")  # ReflectionPad1DBackward0
    return IndexPad.apply(input, pairs=pairs, mode=mode)


_index_pad = {f"{m}_pad{n}d": autocast_op(f"{m}_pad{n}d")(IndexPad.apply)
              for m in ("reflection", "replication") for n in (1, 2, 3)}
