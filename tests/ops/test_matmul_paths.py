"""The BLAS layouts behind Matmul (`dtrain._ops.linalg._product`): a batch against one matrix folded into one
product. Each against torch, values and gradients."""
import numpy as np
import pytest
import torch

import dtrain
from dtrain._ops import linalg

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _check(sa, sb, dtype, view_a=lambda t: t, view_b=lambda t: t, seed=0):
    """view_a(a) @ view_b(b) for random a and b of shapes sa and sb, in dtrain and torch."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    outs = []
    for fw in (dtrain, torch):
        ta, tb = fw.tensor(a, requires_grad=True), fw.tensor(b, requires_grad=True)
        y = view_a(ta) @ view_b(tb)
        w = np.random.default_rng(seed + 1).standard_normal(tuple(y.shape)).astype(dtype)
        (y * fw.tensor(w)).sum().backward()
        outs.append((y.detach().numpy(), ta.grad.numpy(), tb.grad.numpy()))
    for name, d, t in zip(("output", "grad a", "grad b"), *outs):
        assert d.shape == t.shape, name
        np.testing.assert_allclose(d, t, **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa,sb", [
    ((4, 6, 5), (5, 7)),               # batch against a matrix: folded
    ((2, 3, 6, 5), (5, 7)),
    ((4, 6, 5), (4, 5, 7)),            # batch against batch
    ((3, 4, 6, 5), (3, 4, 5, 7)),
    ((3, 1, 6, 5), (1, 4, 5, 7)),      # broadcast batches
    ((6, 5), (3, 5, 7)),               # a matrix against a batch
    ((1, 6, 5), (1, 5, 7)),
    ((4, 6, 5), (5,)), ((5,), (4, 5, 7)),
])
def test_batched_products(dtype, sa, sb):
    _check(sa, sb, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_operands(dtype):
    # attention's operands: transposed views of one projection (not foldable, batch strides of their own), and a
    # batch that is a transposed view against a matrix (folding would need a copy: each matrix stays a BLAS call)
    _check((3, 6, 4, 5), (3, 4, 7, 5), dtype, lambda t: t.transpose(1, 2), lambda t: t.transpose(-2, -1))
    _check((6, 4, 5), (5, 7), dtype, lambda t: t.transpose(0, 1))


def test_fold_is_one_product(monkeypatch):
    # a batch against a matrix reaches BLAS as one 2-D product (NumPy alone would make one call per matrix)
    calls = []
    real = np.matmul

    def spy(a, b, *args, **kw):
        calls.append((a.shape, b.shape))
        return real(a, b, *args, **kw)
    monkeypatch.setattr(linalg.np, "matmul", spy)
    x = dtrain.randn(4, 6, 5)
    w = dtrain.randn(5, 7)
    y = x @ w
    assert calls == [((24, 5), (5, 7))]
    np.testing.assert_allclose(y.numpy(), real(x.numpy(), w.numpy()), rtol=1e-5, atol=1e-6)
