"""Composite torch functions against torch (values and gradients)."""
import numpy as np
import pytest

from helpers import check

CASES = {
    "meshgrid_ij": (lambda m, a, b: m.meshgrid(a, b, indexing="ij"), [(3,), (4,)]),
    "meshgrid_xy": (lambda m, a, b: m.meshgrid(a, b, indexing="xy"), [(3,), (4,)]),
    "repeat_interleave": (lambda m, x: x.repeat_interleave(2, dim=1), [(2, 3)]),
    "repeat_interleave_flat": (lambda m, x: m.repeat_interleave(x, 3), [(2, 2)]),
    "repeat_interleave_tensor": (lambda m, x: x.repeat_interleave(m.tensor([1, 0, 2]), dim=0), [(3, 2)]),
    "diff": (lambda m, x: m.diff(x, n=2, dim=0), [(5, 3)]),
    "diff_prepend": (lambda m, x, p: x.diff(dim=-1, prepend=p), [(3, 4), (3, 1)]),
    "tensordot_int": (lambda m, a, b: m.tensordot(a, b, dims=2), [(2, 3, 4), (3, 4, 5)]),
    "tensordot_lists": (lambda m, a, b: m.tensordot(a, b, dims=([0, 2], [1, 0])), [(2, 3, 4), (4, 2, 5)]),
    "type_as": (lambda m, a, b: a.type_as(b), [(2, 2), np.ones((2,), np.float32)]),
    "take": (lambda m, x: m.take(x, m.tensor([[0, 5], [3, 1]])), [(2, 3)]),
    "cdist2": (lambda m, a, b: m.cdist(a, b), [(4, 3), (5, 3)]),
    "cdist1": (lambda m, a, b: m.cdist(a, b, p=1.0), [(2, 4, 3), (2, 5, 3)]),
    "dist": (lambda m, a, b: m.dist(a, b, 3), [(4, 3), (4, 3)]),
    "logaddexp": (lambda m, a, b: m.logaddexp(a * 30, b), [(3, 4), (4,)]),
    "hypot": (lambda m, a, b: m.hypot(a, b), [(3, 4), (3, 4)]),
    "cross": (lambda m, a, b: m.cross(a, b, dim=1), [(4, 3), (4, 3)]),
    "rot90": (lambda m, x: m.rot90(x, 1, (0, 1)), [(3, 4)]),
    "rot90_3": (lambda m, x: m.rot90(x, 3, (1, 2)), [(2, 3, 4)]),
    "cartesian_prod": (lambda m, a, b: m.cartesian_prod(a, b), [(3,), (2,)]),
    "block_diag": (lambda m, a, b: m.block_diag(a, b), [(2, 3), (1, 2)]),
    "kron": (lambda m, a, b: m.kron(a, b), [(2, 3), (3, 2)]),
    "erfinv": (lambda m, x: (x.tanh() * 0.9).erfinv(), [(5,)]),
    "unfold": (lambda m, x: x.unfold(1, 3, 2), [(2, 7, 2)]),
    "diag_embed": (lambda m, x: m.diag_embed(x, offset=1), [(2, 3)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_composite_matches_torch(name, device):
    fn, inputs = CASES[name]
    check(fn, *inputs, device=device)


def test_indices_and_heaviside():
    import torch
    import dtrain
    assert dtrain.tril_indices(3, 4, 1).tolist() == torch.tril_indices(3, 4, 1).tolist()
    assert dtrain.triu_indices(4, 3, -1).tolist() == torch.triu_indices(4, 3, -1).tolist()
    x = [-1.0, 0.0, 2.0]
    assert dtrain.heaviside(dtrain.tensor(x), dtrain.tensor([0.5])).tolist() == \
        torch.heaviside(torch.tensor(x), torch.tensor([0.5])).tolist()
