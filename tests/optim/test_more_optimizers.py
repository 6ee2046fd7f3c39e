"""Adamax, NAdam, RAdam, Rprop, ASGD and LBFGS against torch: trajectories, state dicts both ways, the flat
path against the per-parameter path, errors."""
import copy

import numpy as np
import pytest
import torch
from test_optim import (_check_blockwise_equals_one_call, _check_state_dict_cross_loading, _np,  # shared
                        _TOL, _params, _problem, _run_steps, _to_dtrain, _to_torch, _torch_error)

import dtrain

CASES = [
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01, maximize=True, weight_decay=0.05)),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, betas=(0.8, 0.95))),
    ("NAdam", dict(lr=0.01, maximize=True)),
    ("RAdam", dict(lr=0.01)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict(lr=0.02, betas=(0.7, 0.9))),  # rho_t passes 5 at step 6: the rectified branch runs
    ("Rprop", dict(lr=0.01)),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2))),
    ("Rprop", dict(lr=0.01, maximize=True)),
    ("ASGD", dict(lr=0.05)),
    ("ASGD", dict(lr=0.05, lambd=1e-2, alpha=0.5, t0=5, weight_decay=0.1)),
    ("ASGD", dict(lr=0.02, t0=3, maximize=True)),
]
_ids = [f"{n}-" + ",".join(f"{k}={v}" for k, v in kw.items()) for n, kw in CASES]


def _n_steps(kw):
    return 15 if kw.get("maximize") else 60


@pytest.mark.parametrize("name,kw", CASES, ids=_ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trajectory_matches_torch(name, kw, dtype, device):
    x, y, init = _problem(dtype)
    n = _n_steps(kw)
    tp, dp = _params(torch, init), _params(dtrain, init, device)
    topt, dopt = getattr(torch.optim, name)(tp, **kw), getattr(dtrain.optim, name)(dp, **kw)
    t_traj = _run_steps(torch, topt, tp, x, y, n)
    d_traj = _run_steps(dtrain, dopt, dp, x, y, n)
    for i, (ts, ds) in enumerate(zip(t_traj, d_traj)):
        for j, (a, e) in enumerate(zip(ds, ts)):
            np.testing.assert_allclose(a, e, err_msg=f"step {i}, param {j}", **_TOL[dtype])
    # and the state: every entry, same names, same values
    for tq, dq in zip(tp, dp):
        ts, ds = topt.state[tq], dopt.state[dq]
        assert list(ds) == list(ts)
        for k in ts:
            np.testing.assert_allclose(_np(ds[k]), ts[k].numpy(), err_msg=k, **_TOL[dtype])


@pytest.mark.parametrize("name,kw", CASES, ids=_ids)
def test_flat_path_equals_per_parameter_path_bitwise(name, kw, device):
    x, y, init = _problem(np.float32, seed=1)
    flat_p, each_p = _params(dtrain, init, device), _params(dtrain, init, device)
    flat_opt = getattr(dtrain.optim, name)(flat_p, **kw)
    each_opt = getattr(dtrain.optim, name)([{"params": [p]} for p in each_p], **kw)
    a = _run_steps(dtrain, flat_opt, flat_p, x, y, 20)
    b = _run_steps(dtrain, each_opt, each_p, x, y, 20, zero_to_none=False)
    for sa, sb in zip(a, b):
        for pa, pb in zip(sa, sb):
            np.testing.assert_array_equal(pa, pb)
    assert all(p._data.base is None for p in flat_p)  # the parameters stayed where they were
    for k, v in flat_opt.state[flat_p[0]].items():  # the flat path ran: tensor state is views of one buffer
        if v._data.ndim:
            assert v._data.base is not None and all(flat_opt.state[p][k]._data.base is v._data.base for p in flat_p)


@pytest.mark.parametrize("name,kw", CASES, ids=_ids)
def test_blockwise_flat_update_equals_one_call_bitwise(name, kw, device, monkeypatch):
    _check_blockwise_equals_one_call(name, kw, device, monkeypatch)


@pytest.mark.parametrize("name,kw", CASES, ids=_ids)
def test_state_dict_structure_and_cross_loading(name, kw, device):
    _check_state_dict_cross_loading(name, kw, device)


@pytest.mark.parametrize("name", ["Adamax", "NAdam", "RAdam", "Rprop", "ASGD"])
def test_state_dict_roundtrip_within_dtrain_is_exact(name, device):
    # float32 parameters: loading casts 0-d state other than `step` to the parameters' dtype (torch's rule),
    # which for float64 parameters would change how NAdam's mu_product and ASGD's eta round
    x, y, init = _problem(np.float32)
    a = _params(dtrain, init, device)
    oa = getattr(dtrain.optim, name)(a, lr=0.01)
    _run_steps(dtrain, oa, a, x, y, 4)
    c = _params(dtrain, [_np(p) for p in a], device)
    oc = getattr(dtrain.optim, name)(c, lr=0.01)
    oc.load_state_dict(copy.deepcopy(oa.state_dict()))
    ra, rc = _run_steps(dtrain, oa, a, x, y, 5), _run_steps(dtrain, oc, c, x, y, 5)
    for pa, pc in zip(ra[-1], rc[-1]):
        np.testing.assert_array_equal(pa, pc)


def test_nadam_mu_product_is_float32_like_torch(device):
    # torch keeps mu_product in a float32 0-d tensor; after many steps its rounding shows in float64 params
    x, y, init = _problem(np.float64)
    tp, dp = _params(torch, init), _params(dtrain, init, device)
    topt, dopt = torch.optim.NAdam(tp, lr=0.01), dtrain.optim.NAdam(dp, lr=0.01)
    _run_steps(torch, topt, tp, x, y, 30)
    _run_steps(dtrain, dopt, dp, x, y, 30)
    assert dopt.state[dp[0]]["mu_product"].dtype is dtrain.float32
    assert float(dopt.state[dp[0]]["mu_product"]) == float(topt.state[tp[0]]["mu_product"])


@pytest.mark.parametrize("name,kw", [
    ("Adamax", dict(lr=-1)), ("Adamax", dict(eps=-1)), ("Adamax", dict(betas=(1.0, 0.9))),
    ("Adamax", dict(betas=(0.9, 1.5))), ("Adamax", dict(weight_decay=-1)),
    ("NAdam", dict(lr=-1)), ("NAdam", dict(momentum_decay=-0.1)), ("NAdam", dict(betas=(0.9, -0.1))),
    ("RAdam", dict(lr=-1)), ("RAdam", dict(eps=-1)), ("RAdam", dict(weight_decay=-1)),
    ("Rprop", dict(lr=-1)), ("Rprop", dict(etas=(1.5, 1.2))), ("Rprop", dict(etas=(0.5, 0.9))),
    ("ASGD", dict(lr=-1)), ("ASGD", dict(weight_decay=-1)),
    ("LBFGS", dict(lr=-1)), ("Adamax", dict(fused=True)), ("Rprop", dict(weight_decay=0.1)),
])
def test_invalid_hyperparameters_raise_like_torch(name, kw):
    te = _torch_error(lambda: getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kw))
    de = _torch_error(lambda: getattr(dtrain.optim, name)([dtrain.zeros(2, requires_grad=True)], **kw))
    assert te is not None
    assert de is not None and de[0] is te[0]
    if te[0] is not TypeError:  # a TypeError names the function the way each framework spells it
        assert de == te


@pytest.mark.parametrize("name,kw", [("Adamax", {}), ("NAdam", dict(decoupled_weight_decay=True, weight_decay=0.1)),
                                     ("RAdam", {}), ("Rprop", dict(etas=(0.4, 1.1))), ("ASGD", dict(t0=10)),
                                     ("LBFGS", dict(history_size=5, line_search_fn="strong_wolfe"))])
def test_repr_like_torch(name, kw):
    d = getattr(dtrain.optim, name)([dtrain.zeros(2, requires_grad=True)], **kw)
    t = getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kw)
    assert repr(d) == repr(t)


@pytest.mark.parametrize("name", ["Adamax", "NAdam", "RAdam", "Rprop", "ASGD"])
def test_functional_forms_are_exported(name):
    mod = {"Adamax": "adamax", "NAdam": "nadam", "RAdam": "nadam", "Rprop": "rprop", "ASGD": "rprop"}[name]
    import importlib
    assert callable(getattr(importlib.import_module(f"dtrain.optim.{mod}"), name.lower()))


# ------------------------------------------------------------------ LBFGS
def _rosenbrock(m, p):
    x = p
    return ((1 - x[:-1]) ** 2).sum() + 100 * ((x[1:] - x[:-1] ** 2) ** 2).sum()


def _quadratic(m, p, a):
    return 0.5 * (p * (a @ p)).sum() - p.sum()


def _lbfgs_run(m, make_loss, x0, n_steps, **kw):
    p = m.tensor(x0.copy(), requires_grad=True) if m is torch else dtrain.nn.Parameter(dtrain.tensor(x0.copy()))
    opt = m.optim.LBFGS([p], **kw)
    evals = []

    def closure():
        opt.zero_grad()
        loss = make_loss(m, p)
        loss.backward()
        evals.append(float(loss.detach()))
        return loss

    traj = []
    for _ in range(n_steps):
        loss = opt.step(closure)
        traj.append((float(loss.detach()), _np(p).copy()))
    return traj, evals, opt, p


@pytest.mark.parametrize("kw", [dict(), dict(line_search_fn="strong_wolfe"), dict(history_size=3, max_iter=7),
                                dict(history_size=2, max_iter=5, line_search_fn="strong_wolfe", lr=0.5),
                                dict(lr=0.1, max_iter=4, max_eval=6, tolerance_change=1e-5)])
def test_lbfgs_rosenbrock_step_by_step_like_torch(kw):
    # two steps (up to 40 iterations) only, and a tolerance far above float64's: dot products round
    # differently in the last bit (summation order; torch fuses `add(alpha=)` into one FMA), and on
    # Rosenbrock's curved valley such differences grow about tenfold every few iterations
    x0 = np.array([-1.2, 1.0, -0.5, 0.8, 1.1])
    t_traj, t_evals, topt, tp = _lbfgs_run(torch, _rosenbrock, x0, 2, **kw)
    d_traj, d_evals, dopt, dp = _lbfgs_run(dtrain, _rosenbrock, x0, 2, **kw)
    assert len(d_evals) == len(t_evals)  # the same number of closure calls: same decisions everywhere
    np.testing.assert_allclose(d_evals, t_evals, rtol=1e-6, atol=1e-12)
    for (dl, dx), (tl, tx) in zip(d_traj, t_traj):
        assert dl == pytest.approx(tl, rel=1e-6, abs=1e-12)
        np.testing.assert_allclose(dx, tx, rtol=1e-6, atol=1e-9)
    ds, ts = dopt.state_dict()["state"][0], topt.state_dict()["state"][0]
    assert list(ds) == list(ts)
    assert ds["func_evals"] == ts["func_evals"] and ds["n_iter"] == ts["n_iter"]
    assert len(ds["old_dirs"]) == len(ts["old_dirs"]) and len(ds["ro"]) == len(ts["ro"])
    for a, e in zip(ds["old_dirs"] + ds["old_stps"] + [ds["d"], ds["prev_flat_grad"]],
                    ts["old_dirs"] + ts["old_stps"] + [ts["d"], ts["prev_flat_grad"]]):
        assert tuple(a.shape) == tuple(e.shape)
        np.testing.assert_allclose(_np(a), e.numpy(), rtol=1e-5, atol=1e-8)
    for k in ("t", "prev_loss", "H_diag"):
        assert float(ds[k]) == pytest.approx(float(ts[k]), rel=1e-5, abs=1e-10), k


def test_lbfgs_quadratic_multi_param_and_state_dict_cross_loading():
    rng = np.random.default_rng(4)
    q = rng.standard_normal((6, 6))
    a = q @ q.T + 6 * np.eye(6)
    ta, da = torch.tensor(a), dtrain.tensor(a)

    def make(m, params):
        p = m.cat([params[0].reshape(-1), params[1]])
        return _quadratic(m, p, ta if m is torch else da)

    init = [rng.standard_normal((2, 2)), rng.standard_normal(2)]
    tps = [torch.tensor(v, requires_grad=True) for v in init]
    dps = [dtrain.nn.Parameter(dtrain.tensor(v)) for v in init]
    kw = dict(max_iter=3, history_size=4)
    topt, dopt = torch.optim.LBFGS(tps, **kw), dtrain.optim.LBFGS(dps, **kw)

    def closure_of(m, opt, ps):
        def closure():
            opt.zero_grad()
            loss = make(m, ps)
            loss.backward()
            return loss
        return closure

    for _ in range(2):
        topt.step(closure_of(torch, topt, tps))
        dopt.step(closure_of(dtrain, dopt, dps))
    # continue from each other's state dicts
    dps2 = [dtrain.nn.Parameter(dtrain.tensor(p.detach().numpy().copy())) for p in tps]
    dopt2 = dtrain.optim.LBFGS(dps2, **kw)
    dopt2.load_state_dict(_to_dtrain(topt.state_dict(), "cpu"))
    tps2 = [torch.tensor(_np(p), requires_grad=True) for p in dps]
    topt2 = torch.optim.LBFGS(tps2, **kw)
    topt2.load_state_dict(_to_torch(dopt.state_dict()))
    for _ in range(2):
        topt.step(closure_of(torch, topt, tps))
        dopt2.step(closure_of(dtrain, dopt2, dps2))
        topt2.step(closure_of(torch, topt2, tps2))
    for a_, b_, e in zip(dps2, tps2, tps):
        np.testing.assert_allclose(_np(a_), _np(e), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(_np(b_), _np(e), rtol=1e-9, atol=1e-11)
    # and it gets to the minimum, A x = 1
    for _ in range(10):
        dopt2.step(closure_of(dtrain, dopt2, dps2))
    x = np.concatenate([_np(dps2[0]).reshape(-1), _np(dps2[1])])
    np.testing.assert_allclose(a @ x, np.ones(6), atol=1e-3)  # tolerance_change stops it about there


def test_lbfgs_errors_like_torch():
    tw, dw = torch.zeros(2, requires_grad=True), dtrain.zeros(2, requires_grad=True)
    groups = lambda m, w: [{"params": [w]}, {"params": [m.zeros(2, requires_grad=True)]}]  # noqa: E731
    te = _torch_error(lambda: torch.optim.LBFGS(groups(torch, tw)))
    de = _torch_error(lambda: dtrain.optim.LBFGS(groups(dtrain, dw)))
    assert te is not None and de == te

    def step(m, w):
        opt = m.optim.LBFGS([w], line_search_fn="armijo")

        def closure():
            opt.zero_grad()
            loss = ((w - 1) ** 2).sum()
            loss.backward()
            return loss
        opt.step(closure)

    te = _torch_error(lambda: step(torch, tw))
    de = _torch_error(lambda: step(dtrain, dw))
    assert te == (RuntimeError, "only 'strong_wolfe' is supported") and de == te
    te = _torch_error(lambda: torch.optim.LBFGS([tw]).step())
    de = _torch_error(lambda: dtrain.optim.LBFGS([dw]).step())
    assert te[0] is TypeError and de[0] is TypeError


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
                                  "Rprop", "ASGD"])
def test_differentiable_steps_are_refused_not_ignored(name):
    """torch records a differentiable=True step in the autograd graph; dtrain's steps cannot, so they refuse."""
    with pytest.raises(NotImplementedError, match="differentiable=True"):
        getattr(dtrain.optim, name)([dtrain.zeros(2, requires_grad=True)], lr=0.1, differentiable=True)
    with pytest.raises(NotImplementedError, match="differentiable=True"):
        getattr(dtrain.optim, name)([{"params": [dtrain.zeros(2, requires_grad=True)], "differentiable": True}],
                                    lr=0.1)
    getattr(dtrain.optim, name)([dtrain.zeros(2, requires_grad=True)], lr=0.1, differentiable=False)
