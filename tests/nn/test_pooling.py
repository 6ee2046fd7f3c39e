"""Pooling (functional and modules) against torch: values, indices, gradients, printed forms and errors."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises
from test_conv import module_check

import dtrain

MAX2D = [
    (2, {}), (3, {"stride": 2}), (3, {"stride": 2, "padding": 1}), ((3, 2), {"stride": (2, 1), "padding": (1, 0)}),
    (3, {"stride": 2, "ceil_mode": True}), (3, {"stride": 2, "padding": 1, "ceil_mode": True}),
    (2, {"dilation": 2}), ((2, 3), {"stride": 2, "padding": 1, "dilation": (2, 1), "ceil_mode": True}),
]


@pytest.mark.parametrize("k,kw", MAX2D)
@pytest.mark.parametrize("shape", [(2, 3, 9, 8), (3, 7, 7)])
def test_max_pool2d(device, k, kw, shape):
    check(lambda m, x: m.nn.functional.max_pool2d(x, k, **kw), shape, device=device)
    check(lambda m, x: m.nn.functional.max_pool2d(x, k, return_indices=True, **kw), shape, device=device)


@pytest.mark.parametrize("kw", [{}, {"stride": 1}, {"stride": 2, "padding": 1, "ceil_mode": True},
                                {"dilation": 2, "padding": 1}])
def test_max_pool1d(device, kw):
    check(lambda m, x: m.nn.functional.max_pool1d(x, 3, return_indices=True, **kw), (2, 3, 11), device=device)
    check(lambda m, x: m.nn.functional.max_pool1d(x, 3, **kw), (3, 11), device=device)


def test_max_pool_float32(device):
    check(lambda m, x: m.nn.functional.max_pool2d(x, 2), (4, 8, 6, 6), device=device, dtype=np.float32)


AVG2D = [
    (2, {}), (3, {"stride": 2, "padding": 1}), (3, {"stride": 2, "padding": 1, "count_include_pad": False}),
    (3, {"stride": 2, "padding": 1, "ceil_mode": True}),
    (3, {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ((3, 2), {"stride": (2, 3), "padding": (1, 1), "divisor_override": 5}), (4, {"stride": 3, "ceil_mode": True}),
]


@pytest.mark.parametrize("k,kw", AVG2D)
@pytest.mark.parametrize("shape", [(2, 3, 9, 8), (3, 7, 10)])
def test_avg_pool2d(device, k, kw, shape):
    check(lambda m, x: m.nn.functional.avg_pool2d(x, k, **kw), shape, device=device, atol=1e-12)


@pytest.mark.parametrize("kw", [{}, {"stride": 2, "padding": 1}, {"stride": 2, "padding": 1, "ceil_mode": True,
                                                                  "count_include_pad": False}])
def test_avg_pool1d(device, kw):
    check(lambda m, x: m.nn.functional.avg_pool1d(x, 3, **kw), (2, 3, 10), device=device, atol=1e-12)


@pytest.mark.parametrize("out", [1, 2, (3, 4), (5, 2), (None, 3), (9, 8)])
def test_adaptive_avg_pool2d(device, out):
    check(lambda m, x: m.nn.functional.adaptive_avg_pool2d(x, out), (2, 3, 9, 8), device=device, atol=1e-12)


@pytest.mark.parametrize("out", [1, 3, 4, 7])
def test_adaptive_pool1d(device, out):
    check(lambda m, x: m.nn.functional.adaptive_avg_pool1d(x, out), (2, 3, 10), device=device, atol=1e-12)
    check(lambda m, x: m.nn.functional.adaptive_max_pool1d(x, out, return_indices=True), (2, 3, 10),
          device=device)


@pytest.mark.parametrize("out", [1, (3, 4), (4, 3)])
def test_adaptive_max_pool2d(device, out):
    check(lambda m, x: m.nn.functional.adaptive_max_pool2d(x, out, return_indices=True), (2, 3, 9, 7),
          device=device)


@pytest.mark.parametrize("cls,args,kw,shape", [
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 8, 8)),
    ("MaxPool2d", (2,), {"return_indices": True}, (2, 3, 8, 8)),
    ("MaxPool1d", (2,), {"dilation": 2}, (2, 3, 9)),
    ("AvgPool2d", (3, 2, 1), {"count_include_pad": False}, (2, 3, 8, 8)),
    ("AvgPool1d", (3,), {"ceil_mode": True}, (2, 3, 8)),
    ("AdaptiveAvgPool2d", ((2, None),), {}, (2, 3, 7, 5)),
    ("AdaptiveAvgPool1d", (3,), {}, (2, 3, 7)),
    ("AdaptiveMaxPool2d", (3,), {}, (2, 3, 7, 5)),
])
def test_modules(device, cls, args, kw, shape):
    t, d = getattr(torch.nn, cls)(*args, **kw), getattr(dtrain.nn, cls)(*args, **kw)
    assert repr(d) == repr(t)
    module_check(t, d, shape, device=device)


def test_errors():
    check_raises(lambda m, x: m.nn.functional.max_pool2d(x, 2, padding=2), (1, 1, 6, 6),
                 match="pad should be at most half of effective kernel size, but got pad=2, kernel_size=2 and "
                       "dilation=1")
    check_raises(lambda m, x: m.nn.functional.avg_pool2d(x, 2, padding=2), (1, 1, 6, 6))
    check_raises(lambda m, x: m.nn.functional.max_pool2d(x, 2), (6, 6, 1, 1, 1))


@pytest.mark.parametrize("kw", [{}, {"stride": 1}, {"padding": 1}, {"stride": 2, "dilation": 2}])
def test_max_pool_ties_and_nan(device, kw):
    """Windows with tied maxima and with NaN (one or two per window): the gradient goes where torch's does."""
    x = np.random.default_rng(3).integers(0, 3, (2, 4, 7, 6)).astype(np.float64)
    x[0, 0, 0, :2] = np.nan  # two NaNs in one window
    x[1, 2, 3, 3] = np.nan
    check(lambda m, t: m.nn.functional.max_pool2d(t, 2, return_indices=True, **kw), x, device=device)


@pytest.mark.parametrize("kw", [{}, {"stride": 1}])
def test_max_pool_nonfinite_gradient(device, kw):
    """An infinite or NaN output gradient reaches only the maxima: no 0 * inf = NaN elsewhere."""
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 6))
    grads = {}
    for m in (dtrain, torch):
        t = m.tensor(x, requires_grad=True) if m is torch else dtrain.tensor(x, requires_grad=True, device=device)
        y = m.nn.functional.max_pool2d(t, 2, **kw)
        g = np.ones(tuple(y.shape))
        g[0, 0, 0, 0], g[1, 2, 1, 1], g[0, 1, 2, 0] = np.inf, -np.inf, np.nan
        y.backward(m.tensor(g) if m is torch else dtrain.tensor(g, device=device))
        grads[m.__name__] = t.grad.cpu().numpy() if m is dtrain else t.grad.numpy()
    np.testing.assert_array_equal(grads["dtrain"], grads["torch"])
    assert np.isnan(grads["dtrain"]).sum() == 1 and np.isinf(grads["dtrain"]).sum() == 2
