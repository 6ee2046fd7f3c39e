"""Reductions against torch: values, dtypes, gradients, dims, keepdim, empty and 0-d inputs, errors."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain

DIMS = [None, 0, 1, -1, (0, 2), (-1, 0), ()]
RED = {
    "sum": lambda m, x, d, k: m.sum(x, d, keepdim=k) if d is not None else x.sum(),
    "mean": lambda m, x, d, k: x.mean(d, keepdim=k) if d is not None else m.mean(x),
    "amax": lambda m, x, d, k: m.amax(x, d, keepdim=k) if d is not None else m.amax(x),
    "amin": lambda m, x, d, k: x.amin(d, keepdim=k) if d is not None else x.amin(),
    "var": lambda m, x, d, k: x.var(d, keepdim=k) if d is not None else x.var(),
    "std": lambda m, x, d, k: m.std(x, d, keepdim=k) if d is not None else m.std(x),
    "var_c0": lambda m, x, d, k: m.var(x, d, keepdim=k, correction=0),
    "std_unbiased": lambda m, x, d, k: m.std(x, d, False, k),
    "norm": lambda m, x, d, k: x.norm(dim=d, keepdim=k),
    "norm1": lambda m, x, d, k: m.norm(x, 1, d, k), "norm3": lambda m, x, d, k: m.norm(x, 3, d, k),
    "norminf": lambda m, x, d, k: m.norm(x, float("inf"), d, k),
    "logsumexp": lambda m, x, d, k: m.logsumexp(x, d if d is not None else tuple(range(x.ndim)), keepdim=k),
    "nansum": lambda m, x, d, k: m.nansum(x, d, keepdim=k),
}


@pytest.mark.parametrize("op", RED)
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_reduce(device, op, dim, keepdim):
    if dim == () and op in ("logsumexp", "var", "std", "var_c0", "std_unbiased"):
        pytest.skip("torch: an empty dim list reduces everything forward but not in var's backward")
    check(lambda m, x: RED[op](m, x, dim, keepdim), (2, 3, 4), device=device)


@pytest.mark.parametrize("op", RED)
def test_reduce_noncontiguous_float32(device, op):
    check(lambda m, x: RED[op](m, x.permute(2, 0, 1)[:, ::2], 1, False), (3, 4, 5), device=device,
          dtype=np.float32, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "var", "std", "norm", "logsumexp", "prod", "max", "argmax"])
def test_reduce_zero_dim(device, op):
    fns = dict(prod=lambda m, x: (m.prod(x), x.prod(0)), max=lambda m, x: (m.max(x), x.max(0), x.max(-1, True)),
               argmax=lambda m, x: (m.argmax(x), x.argmax(0)))
    fn = fns.get(op, lambda m, x: (RED[op](m, x, None, False), RED[op](m, x, 0, False), RED[op](m, x, -1, True)))
    check(fn, np.array(1.5), device=device)


@pytest.mark.parametrize("op", ["sum", "mean", "var", "norm", "logsumexp", "prod"])
def test_reduce_empty(device, op):
    fns = dict(prod=lambda m, x: (x.prod(), x.prod(0), x.prod(1)))
    fn = fns.get(op, lambda m, x: (RED[op](m, x, 0, False), RED[op](m, x, 1, True)))
    check(fn, np.zeros((0, 3)), device=device)


def test_empty_max_raises(device):
    check_raises(lambda m, x: x.max(), np.zeros((0, 3)), device=device)
    check_raises(lambda m, x: x.amax(0), np.zeros((0, 3)), device=device)
    check_raises(lambda m, x: x.argmax(), np.zeros((0, 3)), device=device)
    check(lambda m, x: (x.amax(1), x.max(1)), np.zeros((0, 3)), device=device)


@pytest.mark.parametrize("dt", [np.int64, np.int32, np.uint8, np.bool_])
def test_reduce_int_dtypes(device, dt):
    x = (np.arange(24).reshape(2, 3, 4) % 5).astype(dt)
    check(lambda m, x: (x.sum(), m.sum(x, 1), x.prod(), x.prod(2), x.cumsum(0), x.cumprod(1), x.amax(), x.amin(1),
                        m.max(x), x.max(1), x.all(), x.any(1), m.count_nonzero(x, 0), x.sum(dtype=m.float64),
                        m.mean(x, dtype=m.float64), m.logsumexp(x, 1)), x, device=device)
    if dt == np.bool_:
        check_raises(lambda m, x: x.argmax(), x, device=device, match="does not support bool")
    else:
        check(lambda m, x: (x.argmax(), x.argmin(2)), x, device=device)
    check_raises(lambda m, x: x.mean(), x, device=device, match="mean(): could not infer output dtype")
    check_raises(lambda m, x: x.var(), x, device=device, match="std and var only support floating point")
    check_raises(lambda m, x: x.norm(), x, device=device, match="Expected a floating point or complex tensor")


def test_sum_dtype_float32(device):
    check(lambda m, x: (x.sum(dtype=m.float64), x.sum(1, dtype=m.float64), m.sum(x.double(), 0)), (3, 4),
          device=device, dtype=np.float32)


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("fn", ["max", "min"])
def test_max_min_dim(device, dim, keepdim, fn):
    check(lambda m, x: getattr(m, fn)(x, dim, keepdim), (3, 4), device=device)
    check(lambda m, x: tuple(getattr(x, fn)(dim=dim, keepdim=keepdim)), (3, 4), device=device)


def test_max_named_tuple(device):
    import torch
    for m in (torch, dtrain):
        x = m.tensor([[1.0, 5.0], [3.0, 2.0]])
        r = x.max(1)
        assert r.values.tolist() == [5.0, 3.0] and r.indices.tolist() == [1, 0]
        v, i = m.min(x, 0)
        assert v.tolist() == [1.0, 2.0] and i.tolist() == [0, 1]
    assert repr(dtrain.tensor([[1.0, 5.0]]).max(1)) == repr(torch.tensor([[1.0, 5.0]]).max(1))
    assert repr(dtrain.tensor([[1, 5]]).min(dim=1, keepdim=True)) == repr(torch.tensor([[1, 5]]).min(dim=1, keepdim=True))
    assert type(dtrain.tensor([1.0]).max(0)).__name__ == "max"


def test_max_ties_and_nan(device):
    x = np.array([[1.0, 3.0, 3.0], [2.0, np.nan, 0.0], [5.0, 5.0, 5.0]])
    check(lambda m, x: (x.max(1), x.min(1), x.argmax(1), x.amax(1), m.max(x[0]), m.amax(x[2])), x, device=device)
    y = np.array([[1.0, 3.0, 3.0], [4.0, 4.0, 0.0]])
    check(lambda m, x: (x.amax(), x.amin(1), m.max(x), x.max(0), x.argmin(0)), y, device=device)


@pytest.mark.parametrize("fn", ["argmax", "argmin"])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (None, True), (0, False), (1, True), (-1, False)])
def test_argmax(device, fn, dim, keepdim):
    check(lambda m, x: getattr(m, fn)(x, dim, keepdim), (3, 4), device=device)


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_prod(device, dim, keepdim):
    x = np.random.default_rng(6).standard_normal((3, 4))
    fn = lambda m, x: m.prod(x) if dim is None else x.prod(dim, keepdim=keepdim)
    check(fn, x, device=device)
    x[1, 2] = 0.0
    check(fn, x, device=device)
    x[1, 3] = 0.0
    check(fn, x, device=device)


@pytest.mark.parametrize("fn", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumulative(device, fn, dim):
    x = np.random.default_rng(7).standard_normal((3, 4))
    check(lambda m, x: (getattr(m, fn)(x, dim), getattr(x, fn)(dim), getattr(x.t(), fn)(dim)), x, device=device)
    x[1, 1] = 0.0
    check(lambda m, x: getattr(m, fn)(x, dim), x, device=device)
    check(lambda m, x: getattr(m, fn)(x, dim, dtype=m.float32), x, device=device)


def test_cumulative_edge(device):
    check(lambda m, x: (m.cumsum(x, 0), m.cumprod(x, -1)), np.array(2.0), device=device)
    check(lambda m, x: (m.cumsum(x, 1), m.cumprod(x, 0)), np.zeros((0, 3)), device=device)
    check(lambda m, x: (x.clone().cumsum_(0),), (3,), device=device)


@pytest.mark.parametrize("correction", [0, 1, 2])
@pytest.mark.parametrize("dim", [None, 1, (0, 2)])
def test_var_std_correction(device, correction, dim):
    check(lambda m, x: (m.var(x, dim, correction=correction), x.std(dim, correction=correction, keepdim=True),
                        m.var_mean(x, dim, correction=correction), m.std_mean(x, dim, correction=correction)),
          (2, 3, 4), device=device)


def test_var_unbiased_forms(device):
    check(lambda m, x: (x.var(False), x.var(True), x.std(1, False), x.var(1, unbiased=False, keepdim=True),
                        m.std(x, unbiased=False), m.var(x, 0, True)), (3, 4), device=device)
    check(lambda m, x: (x.var(), x.std(0)), (1, 3), device=device)  # n - correction = 0: inf/nan as torch


def test_var_int_input(device):
    check(lambda m, x: (x.float().var(), x.double().std(0)), np.arange(12).reshape(3, 4), device=device)


@pytest.mark.parametrize("p", ["fro", 2, 1, 3, 0.5, float("inf"), float("-inf"), 0])
def test_norm_p(device, p):
    check(lambda m, x: (m.norm(x, p), x.norm(p, dim=1), x.norm(p, 0, True)), (3, 4), device=device)


def test_norm_zero_grad(device):
    check(lambda m, x: (x * 0).norm(), (3,), device=device)
    check(lambda m, x: m.norm(x, dim=1), np.array([[0.0, 0.0], [3.0, 4.0]]), device=device)


def test_logsumexp_stable(device):
    x = np.array([[1000.0, 1000.0], [-1000.0, -np.inf], [-np.inf, -np.inf]])
    check(lambda m, x: (m.logsumexp(x, 1), m.logsumexp(x, 0, keepdim=True)), x, device=device)
    check(lambda m, x: m.logsumexp(x, 1), np.array([[np.inf, 1.0]]), device=device, grad=False)
    check(lambda m, x: m.logsumexp(x.float(), 1), np.arange(6).reshape(2, 3), device=device)


def test_logsumexp_int(device):
    check(lambda m, x: m.logsumexp(x, 1), np.arange(6).reshape(2, 3), device=device)


@pytest.mark.parametrize("fn", ["all", "any"])
@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1)])
def test_all_any(device, fn, dim):
    x = np.array([[0, 1, 2], [3, 4, 5]])
    f = lambda m, x: (getattr(m, fn)(x) if dim is None else getattr(x, fn)(dim), getattr(x > 1, fn)(),
                      getattr(x.float(), fn)())
    check(f, x, device=device)
    check(lambda m, x: (getattr(x, fn)(1, keepdim=True), getattr(m, fn)(x, 0)), x, device=device)
    check(lambda m, x: (getattr(x, fn)(), getattr(x, fn)(0)), np.zeros((0, 2)), device=device)


def test_all_any_uint8(device):
    x = np.array([[0, 1], [3, 0]], dtype=np.uint8)
    check(lambda m, x: (x.all(), x.any(1)), x, device=device)


DIM_ERRORS = {
    "sum": lambda m, x: x.sum(2), "mean": lambda m, x: x.mean(-3), "max": lambda m, x: x.max(2),
    "argmax": lambda m, x: x.argmax(5), "var": lambda m, x: x.var(3), "cumsum": lambda m, x: x.cumsum(2),
    "logsumexp": lambda m, x: x.logsumexp(2), "amax": lambda m, x: x.amax((0, 2)), "prod": lambda m, x: x.prod(2),
    "softmax": lambda m, x: x.softmax(2), "all": lambda m, x: x.all(2), "norm": lambda m, x: x.norm(dim=2),
    "dup": lambda m, x: x.sum((0, 0)), "zero-d": lambda m, x: x.sum().sum(1),
}


@pytest.mark.parametrize("op", DIM_ERRORS)
def test_dim_errors(device, op):
    e, te = check_raises(DIM_ERRORS[op], (2, 3), device=device)
    if "Dimension out of range" in str(te):
        assert str(e) == str(te)


def test_reduce_out(device):
    def fn(m, x):
        x = x.detach()
        o1, o2 = m.empty(0, dtype=m.float64), m.empty(0, dtype=m.float64)
        assert m.sum(x, 1, out=o1) is o1 and m.mean(x, 0, out=o2) is o2
        return o1, o2, m.amax(x, 1, out=m.empty(3, dtype=m.float64)), m.logsumexp(x, 1, out=m.empty(3, dtype=m.float64))
    check(fn, (3, 4), device=device, grad=False)


def test_aminmax(device):
    check(lambda m, x: (tuple(m.aminmax(x)), tuple(m.aminmax(x, dim=1, keepdim=True))), (3, 4), device=device,
          grad=False)


def test_gradcheck():
    from dtrain.autograd import gradcheck
    x = dtrain.tensor(np.random.default_rng(8).standard_normal((3, 4)), requires_grad=True)
    for f in (lambda a: a.sum(1), lambda a: a.mean((0, 1)), lambda a: a.var(0), lambda a: a.std(1, correction=0),
              lambda a: a.norm(dim=1), lambda a: dtrain.logsumexp(a, 1), lambda a: a.cumsum(1), lambda a: a.prod(1),
              lambda a: a.cumprod(0), lambda a: a.max(1).values, lambda a: a.amin(0), lambda a: a.norm(3)):
        assert gradcheck(f, (x,))


@pytest.mark.parametrize("dim", [None, 1])
def test_prod_gradient_of_complex_input_is_conjugated(device, dim):
    """torch's convention for complex inputs: grad = g * conj(d prod / d x), with and without zeros."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    w = rng.standard_normal(3 if dim is not None else ()) + 1j * rng.standard_normal(3 if dim is not None else ())
    for zero in (False, True):
        if zero:
            x[1, 2] = 0.0
        grads = []
        for m in (dtrain, torch):
            t = m.tensor(x, requires_grad=True) if m is torch else dtrain.tensor(x, requires_grad=True, device=device)
            p = m.prod(t) if dim is None else t.prod(dim)
            wt = m.tensor(w) if m is torch else dtrain.tensor(w, device=device)
            (p * wt).real.sum().backward()
            grads.append(t.grad.cpu().numpy() if m is dtrain else t.grad.numpy())
        np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12)
