"""Adamax: Adam with the infinity norm in place of the second moment."""
from .. import zeros_like
from . import _functional
from .adam import _check_adam_args
from .optimizer import Optimizer, _step_tensor

__all__ = ["Adamax", "adamax"]


class Adamax(Optimizer):
    """Adamax (torch.optim.Adamax); `foreach` and `capturable` are accepted and ignored (`differentiable=True` raises)."""
    _state_keys = ("exp_avg", "exp_inf")
    _has_step = True
    _scratch = 2

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        _check_adam_args(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    _group_flags = (("foreach", None), ("maximize", False), ("differentiable", False), ("capturable", False))

    def _init_state(self, group, p):
        return {"step": _step_tensor(), "exp_avg": zeros_like(p), "exp_inf": zeros_like(p)}

    def _update(self, group, param, grad, state, step, tmps):
        beta1, beta2 = group["betas"]
        _functional.adamax(param, grad, state["exp_avg"], state["exp_inf"], step=step, beta1=beta1, beta2=beta2,
                           lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"],
                           maximize=group["maximize"], tmp=tmps[0], tmp2=tmps[1])


adamax = _functional.adamax
