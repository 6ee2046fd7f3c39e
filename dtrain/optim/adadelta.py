"""Adadelta: per-parameter steps from running averages of squared gradients and squared updates."""
from .. import zeros_like
from . import _functional
from .optimizer import Optimizer, _step_tensor

__all__ = ["Adadelta", "adadelta"]


class Adadelta(Optimizer):
    """Adadelta (torch.optim.Adadelta). `foreach` and `capturable` are accepted and ignored (`differentiable=True` raises)."""
    _state_keys = ("square_avg", "acc_delta")
    _has_step = True
    _scratch = 3

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    _group_flags = (("foreach", None), ("maximize", False), ("differentiable", False), ("capturable", False))

    def _init_state(self, group, p):
        return {"step": _step_tensor(), "square_avg": zeros_like(p), "acc_delta": zeros_like(p)}

    def _update(self, group, param, grad, state, step, tmps):
        _functional.adadelta(param, grad, state["square_avg"], state["acc_delta"], lr=group["lr"], rho=group["rho"],
                             eps=group["eps"], weight_decay=group["weight_decay"], maximize=group["maximize"],
                             tmp=tmps[0], tmp2=tmps[1], tmp3=tmps[2])


adadelta = _functional.adadelta
