"""Which operands an op saves for its backward, against torch: only what the wanted gradients read, so an
in-place write to the other operand is legal where torch's is, and refused ("modified by an inplace
operation") where torch's is; and higher-order gradients through ops that saved only part of their inputs."""
import itertools

import numpy as np
import pytest
import torch

import dtrain

from helpers import assert_close

# matmul's shapes by the path torch takes: mm, mv, dot, vector x matrix, a batch folded into a matrix, a
# matrix against a batch (torch saves a copy of the batch), batch x batch with and without broadcasting,
# and batches of one element (a matrix to torch)
MATMUL_SHAPES = [((2, 3), (3, 4)), ((2, 3), (3,)), ((3,), (3,)), ((3,), (3, 4)), ((5, 2, 3), (3, 4)),
                 ((4, 5, 2, 3), (3,)), ((2, 3), (5, 3, 4)), ((3,), (4, 5, 3, 2)), ((5, 2, 3), (5, 3, 4)),
                 ((5, 2, 3), (2, 1, 3, 4)), ((2, 5, 2, 3), (5, 3, 4)), ((1, 2, 3), (5, 3, 4)),
                 ((5, 2, 3), (1, 3, 4))]


def _matmul_then_write(m, sa, sb, wants, writes):
    rng = np.random.default_rng(7)
    a0 = m.tensor(rng.standard_normal(sa), requires_grad=wants == "a")
    b0 = m.tensor(rng.standard_normal(sb), requires_grad=wants == "b")
    a, b = a0 * 1, b0 * 1
    y = a @ b
    (a if writes == "a" else b).add_(1)
    try:
        y.sum().backward()
    except RuntimeError as e:
        return "modified" if "modified by an inplace operation" in str(e) else str(e)
    return (a0 if wants == "a" else b0).grad


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
@pytest.mark.parametrize("wants,writes", list(itertools.product("ab", "ab")))
def test_matmul_saves_only_what_the_wanted_gradient_reads(sa, sb, wants, writes):
    got, exp = (_matmul_then_write(m, sa, sb, wants, writes) for m in (dtrain, torch))
    if isinstance(exp, str):
        assert got == exp
    else:
        assert not isinstance(got, str), f"dtrain raised: {got}"
        assert_close(got, exp)


@pytest.mark.parametrize("op", ["matmul", "linear"])
@pytest.mark.parametrize("wants", ["first", "second", "both"])
def test_double_backward_where_one_operand_needs_no_grad(op, wants):
    rng = np.random.default_rng(3)
    xa, wa = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))
    res = {}
    for m in (dtrain, torch):
        x = m.tensor(xa, requires_grad=wants != "second")
        w = m.tensor(wa, requires_grad=wants != "first")
        y = (x @ w if op == "matmul" else m.nn.functional.linear(x, w)).tanh().sum()
        wanted = [t for t in (x, w) if t.requires_grad]
        gs = m.autograd.grad(y, wanted, create_graph=True)
        penalty = sum((g * g).sum() for g in gs)
        res[m] = m.autograd.grad(penalty, wanted)
    for g, e in zip(res[dtrain], res[torch]):
        assert_close(g, e)
