"""Rprop and ASGD: two rules whose state is more than running averages (per-element step sizes; an
averaged copy of the parameters with 0-d `eta` and `mu`)."""
from .. import full_like, zeros_like
from . import _functional
from .optimizer import Optimizer, _step_tensor

__all__ = ["ASGD", "Rprop", "asgd", "rprop"]

_FLAGS = (("foreach", None), ("maximize", False), ("differentiable", False), ("capturable", False))


class Rprop(Optimizer):
    """Rprop (torch.optim.Rprop); `foreach` and `capturable` are accepted and ignored (`differentiable=True` raises)."""
    _state_keys = ("prev", "step_size")
    _has_step = True
    _scratch = 2

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False, foreach=None,
                 maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    _group_flags = _FLAGS

    def _init_state(self, group, p):
        return {"step": _step_tensor(), "prev": zeros_like(p), "step_size": full_like(p, group["lr"])}

    def _update(self, group, param, grad, state, step, tmps):
        etaminus, etaplus = group["etas"]
        step_size_min, step_size_max = group["step_sizes"]
        _functional.rprop(param, grad, state["prev"], state["step_size"], etaminus=etaminus, etaplus=etaplus,
                          step_size_min=step_size_min, step_size_max=step_size_max, maximize=group["maximize"],
                          tmp=tmps[0], tmp2=tmps[1])


class ASGD(Optimizer):
    """Averaged SGD (torch.optim.ASGD); the average is the `ax` state. `foreach` and `capturable` are
    accepted and ignored (`differentiable=True` raises). As in torch, `step`, `eta` and `mu` live on the parameter's
    device."""
    _state_keys = ("ax",)
    _scalar_keys = ("eta", "mu")
    _has_step = True
    _scratch = 1

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    _group_flags = _FLAGS

    def _init_state(self, group, p):
        return {"step": _step_tensor(device=p._device), "eta": _step_tensor(group["lr"], p._device),
                "mu": _step_tensor(1.0, p._device), "ax": zeros_like(p)}

    def _advance(self, group, state, step):
        # this step uses the current eta and mu; the new ones are for the next step
        eta, mu = float(state["eta"]._data), float(state["mu"]._data)
        lr, lambd = group["lr"], group["lambd"]
        state["eta"]._data[...] = lr / ((1 + lambd * lr * step) ** group["alpha"])
        state["mu"]._data[...] = 1 / max(1, step - group["t0"])
        return eta, mu

    def _update(self, group, param, grad, state, step, tmps):
        eta, mu = step
        _functional.asgd(param, grad, state["ax"], eta=eta, mu=mu, lambd=group["lambd"],
                         weight_decay=group["weight_decay"], maximize=group["maximize"], tmp=tmps[0])


rprop = _functional.rprop
asgd = _functional.asgd
