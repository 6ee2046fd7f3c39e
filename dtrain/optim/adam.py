"""Adam and AdamW (AdamW is Adam with decoupled weight decay, as in torch)."""
from .. import zeros_like
from . import _functional
from .optimizer import Optimizer, _step_tensor

__all__ = ["Adam", "AdamW", "adam"]


class Adam(Optimizer):
    """Adam (torch.optim.Adam); `foreach`, `fused` and `capturable` are accepted and ignored: the step
    already runs over flat buffers."""
    _state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _has_step = True
    _scratch = 2

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        _check_adam_args(lr, betas, eps, weight_decay)
        if not (isinstance(betas[0], float) and isinstance(betas[1], float)):
            raise ValueError("betas must be either both floats or both Tensors")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")

    _group_flags = (("amsgrad", False), ("maximize", False), ("foreach", None), ("capturable", False),
                    ("differentiable", False), ("decoupled_weight_decay", False), ("fused", None))

    def _init_state(self, group, p):
        state = {"step": _step_tensor(), "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = zeros_like(p)
        return state

    def _update(self, group, param, grad, state, step, tmps):
        beta1, beta2 = group["betas"]
        _functional.adam(param, grad, state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"], step=step,
                         amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=group["lr"],
                         weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                         decoupled_weight_decay=group["decoupled_weight_decay"], tmp=tmps[0], tmp2=tmps[1])


class AdamW(Adam):
    """AdamW (torch.optim.AdamW): Adam with decoupled weight decay."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


adam = _functional.adam


def _check_adam_args(lr, betas, eps, weight_decay):
    """torch's argument checks shared by Adam, Adamax, NAdam and RAdam (same messages, same order)."""
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
