"""dtrain.device, dtrain.cuda and moving tensors between devices and dtypes, against torch."""
import pickle

import numpy as np
import pytest
import torch

import dtrain


@pytest.mark.parametrize("spec", ["cpu", "cuda", "cuda:1", "meta", ("cuda", 2), ("cpu", None)])
def test_device_repr_str_eq(spec):
    args = spec if isinstance(spec, tuple) else (spec,)
    d, t = dtrain.device(*args), torch.device(*args)
    assert repr(d) == repr(t) and str(d) == str(t)
    assert d.type == t.type and d.index == t.index
    assert d == dtrain.device(*args) and hash(d) == hash(dtrain.device(*args))
    assert pickle.loads(pickle.dumps(d)) == d


def test_device_equality_and_errors():
    assert dtrain.device("cpu") != dtrain.device("meta")
    assert dtrain.device("cuda") != dtrain.device("cuda:0")
    assert dtrain.device("cpu") != "cpu" and torch.device("cpu") != "cpu"  # torch never equates a device and a str
    assert dtrain.device(dtrain.device("meta")) is dtrain.device("meta")
    for bad in ("gpu", "cuda:x", "cuda:-1x"):
        with pytest.raises(RuntimeError):
            torch.device(bad)
        with pytest.raises(RuntimeError):
            dtrain.device(bad)
    with pytest.raises(RuntimeError):
        dtrain.device("cuda:1", 1)


def test_cuda_module_without_gpu():
    if dtrain.cuda.is_available():
        pytest.skip("checks the no-CUDA behaviour")
    assert dtrain.cuda.is_available() is False and dtrain.cuda.device_count() == 0
    for f in (dtrain.cuda.current_device, dtrain.cuda.synchronize, lambda: dtrain.cuda.set_device(0)):
        with pytest.raises(RuntimeError):
            f()
    x = dtrain.ones(2)
    with pytest.raises(RuntimeError, match="CUDA"):
        x.cuda()
    with pytest.raises(RuntimeError, match="CUDA"):
        x.to("cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        dtrain.zeros(2, device="cuda")
    assert x.is_cuda is False and x.get_device() == -1


def test_cupy_not_imported_by_cpu_work():
    import subprocess
    import sys
    code = ("import sys, dtrain; x = dtrain.ones(3) * 2; repr(x); x.sum().item(); "
            "print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_to_dtype_and_copy():
    x = dtrain.tensor([1.5, -2.5, 3.0])
    assert x.to(dtrain.float32) is x and x.to("cpu") is x and x.cpu() is x
    y = x.to(dtrain.float32, copy=True)
    assert y is not x and y.data_ptr() != x.data_ptr()
    for args, kw in [((dtrain.int32,), {}), ((), {"dtype": dtrain.float64}), (("cpu", dtrain.float16), {}),
                     ((dtrain.ones(1, dtype=dtrain.int64),), {}), ((), {"device": "cpu", "dtype": dtrain.bool})]:
        a = x.to(*args, **kw)
        targs = tuple(torch.ones(1, dtype=torch.int64) if isinstance(v, dtrain.Tensor) else
                      getattr(torch, str(v).split(".")[1]) if isinstance(v, dtrain.dtype) else v for v in args)
        tkw = {k: getattr(torch, str(v).split(".")[1]) if isinstance(v, dtrain.dtype) else v for k, v in kw.items()}
        e = torch.tensor([1.5, -2.5, 3.0]).to(*targs, **tkw)
        assert str(a.dtype) == str(e.dtype) and a.tolist() == e.tolist()


def test_to_is_differentiable():
    x = dtrain.tensor([1.5, 2.5], requires_grad=True)
    y = x.to(dtrain.float64)
    (y * y).sum().backward()
    assert x.grad.dtype == dtrain.float32 and x.grad.tolist() == [3.0, 5.0]


def test_type_conversions():
    x = dtrain.tensor([1.7, -2.2])
    t = torch.tensor([1.7, -2.2])
    for name in ("float", "double", "half", "int", "long", "short", "char", "byte", "bool"):
        a, e = getattr(x, name)(), getattr(t, name)()
        assert str(a.dtype) == str(e.dtype) and a.tolist() == e.tolist()
    assert x.type() == t.type() == "torch.FloatTensor"
    assert x.long().type() == "torch.LongTensor"
    assert x.type(dtrain.float64).dtype == dtrain.float64
    assert x.type("torch.DoubleTensor").dtype == dtrain.float64


def test_meta_tensors():
    m = dtrain.empty(2, 3, device="meta")
    assert m.is_meta and m.device.type == "meta" and m.shape == (2, 3)
    y = (m * 2).sum(0)
    assert y.is_meta and y.shape == (3,)
    assert dtrain.ones(2).to("meta").is_meta


def test_mixing_cpu_and_meta_raises():
    for m in (torch, dtrain):
        a, b = m.ones(3), m.ones(3, device="meta")
        with pytest.raises(RuntimeError, match="same device|meta"):
            m.cat([a, b])
    a, b = dtrain.ones(3), dtrain.ones(3, device="meta")
    with pytest.raises(RuntimeError, match="same device"):
        a + b
    with pytest.raises(RuntimeError, match="same device"):
        a.where(dtrain.ones(3, dtype=dtrain.bool, device="meta"), b)


def test_default_device_context():
    with dtrain.device("meta"):
        assert dtrain.zeros(2).is_meta and dtrain.get_default_device() == dtrain.device("meta")
    assert dtrain.zeros(2).device == dtrain.device("cpu")


@pytest.mark.cuda
def test_cuda_roundtrip():
    x = dtrain.arange(6.0).reshape(2, 3)
    g = x.cuda()
    assert g.is_cuda and g.device == dtrain.device("cuda", 0) and str(g.device) == "cuda:0"
    assert np.array_equal(g.cpu().numpy(), x.numpy())
    with pytest.raises(TypeError):
        g.numpy()
    with pytest.raises(RuntimeError, match="same device"):
        g + x
    assert "device='cuda:0'" in repr(g)
    dtrain.cuda.synchronize()
    assert dtrain.cuda.device_count() >= 1 and dtrain.cuda.current_device() == 0


SAME_RESULT = ["m.device('cpu', 0)", "m.device(type='cuda', index=1)", "m.device('cuda', index=0)", "m.device('cuda:-1')",
               "m.device('cpu:1')", "m.device('meta:0')", "m.device(' cuda')", "m.device('cuda:01')",
               "m.device('cuda', -1)", "m.device('cuda') == 'cuda'", "m.device('cpu') == 1", "str(m.device('cuda', 3))",
               "m.device('cpu').index", "m.device('cuda:1:2')", "m.device('cuda:')",
               "m.device('cuda:0') == m.device('cuda', 0)", "m.Generator().device"]


@pytest.mark.parametrize("expr", SAME_RESULT)
def test_same_result_or_error(expr):
    out = []
    for m in (dtrain, torch):
        try:
            out.append(repr(eval(expr, {"m": m})).replace("dtrain", "torch"))
        except Exception as e:
            out.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
    assert out[0] == out[1]
