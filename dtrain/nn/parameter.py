"""nn.Parameter: a leaf tensor that modules register as a parameter."""
from .._tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as a parameter (requires_grad=True by default)."""

    def __new__(cls, data=None, requires_grad=True):
        from .. import empty, tensor
        if data is None:
            data = empty(0)
        t = object.__new__(cls)
        # share storage and version counter with `data`, but not its graph or view base (torch's detach)
        src = data if isinstance(data, Tensor) else tensor(data)
        for k in ("_data", "_device", "_vc"):
            setattr(t, k, getattr(src, k))
        t._requires_grad = False
        t.grad = t.grad_fn = t._base = t._accum = t._hooks = t._post_acc_hooks = None
        t._output_nr = 0
        t._retains_grad = False
        if requires_grad:
            t.requires_grad_(True)
        return t

    def __init__(self, data=None, requires_grad=True):
        pass

    def __reduce_ex__(self, proto):
        from .. import _backend
        return (_rebuild_parameter, (_backend.to_numpy(self._data), str(self._device), self._requires_grad))

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        p = Parameter(self.detach().clone(), self._requires_grad)
        if self.grad is not None:
            p.grad = self.grad.clone()
        memo[id(self)] = p
        return p


def _rebuild_parameter(array, dev, requires_grad):
    from .. import tensor
    return Parameter(tensor(array, device=dev), requires_grad)


class UninitializedParameter(Parameter):
    """A parameter whose shape is not known yet (a lazy module's): it holds no data until `materialize(shape)`
    turns it, in place, into an ordinary Parameter, so that every module and optimizer holding it sees the
    materialized tensor."""
    cls_to_become = Parameter

    def __new__(cls, requires_grad=True, device=None, dtype=None):
        from .. import empty
        return super().__new__(cls, empty(0, device=device, dtype=dtype), requires_grad)

    def __init__(self, requires_grad=True, device=None, dtype=None):
        pass

    def materialize(self, shape, device=None, dtype=None):
        """Give the parameter uninitialized data of `shape` and make it a plain Parameter."""
        from .. import empty
        t = empty(shape, device=device if device is not None else self.device,
                  dtype=dtype if dtype is not None else self.dtype)
        self._data, self._device = t._data, t._device
        self.__class__ = self.cls_to_become

    def __repr__(self):
        return "<UninitializedParameter>"

    __str__ = __repr__

    def __deepcopy__(self, memo):
        if id(self) not in memo:
            memo[id(self)] = type(self)(self.requires_grad, self.device, self.dtype)
        return memo[id(self)]

    def __reduce_ex__(self, proto):
        return (UninitializedParameter, (self.requires_grad,))


def is_lazy(param):
    """Whether `param` is an UninitializedParameter (torch.nn.parameter.is_lazy)."""
    return isinstance(param, UninitializedParameter)


class Buffer(Tensor):
    """torch.nn.Buffer: marks a tensor to be registered as a buffer when assigned to a Module."""

    def __new__(cls, data=None, *, persistent=True):
        from .. import empty
        t = object.__new__(cls)
        src = data if data is not None else empty(0)
        for k in ("_data", "_device", "_vc", "_requires_grad", "grad", "grad_fn", "_base", "_view_info", "_accum",
                  "_hooks", "_post_acc_hooks", "_output_nr", "_retains_grad"):
            setattr(t, k, getattr(src, k))
        t.persistent = persistent
        return t

    def __init__(self, data=None, *, persistent=True):
        pass
