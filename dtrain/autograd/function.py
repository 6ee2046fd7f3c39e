"""torch.autograd.Function for user-defined ops: static forward/backward over tensors."""
from .. import _dtype
from . import _saved_hooks, grad_mode
from .graph import Function as _OpNode, _FREED


class FunctionCtx:
    """What `ctx` is inside a custom Function's forward and backward."""

    def save_for_backward(self, *tensors):
        self._saved = tensors

    @property
    def saved_tensors(self):
        if type(self._saved) is _saved_hooks.Packed:
            return _saved_hooks.unpack_tensors(self._saved)
        if self._saved is _FREED:
            raise RuntimeError("Trying to backward through the graph a second time (or directly access saved tensors "
                               "after they have already been freed). Saved intermediate values of the graph are freed "
                               "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
                               "backward through the graph a second time or if you need to access saved tensors after "
                               "calling backward.")
        return self._saved

    def mark_non_differentiable(self, *tensors):
        self._non_diff_ids = {id(t) for t in tensors}

    def mark_dirty(self, *tensors):
        self._dirty = tensors

    def set_materialize_grads(self, value):
        self._materialize = value


class _CustomNode(_OpNode):
    """The graph node of one call of a custom Function: runs the user's backward on tensors."""

    def forward(ctx, *arrays):
        raise AssertionError("unused")

    def backward(ctx, *grads):
        from .._tensor import _wrap
        from .._device import device_of
        c = ctx.user_ctx
        if ctx.saved is _FREED:
            c._saved = _FREED
        gts = tuple(_wrap(g, device_of(g)) for g in grads)
        with grad_mode.no_grad():
            res = ctx.fn_cls.backward(c, *gts)
        if not isinstance(res, tuple):
            res = (res,)
        n = len(ctx.next_functions)
        if len(res) < n:
            raise RuntimeError(f"function {ctx.fn_cls.__name__}Backward returned an incorrect number of gradients "
                               f"(expected {n}, got {len(res)})")
        out = []
        for r, (node, _) in zip(res, ctx.next_functions):
            out.append(None if r is None else r._data)
        return tuple(out)

    def name(self):
        return self.fn_cls.__name__ + "Backward"


class _FunctionMeta(type):
    pass


class Function(metaclass=_FunctionMeta):
    """Subclass with `@staticmethod forward(ctx, *args)` and `backward(ctx, *grads)`; call `.apply(*args)`."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for your custom "
                                  "autograd.Function to use it with backward mode AD.")

    vjp = backward

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        from .._tensor import Tensor
        from .graph import _edge, _seq
        import itertools
        ctx = FunctionCtx()
        ctx._saved = ()
        ctx._non_diff_ids = set()
        tensors = [a for a in args if isinstance(a, Tensor)]
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._requires_grad for a in args)
        with grad_mode.no_grad():
            if cls.setup_context is not Function.setup_context:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        track = grad_mode.is_grad_enabled() and any(t._requires_grad for t in tensors)
        if not track:
            return out
        if ctx._saved and grad_mode._state.saved_hooks:
            ctx._saved = _saved_hooks.pack_tensors(ctx._saved, grad_mode._state.saved_hooks)
        node_cls = _CustomNode.named(cls.__name__ + "Backward")  # torch's type name: MyFnBackward
        node = node_cls.__new__(node_cls)
        node._pre_hooks = node._hooks = node._non_diff = None
        node.saved = ()
        node.user_ctx, node.fn_cls = ctx, cls
        node.xp = tensors[0]._device.xp
        node._device = tensors[0]._device
        node.needs_input_grad = tuple(t._requires_grad for t in tensors)
        node.next_functions = tuple(_edge(t) for t in tensors)
        from . import graph
        node._seq = next(graph._seq)
        node._versions = ()
        outs = out if isinstance(out, tuple) else (out,)
        node._out_meta = tuple((o._data.shape, o._data.dtype) for o in outs if isinstance(o, Tensor)) \
            if isinstance(out, tuple) else None
        # inputs returned as-is become views, so the graph stays a DAG
        input_ids = {id(t) for t in tensors}
        res = []
        k = 0
        for o in outs:
            if isinstance(o, Tensor):
                if id(o) in input_ids:
                    o = o.view_as(o)
                if id(o) not in ctx._non_diff_ids and o._data.dtype.kind in "fcV":
                    o._requires_grad, o.grad_fn, o._output_nr = True, node, k
                k += 1
            res.append(o)
        return tuple(res) if isinstance(out, tuple) else res[0]


class once_differentiable:
    def __new__(cls, fn):
        return fn


class InplaceFunction(Function):
    pass


class NestedIOFunction(Function):
    pass
