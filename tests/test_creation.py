"""Factory functions against torch: values, dtype inference, devices, requires_grad; RNG reproducibility."""
import numpy as np
import pytest
import torch
from helpers import assert_close

import dtrain


def same(a, e):
    assert isinstance(a, dtrain.Tensor)
    assert str(a.dtype) == str(e.dtype), (a.dtype, e.dtype)
    assert tuple(a.shape) == tuple(e.shape)
    assert a.requires_grad == e.requires_grad
    assert_close(a, e, atol=0, rtol=0)


EXACT = [
    "m.tensor([1, 2])", "m.tensor([1, 2.])", "m.tensor(True)", "m.tensor([True, False])", "m.tensor(3)",
    "m.tensor(2.5)", "m.tensor([[1, 2], [3, 4]], dtype=m.float64)", "m.tensor([])", "m.tensor([[]])",
    "m.tensor(np.arange(3, dtype=np.int32))", "m.tensor(np.float32(1.5))", "m.tensor([np.int16(1)])",
    "m.tensor([1.5], dtype=m.int32)", "m.tensor([1 + 2j])", "m.tensor([[1, 2], [3, 4]]).to(m.uint8)",
    "m.tensor([m.tensor(1.5), m.tensor(2.5)])", "m.tensor((1, 2, 3))",
    "m.arange(5)", "m.arange(0., 1., .1)", "m.arange(1, 10, 3)", "m.arange(10, 0, -3)", "m.arange(0, 1, 0.3)",
    "m.arange(5, dtype=m.float64)", "m.arange(0.5, 5)", "m.arange(-1., 1., 0.25)", "m.arange(0)",
    "m.arange(1, 2.5, 0.5, dtype=m.float64)", "m.arange(0, 10, 3, dtype=m.int32)", "m.arange(3.0)",
    "m.arange(0, 1, 1 / 3)", "m.arange(-5, 5, 0.7)", "m.arange(-3.3, 3.3, 0.11)", "m.linspace(-1, 1, 100)",
    "m.linspace(0, 1, 5)", "m.linspace(-3, 7, 11)", "m.linspace(0, 1, 1)", "m.linspace(0, 1, 0)",
    "m.linspace(0, 1, 7, dtype=m.float64)", "m.linspace(2, 10, 5, dtype=m.int64)", "m.linspace(1, 0, 9)",
    "m.linspace(0.1, 0.9, 13)", "m.linspace(-5, 5, 7, dtype=m.int32)", "m.linspace(0.3, 17.1, 1000, dtype=m.int64)",
    "m.eye(3)", "m.eye(2, 4)", "m.eye(4, 2, dtype=m.int64)", "m.eye(0)", "m.eye(3, dtype=m.bool)",
    "m.full((2,), 1)", "m.full((2, 3), 1.5)", "m.full((2,), True)", "m.full((), 7)", "m.full([2], 2, dtype=m.float64)",
    "m.full((3,), -1.0, dtype=m.float16)",
    "m.zeros(2, 3)", "m.zeros((2, 3))", "m.zeros([2, 3], dtype=m.int32)", "m.zeros(())", "m.zeros(0, 2)",
    "m.ones(3)", "m.ones(2, 2, dtype=m.bool)", "m.ones(m.Size([2, 1]))", "m.zeros(2, requires_grad=True)",
    "m.ones(1, dtype=m.float64, requires_grad=True)", "m.full((2,), 3.0, requires_grad=True)",
    "m.arange(3.0, requires_grad=True)", "m.linspace(0, 1, 3, requires_grad=True)",
    "m.tensor([1.0, 2.0], requires_grad=True)", "m.scalar_tensor(3)", "m.eye(2, requires_grad=True)",
]


@pytest.mark.parametrize("expr", EXACT)
def test_factory_matches_torch(expr):
    same(eval(expr, {"m": dtrain, "np": np}), eval(expr, {"m": torch, "np": np}))


LINSPACE = [(0.1, 0.9, 13), (-1, 1, 100), (0.3, 17.1, 1000), (2.5, -7.1, 77), (0, 1, 5), (-3, 7, 11), (0, 1, 33),
            (1e-3, 1, 257), (0, 1, 2), (5, 5, 3), (-2.5, 2.5, 4)]


@pytest.mark.parametrize("args", LINSPACE)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int32"])
def test_linspace_bitwise(args, dtype):
    a, e = dtrain.linspace(*args, dtype=getattr(dtrain, dtype)), torch.linspace(*args, dtype=getattr(torch, dtype))
    assert np.array_equal(a.numpy(), e.numpy())


@pytest.mark.parametrize("args", [(0, 2, 3), (-1, 1, 100), (0.3, 3.1, 17), (0, 2, 5, 2), (-2, 2, 33, 3.5), (0, 1, 1),
                                  (0.7, -1.3, 50), (0, 3, 0), (-5, 5, 1000)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_logspace_bitwise(args, dtype):
    kw = {"base": args[3]} if len(args) > 3 else {}
    a = dtrain.logspace(*args[:3], dtype=getattr(dtrain, dtype), **kw)
    e = torch.logspace(*args[:3], dtype=getattr(torch, dtype), **kw)
    assert np.array_equal(a.numpy(), e.numpy())


ARANGE = [(0, 50, 0.1), (-3.3, 3.3, 0.11), (0.5, 100.5, 0.37), (-1, 1, 0.013), (0, 1, 0.1), (0, 100000, 7.3),
          (0, 1e-3, 1e-5), (1, 4, 0.3), (-5, 5, 0.7), (10, -10, -0.3), (0, 30000, 0.999), (0, 7), (3,)]


@pytest.mark.parametrize("args", ARANGE)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_arange_bitwise(args, dtype):
    a, e = dtrain.arange(*args, dtype=getattr(dtrain, dtype)), torch.arange(*args, dtype=getattr(torch, dtype))
    assert np.array_equal(a.numpy(), e.numpy())


@pytest.mark.parametrize("args", [(-0.5, 5, 1), (0.5, 10.7, 2), (-7, 7, 3), (5, -5, -2.5), (0, 10, 1.9), (7, 0, -2)])
@pytest.mark.parametrize("dtype", ["int64", "int32", "int16"])
def test_arange_integer_bounds(args, dtype):
    a, e = dtrain.arange(*args, dtype=getattr(dtrain, dtype)), torch.arange(*args, dtype=getattr(torch, dtype))
    assert a.tolist() == e.tolist()


LIKE = ["m.zeros_like(x)", "m.ones_like(x)", "m.full_like(x, 2)", "m.full_like(x, 2.5)", "m.zeros_like(x, dtype=m.int32)",
        "m.ones_like(x, requires_grad=True)", "x.new_zeros(2, 3)", "x.new_ones((2,))", "x.new_full((2,), 3)",
        "x.new_tensor([1, 2])", "x.new_tensor([1.5])", "x.new_zeros(2, dtype=m.int64)", "x.new_empty(3).shape",
        "m.empty_like(x).shape", "m.empty(2, 3).shape", "m.empty_like(x).dtype", "x.new_ones(2, requires_grad=True)"]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32"])
@pytest.mark.parametrize("expr", LIKE)
def test_like_and_new(expr, dtype):
    x = np.arange(6).reshape(2, 3).astype(dtype)
    if "requires_grad" in expr and "int" in dtype:
        with pytest.raises(RuntimeError):
            eval(expr, {"m": torch, "x": torch.tensor(x)})
        with pytest.raises(RuntimeError):
            eval(expr, {"m": dtrain, "x": dtrain.tensor(x)})
        return
    a = eval(expr, {"m": dtrain, "x": dtrain.tensor(x)})
    e = eval(expr, {"m": torch, "x": torch.tensor(x)})
    if isinstance(e, torch.Tensor):
        same(a, e)
    else:
        assert str(a) == str(e)


def test_tensor_copies_and_as_tensor_shares():
    a = np.arange(3.0)
    t = dtrain.tensor(a)
    a[0] = 10
    assert t[0].item() == 0
    s = dtrain.as_tensor(a)
    a[1] = 20
    assert s[1].item() == 20 and s.dtype == dtrain.float64
    f = dtrain.from_numpy(a)
    f[2] = 30
    assert a[2] == 30
    assert dtrain.as_tensor(a, dtype=dtrain.float32).dtype == dtrain.float32
    x = dtrain.ones(2)
    assert dtrain.as_tensor(x) is x
    assert dtrain.tensor([1, 2], dtype=dtrain.float64).dtype == dtrain.float64


def test_from_numpy_noncontiguous_and_errors():
    a = np.arange(12.0).reshape(3, 4)[:, ::2]
    t = dtrain.from_numpy(a)
    assert t.stride() == torch.from_numpy(a).stride()
    with pytest.raises(TypeError):
        dtrain.from_numpy([1, 2])
    with pytest.raises(TypeError):
        torch.from_numpy(np.array(["a"]))
    with pytest.raises(TypeError):
        dtrain.from_numpy(np.array(["a"]))


def test_tensor_errors():
    for bad in (["a"], object(), "abc", [1, "a"], None, {1: 2}, [[1, 2], [3]]):
        with pytest.raises(Exception) as te:
            torch.tensor(bad)
        with pytest.raises(te.type):
            dtrain.tensor(bad)
    with pytest.raises(RuntimeError):
        dtrain.arange(0, 1, 0)
    with pytest.raises(RuntimeError):
        dtrain.arange(0, 10, -1)
    with pytest.raises(RuntimeError):
        dtrain.zeros(2, dtype=dtrain.int64, requires_grad=True)
    with pytest.raises(RuntimeError):
        torch.zeros(2, dtype=torch.int64, requires_grad=True)


def test_default_dtype():
    try:
        dtrain.set_default_dtype(dtrain.float64)
        torch.set_default_dtype(torch.float64)
        for e in ["m.tensor([1.5])", "m.arange(0., 1., .25)", "m.zeros(2)", "m.full((2,), 1.5)", "m.linspace(0, 1, 3)",
                  "m.tensor([1j])", "m.rand(2).dtype"]:
            a, t = eval(e, {"m": dtrain}), eval(e, {"m": torch})
            assert str(getattr(a, "dtype", a)) == str(getattr(t, "dtype", t)), e
    finally:
        dtrain.set_default_dtype(dtrain.float32)
        torch.set_default_dtype(torch.float32)


# ------------------------------------------------------------------------------------------------ random
RANDOM = ["m.rand(3, 4)", "m.randn(2, 5)", "m.randint(0, 10, (4,))", "m.randint(5, (2, 2))", "m.randperm(7)",
          "m.rand(3, dtype=m.float64)", "m.randn((2,), dtype=m.float16)", "m.randint(-3, 3, (5,), dtype=m.int32)",
          "m.rand_like(m.zeros(2, 2, dtype=m.float64))", "m.randn_like(m.zeros(3))",
          "m.randint_like(m.zeros(3), 4)", "m.randint_like(m.zeros(3), 2, 4)", "m.rand(2, requires_grad=True)",
          "m.randperm(4, dtype=m.float32)", "m.rand(0)", "m.randn(())"]


@pytest.mark.parametrize("expr", RANDOM)
def test_random_dtype_shape(expr):
    a, e = eval(expr, {"m": dtrain}), eval(expr, {"m": torch})
    assert str(a.dtype) == str(e.dtype) and tuple(a.shape) == tuple(e.shape) and a.requires_grad == e.requires_grad


def test_random_distributions():
    u = dtrain.rand(20000).numpy()
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    n = dtrain.randn(20000).numpy()
    assert abs(n.mean()) < 0.03 and abs(n.std() - 1) < 0.03
    r = dtrain.randint(3, 7, (10000,)).numpy()
    assert set(np.unique(r)) == {3, 4, 5, 6}
    p = dtrain.randperm(50).numpy()
    assert sorted(p.tolist()) == list(range(50))


def test_manual_seed_reproducible():
    dtrain.manual_seed(123)
    a = (dtrain.rand(5), dtrain.randn(5), dtrain.randint(0, 100, (5,)), dtrain.randperm(5))
    dtrain.manual_seed(123)
    b = (dtrain.rand(5), dtrain.randn(5), dtrain.randint(0, 100, (5,)), dtrain.randperm(5))
    for x, y in zip(a, b):
        assert np.array_equal(x.numpy(), y.numpy())
    dtrain.manual_seed(124)
    assert not np.array_equal(dtrain.rand(5).numpy(), a[0].numpy())
    assert dtrain.initial_seed() == 124


def test_generator_and_rng_state():
    g = dtrain.Generator().manual_seed(7)
    a = dtrain.rand(4, generator=g)
    g.manual_seed(7)
    assert np.array_equal(dtrain.rand(4, generator=g).numpy(), a.numpy())
    assert g.initial_seed() == 7 and g.device == dtrain.device("cpu")
    # a private generator leaves the default stream alone
    dtrain.manual_seed(0)
    x = dtrain.rand(3)
    dtrain.manual_seed(0)
    dtrain.rand(3, generator=g)
    assert np.array_equal(dtrain.rand(3).numpy(), x.numpy())
    state = dtrain.get_rng_state()
    assert state.dtype == dtrain.uint8 and state.ndim == 1
    y = dtrain.randn(6)
    dtrain.set_rng_state(state)
    assert np.array_equal(dtrain.randn(6).numpy(), y.numpy())
    gs = g.get_state()
    z = dtrain.rand(3, generator=g)
    g.set_state(gs)
    assert np.array_equal(dtrain.rand(3, generator=g).numpy(), z.numpy())


def test_inplace_random_fills_reproducible():
    for fill in (lambda t: t.uniform_(-2, 3), lambda t: t.normal_(1, 2), lambda t: t.bernoulli_(0.3)):
        dtrain.manual_seed(5)
        a = fill(dtrain.empty(1000, dtype=dtrain.float64)).numpy().copy()
        dtrain.manual_seed(5)
        b = fill(dtrain.empty(1000, dtype=dtrain.float64)).numpy()
        assert np.array_equal(a, b)
    u = dtrain.empty(20000).uniform_(-2, 3).numpy()
    assert -2 <= u.min() and u.max() < 3 and abs(u.mean() - 0.5) < 0.05
    n = dtrain.empty(20000).normal_(1, 2).numpy()
    assert abs(n.mean() - 1) < 0.06 and abs(n.std() - 2) < 0.06
    b = dtrain.empty(20000).bernoulli_(0.3).numpy()
    assert set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 0.3) < 0.02
    p = dtrain.full((4000,), 0.25)
    assert abs(dtrain.bernoulli(p).numpy().mean() - 0.25) < 0.03
    assert dtrain.empty(3, dtype=dtrain.float64).uniform_().dtype == dtrain.float64


def test_device_argument():
    for f in (lambda m: m.zeros(2, device="cpu"), lambda m: m.arange(3, device=m.device("cpu")),
              lambda m: m.tensor([1.0], device="cpu"), lambda m: m.rand(2, device="cpu")):
        assert str(f(dtrain).device) == str(f(torch).device)
    # torch's shapes and dtypes from its CPU tensors (its first meta arange/eye takes seconds to set up)
    for f in (lambda m, d: m.zeros(2, 3, device=d), lambda m, d: m.empty(4, dtype=m.int64, device=d),
              lambda m, d: m.ones(2, device=d), lambda m, d: m.rand(2, device=d),
              lambda m, d: m.arange(5, device=d), lambda m, d: m.full((2,), 1.0, device=d),
              lambda m, d: m.eye(3, device=d), lambda m, d: m.tensor([1.0, 2.0], device=d)):
        a, e = f(dtrain, "meta"), f(torch, "cpu")
        assert str(a.device) == "meta" and a.is_meta
        assert tuple(a.shape) == tuple(e.shape) and str(a.dtype) == str(e.dtype)


SAME_RESULT = [
    "m.arange(0.5, 2, 0.5, dtype=m.int64)", "m.arange(1, 0)", "m.arange(0, 1, 0)", "m.full(3, 1.0)", "m.eye(-1)",
    "m.eye(2, -1)", "m.ones(2, -3)", "m.rand(-2)", "m.full((-1,), 1.)", "m.tensor(2**63)", "m.tensor([1, 2**64])",
    "m.tensor(-2**63-1)", "m.tensor(2**63-1)", "m.randn(2, 3, dtype=m.int64)", "m.rand(2, dtype=m.int32)",
    "m.tensor(range(4))", "m.full((2,), m.tensor(2.5))", "m.tensor([[1, 2], [3]])", "m.full((2,), float('nan'))",
    "m.tensor(np.array(5))", "m.tensor(np.ones((2, 0)))", "m.tensor([np.nan])", "m.tensor(np.float64(2.5))",
    "m.tensor(((1, 2), (3, 4)))", "m.as_tensor([1, 2.5])", "m.asarray(np.ones(2), dtype=m.int32)",
    "m.full_like(m.ones(2, dtype=m.int32), 2.7)", "m.ones_like(m.ones(2, requires_grad=True))",
    "m.zeros(2, 3).new_ones(m.Size([1]))", "m.tensor(1e40)", "m.tensor(-1, dtype=m.uint8)",
    "m.randint(5, 5, (2,))", "m.randperm(0)", "m.linspace(0, 1, -1)", "m.logspace(0, 2, 3)",
    "m.logspace(0, 2, 3, base=2)", "m.tensor(m.ones(2, requires_grad=True)).requires_grad",
    "m.empty(3).uniform_(2, 1)", "m.empty(3).normal_(0, -1)", "m.empty(3).bernoulli_(2)",
    "m.empty(3, dtype=m.int64).uniform_()", "m.empty(3, dtype=m.int64).normal_()",
    "m.empty(3, dtype=m.int64).bernoulli_(0.5).dtype", "m.empty(3).uniform_(1, 1)", "m.bernoulli(m.tensor([1., 0.]))",
    "m.empty(2).bernoulli_(m.tensor([1., 0.]))", "m.empty(2, dtype=m.float64).normal_(2, 0)",
    "m.range(0, 3)", "m.range(1, 2, 0.5)", "m.range(0, 3, dtype=m.long)", "m.range(3, 0, -1)", "m.range(0, 1, 0.3)",
    "m.range(0, 3, -1)", "m.range(0, 3, 0)", "m.range(0, 2, dtype=m.float64, requires_grad=True)",
]


@pytest.mark.parametrize("expr", SAME_RESULT)
def test_same_result_or_error(expr):
    out = []
    for m in (dtrain, torch):
        try:
            out.append(repr(eval(expr, {"m": m, "np": np})).replace("dtrain", "torch"))
        except Exception as e:
            out.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
    assert out[0] == out[1]


def test_rng_state_is_plain_bytes():
    state = dtrain.get_rng_state()
    assert state.dtype == dtrain.uint8 and state.shape == (56,)
    with pytest.raises(RuntimeError):
        dtrain.set_rng_state(dtrain.zeros(10, dtype=dtrain.uint8))
    dtrain.manual_seed(3)
    s = dtrain.get_rng_state()
    a = dtrain.randn(4)
    dtrain.manual_seed(99)
    dtrain.set_rng_state(s)
    assert np.array_equal(dtrain.randn(4).numpy(), a.numpy()) and dtrain.initial_seed() == 3
