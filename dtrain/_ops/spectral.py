"""Short-time Fourier transforms and the window functions they are used with.

stft is frames (unfold) times a window, then one FFT over the last dim; istft is one inverse FFT, times the
window, then overlap-add (fold) divided by the summed squared window. Every step is an existing
differentiable op, so both directions get their gradients from them and NumPy and CuPy share the code."""
import math
import warnings

import numpy as np

from .. import _dtype
from .._tensor import Tensor, _wrap
from ..amp._dispatch import autocast_op
from ._util import device_array
from .creation import _dev_dt

__all__ = ["stft", "istft", "hann_window", "hamming_window", "blackman_window", "bartlett_window",
           "kaiser_window"]


# ---------------------------------------------------------------------------------------------- windows
def _window(name, window_length, periodic, dtype, layout, device, requires_grad, fn):
    dev, dt = _dev_dt(device, dtype)
    if window_length < 0:
        raise RuntimeError(f"{name} requires non-negative window length, got window_length={window_length}")
    if not dt.is_floating_point:
        raise RuntimeError(f"{name} expects floating point dtypes, got: {dt}")
    if window_length <= 1:
        arr = np.ones(window_length)
    else:
        # a periodic window is the symmetric one of length + 1 without its last point (for spectral analysis)
        n = window_length + 1 if periodic else window_length
        arr = fn(np.arange(n, dtype=np.float64), n)[:window_length]
    t = _wrap(device_array(arr.astype(dt.np), dev), dev)
    return t.requires_grad_(requires_grad) if requires_grad else t


def hann_window(window_length: int, periodic: bool = True, *, dtype=None, layout=None, device=None,
                requires_grad: bool = False) -> Tensor:
    return _window("hann_window", window_length, periodic, dtype, layout, device, requires_grad,
                   lambda i, n: 0.5 - 0.5 * np.cos(2 * np.pi * i / (n - 1)))


def hamming_window(window_length: int, periodic: bool = True, alpha: float = 0.54, beta: float = 0.46, *,
                   dtype=None, layout=None, device=None, requires_grad: bool = False) -> Tensor:
    return _window("hamming_window", window_length, periodic, dtype, layout, device, requires_grad,
                   lambda i, n: alpha - beta * np.cos(2 * np.pi * i / (n - 1)))


def blackman_window(window_length: int, periodic: bool = True, *, dtype=None, layout=None, device=None,
                    requires_grad: bool = False) -> Tensor:
    return _window("blackman_window", window_length, periodic, dtype, layout, device, requires_grad,
                   lambda i, n: 0.42 - 0.5 * np.cos(2 * np.pi * i / (n - 1)) + 0.08 * np.cos(4 * np.pi * i / (n - 1)))


def bartlett_window(window_length: int, periodic: bool = True, *, dtype=None, layout=None, device=None,
                    requires_grad: bool = False) -> Tensor:
    return _window("bartlett_window", window_length, periodic, dtype, layout, device, requires_grad,
                   lambda i, n: 1 - np.abs(2 * i / (n - 1) - 1))


def kaiser_window(window_length: int, periodic: bool = True, beta: float = 12.0, *, dtype=None, layout=None,
                  device=None, requires_grad: bool = False) -> Tensor:
    return _window("kaiser_window", window_length, periodic, dtype, layout, device, requires_grad,
                   lambda i, n: np.i0(beta * np.sqrt(np.clip(1 - ((i - (n - 1) / 2) / ((n - 1) / 2)) ** 2, 0, None)))
                   / np.i0(beta))


# ---------------------------------------------------------------------------------------------- stft
def _full_window(window, win_length, n_fft, x):
    """The window as n_fft points (centred, zero-padded as torch's), or None for the rectangular one."""
    from ..nn.functional import pad
    if window is not None:
        if window.ndim != 1 or window.shape[0] != win_length:
            raise RuntimeError(f"stft: expected a 1D window tensor of size equal to win_length={win_length}, but "
                               f"got window with size {list(window.shape)}")
        if window._device != x._device:
            raise RuntimeError(f"stft input and window must be on the same device but got self on {x._device} and "
                               f"window on {window._device}")
    if win_length == n_fft:
        return window
    if window is None:
        window = x.new_ones((win_length,), dtype=x.dtype if x.dtype.is_floating_point else None)
    left = (n_fft - win_length) // 2
    return pad(window, (left, n_fft - win_length - left))


def _lengths(n_fft, hop_length, win_length, what):
    hop = n_fft // 4 if hop_length is None else hop_length
    win = n_fft if win_length is None else win_length
    if hop <= 0:
        raise RuntimeError(f"{what}: expected hop_length > 0, but got hop_length={hop}")
    if not 0 < win <= n_fft:
        raise RuntimeError(f"{what}: expected 0 < win_length <= n_fft, but got win_length={win}")
    return hop, win


@autocast_op("stft")
def stft(input: Tensor, n_fft: int, hop_length: int = None, win_length: int = None, window: Tensor = None,
         center: bool = True, pad_mode: str = "reflect", normalized: bool = False, onesided: bool = None,
         return_complex: bool = None, align_to_window: bool = None) -> Tensor:
    """torch.stft: (B?, L) to (B?, n_fft // 2 + 1 or n_fft, frames) complex."""
    from ..nn.functional import pad
    from .fft import fft, rfft
    if center and align_to_window is not None:
        raise RuntimeError("stft align_to_window should only be set when center = false")
    complex_in = input.is_complex() or (window is not None and window.is_complex())
    if return_complex is None and not complex_in:
        raise RuntimeError("stft requires the return_complex parameter be given for real inputs, and will further "
                           "require that return_complex=True in a future PyTorch release.")
    if return_complex is False:
        warnings.warn("stft with return_complex=False is deprecated. In a future pytorch release, stft will return "
                      "complex tensors for all inputs, and return_complex=False will raise an error.\nNote: you can "
                      "still call torch.view_as_real on the complex output to recover the old return format.")
    if window is None:
        warnings.warn("A window was not provided. A rectangular window will be applied,which is known to cause "
                      "spectral leakage. Other windows such as torch.hann_window or torch.hamming_window are "
                      "recommended to reduce spectral leakage.To suppress this warning and use a rectangular "
                      "window, explicitly set `window=torch.ones(n_fft, device=<device>)`.")
    if input.ndim not in (1, 2):
        raise RuntimeError(f"stft: expected a 1D or 2D tensor, but got {input.ndim}D tensor")
    hop, win = _lengths(n_fft, hop_length, win_length, "stft")
    x = input if input.ndim == 2 else input.unsqueeze(0)
    if center:
        p = n_fft // 2
        x = pad(x.unsqueeze(0), (p, p), pad_mode).squeeze(0)
    length = x.shape[-1]
    if not 0 < n_fft <= length:
        raise RuntimeError(f"stft: expected 0 < n_fft <= {length}, but got n_fft={n_fft}")
    if onesided is None:
        onesided = not complex_in
    elif onesided and complex_in:
        raise RuntimeError("Cannot have onesided output if window or input is complex")
    if align_to_window and win < n_fft:
        # the window's nonzero points start at each frame's start: frames of win_length, then zero-padded
        left = (n_fft - win) // 2
        frames = x.unfold(-1, win, hop)
        if window is not None:
            frames = frames * window
        frames = pad(frames, (left, n_fft - win - left))
    else:
        frames = x.unfold(-1, n_fft, hop)  # (B, frames, n_fft)
        w = _full_window(window, win, n_fft, x)
        if w is not None:
            frames = frames * w
    spec = rfft(frames, dim=-1) if onesided else fft(frames, dim=-1)
    if normalized:
        spec = spec * (1 / math.sqrt(n_fft))
    spec = spec.transpose(-1, -2)
    if input.ndim == 1:
        spec = spec.squeeze(0)
    if return_complex is False:
        from .special import view_as_real
        return view_as_real(spec)
    return spec


def istft(input: Tensor, n_fft: int, hop_length: int = None, win_length: int = None, window: Tensor = None,
          center: bool = True, normalized: bool = False, onesided: bool = None, length: int = None,
          return_complex: bool = False) -> Tensor:
    """torch.istft: the inverse of stft, (B?, freqs, frames) complex to (B?, L)."""
    from ..nn.functional import fold
    from .fft import ifft, irfft
    if not input.is_complex():
        raise RuntimeError("istft requires a complex-valued input tensor matching the output from stft with "
                           "return_complex=True.")
    if window is None:
        warnings.warn("A window was not provided. A rectangular window will be applied.Please provide the same "
                      "window used by stft to make the inversion lossless.To suppress this warning and use a "
                      "rectangular window, explicitly set `window=torch.ones(n_fft, device=<device>)`.")
    if input.ndim not in (2, 3):
        raise RuntimeError(f"istft: expected a tensor with 2 or 3 dimensions of complex, but got {input.ndim}D")
    hop, win = _lengths(n_fft, hop_length, win_length, "istft")
    spec = input if input.ndim == 3 else input.unsqueeze(0)
    n_freq, n_frames = spec.shape[-2], spec.shape[-1]
    if onesided is None:
        onesided = n_freq != n_fft
    if onesided and n_freq != n_fft // 2 + 1:
        raise RuntimeError(f"istft: expected the frequency dimension (3rd to the last) of the input tensor to "
                           f"match n_fft / 2 + 1 when onesided=True, but got {n_freq}")
    if not onesided and n_freq != n_fft:
        raise RuntimeError(f"istft: expected the frequency dimension (3rd to the last) of the input tensor to "
                           f"match n_fft when onesided=False, but got {n_freq}")
    if return_complex and onesided:
        raise RuntimeError("cannot have onesided output if window or input is complex")
    real_dt = _dtype.float64 if input.dtype is _dtype.complex128 else _dtype.float32
    if window is not None and window.is_complex() and not return_complex:
        raise RuntimeError("Complex windows are incompatible with return_complex=False")
    if normalized:
        spec = spec * math.sqrt(n_fft)
    spec = spec.transpose(-1, -2)  # (B, frames, freqs)
    frames = irfft(spec, n=n_fft, dim=-1) if onesided else ifft(spec, dim=-1)
    if not onesided and not return_complex:
        frames = frames.real
    w = _full_window(window, win, n_fft, frames if window is None else window)
    if w is None:
        w = frames.new_ones((n_fft,), dtype=real_dt)
    frames = frames * w
    expected = n_fft + hop * (n_frames - 1)
    # overlap-add of the frames and of the squared window: fold over a (1, expected) image
    def ola(f):
        return fold(f.transpose(1, 2), (1, expected), (1, n_fft), stride=(1, hop)).reshape(f.shape[0], expected)
    y = ola(frames)
    envelope = ola((w * w).reshape(1, 1, n_fft).expand(1, n_frames, n_fft))
    start = n_fft // 2 if center else 0
    end = expected
    if length is not None:
        end = start + length
    elif center:
        end = expected - n_fft // 2
    end = min(end, expected)
    y, envelope = y[:, start:end], envelope[:, start:end]
    low = float(envelope.abs().min()) if envelope.numel() else 1.0
    if low < 1e-11:
        raise RuntimeError(f"istft(...): window overlap add min: {low:g}")
    y = y / envelope
    if length is not None and y.shape[-1] < length:
        warnings.warn("The length of signal is shorter than the length parameter. Result is being padded with "
                      "zeros in the tail. Please check your center and hop_length settings.")
        from ..nn.functional import pad
        y = pad(y, (0, length - y.shape[-1]))
    return y.squeeze(0) if input.ndim == 2 else y
