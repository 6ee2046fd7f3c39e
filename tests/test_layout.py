"""Strides of op results against torch's: they decide whether `.view()` of a result works, what `is_contiguous()`
and `stride()` say, and what a later copy_ counts as a partial overlap. Reductions, scans and most ops that are not
elementwise make a new contiguous tensor in torch; clone and the *_like factories keep the input's order of dims
(preserve_format); views get torch's strides for size-1 dims; from_numpy makes a storage of its own."""
import numpy as np
import pytest
import torch

import dtrain


def _transposed(T, device="cpu"):
    return T.arange(1.0, 25.0, device=device).reshape(2, 3, 4).permute(2, 0, 1)  # shape (4, 2, 3), strides (1, 12, 4)


# op -> (torch or dtrain module, input) -> result
OPS = {
    "sum": lambda T, x: x.sum(1),
    "sum_keepdim": lambda T, x: x.sum(1, keepdim=True),
    "mean": lambda T, x: x.mean(1),
    "prod": lambda T, x: x.prod(1),
    "amax": lambda T, x: x.amax(1),
    "max_dim": lambda T, x: x.max(1).values,
    "max_dim_indices": lambda T, x: x.max(1).indices,
    "argmax": lambda T, x: x.argmax(1),
    "var": lambda T, x: x.var(1),
    "std": lambda T, x: x.std(1),
    "norm": lambda T, x: x.norm(dim=1),
    "logsumexp": lambda T, x: x.logsumexp(1),
    "all": lambda T, x: (x > 3).all(1),
    "median": lambda T, x: x.median(1).values,
    "mode": lambda T, x: x.mode(1).values,
    "cumsum": lambda T, x: x.cumsum(1),
    "cumprod": lambda T, x: x.cumprod(1),
    "cummax": lambda T, x: x.cummax(1).values,
    "logcumsumexp": lambda T, x: x.logcumsumexp(1),
    "roll": lambda T, x: x.roll(1, 1),
    "tril": lambda T, x: x.tril(),
    "repeat": lambda T, x: x.repeat(1, 1, 1),
    "masked_fill": lambda T, x: x.masked_fill(x > 3, 0.0),
    "nonzero": lambda T, x: x.nonzero(),
    "clone": lambda T, x: x.clone(),
    "clone_expanded": lambda T, x: x[:, :1].expand(4, 5, 3).clone(),
    "clone_sliced": lambda T, x: x[:, :, ::2].clone(),
    "contiguous": lambda T, x: x.contiguous(),
    "zeros_like": lambda T, x: T.zeros_like(x),
    "ones_like": lambda T, x: T.ones_like(x),
    "empty_like": lambda T, x: T.empty_like(x),
    "full_like": lambda T, x: T.full_like(x, 2.0),
    "to_double": lambda T, x: x.double(),
    "to_double_size1": lambda T, x: T.zeros(1, dtype=T.float32).unfold(0, 1, 2).double(),
    "to_half_sliced": lambda T, x: x.double()[:, :, ::2].half(),
    "exp": lambda T, x: x.exp(),
    "add": lambda T, x: x + x,
    "view_size1": lambda T, x: T.zeros(1, 4, 4).unfold(0, 1, 2).view(1, 4, 4, 1),
    "reshape_size1": lambda T, x: x.transpose(0, 1)[:, :1].reshape(2, 1, 3),
    "index_none": lambda T, x: x[:, None],
    "index_none_last": lambda T, x: x[..., None],
    "index_int_none": lambda T, x: x[0, None, 1:],
    "exp_size1": lambda T, x: x.transpose(0, 2)[:1].exp(),
    "mul_broadcast": lambda T, x: x * x.norm(dim=1, keepdim=True),
    "div_overlapping": lambda T, x: T.ones(4, 1).unfold(0, 3, 1) / 2,
    "lt": lambda T, x: x.transpose(0, 2)[:1] < 3,
    "flip": lambda T, x: x.flip(1),
    "sort": lambda T, x: x.sort(1).values,
    "argsort": lambda T, x: x.argsort(1),
    "topk": lambda T, x: x.topk(1, 1).values,
    "softmax": lambda T, x: x.softmax(1),
    "log_softmax": lambda T, x: x.log_softmax(1),
    "cross": lambda T, x: T.linalg.cross(x, x, dim=2),
    "renorm": lambda T, x: x.renorm(2, 0, 1.0),
    "put": lambda T, x: x.put(T.tensor([0, 2]), T.tensor([0.0, 2.0])),
}

# where dtrain's layout still differs from torch's, the reason
DIFFERENT = {
    "renorm": "dtrain's renorm is composed (input times a factor, elementwise); torch's kernel writes a contiguous "
              "result",
    "put": "dtrain's out-of-place put is composed over a flattened copy (C order); torch's clones the input "
           "(preserve_format) and writes into it",
}

def _layout(t):
    return tuple(t.shape), tuple(t.stride()), t.is_contiguous()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=DIFFERENT[n]))
                                  if n in DIFFERENT else n for n in sorted(OPS)], ids=sorted(OPS))
def test_result_strides_match_torch(name, device):
    f = OPS[name]
    want = f(torch, _transposed(torch))
    with dtrain.device(device):  # the factories inside an op (index tensors, unfold's ones) on the same device
        got = f(dtrain, _transposed(dtrain, device))
    assert _layout(got) == _layout(want)
    if name == "empty_like":
        return
    np.testing.assert_allclose(got.detach().double().cpu().numpy(), want.detach().double().numpy(), rtol=1e-6)


def test_view_of_a_reduction_of_a_transposed_tensor_works_as_in_torch():
    for T in (torch, dtrain):
        x = T.arange(24.0).reshape(2, 3, 4).transpose(0, 2)
        assert tuple(x.sum(1).view(-1).shape) == (8,)
        assert tuple(x.softmax(1).cumsum(1).view(-1).shape) == (24,)
        with pytest.raises(RuntimeError, match="view size is not compatible"):
            x.clone().view(-1)  # clone keeps the transposed layout


def test_a_view_shares_the_storage_offset_of_its_base():
    for T in (torch, dtrain):
        t = T.arange(24.0).reshape(2, 3, 4)
        assert t.as_strided((2, 2), (1, 1), 3).storage_offset() == 3
        assert t[1:, None].storage_offset() == 12


def test_from_numpy_makes_a_storage_of_its_own():
    """torch compares storages, not memory: a write into from_numpy(t.numpy()) from a view of t is no partial
    overlap, while the same write within t's own storage is refused."""
    for T in (torch, dtrain):
        t = T.tensor([1.0, 2.0])
        other = T.from_numpy(t.numpy())
        assert other.storage_offset() == 0
        other[:1].add_(t[:1])  # the same memory, another storage: let through
        assert t.tolist() == [2.0, 2.0]
        with pytest.raises(RuntimeError, match="refer to a single memory location"):
            t.add_(t[0])  # within one storage: a partial overlap
