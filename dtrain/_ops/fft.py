"""Discrete Fourier transforms (torch.fft's ops) over xp.fft: complex-to-complex, real-to-complex (one-sided) and
complex-to-real, each beside the backward torch defines for it.

Every transform first crops or zero-pads its input to the requested lengths (n / s), so each backward ends by
resizing the gradient back to the input's shape: the adjoint of a crop is a zero-pad and the other way round.
The public functions live in the dtrain.fft namespace, not at dtrain's top level (torch has no top-level fft)."""
import numpy as np

from .. import _dtype
from .._device import resolve
from .._tensor import Tensor, _wrap
from ..autograd.graph import Function
from ._util import check_tensor, device_array, out_copy, to_float, wrap_dim
from .shape import roll
from ..amp._dispatch import autocast_op

_DUAL = {"backward": "forward", "forward": "backward", "ortho": "ortho"}  # the norm of the adjoint transform


def _resize(xp, a, dims, sizes):
    """`a` cropped or zero-padded at the end to sizes[i] along dims[i]."""
    if all(a.shape[d] == n for d, n in zip(dims, sizes)):
        return a
    shape = list(a.shape)
    for d, n in zip(dims, sizes):
        shape[d] = n
    out = xp.zeros(shape, a.dtype)
    keep = tuple(slice(0, min(a, b)) for a, b in zip(a.shape, shape))
    out[keep] = a[keep]
    return out


def _sizes_of(shape, dims):
    return [shape[d] for d in dims]


class C2C(Function):
    """fftn (forward=True) or ifftn over dims, the input resized to `sizes` first; a real input is read as complex."""
    _grad_fn_name = "FftC2CBackward0"

    def forward(ctx, x, dims, sizes, norm, forward, dtype):
        xp = ctx.xp
        ctx.shape, ctx.dtype, ctx.dims, ctx.norm, ctx.fwd = x.shape, x.dtype, dims, norm, forward
        transform = xp.fft.fftn if forward else xp.fft.ifftn
        return transform(_resize(xp, x, dims, sizes), axes=dims, norm=norm).astype(dtype, copy=False)

    def backward(ctx, g):
        xp = ctx.xp
        adjoint = xp.fft.ifftn if ctx.fwd else xp.fft.fftn
        gx = _resize(xp, adjoint(g, axes=ctx.dims, norm=_DUAL[ctx.norm]), ctx.dims, _sizes_of(ctx.shape, ctx.dims))
        return (gx.real if ctx.dtype.kind != "c" else gx).astype(ctx.dtype, copy=False)


class R2C(Function):
    """rfftn over dims (one-sided along the last of them), the input resized to `sizes` first; ihfft conjugates
    the result."""
    _grad_fn_name = "FftR2CBackward0"

    def forward(ctx, x, dims, sizes, norm, conj, dtype):
        xp = ctx.xp
        ctx.shape, ctx.dtype, ctx.dims, ctx.n, ctx.norm, ctx.conj = x.shape, x.dtype, dims, sizes[-1], norm, conj
        y = xp.fft.rfftn(_resize(xp, x, dims, sizes), axes=dims, norm=norm).astype(dtype, copy=False)
        return y.conj() if conj else y

    def backward(ctx, g):
        xp = ctx.xp
        if ctx.conj:
            g = g.conj()
        # the forward is a full transform whose upper half is dropped: zeros there, then the adjoint transform
        g = _resize(xp, g, ctx.dims[-1:], (ctx.n,))
        gx = xp.fft.ifftn(g, axes=ctx.dims, norm=_DUAL[ctx.norm]).real
        return _resize(xp, gx, ctx.dims, _sizes_of(ctx.shape, ctx.dims)).astype(ctx.dtype, copy=False)


class C2R(Function):
    """irfftn over dims to the real lengths `sizes`, the input resized to the one-sided lengths first (`norm` is
    numpy's irfftn norm); hfft conjugates the input."""
    _grad_fn_name = "FftC2RBackward0"

    def forward(ctx, x, dims, sizes, norm, conj, dtype):
        xp = ctx.xp
        ctx.shape, ctx.dtype, ctx.dims, ctx.norm, ctx.conj = x.shape, x.dtype, dims, norm, conj
        x = _resize(xp, x, dims, list(sizes[:-1]) + [sizes[-1] // 2 + 1])
        if conj:
            x = x.conj()
        return xp.fft.irfftn(x, s=sizes, axes=dims, norm=norm).astype(dtype, copy=False)

    def backward(ctx, g):
        xp = ctx.xp
        # irfftn is: fill the other half by conjugate symmetry, inverse transform, keep the real part. Its adjoint
        # is a one-sided forward transform that counts twice each bin whose mirror image was left out, i.e. bins
        # 1 .. n - (n // 2 + 1) of the last dim (torch's fft_c2r_backward)
        gx = xp.fft.rfftn(g, axes=ctx.dims, norm=_DUAL[ctx.norm])
        last = ctx.dims[-1]
        twice = g.shape[last] - gx.shape[last]
        if twice > 0:
            idx = [slice(None)] * gx.ndim
            idx[last] = slice(1, 1 + twice)
            gx[tuple(idx)] *= 2
        if ctx.conj:
            gx = gx.conj()
        gx = _resize(xp, gx, ctx.dims, _sizes_of(ctx.shape, ctx.dims))
        return (gx.real if ctx.dtype.kind != "c" else gx).astype(ctx.dtype, copy=False)


# ------------------------------------------------------------------------------------------------ arguments
def _norm(norm, inverse=False):
    """torch's norm string as numpy's; for the conjugate-input transforms (hfft, ihfft) the dual one."""
    if norm is None:
        norm = "backward"
    if norm not in _DUAL:
        raise RuntimeError(f'Invalid normalization mode: "{norm}"')
    return _DUAL[norm] if inverse else norm


def _input(fn, input, real=False, complex=False):
    """The input in a dtype the transforms take: ints become the default float; half is refused as in torch."""
    check_tensor(input, "input", fn)
    if real and input.is_complex():
        raise RuntimeError(f"{fn} expects a real input tensor, but got {_dtype.scalar_name(input.dtype)}")
    if input.dtype in (_dtype.float16, _dtype.bfloat16):
        raise RuntimeError(f"Unsupported dtype {_dtype.scalar_name(input.dtype)}")
    x = to_float(input)
    return x, (x.dtype.to_complex() if complex else x.dtype.to_real()).np


def _dim(dim, ndim):
    if ndim == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    return wrap_dim(dim, ndim)


def _check_sizes(sizes):
    for n in sizes:
        if n < 1:
            raise RuntimeError(f"Invalid number of data points ({n}) specified")


def _one_dim(x, n, dim):
    d = _dim(dim, x.ndim)
    n = x.shape[d] if n is None else int(n)
    return (d,), [n]


def _shape_and_dims(x, s, dim):
    """torch's canonical (dims, lengths) of an n-dimensional transform: dims default to the last len(s) ones (all
    without s), lengths default to the input's (also where s holds -1)."""
    if isinstance(dim, (int, np.integer)):
        dim = (dim,)
    if isinstance(s, (int, np.integer)):
        s = (s,)
    if dim is not None:
        dims = tuple(_dim(d, x.ndim) for d in dim)
        if len(set(dims)) != len(dims):
            raise RuntimeError("FFT dims must be unique")
    if s is not None:
        s = [int(n) for n in s]
        if dim is not None and len(dims) != len(s):
            raise RuntimeError("When given, dim and shape arguments must have the same length")
        if len(s) > x.ndim:
            raise RuntimeError(f"Got shape with {len(s)} values but input tensor only has {x.ndim} dimensions.")
        if dim is None:
            dims = tuple(range(x.ndim - len(s), x.ndim))
        sizes = [x.shape[d] if n == -1 else n for d, n in zip(dims, s)]
    else:
        if dim is None:
            dims = tuple(range(x.ndim))
        sizes = _sizes_of(x.shape, dims)
    _check_sizes(sizes)
    return dims, sizes


# ------------------------------------------------------------------------------------------------ transforms
def _c2c(fn, input, dims_sizes, norm, forward, out):
    x, dtype = _input(fn, input, complex=True)
    dims, sizes = dims_sizes(x)
    _check_sizes(sizes)
    # torch transforms a real input one-sided along the last dim and fills in the other half: its top node is
    # then FftR2CBackward0 (one dim), FftC2CBackward0 (the remaining dims) or, inverse, the ConjBackward0 of
    # a forward transform
    op = C2C if input.is_complex() or len(dims) > 1 else \
        C2C.named("FftR2CBackward0" if forward else "ConjBackward0")
    return out_copy(op.apply(x, dims=dims, sizes=sizes, norm=_norm(norm), forward=forward, dtype=dtype), out)


def _r2c(fn, input, dims_sizes, norm, conj, out):
    x, dtype = _input(fn, input, real=True, complex=True)
    dims, sizes = dims_sizes(x)
    if not dims:
        raise RuntimeError(f"{fn} must transform at least one axis")
    _check_sizes(sizes)
    op = R2C.named("ConjBackward0") if conj else R2C  # ihfft: torch's top node is the conjugation
    return out_copy(op.apply(x, dims=dims, sizes=sizes, norm=_norm(norm, conj), conj=conj, dtype=dtype), out)


def _c2r(fn, input, dims_sizes, last, norm, conj, out):
    """`last` is the real output length along the last dim (None: 2 * (one-sided length - 1))."""
    x, dtype = _input(fn, input)
    dims, sizes = dims_sizes(x)
    if not dims:
        raise RuntimeError(f"{fn} must transform at least one axis")
    sizes[-1] = 2 * (x.shape[dims[-1]] - 1) if last is None or last == -1 else int(last)
    _check_sizes(sizes)
    return out_copy(C2R.apply(x, dims=dims, sizes=sizes, norm=_norm(norm, conj), conj=conj, dtype=dtype), out)


@autocast_op("fft_fft")
def fft(input: Tensor, n: int = None, dim: int = -1, norm: str = None, *, out: Tensor = None) -> Tensor:
    """The 1-D discrete Fourier transform, the input cropped or zero-padded to n along dim."""
    return _c2c("fft", input, lambda x: _one_dim(x, n, dim), norm, True, out)


@autocast_op("fft_ifft")
def ifft(input: Tensor, n: int = None, dim: int = -1, norm: str = None, *, out: Tensor = None) -> Tensor:
    """The 1-D inverse discrete Fourier transform."""
    return _c2c("ifft", input, lambda x: _one_dim(x, n, dim), norm, False, out)


@autocast_op("fft_fft2")
def fft2(input: Tensor, s=None, dim=(-2, -1), norm: str = None, *, out: Tensor = None) -> Tensor:
    """The 2-D discrete Fourier transform (over the last two dims by default)."""
    return _c2c("fft2", input, lambda x: _shape_and_dims(x, s, dim), norm, True, out)


@autocast_op("fft_ifft2")
def ifft2(input: Tensor, s=None, dim=(-2, -1), norm: str = None, *, out: Tensor = None) -> Tensor:
    """The 2-D inverse discrete Fourier transform."""
    return _c2c("ifft2", input, lambda x: _shape_and_dims(x, s, dim), norm, False, out)


@autocast_op("fft_fftn")
def fftn(input: Tensor, s=None, dim=None, norm: str = None, *, out: Tensor = None) -> Tensor:
    """The N-D discrete Fourier transform (over every dim, or the last len(s), by default)."""
    return _c2c("fftn", input, lambda x: _shape_and_dims(x, s, dim), norm, True, out)


@autocast_op("fft_ifftn")
def ifftn(input: Tensor, s=None, dim=None, norm: str = None, *, out: Tensor = None) -> Tensor:
    """The N-D inverse discrete Fourier transform."""
    return _c2c("ifftn", input, lambda x: _shape_and_dims(x, s, dim), norm, False, out)


@autocast_op("fft_rfft")
def rfft(input: Tensor, n: int = None, dim: int = -1, norm: str = None, *, out: Tensor = None) -> Tensor:
    """The 1-D transform of a real input: the n // 2 + 1 non-negative frequencies."""
    return _r2c("rfft", input, lambda x: _one_dim(x, n, dim), norm, False, out)


@autocast_op("fft_rfft2")
def rfft2(input: Tensor, s=None, dim=(-2, -1), norm: str = None, *, out: Tensor = None) -> Tensor:
    """The 2-D transform of a real input, one-sided along the last dim."""
    return _r2c("rfft2", input, lambda x: _shape_and_dims(x, s, dim), norm, False, out)


@autocast_op("fft_rfftn")
def rfftn(input: Tensor, s=None, dim=None, norm: str = None, *, out: Tensor = None) -> Tensor:
    """The N-D transform of a real input, one-sided along the last dim."""
    return _r2c("rfftn", input, lambda x: _shape_and_dims(x, s, dim), norm, False, out)


@autocast_op("fft_ihfft")
def ihfft(input: Tensor, n: int = None, dim: int = -1, norm: str = None, *, out: Tensor = None) -> Tensor:
    """The inverse of hfft: the one-sided inverse transform of a real input."""
    return _r2c("ihfft", input, lambda x: _one_dim(x, n, dim), norm, True, out)


@autocast_op("fft_irfft")
def irfft(input: Tensor, n: int = None, dim: int = -1, norm: str = None, *, out: Tensor = None) -> Tensor:
    """The inverse of rfft: a real signal of length n (default 2 * (input.size(dim) - 1)) from the one-sided
    spectrum; the imaginary parts of the zero and Nyquist frequencies are ignored."""
    return _c2r("irfft", input, lambda x: _one_dim(x, None, dim), n, norm, False, out)


@autocast_op("fft_irfft2")
def irfft2(input: Tensor, s=None, dim=(-2, -1), norm: str = None, *, out: Tensor = None) -> Tensor:
    """The inverse of rfft2."""
    return _c2r("irfft2", input, lambda x: _shape_and_dims(x, s, dim), s[-1] if s else None, norm, False, out)


@autocast_op("fft_irfftn")
def irfftn(input: Tensor, s=None, dim=None, norm: str = None, *, out: Tensor = None) -> Tensor:
    """The inverse of rfftn."""
    return _c2r("irfftn", input, lambda x: _shape_and_dims(x, s, dim), s[-1] if s else None, norm, False, out)


@autocast_op("fft_hfft")
def hfft(input: Tensor, n: int = None, dim: int = -1, norm: str = None, *, out: Tensor = None) -> Tensor:
    """The transform of a Hermitian-symmetric signal given by its first half: a real spectrum of length n
    (default 2 * (input.size(dim) - 1))."""
    return _c2r("hfft", input, lambda x: _one_dim(x, None, dim), n, norm, True, out)


# ------------------------------------------------------------------------------------------------ helpers
def fftfreq(n: int, d: float = 1.0, *, out: Tensor = None, dtype=None, layout=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """The sample frequencies of an n-point fft: [0, 1, ..., (n - 1) // 2, -(n // 2), ..., -1] / (d * n)."""
    k = np.arange(n, dtype=np.float64)
    k[(n + 1) // 2:] -= n
    return _freq(k, n, d, out, dtype, device, requires_grad)


def rfftfreq(n: int, d: float = 1.0, *, out: Tensor = None, dtype=None, layout=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """The sample frequencies of an n-point rfft: [0, 1, ..., n // 2] / (d * n)."""
    return _freq(np.arange(n // 2 + 1, dtype=np.float64), n, d, out, dtype, device, requires_grad)


def _freq(k, n, d, out, dtype, device, requires_grad):
    dt = dtype or (out.dtype if out is not None else _dtype.get_default_dtype())
    if not (dt.is_floating_point or dt.is_complex):
        raise RuntimeError("fftfreq requires a floating point or complex dtype")
    dev = resolve(device) if out is None or device is not None else out.device
    if dt.is_complex:  # torch fills the result with arange, which has no complex kernel
        raise NotImplementedError(f'"arange_{dev.type}" not implemented for \'{_dtype.scalar_name(dt)}\'')
    # torch fills the integers in the result dtype, then scales by 1 / (n * d) in it
    with np.errstate(divide="ignore"):
        scale = dt.np.type(np.float64(1.0) / np.float64(n * d))
    arr = (k.astype(dt.np) * scale).astype(dt.np, copy=False)
    t = _wrap(device_array(arr, dev), dev)
    if out is not None:
        return out_copy(t, out)
    return t.requires_grad_(True) if requires_grad else t


def _shift_dims(input, dim):
    check_tensor(input, "input")
    if dim is None:
        return tuple(range(input.ndim))
    return tuple(_dim(d, input.ndim) for d in ((dim,) if isinstance(dim, (int, np.integer)) else dim))


def fftshift(input: Tensor, dim=None) -> Tensor:
    """The zero frequency moved to the middle of each dim in `dim` (all by default): a roll by size // 2."""
    dims = _shift_dims(input, dim)
    return roll(input, [input.shape[d] // 2 for d in dims], dims) if dims else input


def ifftshift(input: Tensor, dim=None) -> Tensor:
    """The inverse of fftshift: a roll by (size + 1) // 2."""
    dims = _shift_dims(input, dim)
    return roll(input, [(input.shape[d] + 1) // 2 for d in dims], dims) if dims else input
