"""gradcheck: analytical gradients against central finite differences (use float64 inputs)."""
import numpy as np

from . import grad_mode


class GradcheckError(RuntimeError):
    pass


def _tensors(inputs):
    from .._tensor import Tensor
    return [x for x in (inputs if isinstance(inputs, (tuple, list)) else (inputs,)) if isinstance(x, Tensor)]


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, nondet_tol=0.0,
              check_undefined_grad=True, check_grad_dtypes=False, check_batched_grad=False,
              check_batched_forward_grad=False, check_forward_ad=False, check_backward_ad=True,
              fast_mode=False, masked=None):
    """True when the gradients of `func` at `inputs` match finite differences."""
    from . import grad as autograd_grad
    from .._tensor import Tensor, _wrap
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    diff = [x for x in _tensors(inputs) if x.requires_grad]
    outs = func(*inputs)
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    outs = [o for o in outs if _is_float_tensor(o)]
    for oi, out in enumerate(outs):
        n_out = out.numel()
        numerical = [np.zeros((x.numel(), n_out)) for x in diff]
        for xi, x in enumerate(diff):
            flat = x._data.reshape(-1)
            for k in range(flat.size):
                orig = flat[k].item()
                with grad_mode.no_grad():
                    flat[k] = orig + eps
                    plus = _flat_out(func(*inputs), oi)
                    flat[k] = orig - eps
                    minus = _flat_out(func(*inputs), oi)
                    flat[k] = orig
                numerical[xi][k] = (plus - minus) / (2 * eps)
        analytical = [np.zeros((x.numel(), n_out)) for x in diff]
        for j in range(n_out):
            go = np.zeros(n_out, dtype=out._data.dtype)
            go[j] = 1
            out_j = func(*inputs)
            out_j = out_j if isinstance(out_j, (tuple, list)) else (out_j,)
            out_j = [o for o in out_j if _is_float_tensor(o)][oi]
            gs = autograd_grad(out_j, diff, _wrap(out._device.xp.asarray(go.reshape(out.shape)), out._device),
                               allow_unused=True)
            for xi, g in enumerate(gs):
                if g is not None:
                    analytical[xi][:, j] = g._data.reshape(-1).get() if hasattr(g._data, "get") else g._data.reshape(-1)
        for xi, (a, n) in enumerate(zip(analytical, numerical)):
            if not np.allclose(a, n, rtol=rtol, atol=atol):
                if raise_exception:
                    raise GradcheckError(f"Jacobian mismatch for output {oi} with respect to input {xi},\n"
                                         f"numerical:{n}\nanalytical:{a}\n")
                return False
    return True


def _flat_out(outs, oi):
    from .._tensor import Tensor
    from .. import _backend
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    outs = [o for o in outs if _is_float_tensor(o)]
    return _backend.to_numpy(outs[oi]._data).reshape(-1).astype(np.float64)


def gradgradcheck(*args, **kwargs):
    raise NotImplementedError("gradgradcheck needs higher-order gradients, which dtrain's autograd does not support")


def _is_float_tensor(o):
    from .._tensor import Tensor
    return isinstance(o, Tensor) and o._data.dtype.kind in "fc"
