"""dtrain.autograd: backward, grad, custom Functions, grad modes, gradcheck."""
import warnings

from .. import _backend, _dtype
from . import graph
from .function import Function, FunctionCtx, once_differentiable
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import gradcheck, gradgradcheck

__all__ = ["backward", "grad", "Function", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
           "gradcheck", "gradgradcheck", "is_grad_enabled", "Variable", "graph"]


def _as_tuple(x):
    if x is None:
        return ()
    if isinstance(x, (list, tuple)):
        return tuple(x)
    return (x,)


def _make_grads(outputs, grad_outputs):
    from .._tensor import Tensor
    roots, grads = [], []
    for out, g in zip(outputs, grad_outputs):
        if not out._requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if out._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            if out._data.dtype.kind not in "fcV":  # V: bfloat16 (ml_dtypes)
                raise RuntimeError(f"grad can be implicitly created only for real scalar outputs but got "
                                   f"{out.dtype}")
            with _backend.on_device(out._device):
                ga = out._device.xp.ones(out._data.shape, out._data.dtype)
        else:
            if not isinstance(g, Tensor):
                raise TypeError(f"gradient must be a Tensor, not {type(g).__name__}")
            if g.shape != out.shape:
                raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of torch.Size([{g._shape_str()}]) "
                                   f"and output[0] has a shape of torch.Size([{out._shape_str()}]).")
            ga = g._data
        roots.append((out.grad_fn, out._output_nr) if out.grad_fn is not None else (out._grad_accumulator(), 0))
        grads.append(ga if g is None or not g.requires_grad else g)  # a tensor where its own graph matters
    return roots, grads


def _arrays(gs):
    return [g._data if hasattr(g, "_data") else g for g in gs]


_cycle_warned = [False]


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, grad_variables=None, inputs=None):
    """Accumulate gradients of `tensors` into the leaves' `.grad`."""
    tensors = _as_tuple(tensors)
    grads = _as_tuple(grad_tensors) or (None,) * len(tensors)
    if retain_graph is None:
        retain_graph = create_graph
    roots, gs = _make_grads(tensors, grads)
    if create_graph and not _cycle_warned[0]:  # torch's warning, once per process as its TORCH_WARN_ONCE
        _cycle_warned[0] = True
        warnings.warn("Using backward() with create_graph=True will create a reference cycle between the parameter "
                      "and its gradient which can cause a memory leak. We recommend using autograd.grad when "
                      "creating the graph to avoid this. If you have to use this function, make sure to reset the "
                      ".grad fields of your parameters to None after use to break the cycle and avoid the leak.",
                      UserWarning, stacklevel=2)
    if inputs is not None:
        inputs = _as_tuple(inputs)
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
        got = grad(tensors, inputs, grads, retain_graph=retain_graph, create_graph=create_graph, allow_unused=True)
        for t, g in zip(inputs, got):
            if g is not None:
                t.grad = g if t.grad is None else t.grad + g
        return
    if create_graph:
        graph.run_backward_create_graph(roots, gs)
        return
    graph.run_backward(roots, _arrays(gs), retain_graph=retain_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Gradients of `outputs` with respect to `inputs`, returned instead of accumulated."""
    from .._device import device_of
    from .._tensor import _wrap
    outputs = _as_tuple(outputs)
    if isinstance(inputs, graph.GradientEdge):
        inputs = (inputs,)  # one edge (a tuple itself)
    inputs = _as_tuple(inputs)
    grads = _as_tuple(grad_outputs) or (None,) * len(outputs)
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    for i, t in enumerate(inputs):
        if not isinstance(t, graph.GradientEdge) and not t._requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    roots, gs = _make_grads(outputs, grads)
    keys = []
    for t in inputs:
        if isinstance(t, graph.GradientEdge):  # the gradient flowing into that edge of the graph
            keys.append(t.node if isinstance(t.node, graph.AccumulateGrad) else (t.node, t.output_nr))
        else:
            keys.append(t._grad_accumulator() if t.grad_fn is None else (t.grad_fn, t._output_nr))
    if create_graph:
        captured = graph.run_backward_create_graph(roots, gs, capture=dict.fromkeys(keys), accumulate=False)
    else:
        captured = graph.run_backward(roots, _arrays(gs), retain_graph=retain_graph, capture=dict.fromkeys(keys),
                                      accumulate=False)
    out = []
    for t, k in zip(inputs, keys):
        g = captured.get(k)
        if isinstance(t, graph.GradientEdge):
            if g is None and not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been used in the graph. "
                                   "Set allow_unused=True if this is the desired behavior.")
            out.append(g if g is None or create_graph else _wrap(g.copy(), device_of(g)))
            continue
        if g is None:
            if not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been used in the graph. "
                                   "Set allow_unused=True if this is the desired behavior.")
            out.append(t.new_zeros(t.shape) if materialize_grads else None)
        elif create_graph:
            out.append(g if tuple(g.shape) == tuple(t.shape) else g.expand(t.shape))
        else:
            with _backend.on_device(t._device):
                if g.shape != t._data.shape:
                    g = t._device.xp.broadcast_to(g, t._data.shape)
                out.append(_wrap(g.astype(t._data.dtype, copy=True), t._device))
    return tuple(out)


class _ExecutionEngine:
    @staticmethod
    def queue_callback(fn):
        graph.queue_callback(fn)


class Variable:
    """torch.autograd.Variable: kept for `Variable._execution_engine.queue_callback` (used by DDP code)."""
    _execution_engine = _ExecutionEngine()

    def __new__(cls, data, requires_grad=False):
        return data.detach().requires_grad_(requires_grad)
