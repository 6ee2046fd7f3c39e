"""SGD with momentum, dampening, Nesterov momentum, weight decay and maximize."""
from . import _functional
from .optimizer import Optimizer

__all__ = ["SGD", "sgd"]


class SGD(Optimizer):
    """Stochastic gradient descent (torch.optim.SGD); `foreach` and `fused` are accepted and ignored: the
    step already runs over flat buffers."""
    _state_keys = ("momentum_buffer",)
    _blas_rule = True  # scal and axpy passes (see Optimizer)

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    def _init_state(self, group, p):
        return {}  # the momentum buffer is the first step's gradient

    def _update(self, group, param, grad, state, step, tmps):
        buf = _functional.sgd(param, grad, state["momentum_buffer"], lr=group["lr"],
                              weight_decay=group["weight_decay"], momentum=group["momentum"],
                              dampening=group["dampening"], nesterov=group["nesterov"],
                              maximize=group["maximize"], tmp=tmps[0], whole_blas=self._whole_blas)
        if buf is not None and state["momentum_buffer"] is None:
            return {"momentum_buffer": buf}


sgd = _functional.sgd
