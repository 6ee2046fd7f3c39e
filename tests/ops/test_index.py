"""Indexing, index assignment, gather/scatter, masks, sort/topk and in-place fills against torch."""
import numpy as np
import pytest
from helpers import check, check_raises

import dtrain
import torch

GET = {
    "int": lambda m, x: x[1],
    "neg_int": lambda m, x: x[-1, 2],
    "slice": lambda m, x: x[1:3],
    "slice_step": lambda m, x: x[::2, 1::3],
    "slice_neg": lambda m, x: x[-3:-1, :-2],
    "slice_oob": lambda m, x: x[2:100],
    "slice_empty": lambda m, x: x[3:1],
    "none": lambda m, x: x[None, :, None],
    "ellipsis": lambda m, x: x[..., 1],
    "ellipsis_none": lambda m, x: x[None, ..., None],
    "int_list": lambda m, x: x[[0, 2, 2]],
    "tensor_idx": lambda m, x: x[m.tensor([3, 0, -1])],
    "repeated": lambda m, x: x[m.tensor([1, 1, 1, 0])],
    "idx_2d": lambda m, x: x[m.tensor([[0, 1], [2, 2]])],
    "two_idx": lambda m, x: x[m.tensor([0, 2]), m.tensor([1, 4])],
    "idx_bcast": lambda m, x: x[m.tensor([[0], [2]]), m.tensor([1, 4, 4])],
    "idx_slice": lambda m, x: x[m.tensor([0, 2, 0]), 1:4],
    "slice_idx": lambda m, x: x[1:, m.tensor([0, 0, 4])],
    "int32_idx": lambda m, x: x[m.tensor([0, 1], dtype=m.int32)],
    "mask": lambda m, x: x[x > 0],
    "mask_row": lambda m, x: x[m.tensor([True, False, True, False])],
    "mask_col": lambda m, x: x[:, m.tensor([True, False, True, False, True])],
    "mask_uint8": lambda m, x: x[m.tensor([1, 0, 1, 1], dtype=m.uint8)],
    "mask_empty": lambda m, x: x[x > 100],
    "bool_scalar": lambda m, x: x[True],
    "tensor_scalar_idx": lambda m, x: x[m.tensor(2)],
    "combo": lambda m, x: x[None, 1:, m.tensor([0, 2]), ...],
    "separated_adv": lambda m, x: x.view(2, 2, 5)[m.tensor([0, 1]), :, m.tensor([3, 4])],
    "index_of_view": lambda m, x: x.t()[m.tensor([4, 0])][:, ::2],
}


@pytest.mark.parametrize("name", GET)
def test_getitem(device, name):
    check(GET[name], (4, 5), device=device)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
@pytest.mark.parametrize("name", ["slice_step", "tensor_idx", "mask_row", "combo", "two_idx"])
def test_getitem_dtypes(device, name, dtype):
    check(GET[name], (np.random.default_rng(0).standard_normal((4, 5)) * 4).astype(dtype), device=device)


def test_getitem_0d_and_empty(device):
    check(lambda m, x: x[...], (), device=device)
    check(lambda m, x: x[None], (), device=device)
    check(lambda m, x: x[x > 0], (), device=device)
    check(lambda m, x: x[m.tensor([], dtype=m.int64)], (3, 2), device=device)
    check(lambda m, x: x[:, m.tensor([0, 0])], (0, 2), device=device)


def test_basic_index_is_view(device):
    x = dtrain.arange(10.0, device=device)
    v = x[2:8:2]
    x[4] = -1
    assert v.tolist() == [2.0, -1.0, 6.0] and v._base is x
    a = x[dtrain.tensor([1, 2])]
    x[1] = 50
    assert a.tolist() == [1.0, 2.0]


SET = {
    "scalar": lambda x, v: x.__setitem__(1, 7.0),
    "slice_scalar": lambda x, v: x.__setitem__((slice(None), slice(1, 3)), -2),
    "tensor_value": lambda x, v: x.__setitem__(0, v),
    "broadcast": lambda x, v: x.__setitem__((slice(1, 3),), v),
    "step": lambda x, v: x.__setitem__((slice(None, None, 2),), v),
    "idx_tensor": lambda x, v: x.__setitem__(x.__class__.__module__ and (v.new_tensor([0, 2]).long(),), v),
    "mask": lambda x, v: x.__setitem__(x > 0, 0.0),
    "ellipsis": lambda x, v: x.__setitem__((Ellipsis, 0), v[:3] if v.ndim else v),
}


def _set_case(name):
    def fn(m, x, v):
        y = x * 1  # a non-leaf in the graph: assignment must keep gradients flowing to x and to v
        SET[name](y, v)
        return y
    return fn


@pytest.mark.parametrize("name,vshape", [("scalar", (5,)), ("slice_scalar", (5,)), ("tensor_value", (5,)),
                                         ("broadcast", (5,)), ("broadcast", (1, 5)), ("step", (5,)),
                                         ("idx_tensor", (2, 5)), ("idx_tensor", (5,)), ("mask", (5,)),
                                         ("ellipsis", (5,)), ("tensor_value", ()), ("tensor_value", (1, 1, 5)),
                                         ("idx_tensor", (1, 2, 5)), ("scalar", (1,))])
def test_setitem_grad(device, name, vshape):
    check(_set_case(name), (3, 5), vshape, device=device)


def test_setitem_no_grad_paths(device):
    check(lambda m, x: (x.detach().clone().__setitem__((m.tensor([0, 0, 1]),), 5.0), x)[1], (3,), device=device,
          grad=False)
    for m in (dtrain, __import__("torch")):
        a = m.zeros(3, 4, dtype=m.int64)
        a[1:, ::2] = m.tensor([7, 8])
        a[0] = 3.9  # cast to the destination dtype
        a[a == 8] = -1
        a[..., -1] = m.tensor(5)
        if m is dtrain:
            got = a.tolist()
        else:
            assert got == a.tolist()


def test_setitem_leaf_errors():
    for m in (dtrain, __import__("torch")):
        x = m.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf Variable"):
            x[0] = 2.0
        with m.no_grad():
            x[0] = 2.0
        assert x[0].item() == 2.0


def test_setitem_version_and_backward_error():
    import torch
    for m in (dtrain, torch):
        x = m.ones(3, requires_grad=True)
        y = x * 2
        z = y.exp()  # saves its output
        z[0] = 0.0
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.sum().backward()


INDEX_ERRORS = {
    "float_index": (lambda m, x: x[m.tensor([0.0, 1.0])], "tensors used as indices must be long, int, byte or bool"),
    "out_of_range": (lambda m, x: x[4], "index 4 is out of bounds for dimension 0 with size 4"),
    "out_of_range_dim1": (lambda m, x: x[0, -6], "index -6 is out of bounds for dimension 1 with size 5"),
    "tensor_oob": (lambda m, x: x[m.tensor([0, 7])], "index 7 is out of bounds for dimension 0 with size 4"),
    "tensor_oob_dim1": (lambda m, x: x[:, m.tensor([5])], "index 5 is out of bounds for dimension 1 with size 5"),
    "too_many": (lambda m, x: x[0, 0, 0], "too many indices for tensor of dimension 2"),
    "mask_shape": (lambda m, x: x[m.tensor([True, False])], "The shape of the mask [2] at index 0 does not match"),
    "float_scalar": (lambda m, x: x[1.5], None),
    "set_oob": (lambda m, x: x.__setitem__(9, 1.0), "index 9 is out of bounds for dimension 0 with size 4"),
    "set_float_idx": (lambda m, x: x.__setitem__(m.tensor([0.5]), 1.0), "tensors used as indices must be long"),
    "set_shape": (lambda m, x: x.__setitem__(0, m.ones(3)), None),
}


@pytest.mark.parametrize("name", INDEX_ERRORS)
def test_index_errors(name):
    fn, match = INDEX_ERRORS[name]
    check_raises(fn, (4, 5), match=match)


# -------------------------------------------------------------------------------------- index functions
def idx(m, data):
    return m.tensor(data, dtype=m.int64)


FUNCS = {
    "gather": (lambda m, x: x.gather(1, idx(m, [[0, 0, 3], [1, 2, 2], [4, 0, 1]])), (3, 5)),
    "gather_dim0": (lambda m, x: m.gather(x, 0, idx(m, [[0, 2], [2, 2]])), (3, 5)),
    "gather_neg": (lambda m, x: x.gather(-1, idx(m, [[1], [0], [4]])), (3, 5)),
    "scatter": (lambda m, x, s: x.scatter(1, idx(m, [[0, 1], [2, 3], [4, 0]]), s), (3, 5), (3, 2)),
    "scatter_value": (lambda m, x: x.scatter(1, idx(m, [[0], [2], [4]]), 1.5), (3, 5)),
    "scatter_add": (lambda m, x, s: x.scatter_add(1, idx(m, [[0, 0], [2, 2], [4, 0]]), s), (3, 5), (3, 2)),
    "scatter_add_0": (lambda m, x, s: m.scatter_add(x, 0, idx(m, [[0, 0, 1], [0, 2, 2]]), s), (3, 5), (2, 3)),
    "index_select": (lambda m, x: x.index_select(0, idx(m, [2, 0, 2])), (3, 5)),
    "index_select_1": (lambda m, x: m.index_select(x.t(), 1, idx(m, [1, 1])), (3, 5)),
    "index_add": (lambda m, x, s: x.index_add(0, idx(m, [0, 2, 0]), s), (3, 5), (3, 5)),
    "index_add_alpha": (lambda m, x, s: x.index_add(1, idx(m, [4, 1]), s, alpha=2.5), (3, 5), (3, 2)),
    "masked_fill": (lambda m, x: x.masked_fill(x > 0, -1.0), (3, 5)),
    "masked_fill_bcast": (lambda m, x: x.masked_fill(m.tensor([True, False, True, False, False]), 2), (3, 5)),
    "masked_fill_tensor": (lambda m, x: x.masked_fill(x < 0, m.tensor(9.0)), (3, 5)),
    "masked_select": (lambda m, x: x.masked_select(x > 0), (3, 5)),
    "masked_select_bcast": (lambda m, x: m.masked_select(x, m.tensor([True, False, True, False, True])), (3, 5)),
    "where": (lambda m, x, y: m.where(x > y, x, y), (3, 5), (3, 5)),
    "where_bcast": (lambda m, x, y: m.where(x > 0, x, y), (3, 5), (5,)),
    "where_scalar": (lambda m, x: m.where(x > 0, x, 0.0), (3, 5)),
    "where_method": (lambda m, x, y: x.where(x > 0, y), (3, 5), (3, 5)),
    "sort": (lambda m, x: x.sort(), (3, 5)),
    "sort_desc": (lambda m, x: m.sort(x, dim=0, descending=True), (3, 5)),
    "sort_stable": (lambda m, x: (x.round() * 0).sort(stable=True), (3, 5)),
    "sort_stable_desc": (lambda m, x: x.round().sort(descending=True, stable=True), (4, 9)),
    "argsort": (lambda m, x: x.argsort(dim=0), (3, 5)),
    "argsort_desc": (lambda m, x: m.argsort(x, descending=True), (3, 5)),
    "topk": (lambda m, x: x.topk(2), (3, 5)),
    "topk_smallest": (lambda m, x: m.topk(x, 3, dim=0, largest=False), (4, 5)),
    "topk_dim": (lambda m, x: x.topk(1, 0), (3, 5)),
    "nonzero": (lambda m, x: (x > 0).nonzero(), (3, 5)),
    "nonzero_tuple": (lambda m, x: m.nonzero(x > 0, as_tuple=True), (3, 5)),
    "nonzero_0d": (lambda m, x: m.nonzero(x[0, 0] != 0), (3, 5)),
    "nonzero_empty": (lambda m, x: m.nonzero(x > 100), (3, 5)),
    "one_hot": (lambda m, x: m.nn.functional.one_hot(idx(m, [0, 3, 1]), 5), (1,)),
    "one_hot_infer": (lambda m, x: m.nn.functional.one_hot(idx(m, [[0, 2], [1, 1]])), (1,)),
    "sort_1d_nc": (lambda m, x: x[:, 1].sort(descending=True), (6, 3)),
}


@pytest.mark.parametrize("name", FUNCS)
def test_index_functions(device, name):
    fn, *shapes = FUNCS[name]
    check(fn, *shapes, device=device)


@pytest.mark.parametrize("name", ["gather", "index_select", "sort", "topk", "masked_fill", "argsort_desc",
                                  "where", "nonzero", "index_add", "scatter_add"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_index_functions_dtypes(device, name, dtype):
    fn, *shapes = FUNCS[name]
    rng = np.random.default_rng(3)
    # distinct values: torch's topk picks among ties in no documented order
    arrays = [(rng.permutation(int(np.prod(s))).reshape(s) - 5).astype(dtype) for s in shapes]
    check(fn, *arrays, device=device)


def test_scatter_src_larger_than_index(device):
    # values as torch's; torch's backward gives src the gradient of the index's shape, and its engine refuses
    # that gradient (a shape other than src's): dtrain raises the same error rather than a gradient of its own
    check(lambda m, x, s: x.scatter(0, idx(m, [[0, 1, 2]]), s), (3, 5), (2, 4), device=device, grad=False)
    for m in (torch, dtrain):
        s = m.ones(2, 4, dtype=m.float64, requires_grad=True)
        out = m.zeros(3, 5, dtype=m.float64).scatter(0, idx(m, [[0, 1, 2]]), s)
        with pytest.raises(RuntimeError, match=r"ScatterBackward0 returned an invalid gradient at index 1 - got "
                                               r"\[1, 3\] but expected shape compatible with \[2, 4\]"):
            out.sum().backward()


def test_sort_stable_ties():
    data = np.array([3, 1, 3, 2, 1, 3, 2, 1, 1, 3, 2, 2, 3, 1, 1, 2, 3, 2], np.float32)
    for desc in (False, True):
        check(lambda m, x: x.sort(descending=desc, stable=True), data, grad=False)
    check(lambda m, x: x.sort(descending=True, stable=True), np.array([True, False, True, False]))
    check(lambda m, x: x.sort(stable=True), np.array([float("nan"), 1.0, -np.inf, float("nan"), 0.5]))
    check(lambda m, x: x.sort(descending=True, stable=True), np.array([float("nan"), 1.0, -np.inf, np.inf, 0.5]))


FUNC_ERRORS = {
    "gather_float_index": (lambda m, x: x.gather(1, m.tensor([[0.0]])), None),
    "gather_oob": (lambda m, x: x.gather(1, idx(m, [[7]])), None),
    "gather_ndim": (lambda m, x: x.gather(1, idx(m, [0])), None),
    "index_select_oob": (lambda m, x: x.index_select(0, idx(m, [5])), None),
    "index_select_2d": (lambda m, x: x.index_select(0, idx(m, [[0]])), None),
    "index_select_dim": (lambda m, x: x.index_select(3, idx(m, [0])), "Dimension out of range"),
    "masked_fill_nonbool": (lambda m, x: x.masked_fill(idx(m, [1, 0, 1, 0, 1]), 0.0), None),
    "where_nonbool": (lambda m, x: m.where(idx(m, [1, 0, 1, 0, 1]), x, x), None),
    "topk_k": (lambda m, x: x.topk(9), None),
    "sort_dim": (lambda m, x: x.sort(4), "Dimension out of range"),
    "one_hot_float": (lambda m, x: m.nn.functional.one_hot(m.tensor([1.0])), None),
    "one_hot_range": (lambda m, x: m.nn.functional.one_hot(idx(m, [5]), 3), None),
    "scatter_dtype": (lambda m, x: x.scatter(1, idx(m, [[0]]), m.ones(1, 1, dtype=m.float32)), None),
    "scatter_oob": (lambda m, x: x.scatter(1, idx(m, [[9]]), 1.0), None),
}


@pytest.mark.parametrize("name", FUNC_ERRORS)
def test_index_function_errors(name):
    fn, match = FUNC_ERRORS[name]
    check_raises(fn, (3, 5), match=match)


# ------------------------------------------------------------------------------------------ in-place fills
FILLS = {
    "zero_": lambda m, x: x.zero_(),
    "fill_": lambda m, x: x.fill_(2.5),
    "fill_tensor": lambda m, x: x.fill_(m.tensor(-1.0)),
    "copy_": lambda m, x: x.copy_(m.arange(15.0).reshape(3, 5)),
    "copy_bcast": lambda m, x: x.copy_(m.arange(5)),
    "copy_cross_dtype": lambda m, x: x.copy_(m.tensor([[1.7], [-2.2], [3.5]], dtype=m.float64).int()),
    "copy_nc": lambda m, x: x.t().copy_(m.arange(15.0).reshape(5, 3)),
    "masked_fill_": lambda m, x: x.masked_fill_(x > 0, 0.5),
    "index_add_": lambda m, x: x.index_add_(0, idx(m, [0, 0]), m.ones(2, 5, dtype=x.dtype)),
    "scatter_": lambda m, x: x.scatter_(1, idx(m, [[0], [1], [2]]), 7.0),
    "view_write": lambda m, x: x[1].fill_(3.0),
}


@pytest.mark.parametrize("name", FILLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_inplace_fills(device, name, dtype):
    def fn(m, x):
        y = x.detach().clone()
        r = FILLS[name](m, y)
        return y, r
    check(fn, (np.random.default_rng(1).standard_normal((3, 5)) * 3).astype(dtype), device=device, grad=False)


@pytest.mark.parametrize("name", ["fill_", "fill_tensor", "copy_", "copy_bcast", "masked_fill_", "index_add_",
                                  "scatter_", "zero_"])
def test_inplace_fills_in_graph(device, name):
    check(lambda m, x: FILLS[name](m, x * 1) * 2, (3, 5), device=device)


def test_copy_grad_flows_to_source(device):
    check(lambda m, x, s: (x * 1).copy_(s) * x, (3, 4), (4,), device=device)
    check(lambda m, x, s: (x * 1).fill_(s.sum()) + x, (3, 4), (2,), device=device)


def test_copy_errors():
    check_raises(lambda m, x: x.copy_(m.ones(3)), (2, 4))
    check_raises(lambda m, x: x.fill_(m.ones(2)), (2, 4))
    check_raises(lambda m, x: x.zero_(), (2, 4)) if False else None
    for m in (dtrain, __import__("torch")):
        with pytest.raises(RuntimeError, match="leaf Variable"):
            m.ones(2, requires_grad=True).zero_()


# graphs that mix indexing, assignment into views and in-place ops; x is (3, 5) and v is (5,), both float64
MIXED = {
 "view_of_view_set": lambda m, x, v: (lambda y: (y[0].__setitem__(slice(1, 3), v[:2]), y)[1])(x * 1),
 "zeros_set_grad_value": lambda m, x, v: (lambda z: (z.__setitem__(1, v), z)[1])(m.zeros(3, 5, dtype=m.float64)),
 "view_fill": lambda m, x, v: (lambda y: (y[1].fill_(2.0), y * v)[1])(x * 1),
 "adv_set_repeat": lambda m, x, v: (lambda y: (y.__setitem__((m.tensor([0, 0]),), v[None].expand(2, 5)), y)[1])(x * 1),
 "set_cast_value": lambda m, x, v: (lambda y: (y.__setitem__(0, v.float()), y)[1])(x * 1),
 "index_put_": lambda m, x, v: (x * 1).index_put_((m.tensor([1]), m.tensor([2])), v[0]),
 "mask_set_tensor": lambda m, x, v: (lambda y: (y.__setitem__(y > 0, v.sum()), y)[1])(x * 1),
 "expand_then_index": lambda m, x, v: v.expand(3, 5)[m.tensor([0, 2]), 1:],
 "getitem_after_inplace": lambda m, x, v: (lambda y: (y.mul_(2), y[1:] * v)[1])(x * 1),
 "where_0d": lambda m, x, v: m.where(v[0] > 0, v[0], v[1]),
 "gather_nc": lambda m, x, v: x.t().gather(0, m.tensor([[0, 4, 4], [1, 2, 3]])),
 "masked_fill_nc": lambda m, x, v: x.t().masked_fill(x.t() > 0, 1.0),
 "sort_3d": lambda m, x, v: x.view(3, 5, 1).expand(3, 5, 2).sort(1),
 "topk_0d": lambda m, x, v: v[0].topk(1),
 "sort_0d": lambda m, x, v: v[0].sort(),
 "flip_empty": lambda m, x, v: x[:0].flip(0),
 "unbind_empty": lambda m, x, v: x[:, :0].unbind(0),
 "take_along_dim": lambda m, x, v: m.take_along_dim(x, m.tensor([[0], [1], [2]]), 1),
 "roll_neg": lambda m, x, v: x.roll(-7, 1),
 "triu_nc": lambda m, x, v: x.t().triu(-1),
 "diag": lambda m, x, v: m.diag(v),
 "diag_2d": lambda m, x, v: m.diag(x, 1),
 "split_tensor_split": lambda m, x, v: m.tensor_split(x, 3, dim=1),
 "chunk_empty": lambda m, x, v: x[:0].chunk(2),
 "squeeze_neg_tuple": lambda m, x, v: x.view(1, 3, 1, 5).squeeze((-2, 0)),
 "unsqueeze_after": lambda m, x, v: x.unsqueeze(2).unsqueeze(-4),
 "masked_scatter": lambda m, x, v: x.masked_scatter(x > 0, m.arange(15.0, dtype=m.float64).reshape(3, 5)),
 "index_fill": lambda m, x, v: x.index_fill(1, m.tensor([0, 3]), -1.0),
 "setitem_list_list": lambda m, x, v: (lambda y: (y.__setitem__(([0, 2], [1, 3]), 9.0), y)[1])(x * 1),
 "getitem_list_of_lists": lambda m, x, v: x[[[0, 1], [2, 2]]],
 "getitem_tuple_in_list": lambda m, x, v: x[[0, 1], [1, 2]],
 "getitem_np_int": lambda m, x, v: x[np.int64(1), np.int32(2)],
 "getitem_bool_false": lambda m, x, v: x[False],
 "getitem_none_only": lambda m, x, v: x[None, None],
 "getitem_slice_tensor_bounds": lambda m, x, v: x[m.tensor(1):m.tensor(3)],

 "iadd_idx": lambda m, x, v: (lambda y: (y.__setitem__((m.tensor([0, 2]),), y[m.tensor([0, 2])] + v), y)[1])(x * 1),
 "iadd_slice": lambda m, x, v: (lambda y: (y[1:].__iadd__(v), y)[1])(x * 1),
 "outer": lambda m, x, v: v[:, None] * v[None],
 "mask_set_grad": lambda m, x, v: (lambda y: (y.__setitem__(m.tensor([True, False, True]), v), y)[1])(x * 1),
 "setitem_0d_grad": lambda m, x, v: (lambda y: (y.__setitem__((1, 2), v[3]), y)[1])(x * 1),
 "masked_fill_tensor_grad": lambda m, x, v: x.masked_fill(x > 0, v[0]),
 "masked_fill_tensor_grad_": lambda m, x, v: (x * 1).masked_fill_(x > 0, v[0]),
 "view_mul_": lambda m, x, v: (lambda y: (y[0].mul_(v), y)[1])(x * 1),
 "t_view_add_": lambda m, x, v: (lambda y: (y.t()[1].add_(3.0), y)[1])(x * 1),
 "index_add_grad_src": lambda m, x, v: x.index_add(1, m.tensor([0, 0, 4]), v[:3].expand(3, 3)),
 "scatter_reduce_like": lambda m, x, v: x.scatter_add(0, m.tensor([[0, 1, 2, 0, 1]]), v[None]),
 "gather_repeat": lambda m, x, v: x.gather(0, m.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])),
 "index_select_repeat": lambda m, x, v: v.index_select(0, m.tensor([1, 1, 1])),
 "where_scalar_first": lambda m, x, v: m.where(x > 0, 1.0, x),
 "where_int_float": lambda m, x, v: m.where(x > 0, m.ones(3, 5, dtype=m.int64), x),
 "sort_values_grad_dup": lambda m, x, v: m.cat([v, v]).sort().values,
 "topk_grad": lambda m, x, v: x.topk(2, dim=0).values,
 "copy_into_view": lambda m, x, v: (lambda y: (y[:, 1].copy_(v[:3]), y)[1])(x * 1),
 "fill_view_of_nonleaf": lambda m, x, v: (lambda y: (y[1:, ::2].fill_(0.5), y * 2)[1])(x * 1),
 "zero_view": lambda m, x, v: (lambda y: (y[0].zero_(), y)[1])(x * 1),
 "unbind_sum": lambda m, x, v: sum(r * (i + 1) for i, r in enumerate(x)),
 "iter_rows": lambda m, x, v: m.stack([r.flip(0) for r in x]),
}


@pytest.mark.parametrize("name", MIXED)
def test_mixed_graphs(device, name):
    check(MIXED[name], (3, 5), (5,), device=device)


def test_index_put_and_select_errors():
    check_raises(lambda m, x, v: m.index_put(x, (m.tensor([0, 0, 2]),), v[:3], accumulate=True), (3, 5), (5,),
                 match="shape mismatch: value tensor of shape [3] cannot be broadcast to indexing result of shape "
                       "[3, 5]")
    check_raises(lambda m, x, v: v[0].index_select(0, m.tensor([0, 0])), (3, 5), (5,))


def test_setitem_on_view_of_leaf_raises():
    check_raises(lambda m, x: m.ones(3, requires_grad=True)[0:2].__setitem__(1, 5.0), (1,),
                 match="a view of a leaf Variable that requires grad is being used in an in-place operation.")


SAME_RESULT = [
    "x.scatter(1, m.tensor([0, 1]), 1.0)", "x.scatter(1, m.tensor([[0, 1, 2, 3, 4, 0]]), 1.0)",
    "x.scatter(0, m.tensor([[0], [1], [2], [0]]), 1.0)", "x.scatter_add(0, m.tensor([[0, 1]]), m.ones(1, 1))",
    "x.index_add(0, m.tensor([0]), m.ones(2, 5))", "x.index_add(0, m.tensor([0, 1]), m.ones(2, 4))",
    "x.index_add(0, m.tensor([0, 1]), m.ones(2, 5, dtype=m.float64))", "x.gather(0, m.tensor([[3, 0, 0, 0, 0]]))",
    "x.gather(0, m.tensor([[-1, 0, 0, 0, 0]]))", "x.masked_fill(m.ones(2, 5, dtype=m.bool), 0)",
    "x.masked_fill(m.ones(2, 3, 5, dtype=m.bool), 0)", "x.masked_fill_(m.ones(2, 3, 5, dtype=m.bool), 0)",
    "x.masked_fill_(m.ones(2, 5, dtype=m.bool), 0)", "x.masked_select(m.ones(2, 5, dtype=m.bool))",
    "m.where(m.ones(2, dtype=m.bool), x, x)", "m.where(m.ones(5, dtype=m.bool), x, m.ones(2, 1))", "x.kthvalue(6)",
    "x.kthvalue(0)", "x.kthvalue(2)", "x[m.tensor([0, 1]), m.tensor([0, 1, 2])]",
    "x.take_along_dim(m.tensor([[0]]), dim=3)", "x.take_along_dim(m.tensor([[0], [1], [2]]), dim=1)",
    "x.take_along_dim(m.tensor([[0, 1]]), dim=1)", "m.take_along_dim(x, m.tensor([3, 4]))", "x[::0]", "x[::-1]",
    "x['a']", "x.split(-1)", "x.repeat(-1, 1)", "x.topk(-1)", "m.nn.functional.one_hot(m.tensor([-1]))",
    "x.index_select(0, m.tensor([-1]))", "x.index_select(0, m.tensor([3]))", "x.sort(dim=2)",
    "x[m.tensor([[True]])]", "x[None, None, None, 0, 0, 0]", "x.index_put((m.tensor([0]),), m.ones(3))",
    "x.select(0, 3)", "x.unbind(2)", "x[m.tensor(0.5)]", "x[m.tensor([True, False])]",
]


@pytest.mark.parametrize("expr", SAME_RESULT)
def test_same_result_or_error(expr):
    import torch
    out = []
    for m in (dtrain, torch):
        try:
            out.append(repr(eval(expr, {"m": m, "x": m.arange(15.0).reshape(3, 5)})).replace("dtrain", "torch"))
        except Exception as e:
            out.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
    assert out[0] == out[1]


def test_int_index_fast_path_is_a_view_like_the_general_path():
    import numpy as np
    import dtrain
    x = dtrain.arange(12.0).view(3, 4)
    row = x[1]
    assert np.shares_memory(row.numpy(), x.numpy()) and row._vc is x._vc
    assert row._base is x._base                     # the root base, as in torch (x itself is a view)
    row.mul_(2)
    assert x[1].tolist() == [8.0, 10.0, 12.0, 14.0]
    v = dtrain.arange(3.0)[-1]                     # 0-d: still a view, writable
    assert v.ndim == 0 and v.item() == 2.0
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        x[3]
    w = dtrain.ones(2, 3, requires_grad=True)
    w[0].sum().backward()                           # with grad: the graph path
    assert w.grad.tolist() == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]


# ----------------------------------------------------------------------------------- index_copy, scatter_reduce
FLOATS = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [0, 1, -1, -3])
def test_index_copy(device, dim, dtype):
    shape = (4, 5, 3)
    d = dim % 3
    src_shape = tuple(2 if k == d else s for k, s in enumerate(shape))
    idx = np.array([2, 0])
    check(lambda m, x, s, i: (m.index_copy(x, dim, i, s), x.index_copy(dim, i, s)), shape, src_shape, idx,
          device=device, dtype=dtype)
    check(lambda m, x, s, i: x.clone().index_copy_(dim, i, s), shape, src_shape, idx, device=device, dtype=dtype)


def test_index_copy_edges(device):
    check(lambda m, x, s: x.index_copy(0, m.tensor([1]), s), (3,), (), device=device)   # scalar source
    check(lambda m, x, s: x.index_copy(0, m.tensor(2), s), (3,), (1,), device=device)  # 0-d index
    check(lambda m, x, s: x.index_copy(0, m.tensor([0]), s), (), (), device=device)    # 0-d self
    check(lambda m, x, s: x.index_copy(0, m.tensor([], dtype=m.int64), s), (3, 2), (0, 2), device=device)
    check(lambda m, x, s: x.index_copy(0, m.tensor([1, 1]), s), (3, 2), (2, 2), device=device, grad=False)
    check(lambda m, x, s: x.index_copy(1, m.tensor([1, 0]), s), np.zeros((2, 3), np.int64),
          np.arange(4).reshape(2, 2), device=device)


INDEX_COPY_ERRORS = {
    "index_2d": lambda m, x, s: x.index_copy(0, m.tensor([[2, 0]]), s),
    "scalar_source": lambda m, x, s: x.index_copy(0, m.tensor([1, 2]), s[0, 0]),
    "ndim": lambda m, x, s: x.index_copy(0, m.tensor([1, 0]), s[0]),
    "index_int32": lambda m, x, s: x.index_copy(0, m.tensor([1, 0], dtype=m.int32), s),
    "index_float": lambda m, x, s: x.index_copy(0, m.tensor([1.0, 0.0]), s),
    "dtype": lambda m, x, s: x.index_copy(0, m.tensor([1, 0]), s.float()),
    "slice_shape": lambda m, x, s: x.index_copy(1, m.tensor([1, 0]), s),
    "slice_shape_scalar": lambda m, x, s: x.index_copy(0, m.tensor([1]), s[0, 0]),
    "count": lambda m, x, s: x.index_copy(0, m.tensor([2]), s),
    "out_of_bounds": lambda m, x, s: x.index_copy(0, m.tensor([5, 0]), s),
    "negative": lambda m, x, s: x.index_copy(0, m.tensor([-1, 0]), s),
    "dim": lambda m, x, s: x.index_copy(2, m.tensor([1, 0]), s),
}


@pytest.mark.parametrize("name", INDEX_COPY_ERRORS)
def test_index_copy_errors(device, name):
    e, te = check_raises(INDEX_COPY_ERRORS[name], (3, 4), (2, 4), device=device)
    assert str(e) == str(te)


REDUCES = ["sum", "prod", "mean", "amax", "amin"]


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("dtype", FLOATS)
def test_scatter_reduce(device, reduce, include_self, dim, dtype):
    rng = np.random.default_rng(11)
    x, src = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    idx = rng.integers(0, (3, 4)[dim], (3, 4))  # repeated targets, and targets nothing reaches
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == np.float32 else {}
    check(lambda m, x, s, i: (m.scatter_reduce(x, dim, i, s, reduce, include_self=include_self),
                              x.scatter_reduce(dim, i, s, reduce=reduce, include_self=include_self)),
          x.astype(dtype), src.astype(dtype), idx, device=device, **tol)
    check(lambda m, x, s, i: x.clone().scatter_reduce_(dim, i[:2, :3], s[:2, :3], reduce, include_self=include_self),
          x.astype(dtype), src.astype(dtype), idx, device=device, **tol)
    # an index smaller than src (torch's backward refuses it: values only)
    check(lambda m, x, s, i: m.scatter_reduce(x, dim, i[:2, :3], s, reduce, include_self=include_self),
          x.astype(dtype), src.astype(dtype), idx, device=device, grad=False, **tol)


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_ties_zeros_nan(device, reduce, include_self):
    x = np.array([1.0, 2.0, 0.0, 4.0, 5.0])
    src = np.array([5.0, 0.0, 7.0, 2.0, 9.0, 2.0, 0.0, 0.0, 4.0, 5.0])
    idx = np.array([0, 1, 0, 1, 2, 1, 3, 3, 3, 4])  # ties with self and among src; one and two zeros in a slot
    fn = lambda m, x, s, i: m.scatter_reduce(x, 0, i, s, reduce, include_self=include_self)
    check(fn, x, src, idx, device=device)
    if reduce != "prod":  # torch has no gradient through a NaN product either way: compare the values only
        src_nan = src.copy()
        src_nan[[2, 8]] = np.nan
        check(fn, x, src_nan, idx, device=device)
    check(fn, x, src, idx, device=device, grad=False)


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_scatter_reduce_int(device, reduce, include_self, dtype):
    x = np.array([1, 2, 3, 4, -3]).astype(dtype)
    src = np.array([5, 6, -7, 8, 9, 10, -2]).astype(dtype)
    idx = np.array([0, 1, 0, 1, 2, 1, 4])
    fn = lambda m, x, s, i: m.scatter_reduce(x, 0, i, s, reduce, include_self=include_self)
    if dtype == np.bool_ and reduce == "mean":
        e, te = check_raises(fn, x, src, idx, device=device)
        assert str(e) == str(te)
    else:
        check(fn, x, src, idx, device=device)


def test_scatter_reduce_edges(device):
    fn = lambda m, x, s, i: m.scatter_reduce(x, 0, i, s, "prod")
    check(lambda m, x, s: x.scatter_reduce(0, m.tensor(0), s, "sum"), (), (), device=device)
    check(lambda m, x, s: x.scatter_reduce(0, m.tensor([0, 0]), s, "prod"), (), (2,), device=device)
    check(fn, (3, 2), (1, 2), np.zeros((0, 2), np.int64), device=device)
    check(lambda m, x, s, i: x.scatter_reduce(1, i, s, "amax", include_self=False), (2, 3), (2, 3),
          np.zeros((2, 3), np.int32), device=device)
    check(lambda m, x: x.scatter_reduce(0, m.tensor([0]), m.tensor([-float("inf")], dtype=x.dtype), "amax",
                                        include_self=False), (2,), device=device)
    check(lambda m, x, s: (x.scatter_reduce(0, m.tensor([0, 0, 2]), s, "max"),
                           x.scatter_reduce(0, m.tensor([1, 0, 1]), s, "min", include_self=False)), (3,), (3,),
          device=device, grad=False)
    # an empty index of any dtype is accepted
    check(lambda m, x, s: x.scatter_reduce(0, m.tensor([]), s, "sum"), (3,), (2,), device=device, grad=False)


SCATTER_REDUCE_ERRORS = {
    "reduce": lambda m, x, s: x.scatter_reduce(0, m.tensor([0, 1]), s, "add"),
    "reduce_before_bounds": lambda m, x, s: x.scatter_reduce(0, m.tensor([0, 9]), s, "foo"),
    "index_dtype_first": lambda m, x, s: x.scatter_reduce(0, m.tensor([0.0]), s, "foo"),
    "max_backward": lambda m, x, s: x.requires_grad_().scatter_reduce(0, m.tensor([0, 1]), s, "max").sum().backward(),
    "index_dtype": lambda m, x, s: x.scatter_reduce(0, m.tensor([0.0]), s, "sum"),
    "src_dtype": lambda m, x, s: x.scatter_reduce(0, m.tensor([0, 1]), s.float(), "sum"),
    "bounds": lambda m, x, s: x.scatter_reduce(0, m.tensor([0, 6]), s, "sum"),
    "negative": lambda m, x, s: x.scatter_reduce(0, m.tensor([-3, 1]), s, "sum"),
    "index_larger": lambda m, x, s: x.scatter_reduce(0, m.tensor([0, 1, 2, 0, 1, 2, 3]), s, "mean"),
    "ndim": lambda m, x, s: x.scatter_reduce(0, m.tensor([[0, 1]]), s, "amin"),
    "dim": lambda m, x, s: x.scatter_reduce(1, m.tensor([0, 1]), s, "sum"),
}


@pytest.mark.parametrize("name", SCATTER_REDUCE_ERRORS)
def test_scatter_reduce_errors(device, name):
    e, te = check_raises(SCATTER_REDUCE_ERRORS[name], (4,), (6,), device=device)
    assert str(e) == str(te)


@pytest.mark.parametrize("op", ["multiply", "maximum", "minimum", "add"])
def test_fold_at_matches_ufunc_at(op):
    """The ufunc.at stand-in used where the array module has none (CuPy), run here on NumPy."""
    from dtrain._ops.scatter import _fold_at, _full_index
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 4, (6, 5))
    vals = rng.standard_normal((6, 5))
    vals[1, 2] = np.nan
    for dim, shape in ((0, (4, 5)), (1, (6, 4))):
        out, ref = np.full(shape, 0.5), np.full(shape, 0.5)
        key = _full_index(np, idx, dim)
        _fold_at(np, getattr(np, op), out, key, vals)
        getattr(np, op).at(ref, key, vals)
        np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_where_masked_fill_grad_does_not_leak_nan(device):
    nan = float("nan")
    check(lambda m, x, y: m.where(x > 0, x, y) * m.tensor([nan, 1.0, float("inf")], dtype=m.float64), (3,), (3,),
          device=device)
    check(lambda m, x: x.masked_fill(x > 0, 0.0) * m.tensor([nan, 1.0, float("inf")], dtype=m.float64), (3,),
          device=device)


def test_index_copy_scatter_reduce_methods_match_torch():
    import torch
    for n in ["index_copy", "index_copy_", "scatter_reduce", "scatter_reduce_"]:
        assert hasattr(dtrain.Tensor, n) == hasattr(torch.Tensor, n) and hasattr(dtrain, n) == hasattr(torch, n), n
