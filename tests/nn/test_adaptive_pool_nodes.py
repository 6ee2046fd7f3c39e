"""The adaptive poolings as one node each, against torch: values, gradients, indices (NaN and ties included),
grad_fn names (the 1-D ones are torch's squeeze of the 2-D pool, a 1x1 average is its mean), layouts
(channels-last in, channels-last out) and the version check of the saved input."""
import numpy as np
import pytest
import torch

import dtrain

_BASE = np.random.default_rng(0).standard_normal((2, 3, 6, 7))
_BASE[0, 0, 1, 1] = np.nan
_BASE[1, 1, 2, 2] = _BASE[1, 1, 3, 3] = np.nan  # two NaNs in one window: torch's index is the last one

CASES = {
    "avg1d": lambda T, x: T.nn.functional.adaptive_avg_pool1d(x[0], 4),
    "avg2d": lambda T, x: T.nn.functional.adaptive_avg_pool2d(x, (4, 3)),
    "avg2d_none": lambda T, x: T.nn.functional.adaptive_avg_pool2d(x, (None, 4)),
    "avg2d_1x1": lambda T, x: T.nn.functional.adaptive_avg_pool2d(x, 1),
    "avg2d_larger": lambda T, x: T.nn.functional.adaptive_avg_pool2d(x, (9, 8)),
    "avg2d_unbatched": lambda T, x: T.nn.functional.adaptive_avg_pool2d(x[0], (5, 2)),
    "avg2d_channels_last": lambda T, x: T.nn.functional.adaptive_avg_pool2d(
        x.contiguous(memory_format=T.channels_last), (4, 5)),
    "avg3d": lambda T, x: T.nn.functional.adaptive_avg_pool3d(x.unsqueeze(2).expand(2, 3, 3, 6, 7), (2, 4, 3)),
    "max1d": lambda T, x: T.nn.functional.adaptive_max_pool1d(x[0], 4, return_indices=True),
    "max2d": lambda T, x: T.nn.functional.adaptive_max_pool2d(x, (4, 3), return_indices=True),
    "max2d_values": lambda T, x: T.nn.functional.adaptive_max_pool2d(x, (2, 2)),
    "max2d_1x1": lambda T, x: T.nn.functional.adaptive_max_pool2d(x, 1, return_indices=True),
    "max2d_larger": lambda T, x: T.nn.functional.adaptive_max_pool2d(x, (9, 9), return_indices=True),
    "max2d_channels_last": lambda T, x: T.nn.functional.adaptive_max_pool2d(
        x.contiguous(memory_format=T.channels_last), (4, 5), return_indices=True),
    "max3d_ties": lambda T, x: T.nn.functional.adaptive_max_pool3d(x.unsqueeze(2).expand(2, 3, 3, 6, 7) * 1,
                                                                   (2, 4, 3), return_indices=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_adaptive_pool_matches_torch(name, device):
    res = {}
    for T in (torch, dtrain):
        x = T.tensor(_BASE, requires_grad=True) if T is torch else \
            dtrain.tensor(_BASE, requires_grad=True, device=device)
        out = CASES[name](T, x)
        y, idx = out if isinstance(out, tuple) else (out, None)
        g = np.random.default_rng(1).standard_normal(tuple(y.shape))
        y.backward(T.tensor(g) if T is torch else dtrain.tensor(g, device=device))
        res[T] = (y.detach().cpu().numpy() if T is dtrain else y.detach().numpy(),
                  x.grad.cpu().numpy() if T is dtrain else x.grad.numpy(), y.grad_fn.name(), y.stride(),
                  None if idx is None else (idx.cpu().numpy() if T is dtrain else idx.numpy(), idx.stride()))
    want, got = res[torch], res[dtrain]
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-14, equal_nan=True)
    assert got[2:4] == want[2:4]
    if want[4] is not None:
        np.testing.assert_array_equal(got[4][0], want[4][0])
        assert got[4][1] == want[4][1]


@pytest.mark.parametrize("fn", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_a_write_to_the_input_before_backward_raises(fn):
    for T in (torch, dtrain):
        x = T.randn(2, 3, 6, 6, requires_grad=True)
        h = x * 1
        y = getattr(T.nn.functional, fn)(h, (4, 3))
        h.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()
