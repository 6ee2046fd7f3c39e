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
