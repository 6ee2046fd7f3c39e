"""torch.einsum against torch: values, gradients, ellipses (broadcast between operands), implicit outputs,
grad_fn names and errors."""
import numpy as np
import pytest
import torch

import dtrain

CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("i,i->", [(3,), (3,)]),
    ("i,j->ij", [(2,), (3,)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iij->ji", [(3, 3, 2)]),
    ("ij,jj->i", [(2, 3), (3, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("ij,ij->i", [(2, 3), (2, 3)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (5, 3, 4)]),
    ("...ij,jk->...ik", [(2, 2, 3), (3, 4)]),
    ("i...->...", [(2, 3, 4)]),
    ("...i", [(2, 3, 4)]),
    ("i...,j", [(2, 3), (4,)]),
    ("...n,d->...nd", [(2, 3), (4,)]),
    ("...,...->...", [(2, 1), (3,)]),
    ("b...i,b...i->b...", [(2, 3, 4), (2, 1, 4)]),
    ("... ij , jk -> ... ik", [(3, 2, 3), (3, 4)]),
]


@pytest.mark.parametrize("eq,shapes", CASES, ids=[c[0] for c in CASES])
def test_values_gradients_and_node_match_torch(eq, shapes, device):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    got = [dtrain.tensor(a, device=device, requires_grad=True) for a in arrays]
    want = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, x = dtrain.einsum(eq, *got), torch.einsum(eq, *want)
    assert tuple(y.shape) == tuple(x.shape)
    assert y.grad_fn.name() == x.grad_fn.name()
    np.testing.assert_allclose(y.detach().cpu().numpy(), x.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.arange(x.numel(), dtype=np.float64).reshape(tuple(x.shape))
    y.backward(dtrain.tensor(g, device=device))
    x.backward(torch.tensor(g))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.grad.cpu().numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_operand_count_and_rank_errors_as_torch():
    a = np.ones((2, 3))
    for T in (torch, dtrain):
        with pytest.raises(RuntimeError, match="more operands"):
            T.einsum("...ij", T.tensor(a), T.tensor(a))
        with pytest.raises(RuntimeError, match="fewer operands"):
            T.einsum("...ij,jk", T.tensor(a))
        with pytest.raises(RuntimeError, match="number of subscripts"):
            T.einsum("ijk...", T.tensor(a))
