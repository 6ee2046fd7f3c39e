"""The Tensor object: metadata, Python protocol, conversion to NumPy / DLPack, clone/detach, pickling."""
import copy
import pickle

import numpy as np
import pytest
import torch

import dtrain


def pair(a):
    a = np.asarray(a)
    return dtrain.tensor(a), torch.tensor(a)


def test_size():
    x, t = pair(np.zeros((2, 3)))
    assert repr(x.shape) == repr(t.shape) == "torch.Size([2, 3])"
    assert str(x.size()) == str(t.size())
    assert isinstance(x.shape, tuple) and x.shape == (2, 3) and x.shape[1:] == dtrain.Size([3])
    assert repr(x.shape[1:]) == "torch.Size([3])" and x.shape.numel() == 6
    assert repr(dtrain.Size([])) == repr(torch.Size([]))


METADATA = ["size(0)", "size(-1)", "dim()", "ndim", "numel()", "stride()", "stride(1)", "is_contiguous()",
            "element_size()", "T.shape", "mT.shape", "T.stride()", "t().is_contiguous()", "len(x)", "nelement()",
            "ndimension()", "x[:, ::2].stride()", "x[:, ::2].is_contiguous()", "x.T.is_contiguous()",
            "is_floating_point()", "dtype", "requires_grad", "is_leaf", "storage_offset()", "x[1:].storage_offset()"]


@pytest.mark.parametrize("expr", METADATA)
def test_metadata(expr):
    x, t = pair(np.arange(12.0, dtype=np.float32).reshape(3, 4))
    code = expr if expr.startswith(("x", "len")) else "x." + expr
    a, e = eval(code, {"x": x}), eval(code, {"x": t})
    assert str(a) == str(e)


def test_metadata_3d():
    x, t = pair(np.zeros((2, 3, 4)))
    assert x.mT.shape == t.mT.shape and x.mT.stride() == t.mT.stride()
    assert x.permute(2, 0, 1).stride() == t.permute(2, 0, 1).stride()
    with pytest.raises(IndexError):
        x.size(3)
    with pytest.raises(IndexError):
        t.size(3)


def test_scalars_and_protocol():
    x, t = pair([[1.5, 2.0], [3.0, 4.0]])
    assert x.tolist() == t.tolist()
    assert x[0, 1].item() == t[0, 1].item() and type(x[0, 1].item()) is float
    assert type(dtrain.tensor(3).item()) is int and type(dtrain.tensor(True).item()) is bool
    assert float(x[1, 1]) == 4.0 and int(x[1, 0]) == 3 and int(dtrain.tensor([7])) == 7
    assert [r.tolist() for r in x] == [r.tolist() for r in t]
    assert len(x) == 2
    assert bool(dtrain.tensor([1])) is True and bool(dtrain.tensor(0.0)) is False
    assert [10, 20, 30][dtrain.tensor(1)] == 20
    assert range(10)[dtrain.tensor(3, dtype=dtrain.int32)] == 3
    for m in (dtrain, torch):
        with pytest.raises(RuntimeError, match="ambiguous"):
            bool(m.ones(2))
        with pytest.raises(TypeError):
            [1, 2][m.tensor(1.0)]
        with pytest.raises(TypeError):
            len(m.tensor(1.0))
        with pytest.raises(TypeError):
            iter(m.tensor(1.0))
        with pytest.raises(RuntimeError):
            m.ones(2).item()
    assert dtrain.tensor(2.5).tolist() == 2.5


def test_bool_empty_message():
    for m in (dtrain, torch):
        with pytest.raises(RuntimeError) as e:
            bool(m.ones(0))
    assert str(e.value)


def test_numpy_shares_and_refuses():
    x = dtrain.zeros(3)
    a = x.numpy()
    a[0] = 5
    assert x[0].item() == 5
    y, t = dtrain.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError) as de:
        y.numpy()
    with pytest.raises(RuntimeError) as te:
        t.numpy()
    assert str(de.value) == str(te.value)
    assert np.array_equal(y.detach().numpy(), [1, 1])
    assert np.array_equal(np.asarray(dtrain.arange(3)), [0, 1, 2])
    assert np.asarray(dtrain.arange(3), dtype=np.float32).dtype == np.float32
    assert np.array_equal(np.array(y.detach()), [1.0, 1.0])


def test_dlpack_roundtrips():
    x = dtrain.arange(6.0).reshape(2, 3)
    a = np.from_dlpack(x)
    a[0, 0] = 42
    assert x[0, 0].item() == 42
    t = torch.from_dlpack(x)
    t[0, 1] = -1
    assert x[0, 1].item() == -1 and str(t.dtype) == str(x.dtype) and tuple(t.shape) == (2, 3)
    tt = torch.arange(4, dtype=torch.int32)
    d = dtrain.from_dlpack(tt)
    d[1] = 99
    assert tt[1].item() == 99 and d.dtype == dtrain.int32
    n = np.arange(5.0)
    d2 = dtrain.from_dlpack(n)
    n[0] = 7
    assert d2[0].item() == 7
    nc = x[:, ::2]
    assert np.array_equal(np.from_dlpack(nc), nc.numpy())
    assert np.array_equal(torch.from_dlpack(nc).numpy(), nc.numpy())
    with pytest.raises(RuntimeError):
        dtrain.ones(2, requires_grad=True).__dlpack__()
    assert x.__dlpack_device__()[0] == torch.ones(1).__dlpack_device__()[0]


def test_clone_detach_contiguous():
    x = dtrain.arange(6.0).reshape(2, 3).requires_grad_()
    c = x.clone()
    assert c.data_ptr() != x.data_ptr() and c.grad_fn is not None
    (c * 2).sum().backward()
    assert x.grad.tolist() == [[2.0] * 3] * 2
    d = x.detach()
    assert not d.requires_grad and d.data_ptr() == x.data_ptr()
    d2 = x.detach()
    with dtrain.no_grad():
        d2.add_(1)
    assert x[0, 0].item() == 1 and x._version == d2._version and x._vc is d2._vc
    tr = x.detach().T
    assert not tr.is_contiguous()
    ct = tr.contiguous()
    assert ct.is_contiguous() and np.array_equal(ct.numpy(), tr.numpy()) and ct.stride() == (2, 1)
    y = dtrain.ones(3)
    assert y.contiguous() is y


@pytest.mark.parametrize("make", [lambda m: m.arange(6.0).reshape(2, 3),
                                  lambda m: m.tensor([1, 2], dtype=m.int32),
                                  lambda m: m.ones(2, requires_grad=True),
                                  lambda m: m.tensor(3.5), lambda m: m.zeros(0, 2)])
def test_pickle_and_deepcopy(make):
    x = make(dtrain)
    for y in (pickle.loads(pickle.dumps(x)), copy.deepcopy(x)):
        assert type(y) is dtrain.Tensor and y.dtype == x.dtype and y.shape == x.shape
        assert y.requires_grad == x.requires_grad and y.tolist() == x.tolist()
        if x.numel():
            assert y.data_ptr() != x.data_ptr()


def test_deepcopy_keeps_grad_and_refuses_nonleaf():
    x = dtrain.ones(2, requires_grad=True)
    (x * 3).sum().backward()
    y = copy.deepcopy(x)
    assert y.grad.tolist() == [3.0, 3.0]
    with pytest.raises(RuntimeError):
        copy.deepcopy(x * 2)
    with pytest.raises(RuntimeError):
        copy.deepcopy(torch.ones(2, requires_grad=True) * 2)


def test_tensor_constructor():
    assert dtrain.Tensor(2, 3).shape == torch.Tensor(2, 3).shape
    a, e = dtrain.Tensor([1, 2]), torch.Tensor([1, 2])
    assert str(a.dtype) == str(e.dtype) and a.tolist() == e.tolist()
    assert dtrain.is_tensor(a) and not dtrain.is_tensor([1])


def test_data_attribute():
    x = dtrain.ones(2, requires_grad=True)
    d = x.data
    assert not d.requires_grad and d.data_ptr() == x.data_ptr()
    x.data = dtrain.zeros(3)
    assert x.shape == (3,) and x.requires_grad


def test_requires_grad_rules():
    for m in (dtrain, torch):
        with pytest.raises(RuntimeError):
            m.ones(2, dtype=m.int64).requires_grad_()
        y = m.ones(2, requires_grad=True) * 2
        with pytest.raises(RuntimeError):
            y.requires_grad_(False)


SAME_RESULT = [
    "float(m.ones(2))", "int(m.ones(2))", "m.ones(2).item()", "m.ones(0).item()", "m.tensor(1.5).__index__()",
    "m.ones(2, dtype=m.int64).__index__()", "bool(m.ones(0))", "m.ones(2, 3).size(2)", "m.tensor(1.).size(0)",
    "m.tensor(1.).stride(0)", "m.ones(2, device='meta').item()", "m.ones(2, device='meta').numpy()",
    "m.ones(2, device='meta').tolist()", "m.ones(2).to('cpu', m.float64, copy=True).dtype",
    "m.ones(2).to(m.ones(1, dtype=m.float16)).dtype", "m.ones(2).to(device='cpu', dtype=m.int32).dtype",
    "m.ones(2).to(None).dtype", "m.ones(2).to('cuda:x')", "m.ones(2).type(m.int32).dtype",
    "m.ones(2).type('torch.IntTensor').dtype", "m.ones(2, dtype=m.int32).new_tensor([1.5]).dtype",
    "m.ones(2).view(m.int32).dtype", "m.ones(2).requires_grad_().to(m.float64).grad_fn is None",
    "m.ones(2, 3).T.T.is_contiguous()", "m.ones(3)[None].expand(4, 3).stride()", "m.ones(4, 1)[::2].is_contiguous()",
    "m.zeros(2, 3).t().contiguous().stride()", "m.Size([2, 3]) == (2, 3)", "str(m.Size([]))",
    "m.ones(2, 3).shape + (4,)", "complex(m.tensor(1.5))", "m.ones(2).__array__().dtype",
    "m.ones(2, dtype=m.float64).itemsize", "m.ones(2).nbytes", "m.ones(2, dtype=m.int64).new_full((2,), 3.5)",
    "m.tensor([[1, 2]]).tolist()", "m.tensor(2).tolist()", "m.ones(2).numpy().dtype", "m.ones(2).get_device()",
    "str(m.ones(2).device)", "m.ones(2).is_cuda", "m.tensor(3) * 1.5",
]


@pytest.mark.parametrize("expr", SAME_RESULT)
def test_same_result_or_error(expr):
    out = []
    for m in (dtrain, torch):
        try:
            out.append(repr(eval(expr, {"m": m})).replace("dtrain", "torch"))
        except Exception as e:
            out.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
    assert out[0] == out[1]


MORE = ["2.0 in x", "7 in x", "m.tensor([1., 2., 2.]) in x", "'a' in x", "list(reversed(m.arange(3)))",
        "x.share_memory_() is x", "x.is_shared()", "x.is_inference()", "x.dim_order()", "x.t().dim_order()",
        "x.is_set_to(x)", "x.is_set_to(x.view(6))", "x.new(2, 3).shape", "x.new([1, 2])", "x.new((2, 3))",
        "x.new().shape", "x.new(m.Size([2, 3])).shape", "x.apply_(lambda v: v * 2)", "x.map_(x, lambda a, b: a + b)",
        "x.is_nonzero()", "m.tensor([3.]).is_nonzero()", "x.is_same_size(x)", "x.is_signed()",
        "m.tensor([1], dtype=m.uint8).is_signed()", "x.layout", "x.is_sparse", "x.is_quantized"]


@pytest.mark.parametrize("expr", MORE)
def test_more_tensor_methods(expr):
    out = []
    for m in (dtrain, torch):
        try:
            out.append(repr(eval(expr, {"m": m, "x": m.arange(6.0).reshape(2, 3)})).replace("dtrain", "torch"))
        except Exception as e:
            out.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
    assert out[0] == out[1]


def test_detach_allows_inplace_and_shares_version():
    out = []
    for m in (dtrain, torch):
        x = m.ones(3, requires_grad=True)
        r = []
        for f in [lambda: x.detach().zero_(), lambda: x.detach()[0].fill_(5), lambda: x.detach().copy_(m.full((3,), 2.)),
                  lambda: x.detach()._base is None, lambda: x.data.add_(1), lambda: (x * 2).detach().mul_(3),
                  lambda: x.detach().view(3, 1).mul_(2), lambda: x.tolist(),
                  lambda: x.detach()._version == x._version]:
            try:
                r.append(repr(f()))
            except Exception as e:
                r.append(f"{type(e).__name__}: {e}")
        out.append(r)
    assert out[0] == out[1]


def test_scalars_are_arrays():
    # every tensor owns an array, also after NumPy reductions and full integer indexing (which return scalars)
    s = dtrain.ones(3).sum()
    assert isinstance(s._data, np.ndarray) and s.ndim == 0
    s += 1
    assert s.item() == 4.0
    x = dtrain.arange(6.0).reshape(2, 3)
    v = x[1, 2]
    assert isinstance(v._data, np.ndarray)
    x[1, 2] = 50
    assert v.item() == 50.0


def test_numpy_and_array_of_a_tensor_that_requires_grad_as_torch():
    import torch
    for m in (dtrain, torch):
        x = m.ones(2, requires_grad=True)
        for convert in (lambda: x.numpy(), lambda: np.asarray(x), lambda: np.asarray(x, dtype=np.float64)):
            with pytest.raises(RuntimeError, match="Can't call numpy\\(\\) on Tensor that requires grad"):
                convert()
        with m.no_grad():  # torch hands the array out under no_grad, sharing memory
            a = x.numpy()
            assert np.asarray(x).tolist() == [1.0, 1.0]
        a[0] = 5.0
        assert x.detach()[0].item() == 5.0
        with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has requires_grad=False"):
            m.ones(2).retain_grad()
        with pytest.raises(TypeError, match='permute\\(\\) missing 1 required positional arguments: "dims"'):
            m.tensor(1.0).permute()
