"""NAdam (Adam with Nesterov momentum) and RAdam (Adam with a rectified variance)."""
from .. import zeros_like
from . import _functional
from .adam import _check_adam_args
from .optimizer import Optimizer, _step_tensor

__all__ = ["NAdam", "RAdam", "nadam", "radam"]

_FLAGS = (("maximize", False), ("foreach", None), ("capturable", False), ("differentiable", False),
          ("decoupled_weight_decay", False))


class NAdam(Optimizer):
    """NAdam (torch.optim.NAdam); `foreach` and `capturable` are accepted and ignored (`differentiable=True` raises).

    Its `mu_product` state is 0-d like `step`, multiplied in that dtype as in torch."""
    _state_keys = ("exp_avg", "exp_avg_sq")
    _scalar_keys = ("mu_product",)
    _has_step = True
    _scratch = 3

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        _check_adam_args(lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    _group_flags = _FLAGS

    def _init_state(self, group, p):
        return {"step": _step_tensor(), "mu_product": _step_tensor(1.0), "exp_avg": zeros_like(p),
                "exp_avg_sq": zeros_like(p)}

    def _advance(self, group, state, step):
        beta1, decay = group["betas"][0], group["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * decay)))
        state["mu_product"]._data *= mu
        return step, mu, mu_next, float(state["mu_product"]._data)

    def _update(self, group, param, grad, state, step, tmps):
        step, mu, mu_next, mu_product = step
        beta1, beta2 = group["betas"]
        _functional.nadam(param, grad, state["exp_avg"], state["exp_avg_sq"], step=step, mu=mu, mu_next=mu_next,
                          mu_product=mu_product, beta1=beta1, beta2=beta2, lr=group["lr"],
                          weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                          decoupled_weight_decay=group["decoupled_weight_decay"], tmp=tmps[0], tmp2=tmps[1],
                          tmp3=tmps[2])


class RAdam(Optimizer):
    """RAdam (torch.optim.RAdam); `foreach` and `capturable` are accepted and ignored (`differentiable=True` raises)."""
    _state_keys = ("exp_avg", "exp_avg_sq")
    _has_step = True
    _scratch = 3

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False):
        _check_adam_args(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    _group_flags = _FLAGS

    def _init_state(self, group, p):
        return {"step": _step_tensor(), "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}

    def _update(self, group, param, grad, state, step, tmps):
        beta1, beta2 = group["betas"]
        _functional.radam(param, grad, state["exp_avg"], state["exp_avg_sq"], step=step, beta1=beta1, beta2=beta2,
                          lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"],
                          maximize=group["maximize"], decoupled_weight_decay=group["decoupled_weight_decay"],
                          tmp=tmps[0], tmp2=tmps[1], tmp3=tmps[2])


nadam = _functional.nadam
radam = _functional.radam
