"""Gradient clipping: by total norm over all parameters, or elementwise by value."""
import math
import warnings

from ..._backend import on_device
from ..._tensor import Tensor, _wrap
from ...autograd.grad_mode import no_grad

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _array_norm(xp, a, norm_type):
    a = a.reshape(-1)
    if norm_type == math.inf:
        return xp.abs(a).max() if a.size else xp.zeros((), a.dtype)
    if norm_type == -math.inf:
        return xp.abs(a).min() if a.size else xp.zeros((), a.dtype)
    if norm_type == 2:
        return xp.sqrt(xp.dot(a, a)) if a.dtype.kind == "f" else xp.linalg.norm(a)
    if norm_type == 0:
        return (a != 0).sum().astype(a.dtype)
    return (xp.abs(a) ** norm_type).sum() ** (1.0 / norm_type)


@no_grad()
def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm of the norms of `tensors`, as a 0-d tensor (0 when there are none)."""
    from ... import tensor as _tensor
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    tensors = [t for t in tensors if t is not None]
    norm_type = float(norm_type)
    if not tensors:
        return _tensor(0.0)
    dev = tensors[0]._device
    xp, dt = dev.xp, tensors[0]._data.dtype
    by_device = {}
    for t in tensors:
        by_device.setdefault(t._device, []).append(t._data)
    norms = []
    for d, arrays in by_device.items():
        # each tensor's norm with its device current; torch gathers the norms on the first tensor's device
        with on_device(d):
            n = d.xp.stack([_array_norm(d.xp, a, norm_type).astype(dt) for a in arrays])
        norms.append(n if d is dev else _wrap(n, d).to(dev)._data)
    with on_device(dev):
        total = _array_norm(xp, norms[0] if len(norms) == 1 else xp.concatenate(norms), norm_type)
        if error_if_nonfinite and not bool(xp.isfinite(total)):
            raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                               "so it cannot be clipped. To disable this error and scale the gradients by the "
                               "non-finite norm anyway, set `error_if_nonfinite=False`")
        return _wrap(xp.asarray(total, dtype=dt), dev)


@no_grad()
def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    grads = _grads(parameters)
    if not grads:
        return
    tn = total_norm._data if isinstance(total_norm, Tensor) else total_norm
    # same as torch: the factor is clamped to 1, so gradients only ever shrink
    coef = min(float(max_norm) / (float(tn) + 1e-6), 1.0)
    for g in grads:
        if g._device._gpu is None:
            g._data *= g._data.dtype.type(coef)
        else:
            with on_device(g._device):  # a raw in-place kernel: the gradient's device made current
                g._data *= g._data.dtype.type(coef)
        g._vc.value += 1


@no_grad()
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all gradients together so their total norm is at most max_norm; returns the total norm (before)."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        parameters = list(parameters)
    grads = _grads(parameters)
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


@no_grad()
def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        with on_device(g._device):  # a raw in-place kernel: the gradient's device made current
            g._device.xp.clip(g._data, -clip_value, clip_value, out=g._data)
        g._vc.value += 1
