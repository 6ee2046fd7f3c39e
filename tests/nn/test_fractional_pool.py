"""Fractional max pooling (2-D and 3-D) and max_unpool3d against torch: the windows drawn from given samples,
values, indices and input gradients in float64, float32 and bfloat16, the modules and the errors."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain

F64 = {"atol": 1e-12, "rtol": 1e-12}


def _samples(rng, n, c, nd, dt):
    return rng.uniform(0, 1, (n, c, nd)).astype(dt)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("kernel,kw", [(2, {"output_size": (5, 4)}), ((3, 2), {"output_size": 3}),
                                       (2, {"output_ratio": (0.5, 0.4)}), (1, {"output_size": (11, 9)})])
def test_fractional_max_pool2d(device, dt, kernel, kw):
    rng = np.random.default_rng(11)
    x, s = rng.standard_normal((2, 3, 11, 9)).astype(dt), _samples(rng, 2, 3, 2, dt)
    check(lambda m, x: m.nn.functional.fractional_max_pool2d(x, kernel, return_indices=True,
                                                             _random_samples=m.tensor(s, device=x.device), **kw),
          x, device=device, dtype=dt, **F64)
    # unbatched (C, H, W): samples of one batch
    check(lambda m, x: m.nn.functional.fractional_max_pool2d(x[0], kernel, return_indices=True,
                                                             _random_samples=m.tensor(s[:1], device=x.device), **kw),
          x, device=device, dtype=dt, **F64)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_fractional_max_pool3d(device, dt):
    rng = np.random.default_rng(12)
    x, s = rng.standard_normal((2, 3, 7, 9, 8)).astype(dt), _samples(rng, 2, 3, 3, dt)
    check(lambda m, x: m.nn.functional.fractional_max_pool3d(x, (2, 3, 2), output_size=(4, 5, 3),
                                                             return_indices=True,
                                                             _random_samples=m.tensor(s, device=x.device)),
          x, device=device, dtype=dt, **F64)
    check(lambda m, x: m.nn.functional.fractional_max_pool3d(x[0], 2, output_ratio=(0.5, 0.6, 0.7),
                                                             _random_samples=m.tensor(s[:1], device=x.device)),
          x, device=device, dtype=dt, **F64)


def test_fractional_max_pool_bfloat16():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 12, 10)).astype(np.float32)
    s = rng.uniform(0, 1, (2, 3, 2)).astype(np.float32)
    t, ti = torch.nn.functional.fractional_max_pool2d(torch.from_numpy(x).bfloat16(), 2, output_size=(7, 6),
                                                      return_indices=True,
                                                      _random_samples=torch.from_numpy(s).bfloat16())
    d, di = dtrain.nn.functional.fractional_max_pool2d(dtrain.tensor(x).bfloat16(), 2, output_size=(7, 6),
                                                       return_indices=True,
                                                       _random_samples=dtrain.tensor(s).bfloat16())
    assert d.dtype is dtrain.bfloat16 and di.dtype is dtrain.int64
    # the windows come from bfloat16 samples in bfloat16 arithmetic, as torch's: the same elements are picked
    np.testing.assert_array_equal(di.numpy(), ti.numpy())
    np.testing.assert_array_equal(d.float().numpy(), t.float().numpy())
    # overlapping windows (3 wide, stride under 2): one input can be the maximum of several outputs
    w = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    tx, dx = torch.from_numpy(x).bfloat16().requires_grad_(), dtrain.tensor(x).bfloat16().requires_grad_()
    for m, xx in ((torch, tx), (dtrain, dx)):
        y = m.nn.functional.fractional_max_pool2d(xx, 3, output_size=(9, 8),
                                                  _random_samples=m.tensor(s).to(m.bfloat16))
        (y * m.tensor(w).to(m.bfloat16)).sum().backward()
    assert dx.grad.dtype is dtrain.bfloat16
    np.testing.assert_array_equal(dx.grad.float().numpy(), tx.grad.float().numpy())


def test_modules_and_random_samples():
    dtrain.manual_seed(0)
    m = dtrain.nn.FractionalMaxPool2d(3, output_ratio=0.5, return_indices=True)
    x = dtrain.randn(2, 4, 10, 10)
    y, i = m(x)
    assert tuple(y.shape) == (2, 4, 5, 5) and m._random_samples is None  # fresh samples on every call
    # every output is the input element its index names, and the maximum of a window around it
    np.testing.assert_array_equal(np.take_along_axis(x.numpy().reshape(2, 4, -1), i.numpy().reshape(2, 4, -1), 2),
                                  y.numpy().reshape(2, 4, -1))
    s = dtrain.rand(2, 4, 3)
    m3 = dtrain.nn.FractionalMaxPool3d(2, output_size=(3, 4, 2), _random_samples=s)
    t3 = torch.nn.FractionalMaxPool3d(2, output_size=(3, 4, 2), _random_samples=torch.from_numpy(s.numpy()))
    xx = np.random.default_rng(1).standard_normal((2, 4, 6, 7, 5)).astype(np.float32)
    np.testing.assert_array_equal(m3(dtrain.tensor(xx)).numpy(), t3(torch.from_numpy(xx)).numpy())
    assert [n for n, _ in m3.named_buffers()] == [n for n, _ in t3.named_buffers()] == ["_random_samples"]
    for cls in (dtrain.nn.FractionalMaxPool2d, torch.nn.FractionalMaxPool2d):
        with pytest.raises(ValueError, match="either an output size, or a pooling ratio"):
            cls(2)
        with pytest.raises(ValueError, match="only one of"):
            cls(2, output_size=3, output_ratio=0.5)
        with pytest.raises(ValueError, match="between 0 and 1"):
            cls(2, output_ratio=1.5)


def test_errors():
    x = (1, 2, 6, 6)
    check_raises(lambda m, x: m.nn.functional.fractional_max_pool2d(x, 2), x, match="either an output_size")
    check_raises(lambda m, x: m.nn.functional.fractional_max_pool2d(x, 4, output_size=4), x, match="too large")
    check_raises(lambda m, x: m.nn.functional.fractional_max_pool3d(x, 2, output_size=2), x)


@pytest.mark.parametrize("kw", [{}, {"stride": 1}, {"padding": 1}])
def test_max_unpool3d(device, kw):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 2, 6, 5, 4))

    def f(m, x):
        y, i = m.nn.functional.max_pool3d(x, 2, return_indices=True, **kw)
        size = x.shape[2:]  # the default size differs where pooling dropped a row (5 -> 2 -> 4)
        return m.nn.functional.max_unpool3d(y, i, 2, output_size=size, **kw), m.nn.MaxUnpool3d(2, **kw)(y, i, size)
    check(f, x, device=device, **F64)
