"""Every scheduler's lr (and momentum) sequence against torch's, state dicts, and errors."""
import copy
import warnings

import pytest
import torch

import dtrain

S = "lr_scheduler"


def _opt(m, name="SGD", **kw):
    a, b = m.zeros(2, requires_grad=True), m.zeros(3, requires_grad=True)
    kw = kw or dict(lr=0.1, momentum=0.9) if name == "SGD" else kw
    return getattr(m.optim, name)([{"params": [a]}, {"params": [b], "lr": 0.05}], **kw)


def _halve(epoch):
    return 0.5 ** (epoch // 3)


class _Scale:
    """A callable object: its attributes travel in LambdaLR's state dict."""

    def __init__(self, k):
        self.k = k

    def __call__(self, epoch):
        return 1.0 / (1 + self.k * epoch)


SCHEDULERS = {
    "LambdaLR": lambda m, o: m.optim.lr_scheduler.LambdaLR(o, _halve),
    "LambdaLR-list": lambda m, o: m.optim.lr_scheduler.LambdaLR(o, [_halve, _Scale(0.1)]),
    "MultiplicativeLR": lambda m, o: m.optim.lr_scheduler.MultiplicativeLR(o, lambda e: 0.95),
    "StepLR": lambda m, o: m.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5),
    "MultiStepLR": lambda m, o: m.optim.lr_scheduler.MultiStepLR(o, milestones=[3, 10, 10, 25], gamma=0.3),
    "ExponentialLR": lambda m, o: m.optim.lr_scheduler.ExponentialLR(o, gamma=0.93),
    "CosineAnnealingLR": lambda m, o: m.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12, eta_min=0.001),
    "LinearLR": lambda m, o: m.optim.lr_scheduler.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=7),
    "ConstantLR": lambda m, o: m.optim.lr_scheduler.ConstantLR(o, factor=0.4, total_iters=6),
    "OneCycleLR-cos": lambda m, o: m.optim.lr_scheduler.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=40),
    "OneCycleLR-linear-3phase": lambda m, o: m.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.8, epochs=4, steps_per_epoch=10, anneal_strategy="linear", three_phase=True, pct_start=0.25),
    "OneCycleLR-nomomentum": lambda m, o: m.optim.lr_scheduler.OneCycleLR(o, max_lr=0.3, total_steps=45,
                                                                          cycle_momentum=False, div_factor=10.0),
    "SequentialLR": lambda m, o: m.optim.lr_scheduler.SequentialLR(
        o, [m.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5),
            m.optim.lr_scheduler.CosineAnnealingLR(o, T_max=15),
            m.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)], milestones=[5, 20]),
    "SequentialLR-constant-step": lambda m, o: m.optim.lr_scheduler.SequentialLR(
        o, [m.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=4),
            m.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.7)], milestones=[8]),
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
def test_lr_sequence_equals_torch(name, opt_name):
    n = 39 if name.startswith("OneCycle") else 45
    t, tsched, _ = _run(torch, name, opt_name, n)
    d, dsched, _ = _run(dtrain, name, opt_name, n)
    assert d == t  # Python floats computed by the same formulas: exactly equal
    assert dsched.last_epoch == tsched.last_epoch


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_state_dict_keys_and_resume(name):
    t, tsched, _ = _run(torch, name, "SGD", 10)
    d, dsched, _ = _run(dtrain, name, "SGD", 10)
    tsd, dsd = tsched.state_dict(), dsched.state_dict()
    assert set(dsd) == set(tsd)
    # resume as torch does: build optimizer and scheduler, then load both states (here torch's)
    opt2 = _opt(dtrain)
    sched2 = SCHEDULERS[name](dtrain, opt2)
    opt2.load_state_dict(copy.deepcopy(tsched.optimizer.state_dict()))
    sched2.load_state_dict(copy.deepcopy(tsd))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(15):
            opt2.step()
            sched2.step()
            tsched.optimizer.step()
            tsched.step()
            assert sched2.get_last_lr() == tsched.get_last_lr()
    assert _snapshot(opt2) == _snapshot(tsched.optimizer)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(mode="max", factor=0.5, patience=2, threshold=0.01, threshold_mode="abs", cooldown=2, min_lr=0.004),
    dict(mode="min", factor=0.3, patience=0, threshold=0.1, threshold_mode="rel", cooldown=1, min_lr=[0.01, 0.0],
         eps=1e-3),
    dict(mode="max", patience=1, threshold_mode="rel", threshold=0.05),
])
def test_reduce_lr_on_plateau_equals_torch(kw):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.96, 0.89, 0.9, 0.91, 0.92, 0.93, 0.5, 0.51, 0.52, 0.53, 0.54, 0.55, 0.56,
               0.2, 0.2, 0.2, 0.2, 0.2, 0.21, 0.22, 0.25, 0.3, 0.3, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    res = {}
    for m in (torch, dtrain):
        opt = _opt(m)
        sched = m.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
        seq = []
        for i, v in enumerate(metrics):
            sched.step(v if i % 2 else m.tensor(v))
            seq.append((list(sched.get_last_lr()), sched.num_bad_epochs, sched.cooldown_counter, sched.best))
        res[m] = (seq, sched.state_dict())
    assert res[dtrain][0] == res[torch][0]
    assert set(res[dtrain][1]) == set(res[torch][1])


def test_closed_form_step_with_epoch_matches_torch():
    for name in ("StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "ConstantLR"):
        out = {}
        for m in (torch, dtrain):
            opt = _opt(m)
            sched = SCHEDULERS[name](m, opt)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[m] = []
                for e in (3, 7, 2, 12, 30):
                    opt.step()
                    sched.step(e)
                    out[m].append(sched.get_last_lr())
        assert out[dtrain] == out[torch], name


def test_step_order_warning_like_torch():
    for m in (torch, dtrain):
        opt = _opt(m)
        sched = m.optim.lr_scheduler.StepLR(opt, 2)
        with pytest.warns(UserWarning, match="Detected call of `lr_scheduler.step\\(\\)` before"):
            sched.step()


def _err(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return type(e), str(e)
    return None


@pytest.mark.parametrize("make", [
    lambda m, o: m.optim.lr_scheduler.StepLR(object(), 2),
    lambda m, o: m.optim.lr_scheduler.StepLR(o, 2, last_epoch=3),
    lambda m, o: m.optim.lr_scheduler.LambdaLR(o, [_halve]),
    lambda m, o: m.optim.lr_scheduler.ConstantLR(o, factor=1.5),
    lambda m, o: m.optim.lr_scheduler.LinearLR(o, start_factor=0),
    lambda m, o: m.optim.lr_scheduler.LinearLR(o, end_factor=2),
    lambda m, o: m.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0),
    lambda m, o: m.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=0),
    lambda m, o: m.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1),
    lambda m, o: m.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"),
    lambda m, o: m.optim.lr_scheduler.OneCycleLR(o, max_lr=[1.0], total_steps=10),
    lambda m, o: m.optim.lr_scheduler.OneCycleLR(m.optim.Adagrad([m.zeros(1, requires_grad=True)]), 1.0,
                                                 total_steps=10),
    lambda m, o: (lambda s: [o.step() or s.step() for _ in range(5)])(
        m.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=3)),
    lambda m, o: m.optim.lr_scheduler.ReduceLROnPlateau(o, factor=1.0),
    lambda m, o: m.optim.lr_scheduler.ReduceLROnPlateau(o, mode="avg"),
    lambda m, o: m.optim.lr_scheduler.ReduceLROnPlateau(o, threshold_mode="x"),
    lambda m, o: m.optim.lr_scheduler.ReduceLROnPlateau(o, min_lr=[0.1]),
    lambda m, o: m.optim.lr_scheduler.SequentialLR(o, [], milestones=[]),
    lambda m, o: m.optim.lr_scheduler.SequentialLR(o, [m.optim.lr_scheduler.StepLR(o, 2)], milestones=[3]),
    lambda m, o: m.optim.lr_scheduler.SequentialLR(o, [m.optim.lr_scheduler.ReduceLROnPlateau(o)], milestones=[]),
])
def test_scheduler_errors_like_torch(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        te = _err(lambda: make(torch, _opt(torch)))
        de = _err(lambda: make(dtrain, _opt(dtrain)))
    assert te is not None and de == te
