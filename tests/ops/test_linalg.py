"""matmul / mm / bmm / mv / dot / linear / addmm against torch: shapes, broadcasting, layouts, errors."""
import numpy as np
import pytest
from helpers import check, check_raises

import dtrain

MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                 ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((5, 2, 3), (5, 3, 4)), ((2, 1, 2, 3), (5, 3, 4)),
                 ((1, 2, 3), (4, 3, 2)), ((0, 3), (3, 4)), ((2, 0), (0, 4)), ((4, 0, 2, 3), (3, 1))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul(device, sa, sb):
    check(lambda m, a, b: (m.matmul(a, b), a @ b), sa, sb, device=device)


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES[:9])
def test_matmul_float32(device, sa, sb):
    check(lambda m, a, b: a @ b, sa, sb, device=device, dtype=np.float32, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("layout", ["tt", "tn", "nt", "strided"])
def test_matmul_noncontiguous(device, layout):
    fns = dict(tt=lambda m, a, b: a.t() @ b.t(), tn=lambda m, a, b: a.t() @ (b.t() * 1),
               nt=lambda m, a, b: (a.t() * 1) @ b.t(), strided=lambda m, a, b: a[::2, ::2] @ b[1::2, ::2])
    check(fns[layout], (6, 5), (4, 6), device=device) if layout != "strided" else \
        check(fns[layout], (6, 6), (6, 8), device=device)


def test_matmul_batched_noncontiguous(device):
    check(lambda m, a, b: a.transpose(0, 1) @ b.transpose(1, 2), (3, 2, 4), (2, 5, 4), device=device)


def test_mm_bmm_mv_dot(device):
    check(lambda m, a, b: (m.mm(a, b), a.mm(b)), (2, 3), (3, 4), device=device)
    check(lambda m, a, b: (m.bmm(a, b), a.bmm(b)), (5, 2, 3), (5, 3, 4), device=device)
    check(lambda m, a, b: (m.mv(a, b), a.mv(b)), (2, 3), (3,), device=device)
    check(lambda m, a, b: (m.dot(a, b), a.dot(b), m.inner(a, b), m.outer(a, b)), (3,), (3,), device=device)


def test_int_matmul(device):
    a, b = np.arange(6).reshape(2, 3), np.arange(12).reshape(3, 4)
    check(lambda m, a, b: (a @ b, m.mm(a, b), a[0] @ b), a, b, device=device)


@pytest.mark.parametrize("xshape", [(4, 3), (2, 4, 3), (3,), (0, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(device, xshape, bias):
    from dtrain._ops.linalg import linear
    import torch

    def fn(m, x, w, b):
        return (linear if m is dtrain else torch.nn.functional.linear)(x, w, b if bias else None)
    check(fn, xshape, (5, 3), (5,), device=device)


def test_addmm_baddbmm(device):
    check(lambda m, c, a, b: (m.addmm(c, a, b), m.addmm(c, a, b, beta=0.5, alpha=2), c.addmm(a, b)),
          (2, 4), (2, 3), (3, 4), device=device)
    check(lambda m, c, a, b: m.baddbmm(c, a, b, alpha=0.5), (5, 2, 4), (5, 2, 3), (5, 3, 4), device=device)


def test_matmul_out(device):
    def fn(m, a, b):
        out = m.empty(0, dtype=m.float64)
        assert m.matmul(a.detach(), b.detach(), out=out) is out
        return out, m.mm(a.detach(), b.detach(), out=m.empty(2, 4, dtype=m.float64))
    check(fn, (2, 3), (3, 4), device=device, grad=False)


ERRORS = {
    "mm_shape": (lambda m, a, b: a @ b, (2, 3), (4, 5)),
    "mm_fn": (lambda m, a, b: m.mm(a, b), (2, 3), (4, 5)),
    "mv_shape": (lambda m, a, b: a @ b, (2, 3), (4,)),
    "vm_shape": (lambda m, a, b: a @ b, (3,), (4, 5)),
    "dot_shape": (lambda m, a, b: a @ b, (3,), (4,)),
    "batch_bcast": (lambda m, a, b: a @ b, (2, 2, 3), (3, 3, 4)),
    "batch_inner": (lambda m, a, b: a @ b, (2, 2, 3), (2, 4, 4)),
    "zero_d": (lambda m, a, b: m.matmul(a.sum(), b), (2, 3), (3,)),
    "mm_3d": (lambda m, a, b: m.mm(a, b), (2, 2, 3), (3, 4)),
    "bmm_2d": (lambda m, a, b: m.bmm(a, b), (2, 3), (3, 4)),
    "bmm_batch": (lambda m, a, b: m.bmm(a, b), (2, 2, 3), (3, 3, 4)),
    "bmm_inner": (lambda m, a, b: m.bmm(a, b), (2, 2, 3), (2, 4, 4)),
    "dot_2d": (lambda m, a, b: m.dot(a, b), (2, 3), (3,)),
    "dtype": (lambda m, a, b: a @ b.float(), (2, 3), (3, 4)),
    "dtype_1d": (lambda m, a, b: a @ b.float(), (3,), (3,)),
    "dtype_mv": (lambda m, a, b: a @ b.float(), (2, 3), (3,)),
    "dtype_vm": (lambda m, a, b: a.float() @ b, (3,), (3, 4)),
    "dtype_int": (lambda m, a, b: a @ b.long(), (2, 3), (3, 4)),
    "dtype_bmm": (lambda m, a, b: a.float() @ b, (5, 2, 3), (5, 3, 4)),
    "dtype_bmm_fn": (lambda m, a, b: m.bmm(a.float(), b), (5, 2, 3), (5, 3, 4)),
    "fold_mm": (lambda m, a, b: a @ b, (5, 2, 3), (4, 3)),
    "fold_mv": (lambda m, a, b: a @ b, (5, 2, 3), (4,)),
    "vec_batch": (lambda m, a, b: a @ b, (3,), (5, 4, 3)),
    "batch4": (lambda m, a, b: a @ b, (2, 5, 2, 3), (5, 4, 3)),
    "batch_bcast4": (lambda m, a, b: a @ b, (2, 5, 2, 3), (3, 3, 4)),
    "bool": (lambda m, a, b: (a > 0) @ (b > 0), (2, 3), (3, 4)),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors(device, case):
    fn, sa, sb = ERRORS[case]
    e, te = check_raises(fn, sa, sb, device=device)
    assert str(e) == str(te), f"{e} != torch's {te}"


def test_linear_errors(device):
    from dtrain._ops.linalg import linear
    import torch
    for xs, ws in (((4, 3), (5, 2)), ((2, 4, 3), (5, 2))):
        with pytest.raises(RuntimeError) as te:
            torch.nn.functional.linear(torch.ones(xs), torch.ones(ws))
        with pytest.raises(RuntimeError) as de:
            linear(dtrain.ones(xs), dtrain.ones(ws))
        assert str(de.value) == str(te.value)


def test_gradcheck():
    from dtrain.autograd import gradcheck
    rng = np.random.default_rng(9)
    t = lambda *s: dtrain.tensor(rng.standard_normal(s), requires_grad=True)
    assert gradcheck(lambda a, b: a @ b, (t(2, 3), t(3, 4)))
    assert gradcheck(lambda a, b: a @ b, (t(5, 2, 3), t(3,)))
    assert gradcheck(lambda a, b: a @ b, (t(2, 1, 2, 3), t(4, 3, 2)))
    assert gradcheck(lambda a, b: a.t() @ b, (t(3, 2), t(3,)))
