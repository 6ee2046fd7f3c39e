"""Optimizers against torch: 100-step trajectories, state dicts both ways, errors; flat path against
per-parameter path bit for bit."""

import numpy as np
import pytest
import torch

import dtrain

_SHAPES = [(6, 4), (4,), (3, 2, 2), (1,)]


def _problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 6)).astype(dtype)
    y = rng.standard_normal((16, 4)).astype(dtype)
    init = [rng.standard_normal(s).astype(dtype) * 0.5 for s in _SHAPES]
    return x, y, init


def _loss(m, params, x, y):
    w, b, c, d = params
    r = x @ w + b - y
    return (r * r).mean() + ((c - 0.3) ** 2).sum() * 0.5 + (d * d).sum() * 2.0 + (w * w).sum() * 0.01


def _params(m, init, device=None):
    if m is torch:
        return [torch.tensor(a.copy(), requires_grad=True) for a in init]
    return [dtrain.nn.Parameter(dtrain.tensor(a.copy(), device=device)) for a in init]


def _np(t):
    return np.array(dtrain._backend.to_numpy(t._data)) if isinstance(t, dtrain.Tensor) else t.detach().numpy()


def _run_steps(m, opt, params, x, y, n, zero_to_none=True):
    xs, ys = m.tensor(x, device=params[0].device), m.tensor(y, device=params[0].device)
    out = []
    for _ in range(n):
        opt.zero_grad(set_to_none=zero_to_none)
        _loss(m, params, xs, ys).backward()
        opt.step()
        out.append([_np(p).copy() for p in params])
    return out


CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(lr=0.01, momentum=0.5, maximize=True)),
    ("SGD", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("SGD", dict(lr=0.01, momentum=0.5, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True, eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, maximize=True, amsgrad=True)),
    ("Adam", dict(lr=0.002, betas=(0.3, 0.9))),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, maximize=True)),
    ("RMSprop", dict(lr=0.01, centered=True, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1, eps=1e-8)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("Adadelta", dict(lr=1.0)),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)),
    ("Adadelta", dict(lr=1.0, maximize=True)),
]
_ids = [f"{n}-" + ",".join(f"{k}={v}" for k, v in kw.items()) for n, kw in CASES]
_TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _maximized(kw):
    # maximize turns the quadratic into a runaway problem; keep it short enough to stay well conditioned
    return 20 if kw.get("maximize") else 100


@pytest.mark.parametrize("name,kw", CASES, ids=_ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trajectory_matches_torch(name, kw, dtype, device):
    x, y, init = _problem(dtype)
    n = _maximized(kw)
    tp, dp = _params(torch, init), _params(dtrain, init, device)
    t_traj = _run_steps(torch, getattr(torch.optim, name)(tp, **kw), tp, x, y, n)
    d_traj = _run_steps(dtrain, getattr(dtrain.optim, name)(dp, **kw), dp, x, y, n)
    for i, (ts, ds) in enumerate(zip(t_traj, d_traj)):
        for j, (a, e) in enumerate(zip(ds, ts)):
            np.testing.assert_allclose(a, e, err_msg=f"step {i}, param {j}", **_TOL[dtype])


@pytest.mark.parametrize("name,kw", CASES, ids=_ids)
def test_flat_path_equals_per_parameter_path_bitwise(name, kw, device):
    x, y, init = _problem(np.float32, seed=1)
    flat_p, each_p = _params(dtrain, init, device), _params(dtrain, init, device)
    flat_opt = getattr(dtrain.optim, name)(flat_p, **kw)
    # one group per parameter: every chunk holds a single parameter, so each is stepped on its own
    each_opt = getattr(dtrain.optim, name)([{"params": [p]} for p in each_p], **kw)
    ptrs = [p.data_ptr() for p in flat_p]
    a = _run_steps(dtrain, flat_opt, flat_p, x, y, 30)
    b = _run_steps(dtrain, each_opt, each_p, x, y, 30, zero_to_none=False)
    for sa, sb in zip(a, b):
        for pa, pb in zip(sa, sb):
            np.testing.assert_array_equal(pa, pb)
    # the parameters stayed where they were; the flat path ran: tensor state is views of one buffer
    assert [p.data_ptr() for p in flat_p] == ptrs
    for k, v in flat_opt.state[flat_p[0]].items():
        if k != "step":
            assert v._data.base is not None
            assert all(flat_opt.state[p][k]._data.base is v._data.base for p in flat_p)


@pytest.mark.parametrize("name,kw", CASES, ids=_ids)
def test_blockwise_flat_update_equals_one_call_bitwise(name, kw, device, monkeypatch):
    _check_blockwise_equals_one_call(name, kw, device, monkeypatch)


def _check_blockwise_equals_one_call(name, kw, device, monkeypatch):
    # large flat updates run block by block (their temporaries stay in cache); a tiny block makes this
    # problem take that path, which must give the same bits as one call over the whole buffer
    from dtrain.optim import optimizer
    x, y, init = _problem(np.float32, seed=2)
    # small neighbouring parameters are stepped together through a scratch buffer: the same bits again
    runs = []
    for block, small in ((1 << 40, 0), (5, 0), (1 << 40, 1 << 16)):
        monkeypatch.setattr(optimizer, "_BLOCK", block)
        monkeypatch.setattr(optimizer, "_SMALL", small)
        ps = _params(dtrain, init, device)
        runs.append(_run_steps(dtrain, getattr(dtrain.optim, name)(ps, **kw), ps, x, y, 12))
    for other in runs[1:]:
        for sa, sb in zip(runs[0], other):
            for pa, pb in zip(sa, sb):
                np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=0.01))])
def test_packed_step_writes_a_parameters_new_array(name, kw, device):
    # small parameters are stepped through a scratch buffer and copied back into views of their arrays; a
    # parameter given a new array between steps (p.data = ...) gets the update there, as torch's does
    x, y, init = _problem(np.float32, seed=5)
    tp, dp = _params(torch, init), _params(dtrain, init, device)
    topt, dopt = getattr(torch.optim, name)(tp, **kw), getattr(dtrain.optim, name)(dp, **kw)
    _run_steps(torch, topt, tp, x, y, 2)
    _run_steps(dtrain, dopt, dp, x, y, 2)
    fresh = np.random.default_rng(6).standard_normal(init[1].shape).astype(np.float32)
    tp[1].data = torch.from_numpy(fresh.copy())
    dp[1].data = dtrain.tensor(fresh.copy(), device=device)
    old = dp[1]._data
    for ts, ds in zip(_run_steps(torch, topt, tp, x, y, 3), _run_steps(dtrain, dopt, dp, x, y, 3)):
        for t, d in zip(ts, ds):
            np.testing.assert_allclose(d, t, rtol=1e-5, atol=1e-6)
    assert dp[1]._data is old  # stepped in place


def test_flat_state_is_views_and_grads_stay_put(device):
    x, y, init = _problem(np.float32)
    ps = _params(dtrain, init, device)
    opt = dtrain.optim.Adam(ps, lr=0.01)
    _run_steps(dtrain, opt, ps, x, y, 2, zero_to_none=False)
    for k in ("exp_avg", "exp_avg_sq"):
        base = opt.state[ps[0]][k]._data.base
        assert base is not None and all(opt.state[p][k]._data.base is base for p in ps)
    # zero_grad(set_to_none=False) zeroes each gradient where it is, as torch's grad.zero_()
    grads = [p.grad for p in ps]
    ptrs = [g.data_ptr() for g in grads]
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is g and g.data_ptr() == q and not _np(g).any() for p, g, q in zip(ps, grads, ptrs))
    opt.zero_grad()
    assert all(p.grad is None for p in ps)


def test_params_already_in_one_buffer_are_not_moved(device):
    x, y, init = _problem(np.float64)
    xp = dtrain.device(device).xp
    with dtrain._backend.on_device(dtrain.device(device)):  # the buffer on the parameters' device, not the current
        flat = xp.concatenate([xp.asarray(a).reshape(-1) for a in init])
    ps, o = [], 0
    for a in init:
        p = dtrain.nn.Parameter(dtrain.tensor(init[0][:1].copy(), device=device))
        p._data = flat[o:o + a.size].reshape(a.shape)
        o += a.size
        ps.append(p)
    ptrs = [p.data_ptr() for p in ps]
    tp = _params(torch, init)
    t_traj = _run_steps(torch, torch.optim.SGD(tp, lr=0.05, momentum=0.9), tp, x, y, 10)
    d_traj = _run_steps(dtrain, dtrain.optim.SGD(ps, lr=0.05, momentum=0.9), ps, x, y, 10)
    assert [p.data_ptr() for p in ps] == ptrs
    np.testing.assert_allclose(dtrain._backend.to_numpy(flat),
                               np.concatenate([t.detach().numpy().reshape(-1) for t in tp]), rtol=1e-12)
    for ts, ds in zip(t_traj, d_traj):
        for a, e in zip(ds, ts):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-13)


def test_rebound_parameter_keeps_its_new_storage(device):
    x, y, init = _problem(np.float64)
    tp, dp = _params(torch, init), _params(dtrain, init, device)
    topt, dopt = torch.optim.Adam(tp, lr=0.01), dtrain.optim.Adam(dp, lr=0.01)
    _run_steps(torch, topt, tp, x, y, 3)
    _run_steps(dtrain, dopt, dp, x, y, 3)
    with torch.no_grad():
        tp[1].data = tp[1].data * 2
    dp[1].data = dp[1].data * 2
    t = _run_steps(torch, topt, tp, x, y, 5)
    d = _run_steps(dtrain, dopt, dp, x, y, 5)
    assert dp[1]._data.base is None  # the new storage stays the parameter's own
    for a, e in zip(d[-1], t[-1]):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-13)


def test_missing_grad_skips_parameter_like_torch(device):
    x, y, init = _problem(np.float64)
    tp, dp = _params(torch, init), _params(dtrain, init, device)
    topt, dopt = torch.optim.Adam(tp, lr=0.01), dtrain.optim.Adam(dp, lr=0.01)
    for m, ps, opt in ((torch, tp, topt), (dtrain, dp, dopt)):
        for i in range(6):
            opt.zero_grad()
            dev = ps[0].device
            loss = _loss(m, ps, m.tensor(x, device=dev), m.tensor(y, device=dev)) if i % 3 else (ps[0] * ps[0]).sum()
            loss.backward()
            opt.step()
    for a, e in zip(dp, tp):
        np.testing.assert_allclose(_np(a), _np(e), rtol=1e-12, atol=1e-13)
    assert set(dopt.state_dict()["state"]) == set(topt.state_dict()["state"])
    for i in dopt.state_dict()["state"]:
        assert float(dopt.state_dict()["state"][i]["step"]) == float(topt.state_dict()["state"][i]["step"])


def _to_dtrain(v, device):
    if isinstance(v, torch.Tensor):
        return dtrain.tensor(v.detach().numpy().copy(), device=device)
    if isinstance(v, dict):
        return {k: _to_dtrain(w, device) for k, w in v.items()}
    if isinstance(v, list):
        return [_to_dtrain(w, device) for w in v]
    return v


def _to_torch(v):
    if isinstance(v, dtrain.Tensor):
        return torch.from_numpy(np.array(dtrain._backend.to_numpy(v._data)))
    if isinstance(v, dict):
        return {k: _to_torch(w) for k, w in v.items()}
    if isinstance(v, list):
        return [_to_torch(w) for w in v]
    return v


def _assert_same_structure(d, t, rtol=1e-5):
    assert list(d["param_groups"][0]) == list(t["param_groups"][0])
    assert d["param_groups"] == t["param_groups"]
    assert list(d["state"]) == list(t["state"])
    for i in t["state"]:
        assert list(d["state"][i]) == list(t["state"][i])
        for k, v in t["state"][i].items():
            w = d["state"][i][k]
            if not isinstance(v, torch.Tensor):
                assert not isinstance(w, dtrain.Tensor), k
                continue
            assert isinstance(w, dtrain.Tensor)
            assert w.dtype.name == str(v.dtype).replace("torch.", ""), k
            assert tuple(w.shape) == tuple(v.shape), k
            scale = float(np.abs(v.numpy()).max()) if v.numel() else 0.0
            np.testing.assert_allclose(_np(w), v.numpy(), rtol=rtol, atol=rtol * scale + 1e-6, err_msg=k)


@pytest.mark.parametrize("name,kw", CASES, ids=_ids)
def test_state_dict_structure_and_cross_loading(name, kw, device):
    _check_state_dict_cross_loading(name, kw, device)


def _check_state_dict_cross_loading(name, kw, device):
    x, y, init = _problem(np.float32)
    tp, dp = _params(torch, init), _params(dtrain, init, device)
    groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], "lr": kw["lr"] / 2}]
    topt, dopt = getattr(torch.optim, name)(groups(tp), **kw), getattr(dtrain.optim, name)(groups(dp), **kw)
    _assert_same_structure(dopt.state_dict(), topt.state_dict())
    _run_steps(torch, topt, tp, x, y, 5)
    _run_steps(dtrain, dopt, dp, x, y, 5)
    _assert_same_structure(dopt.state_dict(), topt.state_dict())

    # torch -> dtrain mid-run: a fresh dtrain optimizer continues exactly like torch's
    dp2 = _params(dtrain, [t.detach().numpy() for t in tp], device)
    dopt2 = getattr(dtrain.optim, name)(groups(dp2), **kw)
    dopt2.load_state_dict(_to_dtrain(topt.state_dict(), device))
    # dtrain -> torch mid-run
    tp2 = [torch.tensor(_np(p), requires_grad=True) for p in dp]
    topt2 = getattr(torch.optim, name)(groups(tp2), **kw)
    topt2.load_state_dict(_to_torch(dopt.state_dict()))
    t = _run_steps(torch, topt, tp, x, y, 10)
    d2 = _run_steps(dtrain, dopt2, dp2, x, y, 10)
    t2 = _run_steps(torch, topt2, tp2, x, y, 10)
    for a, b, e in zip(d2[-1], t2[-1], t[-1]):
        np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(b, e, rtol=2e-5, atol=2e-6)
    _assert_same_structure(dopt2.state_dict(), topt.state_dict())


def test_state_dict_roundtrip_within_dtrain_is_exact(device):
    x, y, init = _problem(np.float32)
    a, b = _params(dtrain, init, device), _params(dtrain, init, device)
    oa, ob = dtrain.optim.AdamW(a, lr=0.01), dtrain.optim.AdamW(b, lr=0.01)
    _run_steps(dtrain, oa, a, x, y, 4)
    _run_steps(dtrain, ob, b, x, y, 4)
    c = _params(dtrain, [_np(p) for p in a], device)
    oc = dtrain.optim.AdamW(c, lr=0.01)
    import copy
    oc.load_state_dict(copy.deepcopy(oa.state_dict()))
    ra, rc = _run_steps(dtrain, oa, a, x, y, 5), _run_steps(dtrain, oc, c, x, y, 5)
    for pa, pc in zip(ra[-1], rc[-1]):
        np.testing.assert_array_equal(pa, pc)
    assert oc.state[c[0]]["step"].dtype is dtrain.float32 and oc.state[c[0]]["step"].shape == ()


def _torch_error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return type(e), str(e)
    return None


@pytest.mark.parametrize("name,kw", [
    ("SGD", dict(lr=-1)), ("SGD", dict(lr=0.1, momentum=-0.5)), ("SGD", dict(lr=0.1, weight_decay=-1)),
    ("SGD", dict(lr=0.1, nesterov=True)), ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
    ("Adam", dict(lr=-1)), ("Adam", dict(eps=-1.0)), ("Adam", dict(betas=(1.0, 0.9))),
    ("Adam", dict(betas=(0.9, -0.1))), ("Adam", dict(weight_decay=-0.1)), ("AdamW", dict(lr=-0.5)),
    ("RMSprop", dict(lr=-1)), ("RMSprop", dict(alpha=-1)), ("RMSprop", dict(momentum=-1)),
    ("RMSprop", dict(eps=-1)), ("RMSprop", dict(weight_decay=-1)),
    ("Adagrad", dict(lr=-1)), ("Adagrad", dict(lr_decay=-1)), ("Adagrad", dict(initial_accumulator_value=-1)),
    ("Adagrad", dict(eps=-1)), ("Adagrad", dict(weight_decay=-1)),
    ("Adadelta", dict(lr=-1)), ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(eps=-1)),
    ("Adadelta", dict(weight_decay=-1)),
])
def test_invalid_hyperparameters_raise_like_torch(name, kw):
    te = _torch_error(lambda: getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kw))
    de = _torch_error(lambda: getattr(dtrain.optim, name)([dtrain.zeros(2, requires_grad=True)], **kw))
    assert te is not None and de == te


@pytest.mark.parametrize("make", [
    lambda m: [],
    lambda m: m.zeros(3, requires_grad=True),
    lambda m: [{"params": {m.zeros(3, requires_grad=True)}}],
    lambda m: [m.zeros(3, requires_grad=True) * 2],
    lambda m: [1.0],
    lambda m: (lambda p: [{"params": [p]}, {"params": [p]}])(m.zeros(3, requires_grad=True)),
    lambda m: [{"params": [("a", m.zeros(3, requires_grad=True))]}, {"params": [m.zeros(3, requires_grad=True)]}],
])
def test_param_group_errors_like_torch(make):
    te = _torch_error(lambda: torch.optim.SGD(make(torch), lr=0.1))
    de = _torch_error(lambda: dtrain.optim.SGD(make(dtrain), lr=0.1))
    assert te is not None
    assert de[0] is te[0]
    if te[0] is not TypeError:  # TypeError messages name the framework's own type names
        assert de == te


def test_add_param_group_fills_defaults_and_steps_it(device):
    w = dtrain.nn.Parameter(dtrain.ones(3, device=device))
    v = dtrain.nn.Parameter(dtrain.ones(2, device=device))
    tw, tv = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    opt, topt = dtrain.optim.SGD([w], lr=0.1, momentum=0.9), torch.optim.SGD([tw], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": v, "lr": 0.5})
    topt.add_param_group({"params": tv, "lr": 0.5})
    assert [{k: x for k, x in g.items() if k != "params"} for g in opt.param_groups] == \
        [{k: x for k, x in g.items() if k != "params"} for g in topt.param_groups]
    for _ in range(3):
        for m, a, b, o in ((dtrain, w, v, opt), (torch, tw, tv, topt)):
            o.zero_grad()
            ((a * a).sum() + (b * a[:2]).sum()).backward()
            o.step()
    np.testing.assert_allclose(_np(w), _np(tw), rtol=1e-6)
    np.testing.assert_allclose(_np(v), _np(tv), rtol=1e-6)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [w]})


def test_closure_and_zero_grad_semantics(device):
    w = dtrain.nn.Parameter(dtrain.tensor([1.0, -2.0], device=device))
    opt = dtrain.optim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss) == 5.0
    np.testing.assert_allclose(_np(w), [0.8, -1.6], rtol=1e-6)
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and not _np(w.grad).any()
    opt.zero_grad()
    assert w.grad is None
    assert opt.state[w] == {} and isinstance(opt.state, type(torch.optim.SGD([torch.zeros(1)]).state))


def test_mixed_dtypes_in_one_group_match_torch(device):
    rng = np.random.default_rng(3)
    arrs = [rng.standard_normal(4), rng.standard_normal(3).astype(np.float32), rng.standard_normal(2),
            rng.standard_normal(5).astype(np.float32)]
    tp, dp = _params(torch, arrs), _params(dtrain, arrs, device)
    topt, dopt = torch.optim.Adam(tp, lr=0.05), dtrain.optim.Adam(dp, lr=0.05)
    for m, ps, opt in ((torch, tp, topt), (dtrain, dp, dopt)):
        for _ in range(20):
            opt.zero_grad()
            sum((p * p * (i + 1)).sum().double() if p.dtype == m.float32 else (p * p * (i + 1)).sum()
                for i, p in enumerate(ps)).backward()
            opt.step()
    for a, e in zip(dp, tp):
        np.testing.assert_allclose(_np(a), _np(e), rtol=1e-5, atol=1e-6)
        assert a.dtype.name == str(e.dtype).replace("torch.", "")


def test_functional_forms_are_pure_array_functions():
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(5), rng.standard_normal(5)
    tp = torch.tensor(p.copy())
    buf = dtrain.optim.sgd.sgd(p, g, None, lr=0.1, weight_decay=0.0, momentum=0.9, dampening=0.0,
                               nesterov=False, maximize=False)
    torch.optim._functional.sgd([tp], [torch.tensor(g)], [None], lr=0.1, weight_decay=0.0, momentum=0.9,
                                dampening=0.0, nesterov=False, maximize=False)
    np.testing.assert_allclose(p, tp.numpy(), rtol=1e-14)
    np.testing.assert_array_equal(buf, g)
    m, v = np.zeros(5), np.zeros(5)
    tm, tv, ts = torch.zeros(5), torch.zeros(5), torch.tensor(0.0)
    tm, tv = tm.double(), tv.double()
    for step in (1, 2):
        dtrain.optim._functional.adam(p, g, m, v, None, step=step, amsgrad=False, beta1=0.9, beta2=0.999, lr=0.1,
                                      weight_decay=0.0, eps=1e-8, maximize=False)
        torch.optim._functional.adam([tp], [torch.tensor(g)], [tm], [tv], [], [ts], amsgrad=False, beta1=0.9,
                                     beta2=0.999, lr=0.1, weight_decay=0.0, eps=1e-8, maximize=False)
    np.testing.assert_allclose(p, tp.numpy(), rtol=1e-14)
    np.testing.assert_allclose(v, tv.numpy(), rtol=1e-14)


def test_optimizer_repr_like_torch():
    d = dtrain.optim.SGD([dtrain.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    t = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    assert repr(d) == repr(t)


def _mlp(m, weights):
    net = m.nn.Sequential(m.nn.Linear(6, 16, dtype=m.float64), m.nn.Tanh(), m.nn.Linear(16, 4, dtype=m.float64))
    with m.no_grad():
        for p, w in zip(net.parameters(), weights):
            p.copy_(m.tensor(w))
    return net


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
                                     ("AdamW", dict(lr=0.01)), ("RMSprop", dict(lr=0.01, centered=True))])
@pytest.mark.parametrize("set_to_none", [True, False])
def test_module_training_matches_torch_in_place(name, kw, set_to_none, device):
    rng = np.random.default_rng(5)
    weights = [rng.standard_normal(s) * 0.3 for s in [(16, 6), (16,), (4, 16), (4,)]]
    x, y = rng.standard_normal((32, 6)), rng.standard_normal((32, 4))
    tnet, dnet = _mlp(torch, weights), _mlp(dtrain, weights).to(device)
    topt = getattr(torch.optim, name)(tnet.parameters(), **kw)
    dopt = getattr(dtrain.optim, name)(dnet.parameters(), **kw)
    ptrs = [p.data_ptr() for p in dnet.parameters()]
    for m, net, opt in ((torch, tnet, topt), (dtrain, dnet, dopt)):
        xs, ys = m.tensor(x, device=None if m is torch else device), m.tensor(y, device=None if m is torch else device)
        for _ in range(25):
            opt.zero_grad(set_to_none=set_to_none)
            ((net(xs) - ys) ** 2).mean().backward()
            opt.step()
    ps = list(dnet.parameters())
    assert [p.data_ptr() for p in ps] == ptrs  # stepped in place: the module's storage never moved
    state = dopt.state[ps[0]]
    k = next(k for k in state if k != "step")
    assert all(dopt.state[p][k]._data.base is state[k]._data.base for p in ps)  # the state in one flat buffer
    for (k, a), (_, e) in zip(dnet.state_dict().items(), tnet.state_dict().items()):
        np.testing.assert_allclose(_np(a), _np(e), rtol=1e-10, atol=1e-12, err_msg=k)
    for a, e in zip(dnet(dtrain.tensor(x, device=device)).detach().cpu().numpy(),
                    tnet(torch.tensor(x)).detach().numpy()):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


def test_frozen_parameter_keeps_the_rest_on_the_flat_path(device):
    x, y, init = _problem(np.float32)
    tp, dp = _params(torch, init), _params(dtrain, init, device)
    tp[2].requires_grad_(False)
    dp[2].requires_grad_(False)
    frozen_ptr = dp[2].data_ptr()
    t = _run_steps(torch, torch.optim.SGD(tp, lr=0.05, momentum=0.9), tp, x, y, 20)
    d_opt = dtrain.optim.SGD(dp, lr=0.05, momentum=0.9)
    d = _run_steps(dtrain, d_opt, dp, x, y, 20)
    for a, e in zip(d[-1], t[-1]):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    assert dp[2].data_ptr() == frozen_ptr
    # the momentum buffers of the other three are views of one flat buffer (no state for the frozen one)
    opt_state = d_opt.state
    base = opt_state[dp[0]]["momentum_buffer"]._data.base
    assert base is not None and all(opt_state[dp[i]]["momentum_buffer"]._data.base is base for i in (1, 3))
    assert dp[2] not in opt_state


def test_state_held_in_from_numpy_tensors_steps_on():
    """State tensors over NumPy memory (a checkpoint read through from_numpy or a mapped file) are bound to the
    optimizer's flat buffers like any others."""
    def run(step_through_numpy):
        ps = [dtrain.nn.Parameter(dtrain.tensor([1.0, -2.0, 3.0], dtype=dtrain.float64)),
              dtrain.nn.Parameter(dtrain.tensor([0.5, 4.0], dtype=dtrain.float64))]
        opt = dtrain.optim.Adam(ps, lr=0.1)
        for i in range(3):
            for p in ps:
                p.grad = dtrain.full_like(p, 0.5 * (i + 1))
            if i == 1 and step_through_numpy:
                flat = np.concatenate([opt.state[p]["exp_avg"].numpy() for p in ps])
                views = [flat[:3], flat[3:]]  # one array's views, as a loader of a flat record hands them out
                for p, v in zip(ps, views):  # (from_numpy: each a storage over that memory)
                    opt.state[p]["exp_avg"] = dtrain.from_numpy(v)
            opt.step()
        return np.concatenate([p.detach().numpy() for p in ps])

    np.testing.assert_array_equal(run(True), run(False))
