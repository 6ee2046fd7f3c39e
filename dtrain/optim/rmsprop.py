"""RMSprop, plain or centered, with optional momentum."""
from .. import zeros_like
from . import _functional
from .optimizer import Optimizer, _step_tensor

__all__ = ["RMSprop", "rmsprop"]


class RMSprop(Optimizer):
    """RMSprop (torch.optim.RMSprop); `foreach` and `capturable` are accepted and ignored."""
    _state_keys = ("square_avg", "momentum_buffer", "grad_avg")
    _has_step = True
    _scratch = 2

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach, maximize=maximize,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    _group_flags = (("momentum", 0), ("centered", False), ("foreach", None), ("maximize", False),
                    ("differentiable", False), ("capturable", False))

    def _init_state(self, group, p):
        state = {"step": _step_tensor(), "square_avg": zeros_like(p)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = zeros_like(p)
        return state

    def _update(self, group, param, grad, state, step, tmps):
        _functional.rmsprop(param, grad, state["square_avg"], state["grad_avg"], state["momentum_buffer"],
                            lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                            weight_decay=group["weight_decay"], momentum=group["momentum"],
                            centered=group["centered"], maximize=group["maximize"], tmp=tmps[0], tmp2=tmps[1])


rmsprop = _functional.rmsprop
