"""CosineAnnealingWarmRestarts, CyclicLR, PolynomialLR and ChainedScheduler against torch: lr (and
momentum) sequences, state dicts, errors."""
import copy
import warnings

import pytest
import torch
from test_optim import _torch_error  # the error (type, message) a call raises, or None

import dtrain


def _opt(m, name="SGD", **kw):
    a, b = m.zeros(2, requires_grad=True), m.zeros(3, requires_grad=True)
    if not kw:
        kw = dict(lr=0.1, momentum=0.9) if name == "SGD" else dict(lr=0.1)
    return getattr(m.optim, name)([{"params": [a]}, {"params": [b], "lr": 0.05}], **kw)


class _Wave:
    """A callable scale function: its attributes travel in CyclicLR's state dict."""

    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return 1.0 / (1.0 + self.k * x)


SCHEDULERS = {
    "WarmRestarts": lambda m, o: m.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=5),
    "WarmRestarts-mult": lambda m, o: m.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2,
                                                                                         eta_min=0.001),
    "CyclicLR-triangular": lambda m, o: m.optim.lr_scheduler.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4),
    "CyclicLR-triangular2": lambda m, o: m.optim.lr_scheduler.CyclicLR(
        o, base_lr=[0.01, 0.02], max_lr=[0.1, 0.3], step_size_up=3, step_size_down=5, mode="triangular2",
        base_momentum=0.7, max_momentum=0.95),
    "CyclicLR-exp_range": lambda m, o: m.optim.lr_scheduler.CyclicLR(o, base_lr=0.001, max_lr=0.05, step_size_up=6,
                                                                     mode="exp_range", gamma=0.97),
    "CyclicLR-scale_fn-iterations": lambda m, o: m.optim.lr_scheduler.CyclicLR(
        o, base_lr=0.01, max_lr=0.2, step_size_up=2, step_size_down=7, scale_fn=_Wave(0.1),
        scale_mode="iterations"),
    "CyclicLR-nomomentum": lambda m, o: m.optim.lr_scheduler.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5,
                                                                      cycle_momentum=False),
    "PolynomialLR": lambda m, o: m.optim.lr_scheduler.PolynomialLR(o, total_iters=12, power=2.0),
    "PolynomialLR-linear": lambda m, o: m.optim.lr_scheduler.PolynomialLR(o),
    "ChainedScheduler": lambda m, o: m.optim.lr_scheduler.ChainedScheduler(
        [m.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=4),
         m.optim.lr_scheduler.ExponentialLR(o, gamma=0.9),
         m.optim.lr_scheduler.PolynomialLR(o, total_iters=20, power=0.5)]),
    "ChainedScheduler-warmrestarts": lambda m, o: m.optim.lr_scheduler.ChainedScheduler(
        [m.optim.lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=6),
         m.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=2)], optimizer=o),
}


def _snapshot(opt):
    return [(g["lr"], g.get("momentum"), g.get("betas")) for g in opt.param_groups]


def _run(m, name, opt_name, n, **opt_kw):
    opt = _opt(m, opt_name, **opt_kw)
    sched = SCHEDULERS[name](m, opt)
    seq = [(list(sched.get_last_lr()), _snapshot(opt))]
    for _ in range(n):
        opt.step()
        sched.step()
        seq.append((list(sched.get_last_lr()), _snapshot(opt)))
    return seq, sched, opt


@pytest.mark.parametrize("name", list(SCHEDULERS))
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_lr_and_momentum_sequence_equals_torch(name, opt_name):
    t, tsched, _ = _run(torch, name, opt_name, 60)
    d, dsched, _ = _run(dtrain, name, opt_name, 60)
    assert d == t  # Python floats computed by the same formulas: exactly equal
    assert getattr(dsched, "last_epoch", None) == getattr(tsched, "last_epoch", None)


def test_cyclic_momentum_really_cycles():
    seq, _, _ = _run(dtrain, "CyclicLR-triangular2", "SGD", 16)
    moms = [s[1][0][1] for s in seq]
    assert max(moms) == 0.95 and min(moms) < 0.8
    seq, _, _ = _run(dtrain, "CyclicLR-triangular", "Adam", 8)
    assert {s[1][1][2][0] for s in seq} != {0.9}  # Adam's beta1 is what cycles


@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_warm_restarts_fractional_epochs_equal_torch(T_mult):
    epochs = [0, 0.25, 0.5, 1.7, 2.0, 2.999, 3, 4.5, 7.25, 9.0, 10.1, 20.5, 31.0, 39.99, 0.1, 64.3]
    out = []
    for m in (torch, dtrain):
        opt = _opt(m)
        sched = m.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=T_mult, eta_min=0.002)
        seq = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for e in epochs:
                opt.step()
                sched.step(e)
                seq.append((list(sched.get_last_lr()), sched.T_cur, sched.T_i, sched.last_epoch))
            # and plain steps after them
            for _ in range(7):
                sched.step()
                seq.append((list(sched.get_last_lr()), sched.T_cur, sched.T_i, sched.last_epoch))
        out.append(seq)
    assert out[1] == out[0]


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_state_dict_resumes_like_torch(name):
    d, dsched, dopt = _run(dtrain, name, "SGD", 9)
    state = copy.deepcopy(dsched.state_dict())
    opt2 = _opt(dtrain)
    opt2.load_state_dict(copy.deepcopy(dopt.state_dict()))
    sched2 = SCHEDULERS[name](dtrain, opt2)
    sched2.load_state_dict(state)
    for g, g0 in zip(opt2.param_groups, dopt.param_groups):
        g.update({k: g0[k] for k in ("lr", "momentum")})
    a, b = [], []
    for o, s, out in ((dopt, dsched, a), (opt2, sched2, b)):
        for _ in range(15):
            o.step()
            s.step()
            out.append((list(s.get_last_lr()), _snapshot(o)))
    assert a == b
    t, tsched, _ = _run(torch, name, "SGD", 9)
    keys = lambda sd: sorted(k for k in sd if k != "_schedulers")  # noqa: E731
    assert keys(dsched.state_dict()) == keys(tsched.state_dict())


def test_polynomial_closed_form_equals_torch():
    out = []
    for m in (torch, dtrain):
        opt = _opt(m)
        sched = m.optim.lr_scheduler.PolynomialLR(opt, total_iters=8, power=1.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for e in (3, 1, 8, 12, 5):
                opt.step()
                sched.step(e)
                out.append(list(sched.get_last_lr()))
    assert out[:5] == out[5:]


@pytest.mark.parametrize("make", [
    lambda m, o: m.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=0),
    lambda m, o: m.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2.5),
    lambda m, o: m.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=0),
    lambda m, o: m.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, eta_min="0"),
    lambda m, o: m.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3).step(-1),
    lambda m, o: m.optim.lr_scheduler.CyclicLR(o, 0.01, 0.1, mode="sine"),
    lambda m, o: m.optim.lr_scheduler.CyclicLR(o, [0.01], 0.1),
    lambda m, o: m.optim.lr_scheduler.CyclicLR(m.optim.Adagrad([m.zeros(2, requires_grad=True)]), 0.01, 0.1),
    lambda m, o: m.optim.lr_scheduler.CyclicLR(None, 0.01, 0.1),
    lambda m, o: m.optim.lr_scheduler.ChainedScheduler([]),
    lambda m, o: m.optim.lr_scheduler.ChainedScheduler([m.optim.lr_scheduler.ReduceLROnPlateau(o)]),
    lambda m, o: m.optim.lr_scheduler.ChainedScheduler([m.optim.lr_scheduler.StepLR(o, 2), object()]),
    lambda m, o: m.optim.lr_scheduler.PolynomialLR(o, last_epoch=3),
])
def test_errors_like_torch(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        te = _torch_error(lambda: make(torch, _opt(torch)))
        de = _torch_error(lambda: make(dtrain, _opt(dtrain)))
    assert te is not None
    assert de == te


def test_chained_scheduler_rejects_another_optimizer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        errs = []
        for m in (torch, dtrain):
            o1, o2 = _opt(m), _opt(m)
            s1, s2 = m.optim.lr_scheduler.StepLR(o1, 2), m.optim.lr_scheduler.StepLR(o2, 2)
            errs.append(_torch_error(lambda: m.optim.lr_scheduler.ChainedScheduler([s1, s2])))
    assert errs[0][0] is ValueError and errs[1][0] is ValueError
    assert errs[1][1].startswith("ChainedScheduler expects all schedulers to belong to the same optimizer")
