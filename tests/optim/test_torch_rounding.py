"""Bit-for-bit agreement with torch's CPU arithmetic where torch fuses a multiply and an add.

torch computes `add(x, alpha=a)` (so `sub`, `add_` and every optimizer's `param.add_(update, alpha=-lr)`),
`lerp` and the weight-decay term `grad.add(param, alpha=wd)` as fused multiply-adds, rounded once. These
tests demand equal bits, not closeness: a two-step multiply-then-add differs from torch in the last bit of
a few percent of the elements, which they catch."""
import numpy as np
import pytest
import torch

import dtrain

DTYPES = [np.float32, np.float64]


def _arrays(dtype, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((1001,), (1001,)), ((7, 33), (33,)), ((33,), (7, 33)), ((), (5,))])
@pytest.mark.parametrize("alpha", [0.3, -0.0123, 2.5])
def test_add_and_sub_with_alpha_round_as_torch(dtype, shapes, alpha):
    a, b = _arrays(dtype, *shapes)
    for name in ("add", "sub"):
        want = getattr(torch, name)(torch.from_numpy(a), torch.from_numpy(b), alpha=alpha).numpy()
        got = getattr(dtrain, name)(dtrain.from_numpy(a), dtrain.from_numpy(b), alpha=alpha).numpy()
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    if a.shape == np.broadcast_shapes(a.shape, b.shape):
        t, d = torch.from_numpy(a.copy()), dtrain.from_numpy(a.copy())
        t.add_(torch.from_numpy(b), alpha=alpha)
        d.add_(dtrain.from_numpy(b), alpha=alpha)
        np.testing.assert_array_equal(d.numpy(), t.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight", [0.1, -0.2, 0.4999, 0.5, 0.9, 1.0, -0.5, 1.7])
def test_lerp_rounds_as_torch_and_is_exact_at_the_ends(dtype, weight):
    a, b = _arrays(dtype, (513,), (513,), seed=1)
    want = torch.from_numpy(a).lerp(torch.from_numpy(b), weight).numpy()
    got = dtrain.from_numpy(a).lerp(dtrain.from_numpy(b), weight).numpy()
    np.testing.assert_array_equal(got, want)
    if weight == 1.0:
        np.testing.assert_array_equal(got, b)  # a + (b - a) would not give b back
    t, d = torch.from_numpy(a.copy()), dtrain.from_numpy(a.copy())
    t.lerp_(torch.from_numpy(b), weight)
    d.lerp_(dtrain.from_numpy(b), weight)
    np.testing.assert_array_equal(d.numpy(), t.numpy())


def test_lerp_gradients_and_tensor_weights_match_torch():
    a, b, w = _arrays(np.float64, (3, 4), (4,), (3, 4), seed=2)
    for weight in (0.7, "tensor"):
        grads = {}
        for fw in (torch, dtrain):
            x, y = fw.tensor(a, requires_grad=True), fw.tensor(b, requires_grad=True)
            wt = fw.tensor(w) if weight == "tensor" else weight
            (x.lerp(y, wt) ** 2).sum().backward()
            grads[fw.__name__] = (x.grad.numpy(), y.grad.numpy())
        for g_d, g_t in zip(grads["dtrain"], grads["torch"]):
            np.testing.assert_allclose(g_d, g_t, rtol=1e-12, atol=1e-12)


SGD_CASES = [dict(lr=0.05), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, weight_decay=0.01),
             dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
             dict(lr=0.05, momentum=0.5, dampening=0.3), dict(lr=0.05, momentum=0.9, maximize=True, weight_decay=0.1),
             dict(lr=0.05, weight_decay=0.1, maximize=True)]


def _train(fw, name, kwargs, dtype, steps=6):
    rng = np.random.default_rng(0)
    shapes = [(64, 33), (33,), (7, 5, 3)]
    params = [fw.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]
    opt = getattr(fw.optim, name)(params, **kwargs)
    for _ in range(steps):
        for p in params:
            p.grad = fw.tensor(rng.standard_normal(tuple(p.shape)).astype(dtype))
        opt.step()
    return np.concatenate([p.detach().numpy().ravel() for p in params])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", SGD_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_sgd_steps_are_torchs_bits(dtype, kwargs):
    np.testing.assert_array_equal(_train(dtrain, "SGD", kwargs, dtype), _train(torch, "SGD", kwargs, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kwargs", [("ASGD", dict(lr=0.05)), ("ASGD", dict(lr=0.05, weight_decay=0.1))])
def test_asgd_steps_are_torchs_bits(dtype, name, kwargs):
    np.testing.assert_array_equal(_train(dtrain, name, kwargs, dtype), _train(torch, name, kwargs, dtype))


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.01)), ("AdamW", dict(lr=0.01)),
                                         ("Adam", dict(lr=0.01, weight_decay=0.1)), ("Adamax", dict(lr=0.01)),
                                         ("NAdam", dict(lr=0.01)), ("Adagrad", dict(lr=0.1)),
                                         ("RMSprop", dict(lr=0.01))])
def test_adaptive_steps_within_a_few_ulps_of_torch(name, kwargs):
    """Only `addcmul` (the squared-gradient average) is still rounded twice here; every other op of these
    rules is torch's to the bit, so after six steps the parameters agree to a few float32 ulps."""
    got, want = _train(dtrain, name, kwargs, np.float32), _train(torch, name, kwargs, np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_scipy_fallback_gives_the_same_bits(monkeypatch):
    """Where NumPy's own BLAS cannot be found, SciPy's axpy (in pieces that never wake its threads) is used."""
    from dtrain import _axpy
    monkeypatch.setattr(_axpy, "_NUMPY_AXPY", None)
    monkeypatch.setattr(_axpy, "_AXPY", _axpy._scipy_blas())
    for dtype in DTYPES:
        a, b = _arrays(dtype, (3 * _axpy._PIECE + 17,), (3 * _axpy._PIECE + 17,), seed=4)
        want = torch.from_numpy(a).add(torch.from_numpy(b), alpha=-0.37).numpy()
        np.testing.assert_array_equal(_axpy.add_scaled(a, b, -0.37), want)
        kwargs = SGD_CASES[3]
        np.testing.assert_array_equal(_train(dtrain, "SGD", kwargs, dtype), _train(torch, "SGD", kwargs, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("whole_blas", [True, False])
def test_sgd_momentum_through_whole_blas_calls_is_torchs(dtype, whole_blas, monkeypatch):
    # the flat path's SGD as whole BLAS calls (scal, axpy) shared out by BLAS's threads, or blocks on dtrain's
    # own threads: either way torch's bits, NaN and inf in the momentum buffer included; a parameter large
    # enough for OpenBLAS to thread each call
    from dtrain import _axpy, _parallel
    from dtrain.optim import _functional
    if not whole_blas:
        monkeypatch.setattr(_axpy, "_blas_threads", 1)
    monkeypatch.setattr(_parallel, "_threads", 2)
    calls = []
    real = _functional.sgd
    monkeypatch.setattr(_functional, "sgd", lambda *a, **k: calls.append(k["whole_blas"]) or real(*a, **k))
    w, b = _arrays(dtype, (1100, 1000), (37,), seed=2)
    w[0, :3] = [np.nan, np.inf, -np.inf]
    tp = [torch.nn.Parameter(torch.from_numpy(w.copy())), torch.nn.Parameter(torch.from_numpy(b.copy()))]
    dp = [dtrain.nn.Parameter(dtrain.from_numpy(w.copy())), dtrain.nn.Parameter(dtrain.from_numpy(b.copy()))]
    topt = torch.optim.SGD(tp, lr=0.05, momentum=0.9)
    dopt = dtrain.optim.SGD(dp, lr=0.05, momentum=0.9)
    for k in range(3):
        gw, gb = _arrays(dtype, (1100, 1000), (37,), seed=10 + k)
        for ps, mod in ((tp, torch), (dp, dtrain)):
            ps[0].grad, ps[1].grad = mod.from_numpy(gw.copy()), mod.from_numpy(gb.copy())
        topt.step()
        dopt.step()
        for t, d in zip(tp, dp):
            np.testing.assert_array_equal(d.detach().numpy(), t.detach().numpy())
    assert (True in calls) == (whole_blas and _axpy.blas_threads() > 1)


def test_scal_leaves_zero_and_non_finite_factors_to_numpy():
    from dtrain._axpy import scal_
    y = np.array([np.nan, 1.0, np.inf], np.float32)
    for alpha in (0.0, float("nan"), float("inf")):
        assert scal_(y.copy(), alpha) is False  # OpenBLAS's scal by 0 writes zeros over NaN
    assert scal_(y, 0.5) is True
    np.testing.assert_array_equal(y, [np.nan, 0.5, np.inf])
