"""torch's type promotion: tensor vs 0-d tensor vs Python scalar priority, int division, defaults."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]


@pytest.mark.parametrize("a", DTYPES)
@pytest.mark.parametrize("b", DTYPES)
def test_promote_types(a, b):
    import torch
    assert str(dtrain.promote_types(getattr(dtrain, a), getattr(dtrain, b))) == \
        str(torch.promote_types(getattr(torch, a), getattr(torch, b)))


def _arr(dt, shape):
    return np.asarray((np.arange(1, 1 + int(np.prod(shape))).reshape(shape) % 3 + 1).astype(dt))


@pytest.mark.parametrize("a", DTYPES)
@pytest.mark.parametrize("b", DTYPES)
@pytest.mark.parametrize("shapes", [((3,), (3,)), ((3,), ()), ((), ())])
def test_binary_result_type(device, a, b, shapes):
    x, y = _arr(a, shapes[0]), _arr(b, shapes[1])
    ops = lambda m, x, y: (x * y, x / y, m.maximum(x, y), x == y, str(m.result_type(x, y))) if "bool" not in (a, b) else \
        (x * y, x / y, x == y, str(m.result_type(x, y)))
    check(ops, x, y, device=device, grad=False, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("a", DTYPES)
@pytest.mark.parametrize("s", [True, 2, 2.5, np.float64(2.5), np.int64(2)])
def test_scalar_result_type(device, a, s):
    x = _arr(a, (3,))
    check(lambda m, x: (x * s, s * x, x / s, str(m.result_type(x, s))) if a != "bool" else (x * s, x / s),
          x, device=device, grad=False, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_set_default_dtype(dt):
    import torch
    old = dtrain.get_default_dtype()
    try:
        for m in (torch, dtrain):
            m.set_default_dtype(getattr(m, dt))
        for m in (torch, dtrain):
            assert str(m.get_default_dtype()) == f"torch.{dt}"
        check(lambda m, x: (x / 2, x * 1.5, m.sqrt(x), x.float().dtype == m.float32, m.tensor(1.5), m.ones(2),
                            m.arange(3) / 3, m.exp(x)), np.arange(3), grad=False)
    finally:
        dtrain.set_default_dtype(old)
        torch.set_default_dtype(torch.float32)


def test_set_default_dtype_rejects_int():
    import torch
    for m in (torch, dtrain):
        with pytest.raises(TypeError):
            m.set_default_dtype(m.int64)


def test_int_true_division(device):
    check(lambda m, x, y: (x / y, x / 2, 7 / x, m.div(x, y), m.true_divide(x, 2)),
          np.array([1, 2, 7]), np.array([2, 4, 3]), device=device)


def test_uint8_int8(device):
    check(lambda m, x, y: (x + y, x * y, x - y), np.array([1, 200], dtype=np.uint8), np.array([-1, 3], dtype=np.int8),
          device=device)


def test_zero_dim_priority(device):
    # a 0-d tensor wins over a dimensioned one only across kinds (int -> float), never within a kind
    check(lambda m, x, y: (x + y, y + x), np.arange(3, dtype=np.float32), np.array(2.0), device=device, grad=False)
    check(lambda m, x, y: (x + y, y * x), np.arange(3, dtype=np.int32), np.array(2.5), device=device, grad=False)
    check(lambda m, x, y: x + y, np.arange(3, dtype=np.int32), np.array(2, dtype=np.int64), device=device)
    check(lambda m, x, y: x + y, np.arange(3, dtype=np.float16), np.array(2.5, dtype=np.float64), device=device)


def test_grad_through_promotion(device):
    check(lambda m, x, y: x.float() * y, (3, 4), (4,), device=device, dtype=np.float32)
    check(lambda m, x, y: x * y, (3, 4), np.ones(4, dtype=np.float32), device=device)
    check(lambda m, x, y: x + y, np.ones(4, dtype=np.float32), (3, 4), device=device)


FLOATS = ["float16", "bfloat16", "float32", "float64", "complex64", "complex128"]


@pytest.mark.parametrize("name", FLOATS)
def test_finfo_matches_torch(name):
    t, d = torch.finfo(getattr(torch, name)), dtrain.finfo(getattr(dtrain, name))
    for attr in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"):
        assert getattr(d, attr) == getattr(t, attr), attr
        assert type(getattr(d, attr)) is type(getattr(t, attr)), attr
    assert repr(d) == repr(t) and str(d) == str(t)


@pytest.mark.parametrize("name", ["uint8", "int8", "int16", "int32", "int64"])
def test_iinfo_matches_torch(name):
    t, d = torch.iinfo(getattr(torch, name)), dtrain.iinfo(getattr(dtrain, name))
    assert (d.bits, d.max, d.min, d.dtype) == (t.bits, t.max, t.min, t.dtype)
    assert type(d.max) is int and repr(d) == repr(t)


def test_finfo_defaults_and_errors():
    assert dtrain.finfo() == dtrain.finfo(dtrain.float32)
    dtrain.set_default_dtype(dtrain.float64)
    try:
        assert dtrain.finfo().dtype == "float64"
    finally:
        dtrain.set_default_dtype(dtrain.float32)
    check_raises(lambda m: m.finfo(m.int32), match="torch.finfo() requires a floating point input type. Use "
                                                   "torch.iinfo to handle 'torch.finfo'")
    check_raises(lambda m: m.finfo(m.bool), match="requires a floating point input type")
    check_raises(lambda m: m.iinfo(m.float32), match="torch.iinfo() requires an integer input type. Use "
                                                     "torch.finfo to handle 'torch.iinfo'")
    check_raises(lambda m: m.iinfo(m.bool), match="torch.bool is not supported by torch.iinfo")
    check_raises(lambda m: m.finfo(3), match="finfo(): argument 'type' (position 1) must be torch.dtype, not int")


def test_finfo_min_masks_like_torch():
    # the attention-mask idiom: fill with the dtype's lowest value, then softmax
    for m in (torch, dtrain):
        s = m.zeros(2, 3).masked_fill(m.tensor([[False, True, False], [True, True, False]]),
                                      m.finfo(m.float32).min)
        p = s.softmax(-1)
        if m is torch:
            ref = p.numpy()
        else:
            np.testing.assert_allclose(p.numpy(), ref)
