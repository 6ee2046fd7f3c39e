"""Shape ops against torch: values, gradients (over non-contiguous, empty and 0-d inputs), views and errors."""
import numpy as np
import pytest
from helpers import check, check_raises

import dtrain

OPS = {
    "view": (lambda m, x: x.view(4, 3), (3, 4)),
    "view_infer": (lambda m, x: x.view(-1, 2), (3, 4)),
    "view_size": (lambda m, x: x.view(m.Size([12])), (3, 4)),
    "view_0d": (lambda m, x: x.view(1, 1), ()),
    "view_empty": (lambda m, x: x.view(2, -1), (0, 4)),
    "reshape": (lambda m, x: x.reshape(2, -1), (3, 4)),
    "reshape_nc": (lambda m, x: x.t().reshape(-1), (3, 4)),
    "reshape_tuple": (lambda m, x: x.reshape((6, 2)), (3, 4)),
    "reshape_0d": (lambda m, x: x.reshape(()), (1,)),
    "flatten": (lambda m, x: x.flatten(), (2, 3, 4)),
    "flatten_mid": (lambda m, x: x.flatten(1, 2), (2, 3, 4, 5)),
    "flatten_0d": (lambda m, x: x.flatten(), ()),
    "flatten_nc": (lambda m, x: x.transpose(0, 2).flatten(0, 1), (2, 3, 4)),
    "unflatten": (lambda m, x: x.unflatten(1, (2, -1)), (3, 4)),
    "squeeze": (lambda m, x: x.squeeze(), (1, 3, 1, 2)),
    "squeeze_dim": (lambda m, x: x.squeeze(2), (1, 3, 1, 2)),
    "squeeze_tuple": (lambda m, x: x.squeeze((0, 2)), (1, 3, 1, 2)),
    "squeeze_noop": (lambda m, x: x.squeeze(1), (1, 3, 1, 2)),
    "squeeze_0d": (lambda m, x: x.squeeze(0), ()),
    "unsqueeze": (lambda m, x: x.unsqueeze(1), (3, 4)),
    "unsqueeze_neg": (lambda m, x: x.unsqueeze(-1), (3, 4)),
    "unsqueeze_0d": (lambda m, x: x.unsqueeze(0), ()),
    "permute": (lambda m, x: x.permute(2, 0, 1), (2, 3, 4)),
    "permute_tuple": (lambda m, x: x.permute((1, 0, 2)), (2, 3, 4)),
    "permute_neg": (lambda m, x: m.permute(x, (-1, 0, 1)), (2, 3, 4)),
    "transpose": (lambda m, x: x.transpose(0, 2), (2, 3, 4)),
    "swapaxes": (lambda m, x: m.swapaxes(x, 0, 1), (2, 3)),
    "swapdims": (lambda m, x: x.swapdims(-1, 0), (2, 3)),
    "t": (lambda m, x: x.t(), (2, 3)),
    "t_1d": (lambda m, x: x.t(), (3,)),
    "T": (lambda m, x: x.T, (2, 3)),
    "mT": (lambda m, x: x.mT, (2, 3, 4)),
    "expand": (lambda m, x: x.expand(2, 3, 4), (3, 1)),
    "expand_neg": (lambda m, x: x.expand(-1, 5), (3, 1)),
    "expand_as": (lambda m, x, y: x.expand_as(y), (1, 4), (3, 4)),
    "expand_0d": (lambda m, x: x.expand(3), ()),
    "repeat": (lambda m, x: x.repeat(2, 3), (2, 3)),
    "repeat_lead": (lambda m, x: x.repeat(2, 1, 3), (2, 3)),
    "repeat_0d": (lambda m, x: x.repeat(4), ()),
    "tile": (lambda m, x: x.tile((2,)), (2, 3)),
    "contiguous": (lambda m, x: x.t().contiguous(), (2, 3)),
    "cat": (lambda m, x, y: m.cat([x, y]), (2, 3), (4, 3)),
    "cat_dim1": (lambda m, x, y: m.cat((x, y), dim=-1), (2, 3), (2, 1)),
    "cat_empty_1d": (lambda m, x, y: m.cat([x, y]), (0,), (2, 3)),
    "concat": (lambda m, x, y: m.concat([x.t(), y], 1), (3, 2), (2, 2)),
    "stack": (lambda m, x, y: m.stack([x, y]), (2, 3), (2, 3)),
    "stack_dim": (lambda m, x, y: m.stack([x, y], dim=2), (2, 3), (2, 3)),
    "stack_0d": (lambda m, x, y: m.stack([x, y]), (), ()),
    "split": (lambda m, x: x.split(2), (5, 3)),
    "split_sizes": (lambda m, x: x.split([1, 3, 1]), (5, 3)),
    "split_dim": (lambda m, x: m.split(x, 2, dim=1), (3, 5)),
    "chunk": (lambda m, x: x.chunk(3), (7, 2)),
    "chunk_dim": (lambda m, x: x.chunk(2, 1), (2, 5)),
    "chunk_more": (lambda m, x: x.chunk(4), (2, 3)),
    "chunk_empty": (lambda m, x: x.chunk(3), (0, 3)),
    "split_empty": (lambda m, x: x.split(2, 1), (3, 0)),
    "narrow": (lambda m, x: x.narrow(1, 1, 2), (3, 4)),
    "narrow_neg": (lambda m, x: m.narrow(x, 0, -2, 2), (3, 4)),
    "flip": (lambda m, x: x.flip(0), (3, 4)),
    "flip_dims": (lambda m, x: x.flip((0, 2)), (2, 3, 4)),
    "flip_spread": (lambda m, x: x.flip(0, 2), (2, 3, 4)),  # the method takes dims spread out, as torch's
    "flip_kw": (lambda m, x: x.flip(dims=[1]), (2, 3, 4)),
    "flip_nc": (lambda m, x: x.t().flip(-1), (3, 4)),
    "roll": (lambda m, x: x.roll(1, 0), (3, 4)),
    "roll_flat": (lambda m, x: x.roll(5), (3, 4)),
    "roll_multi": (lambda m, x: x.roll((1, -2), (0, 1)), (3, 4)),
    "roll_flat_tuple": (lambda m, x: x.t().roll((7,)), (3, 4)),
    "stack_nc": (lambda m, x, y: m.stack([x.t(), y[::2]], 1), (3, 4), (8, 3)),
    "unbind_nc": (lambda m, x: x.t().unbind(1), (3, 4)),
    "tril": (lambda m, x: x.tril(), (4, 4)),
    "tril_k": (lambda m, x: m.tril(x, -1), (3, 5)),
    "triu": (lambda m, x: x.triu(1), (2, 4, 4)),
    "diagonal": (lambda m, x: x.diagonal(), (3, 4)),
    "diagonal_off": (lambda m, x: x.diagonal(1), (3, 4)),
    "diagonal_neg": (lambda m, x: x.diagonal(-1, 1, 2), (2, 4, 3)),
    "diagonal_dims": (lambda m, x: m.diagonal(x, 0, 2, 0), (3, 2, 3)),
    "unbind": (lambda m, x: x.unbind(1), (2, 3)),
    "unbind_0": (lambda m, x: m.unbind(x), (3, 2)),
    "movedim": (lambda m, x: x.movedim(0, 2), (2, 3, 4)),
    "movedim_multi": (lambda m, x: m.movedim(x, (0, 1), (2, 0)), (2, 3, 4)),
    "moveaxis": (lambda m, x: m.moveaxis(x, -1, 0), (2, 3, 4)),
    "view_chain": (lambda m, x: x.t().unsqueeze(0).expand(2, 4, 3).reshape(8, 3), (3, 4)),
    "select": (lambda m, x: x.select(1, -1), (3, 4)),
    "broadcast_to": (lambda m, x: m.broadcast_to(x, (2, 3)), (3,)),
    "view_as": (lambda m, x, y: x.view_as(y), (2, 6), (3, 4)),
    "hstack": (lambda m, x, y: m.hstack([x, y]), (2, 3), (2, 2)),
    "vstack": (lambda m, x, y: m.vstack([x, y]), (3,), (2, 3)),
}


@pytest.mark.parametrize("name", OPS)
def test_shape_op(device, name):
    fn, *shapes = OPS[name]
    check(fn, *shapes, device=device)


@pytest.mark.parametrize("name", ["reshape", "permute", "transpose", "flip", "roll", "cat", "stack", "chunk",
                                  "tril", "diagonal", "repeat", "expand", "unbind"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32, np.bool_])
def test_shape_op_dtypes(device, name, dtype):
    fn, *shapes = OPS[name]
    arrays = [(np.random.default_rng(0).standard_normal(s) * 5).astype(dtype) for s in shapes]
    check(fn, *arrays, device=device)


def test_cat_promotes(device):
    check(lambda m, x, y: m.cat([x, y.long()]), np.ones((2, 2), np.float32), np.ones((1, 2)), device=device)
    check(lambda m, x, y: m.cat([x.int(), y.double()]), (2,), (3,), device=device)


ERRORS = {
    "view_noncontig": (lambda m, x: x.t().view(-1), (3, 4), "view size is not compatible"),
    "view_bad": (lambda m, x: x.view(5, 3), (3, 4), "shape '[5, 3]' is invalid for input of size 12"),
    "reshape_bad": (lambda m, x: x.reshape(5, -1), (3, 4), "shape '[5, -1]' is invalid for input of size 12"),
    "view_empty_ambiguous": (lambda m, x: x.view(0, 4, -1), (0, 4), "the unspecified dimension size -1 can be any"),
    "narrow_neg_len": (lambda m, x: x.narrow(0, 0, -1), (3, 2), "length must be non-negative"),
    "narrow_start": (lambda m, x: x.narrow(0, -4, 1), (3, 2), "start out of range"),
    "view_two_infer": (lambda m, x: x.view(-1, -1), (3, 4), "only one dimension can be inferred"),
    "permute_len": (lambda m, x: x.permute(1, 0), (2, 3, 4), None),
    "permute_dup": (lambda m, x: x.permute(0, 0, 1), (2, 3, 4), None),
    "transpose_dim": (lambda m, x: x.transpose(0, 3), (2, 3), "Dimension out of range"),
    "squeeze_dim": (lambda m, x: x.squeeze(5), (2, 3), "Dimension out of range"),
    "unsqueeze_dim": (lambda m, x: x.unsqueeze(4), (2, 3), "Dimension out of range"),
    "expand_bad": (lambda m, x: x.expand(3, 4), (2, 4), None),
    "expand_few": (lambda m, x: x.expand(4), (2, 4), None),
    "repeat_few": (lambda m, x: x.repeat(2), (2, 4), None),
    "cat_shape": (lambda m, x, y: m.cat([x, y]), (2, 3), (2, 4), None),
    "cat_ndim": (lambda m, x, y: m.cat([x, y]), (2, 3), (3,), None),
    "cat_dim": (lambda m, x, y: m.cat([x, y], 2), (2, 3), (2, 3), "Dimension out of range"),
    "stack_shape": (lambda m, x, y: m.stack([x, y]), (2, 3), (3, 2), None),
    "split_sum": (lambda m, x: x.split([1, 1]), (3, 2), None),
    "chunk_zero": (lambda m, x: x.chunk(0), (3, 2), None),
    "narrow_range": (lambda m, x: x.narrow(0, 2, 2), (3, 2), "start (2) + length (2) exceeds dimension size (3)"),
    "flatten_order": (lambda m, x: x.flatten(2, 1), (2, 3, 4), None),
    "unflatten_bad": (lambda m, x: x.unflatten(1, (2, 3)), (3, 4), None),
    "tril_1d": (lambda m, x: x.tril(), (3,), None),
    "diagonal_same": (lambda m, x: x.diagonal(0, 1, 1), (3, 3), None),
    "t_3d": (lambda m, x: x.t(), (2, 3, 4), None),
    "flip_dup": (lambda m, x: x.flip((0, 0)), (2, 3), None),
    "flip_fn_spread": (lambda m, x: m.flip(x, 0, 1), (2, 3), "positional arguments"),
    "flip_no_dims": (lambda m, x: x.flip(), (2, 3), "missing 1 required"),
    "flip_dims_twice": (lambda m, x: x.flip(0, dims=1), (2, 3), "multiple values"),
    "roll_mismatch": (lambda m, x: x.roll((1, 2), 0), (2, 3), None),
    "movedim_dup": (lambda m, x: x.movedim((0, 0), (1, 2)), (2, 3, 4), "movedim: repeated dim in `source` ([0, 0])"),
    "movedim_len": (lambda m, x: x.movedim((0, 1), (2,)), (2, 3, 4), "should contain the same number of dims"),
    "dim_0d": (lambda m, x: x.unbind(1), (), None),
}


@pytest.mark.parametrize("name", ERRORS)
def test_shape_errors(name):
    fn, *shapes, match = ERRORS[name]
    check_raises(fn, *shapes, match=match)


def test_views_share_memory_and_version(device):
    base = dtrain.arange(12.0, device=device).reshape(3, 4)
    views = [base.view(12), base.t(), base[1], base[:, ::2], base.unsqueeze(0), base.expand(2, 3, 4),
             base.narrow(1, 1, 2), base.diagonal(), base.permute(1, 0), base.split(1)[0], base.unbind(0)[2],
             base.flatten(), base.reshape(4, 3), base.squeeze(), base.movedim(0, 1), base.T, base.mT,
             base.chunk(2, 1)[1], base.view(2, 6).unflatten(1, (2, 3)), base.select(0, 1)]
    before = [v.cpu().numpy().copy() for v in views]
    base.add_(100)
    for v, b in zip(views, before):
        assert np.array_equal(v.cpu().numpy(), b + 100)
        assert v._vc is base._vc
    v = base[0]
    v.mul_(0)
    assert base[0].sum().item() == 0 and base._version == 2


def test_copies_do_not_share(device):
    base = dtrain.arange(6.0, device=device).reshape(2, 3)
    copies = [base.repeat(1, 1), dtrain.cat([base]), dtrain.stack([base]), base.flip(0), base.roll(1),
              base.tril(), base.t().reshape(-1), base.clone()]
    base.add_(1)
    for c in copies:
        assert c.cpu().numpy().min() == 0


def test_inplace_on_saved_base_raises_at_backward(device):
    for m in (dtrain, __import__("torch")):
        x = m.ones(3, 2, requires_grad=True)
        y = x * 2
        v = y.t()
        z = (v * v).sum()  # backward needs v, i.e. y's data
        with m.no_grad():
            y.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.backward()


def test_view_in_graph_gradients(device):
    check(lambda m, x: (x.view(2, 6)[:, 1:] * 3).t().sum(0), (3, 4), device=device)
    check(lambda m, x: m.stack(x.unbind(1), 0) * x.t(), (3, 4), device=device)
    check(lambda m, x: sum(c.sum() * (i + 1) for i, c in enumerate(x.chunk(3, 1))), (2, 7), device=device)


@pytest.mark.parametrize("fn", [lambda x: x.permute(1, 0, 2).view(3, 8), lambda x: x.transpose(1, 2).view(2, 12),
                                lambda x: x[:, :, ::2].view(2, 6), lambda x: x[:, 1:].view(2, 2, 4).view(4, 4),
                                lambda x: x.expand(2, 2, 3, 4).view(4, 12),
                                lambda x: x.unsqueeze(1).expand(2, 5, 3, 4).view(10, 12),
                                lambda x: x.permute(1, 0, 2).view(3, 2, 2, 2), lambda x: x.mT.view(2, 4, 3),
                                lambda x: x.mT.reshape(2, 12)])
def test_view_strides_like_torch(fn):
    import torch
    out = []
    for m in (dtrain, torch):
        try:
            out.append(tuple(fn(m.arange(24.0).reshape(2, 3, 4)).stride()))
        except RuntimeError as e:
            out.append(type(e))
    assert out[0] == out[1]
