"""Stacking and splitting along named axes, diagflat, vander and unravel_index against torch."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain

FLOATS = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", FLOATS)
def test_column_stack(device, dtype):
    check(lambda m, a, b: m.column_stack([a, b]), (3,), (3,), device=device, dtype=dtype)
    check(lambda m, a, b, c: m.column_stack((a, b, c)), (3, 2), (3,), (3, 1), device=device, dtype=dtype)
    check(lambda m, a, b: m.column_stack([a, b]), (), (), device=device, dtype=dtype)
    check(lambda m, a, b: m.column_stack([a, b]), (2, 3, 4), (2, 1, 4), device=device, dtype=dtype)
    check(lambda m, a: m.column_stack([a.t(), a[0].long()]), np.arange(6).reshape(2, 3), device=device)


@pytest.mark.parametrize("dtype", FLOATS)
def test_dstack(device, dtype):
    check(lambda m, a, b: m.dstack([a, b]), (3,), (3,), device=device, dtype=dtype)
    check(lambda m, a, b: m.dstack((a, b)), (2, 3), (2, 3), device=device, dtype=dtype)
    check(lambda m, a, b: m.dstack([a, b]), (), (), device=device, dtype=dtype)
    check(lambda m, a, b: m.dstack([a, b]), (2, 3, 4, 5), (2, 3, 1, 5), device=device, dtype=dtype)
    check(lambda m, a, b: m.dstack([a, b.int()]), (1, 3, 2), np.arange(3).reshape(1, 3, 1), device=device)


def test_stack_errors(device):
    for fn in (lambda m, a: m.column_stack([]), lambda m, a: m.dstack([]),
               lambda m, a: m.column_stack([a, a[:2]]), lambda m, a: m.dstack([a, a[:2]])):
        e, te = check_raises(fn, (3,), device=device)
        assert str(e) == str(te)


SPLITS = {
    "hsplit_int": lambda m, x: m.hsplit(x, 3),
    "hsplit_list": lambda m, x: m.hsplit(x, [1, 5]),
    "hsplit_tuple": lambda m, x: x.hsplit((0, 2)),
    "hsplit_varargs": lambda m, x: x.hsplit(1, 2),
    "hsplit_tensor": lambda m, x: x.hsplit(m.tensor([1])),
    "hsplit_tensor_int": lambda m, x: x.hsplit(m.tensor(3)),
    "hsplit_1d": lambda m, x: m.hsplit(x.reshape(-1), 4),
    "vsplit_int": lambda m, x: m.vsplit(x, 2),
    "vsplit_list": lambda m, x: x.vsplit([1]),
    "dsplit_int": lambda m, x: m.dsplit(x, 2),
    "dsplit_list": lambda m, x: x.dsplit([1, 3]),
    "dsplit_one": lambda m, x: m.dsplit(x, 1),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", SPLITS)
def test_named_splits(device, name, dtype):
    check(SPLITS[name], (2, 3, 4), device=device, dtype=dtype)


def test_named_splits_are_views(device):
    x = dtrain.zeros(2, 6, device=device)
    a, b = x.hsplit(2)
    a[0, 0] = 1.0
    assert x[0, 0].item() == 1.0 and isinstance(dtrain.vsplit(x, 2), tuple)


SPLIT_ERRORS = {
    "hsplit_0d": lambda m, x: m.hsplit(x.sum(), 1),
    "hsplit_indivisible": lambda m, x: m.hsplit(x, 2),
    "hsplit_zero": lambda m, x: x.hsplit(0),
    "hsplit_negative": lambda m, x: m.hsplit(x, -1),
    "vsplit_1d": lambda m, x: m.vsplit(x[0, 0], 2),
    "vsplit_indivisible": lambda m, x: x.vsplit(3),
    "dsplit_2d": lambda m, x: m.dsplit(x[0], 2),
    "dsplit_indivisible": lambda m, x: m.dsplit(x, 3),
}


@pytest.mark.parametrize("name", SPLIT_ERRORS)
def test_named_split_errors(device, name):
    e, te = check_raises(SPLIT_ERRORS[name], (2, 3, 4), device=device)
    assert str(e) == str(te)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("offset", [0, 1, -2])
def test_diagflat(device, dtype, offset):
    check(lambda m, x: (m.diagflat(x, offset), x.diagflat(offset=offset)), (2, 2), device=device, dtype=dtype)
    check(lambda m, x: m.diagflat(x, offset), (3,), device=device, dtype=dtype)
    check(lambda m, x: m.diagflat(x, offset), (), device=device, dtype=dtype)
    check(lambda m, x: m.diagflat(x, offset), (0,), device=device, dtype=dtype)
    check(lambda m, x: m.diagflat(x, offset), np.array([[1, 2], [3, 4]]), device=device)


def _vander_reference(m, x, n, increasing):
    """torch.vander's own backward fails (it overwrites a view cumprod saved); its powers as a cumprod."""
    if m is dtrain:
        return m.vander(x, n, increasing)
    cols = [m.ones(x.shape[0], min(n, 1), dtype=x.dtype)]
    if n > 1:
        cols.append(x.unsqueeze(1).expand(-1, n - 1).cumprod(1))
    r = m.cat(cols, 1)
    assert m.equal(r.detach() if increasing else r.detach().flip(1), m.vander(x.detach(), n, increasing))
    return r if increasing else r.flip(1)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [None, 0, 1, 2, 5])
@pytest.mark.parametrize("increasing", [False, True])
def test_vander(device, dtype, n, increasing):
    x = np.array([0.5, -1.5, 0.0, 2.0], dtype)  # a zero: the cumprod backward's special case
    check(lambda m, x: _vander_reference(m, x, 4 if n is None else n, increasing), x, device=device)
    check(lambda m, x: m.vander(x.detach(), n, increasing), x, device=device, grad=False)


def test_vander_int_and_errors(device):
    for x in (np.array([1, 2, 3]), np.array([1, 2, 3], np.int8), np.array([True, False]), np.array([3], np.uint8)):
        check(lambda m, x: (m.vander(x), m.vander(x, N=3, increasing=True)), x, device=device)
    check(lambda m, x: m.vander(x, 2), np.zeros(0), device=device, grad=False)
    for fn in (lambda m, x: m.vander(x.reshape(2, 2)), lambda m, x: m.vander(x.sum()),
               lambda m, x: m.vander(x, N=-1)):
        e, te = check_raises(fn, (4,), device=device)
        assert str(e) == str(te)


@pytest.mark.parametrize("shape", [(3, 2), (4,), 4, (2, 3, 4), [5, 1, 2], ()])
def test_unravel_index(device, shape):
    idx = np.array([[0, 5, 1], [3, -1, 23]])
    check(lambda m, i: m.unravel_index(i, shape), idx, device=device)
    check(lambda m, i: m.unravel_index(i, shape), np.array(4, np.int32), device=device)
    check(lambda m, i: m.unravel_index(i, shape), np.array([1, 2], np.uint8), device=device)
    check(lambda m, i: m.unravel_index(i, m.Size(shape) if isinstance(shape, tuple) else shape), np.array([7]),
          device=device)


UNRAVEL_ERRORS = {
    "float": lambda m, i: m.unravel_index(i.double(), (3, 2)),
    "bool": lambda m, i: m.unravel_index(i > 0, (3, 2)),
    "negative_shape": lambda m, i: m.unravel_index(i, (3, -2)),
    "float_shape": lambda m, i: m.unravel_index(i, (3, 2.0)),
    "shape_type": lambda m, i: m.unravel_index(i, 2.0),
    "zero_shape": lambda m, i: m.unravel_index(i, (3, 0)),
}


@pytest.mark.parametrize("name", UNRAVEL_ERRORS)
def test_unravel_index_errors(device, name):
    e, te = check_raises(UNRAVEL_ERRORS[name], np.array([1, 2]), device=device)
    assert str(e).replace("dtrain", "torch") == str(te)


def test_tensor_methods_match_torch():
    for n in ["column_stack", "dstack", "hsplit", "vsplit", "dsplit", "diagflat", "vander", "unravel_index"]:
        assert hasattr(dtrain.Tensor, n) == hasattr(torch.Tensor, n), n
        assert hasattr(dtrain, n), n
