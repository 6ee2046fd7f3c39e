"""The random fills and torch.poisson against torch: argument checks (torch's errors, not silent nonsense),
dtype rules, grad_fn, and the distribution each draws from (moments over many draws; dtrain's generator draws
other numbers than torch's for a seed, so values are compared by distribution, not one by one)."""
import numpy as np
import pytest
import torch

import dtrain

BAD = [
    ("exponential_ lambda < 0", lambda T: T.empty(3).exponential_(-1), RuntimeError, "expects lambda > 0.0"),
    ("exponential_ lambda 0", lambda T: T.empty(3).exponential_(0), RuntimeError, "expects lambda > 0.0"),
    ("geometric_ p > 1", lambda T: T.empty(3).geometric_(2), RuntimeError, r"expects p to be in \(0, 1\)"),
    ("geometric_ p 0", lambda T: T.empty(3).geometric_(0), RuntimeError, r"expects p to be in \(0, 1\)"),
    ("geometric_ p 1", lambda T: T.empty(3).geometric_(1), RuntimeError, r"expects p to be in \(0, 1\)"),
    ("geometric_ bool", lambda T: T.empty(3, dtype=T.bool).geometric_(0.5), NotImplementedError, "geometric_cpu"),
    ("log_normal_ std 0", lambda T: T.empty(3).log_normal_(1, 0), RuntimeError, "expects std > 0.0"),
    ("log_normal_ long", lambda T: T.empty(3, dtype=T.long).log_normal_(), NotImplementedError, "'Long'"),
    ("cauchy_ sigma < 0", lambda T: T.empty(3).cauchy_(0, -1), RuntimeError, "expects sigma > 0.0"),
    ("cauchy_ long", lambda T: T.empty(3, dtype=T.long).cauchy_(), RuntimeError,
     "continuous probability distribution. dtype must be a floating point but you specified long int"),
    ("cauchy_ complex", lambda T: T.empty(3, dtype=T.complex64).cauchy_(), RuntimeError,
     r"you specified c10::complex<float>"),
    ("exponential_ int", lambda T: T.empty(3, dtype=T.int32).exponential_(), RuntimeError,
     "you specified Int"),
    ("cauchy_ leaf", lambda T: T.zeros(3, requires_grad=True).cauchy_(), RuntimeError,
     "a leaf Variable that requires grad"),
    ("poisson negative", lambda T: T.poisson(T.tensor([-1.0, 2.0])), RuntimeError, "invalid Poisson rate"),
    ("poisson nan", lambda T: T.poisson(T.tensor([1.0, float("nan")])), RuntimeError, "invalid Poisson rate"),
    ("poisson long", lambda T: T.poisson(T.tensor([1, 2])), NotImplementedError, "\"poisson_cpu\" not implemented "
                                                                                 "for 'Long'"),
]


@pytest.mark.parametrize("name", [b[0] for b in BAD])
def test_bad_arguments_raise_as_in_torch(name):
    _, f, exc, match = next(b for b in BAD if b[0] == name)
    for T in (torch, dtrain):
        with pytest.raises(exc, match=match):
            f(T)


def test_geometric_of_an_integer_tensor_draws_counts():
    x = dtrain.empty(20000, dtype=dtrain.long).geometric_(0.25)
    assert x.dtype == dtrain.long and int(x.min()) >= 1
    assert abs(x.double().mean().item() - 4.0) < 0.15  # mean 1/p


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_cauchy_draws_from_the_distribution(dtype, device):
    x = dtrain.empty(200000, dtype=getattr(dtrain, dtype), device=device).cauchy_(1.5, 2.0)
    assert x.dtype == getattr(dtrain, dtype)
    q = np.quantile(x.double().cpu().numpy(), [0.25, 0.5, 0.75])
    np.testing.assert_allclose(q, [1.5 - 2.0, 1.5, 1.5 + 2.0], atol=0.05)  # median +- sigma are the quartiles
    y = dtrain.zeros(3, requires_grad=True, device=device).clone().cauchy_()
    assert y.grad_fn.name() == torch.zeros(3, requires_grad=True).clone().cauchy_().grad_fn.name()


def test_poisson_draws_counts_with_zero_gradient(device):
    rates = dtrain.tensor([0.0, 0.5, 3.0, 40.0], dtype=dtrain.float64, device=device).repeat(50000, 1).t()
    counts = dtrain.poisson(rates)
    assert counts.dtype == dtrain.float64 and counts.device == rates.device and counts.is_contiguous()
    c = counts.cpu().numpy()
    assert np.array_equal(c, np.round(c)) and c[0].max() == 0
    np.testing.assert_allclose(c.mean(1), [0.0, 0.5, 3.0, 40.0], rtol=0.02, atol=0.01)
    np.testing.assert_allclose(c.var(1), [0.0, 0.5, 3.0, 40.0], rtol=0.05, atol=0.01)
    r = dtrain.tensor([1.0, 2.0], requires_grad=True, device=device)
    out = dtrain.poisson(r)
    assert out.grad_fn.name() == "PoissonBackward0"
    out.sum().backward()
    assert r.grad.tolist() == [0.0, 0.0]
    assert dtrain.poisson(dtrain.tensor(3.0, device=device)).shape == () and \
        dtrain.poisson(dtrain.zeros(0, device=device)).shape == (0,)


def test_poisson_follows_its_generator():
    g = dtrain.Generator().manual_seed(7)
    a = dtrain.poisson(dtrain.full((100,), 5.0), g)
    g.manual_seed(7)
    b = dtrain.poisson(dtrain.full((100,), 5.0), generator=g)
    c = dtrain.poisson(dtrain.full((100,), 5.0), generator=g)
    assert dtrain.equal(a, b) and not dtrain.equal(b, c)
