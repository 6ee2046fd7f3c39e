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


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3, gen_non_contig_grad_outputs=False,
                  raise_exception=True, nondet_tol=0.0, check_undefined_grad=True, check_grad_dtypes=False,
                  check_batched_grad=False, check_fwd_over_rev=False, check_rev_over_rev=True, fast_mode=False,
                  masked=False):
    """True when the second derivatives of `func` match finite differences of its (graph-recording) gradient."""
    from . import grad as autograd_grad
    from .grad_mode import enable_grad
    from .. import randn_like
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    diff = [x for x in _tensors(inputs) if x.requires_grad]
    if grad_outputs is None:
        with enable_grad():
            outs = [o for o in _as_list(func(*inputs)) if _is_float_tensor(o)]
        grad_outputs = tuple(randn_like(o).requires_grad_(True) for o in outs)
    grad_outputs = tuple(grad_outputs) if isinstance(grad_outputs, (tuple, list)) else (grad_outputs,)
    n = len(inputs)

    def first_derivative(*args):
        with enable_grad():  # gradcheck evaluates under no_grad; the gradient needs a graph regardless
            outs = [o for o in _as_list(func(*args[:n])) if _is_float_tensor(o)]
            gs = autograd_grad(outs, diff, args[n:], create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_derivative, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)


def _as_list(outs):
    return list(outs) if isinstance(outs, (tuple, list)) else [outs]


def _is_float_tensor(o):
    from .._tensor import Tensor
    return isinstance(o, Tensor) and o._data.dtype.kind in "fc"
