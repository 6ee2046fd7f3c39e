"""Adagrad with learning-rate decay and an initial accumulator value."""
from .. import full_like
from . import _functional
from .optimizer import Optimizer, _step_tensor

__all__ = ["Adagrad", "adagrad"]


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad); dense gradients only. `foreach` and `fused` are accepted and ignored."""
    _state_keys = ("sum",)
    _has_step = True
    _scratch = 2

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        # torch creates Adagrad's state with the optimizer, not at the first step
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p].update(self._init_state(group, p))

    _group_flags = (("foreach", None), ("maximize", False), ("differentiable", False), ("fused", None))

    def _init_state(self, group, p):
        return {"step": _step_tensor(), "sum": full_like(p, group["initial_accumulator_value"])}

    def _update(self, group, param, grad, state, step, tmps):
        _functional.adagrad(param, grad, state["sum"], step=step, lr=group["lr"],
                            weight_decay=group["weight_decay"], lr_decay=group["lr_decay"], eps=group["eps"],
                            maximize=group["maximize"], tmp=tmps[0], tmp2=tmps[1])


adagrad = _functional.adagrad
