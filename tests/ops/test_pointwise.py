"""Unary elementwise math, activations, clamp/where and softmax, against torch."""
import numpy as np
import pytest
from helpers import check, check_raises

import dtrain
from dtrain._ops import activation, pointwise

# nn.functional's activations are thin wrappers over these ops: test the ops themselves
_DF = type("F", (), dict(gelu=staticmethod(pointwise.gelu), silu=staticmethod(pointwise.silu),
                         softplus=staticmethod(pointwise.softplus), softmax=staticmethod(activation.softmax),
                         log_softmax=staticmethod(activation.log_softmax)))


def F(m):
    return _DF if m is dtrain else m.nn.functional

POS = np.abs(np.random.default_rng(0).standard_normal((3, 4))) + 0.1  # domain of log, sqrt, ...
UNIT = np.random.default_rng(1).uniform(-0.9, 0.9, (3, 4))  # domain of asin, acos
UNARY = {
    "exp": (lambda m, x: m.exp(x), None), "expm1": (lambda m, x: m.expm1(x), None),
    "log": (lambda m, x: m.log(x), POS), "log2": (lambda m, x: m.log2(x), POS), "log10": (lambda m, x: x.log10(), POS),
    "log1p": (lambda m, x: m.log1p(x), POS), "sqrt": (lambda m, x: m.sqrt(x), POS),
    "rsqrt": (lambda m, x: m.rsqrt(x), POS), "abs": (lambda m, x: m.abs(x), None), "neg": (lambda m, x: -x, None),
    "sign": (lambda m, x: m.sign(x), None), "sin": (lambda m, x: m.sin(x), None), "cos": (lambda m, x: x.cos(), None),
    "tan": (lambda m, x: m.tan(x), UNIT), "asin": (lambda m, x: m.asin(x), UNIT), "acos": (lambda m, x: m.acos(x), UNIT),
    "atan": (lambda m, x: m.atan(x), None), "sinh": (lambda m, x: m.sinh(x), None), "cosh": (lambda m, x: m.cosh(x), None),
    "tanh": (lambda m, x: m.tanh(x), None), "sigmoid": (lambda m, x: m.sigmoid(x), None),
    "relu": (lambda m, x: m.relu(x), None), "erf": (lambda m, x: m.erf(x), None),
    "reciprocal": (lambda m, x: m.reciprocal(x), POS), "square": (lambda m, x: m.square(x), None),
    "floor": (lambda m, x: m.floor(x * 3), None), "ceil": (lambda m, x: m.ceil(x * 3), None),
    "round": (lambda m, x: m.round(x * 3), None), "round_dec": (lambda m, x: m.round(x * 30, decimals=1), None),
    "trunc": (lambda m, x: m.trunc(x * 3), None), "frac": (lambda m, x: m.frac(x * 3), None),
    "gelu": (lambda m, x: F(m).gelu(x), None),
    "gelu_tanh": (lambda m, x: F(m).gelu(x, approximate="tanh"), None),
    "silu": (lambda m, x: F(m).silu(x), None), "softplus": (lambda m, x: F(m).softplus(x), None),
    "softplus_beta": (lambda m, x: F(m).softplus(x * 10, beta=2, threshold=5), None),
    "pos": (lambda m, x: +x, None), "sgn": (lambda m, x: x.detach().sgn(), None),
    "clamp": (lambda m, x: m.clamp(x, -0.5, 0.5), None), "clamp_min": (lambda m, x: x.clamp(min=0.1), None),
    "clamp_max": (lambda m, x: m.clamp(x, max=0.1), None), "clip": (lambda m, x: m.clip(x, -1, 1), None),
    "clamp_min_fn": (lambda m, x: m.clamp_min(x, 0.2), None), "clamp_max_fn": (lambda m, x: x.clamp_max(0.2), None),
    "nan_to_num": (lambda m, x: m.nan_to_num(m.log(x)), None), "pow2": (lambda m, x: m.pow(x, 2), None),
    "pow_half": (lambda m, x: x.pow(0.5), POS), "pow_neg": (lambda m, x: x ** -1.5, POS), "pow0": (lambda m, x: x ** 0, None),
    "rpow": (lambda m, x: 2 ** x, None), "float_power": (lambda m, x: m.float_power(x, 2), None),
    "lerp": (lambda m, x: m.lerp(x, x * 2, 0.3), None), "logit": (lambda m, x: m.logit(m.sigmoid(x)), None),
}


@pytest.mark.parametrize("op", UNARY)
def test_unary(device, op):
    fn, data = UNARY[op]
    check(fn, data if data is not None else (3, 4), device=device)


@pytest.mark.parametrize("op", UNARY)
def test_unary_noncontiguous_float32(device, op):
    fn, data = UNARY[op]
    x = (data if data is not None else np.random.default_rng(2).standard_normal((3, 4))).T.astype(np.float32)
    check(lambda m, x: fn(m, x.t()), np.ascontiguousarray(x), device=device, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "abs", "neg", "sigmoid", "relu", "floor", "sign", "clamp", "gelu",
                                "tanh", "sin"])
@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3)])
def test_unary_empty_and_scalar(device, op, shape):
    fn, data = UNARY[op]
    check(fn, np.asarray(np.abs(np.random.default_rng(3).standard_normal(shape)) + 0.1), device=device)


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "sin", "tanh", "sigmoid", "abs", "neg", "sign", "floor", "ceil",
                                "round", "trunc", "square", "relu", "reciprocal", "erf", "expm1", "rsqrt", "clamp",
                                "clamp_min", "frac", "log1p", "pow2", "rpow"])
@pytest.mark.parametrize("dt", [np.int64, np.int32, np.uint8, np.bool_])
def test_unary_int_dtypes(device, op, dt):
    x = (np.arange(12).reshape(3, 4) % 3).astype(dt)
    import torch
    try:
        UNARY[op][0](torch, torch.from_numpy(x))
    except (RuntimeError, NotImplementedError):  # torch refuses (e.g. neg of bool): so must we
        return check_raises(UNARY[op][0], x, device=device)
    check(UNARY[op][0], x, device=device, atol=1e-6, rtol=1e-5)


def test_sigmoid_extremes(device):
    x = np.array([-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0])
    check(lambda m, x: (m.sigmoid(x), F(m).silu(x), F(m).softplus(x), m.tanh(x)), x,
          device=device)


def test_special_values(device):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300])
    check(lambda m, x: (m.sign(x), m.abs(x), m.exp(-x), m.sigmoid(x), m.relu(x), m.nan_to_num(x),
                        m.isnan(x), m.isinf(x), m.isfinite(x)), x, device=device, grad=False)


def test_relu_grad_at_zero(device):
    check(lambda m, x: (m.relu(x), m.abs(x), m.clamp(x, 0, 1), m.sign(x)), np.array([-1.0, 0.0, 1.0, 0.0]),
          device=device)


def test_maximum_ties(device):
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0])
    check(lambda m, x, y: (m.maximum(x, y), m.minimum(x, y), m.max(x, y), m.min(x, y)), a, b, device=device)


@pytest.mark.parametrize("lo,hi", [((3, 4), (3, 4)), ((4,), None), (None, (3, 1)), ((), ())])
def test_clamp_tensor_bounds(device, lo, hi):
    args = [(3, 4)] + [s for s in (lo, hi) if s is not None]

    def fn(m, x, *b):
        bs = list(b)
        lo_t = bs.pop(0) - 0.5 if lo is not None else None
        hi_t = bs.pop(0) + 0.5 if hi is not None else None
        return m.clamp(x, lo_t, hi_t), x.clip(min=lo_t, max=hi_t)
    check(fn, *args, device=device)


def test_clamp_errors_and_dtypes(device):
    check_raises(lambda m, x: m.clamp(x), (3,), device=device, match="At least one of 'min' or 'max'")
    check(lambda m, x: (m.clamp(x, 1, 5), m.clamp(x, 0.5, 2.5), m.clamp(x, min=2)), np.arange(6), device=device)
    check(lambda m, x: m.clamp(x, 0.5, 0.2), (3, 4), device=device)  # min > max: every value becomes max


def test_clamp_inplace(device):
    check(lambda m, x, lo: (x * 1).clamp_(min=lo, max=lo + 1), (3, 4), (4,), device=device)
    check(lambda m, x: ((x * 1).clamp_(-0.1, 0.1), (x * 2).clip_(max=0.3)), (3, 4), device=device)


@pytest.mark.parametrize("sc,sx,sy", [((3, 4), (3, 4), (3, 4)), ((4,), (3, 1), ()), ((3, 1), (4,), (3, 4))])
def test_where(device, sc, sx, sy):
    c = np.random.default_rng(4).standard_normal(sc) > 0
    check(lambda m, c, x, y: m.where(c, x, y), c, sx, sy, device=device)


def test_where_scalars_and_dtypes(device):
    c = np.array([True, False, True])
    check(lambda m, c, x: (m.where(c, x, 0.0), m.where(c, 1.5, x), m.where(c, 1, 0), m.where(c, x, 2)), c, (3,),
          device=device)
    check(lambda m, c, x: (m.where(c, x, 2.5), m.where(c, x, x.double())), c, np.arange(3, dtype=np.int32),
          device=device)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax(device, fn, dim):
    check(lambda m, x: (getattr(m, fn)(x, dim), getattr(x, fn)(dim), getattr(F(m), fn)(x, dim=dim)),
          (3, 5), device=device)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_stable_and_dtype(device, fn):
    x = np.array([[1000.0, 0.0, -1000.0], [1e4, 1e4, 1e4]])
    check(lambda m, x: getattr(m, fn)(x, 1), x, device=device)
    check(lambda m, x: getattr(m, fn)(x.float(), -1, dtype=m.float64), (2, 3), device=device)
    check(lambda m, x: getattr(m, fn)(x.t(), 0), (4, 3), device=device)
    check(lambda m, x: (getattr(m, fn)(x, 0), getattr(m, fn)(x, -1)), np.array(1.5), device=device)
    check(lambda m, x: getattr(m, fn)(x, 1), np.zeros((0, 3)), device=device)
    check_raises(lambda m, x: getattr(m, fn)(x, 2), (2, 3), device=device, match="Dimension out of range")
    check_raises(lambda m, x: getattr(m, fn)(x, 0), np.arange(3), device=device)


def test_unary_out(device):
    def fn(m, x):
        out = m.empty(2, dtype=m.float64)
        assert m.exp(x.detach(), out=out) is out
        return out, m.sqrt(x.detach().abs(), out=m.empty(3, 4, dtype=m.float64))
    check(fn, (3, 4), device=device, grad=False)


@pytest.mark.parametrize("op", ["exp_", "log_", "sqrt_", "abs_", "neg_", "sin_", "floor_", "sigmoid_", "tanh_",
                                "reciprocal_", "round_", "sign_", "relu_", "square_", "rsqrt_"])
def test_unary_inplace(device, op):
    check(lambda m, x: getattr(x * 1 + 2, op)(), (3, 4), device=device)


def test_unary_inplace_int_raises(device):
    check_raises(lambda m, x: x.exp_(), np.arange(3), device=device)
    check_raises(lambda m, x: x.sqrt_(), np.arange(3), device=device)


def test_gelu_bad_approximate(device):
    check_raises(lambda m, x: F(m).gelu(x, approximate="fast"), (3,), device=device)


def test_gradcheck():
    from dtrain.autograd import gradcheck
    rng = np.random.default_rng(5)
    x = dtrain.tensor(rng.uniform(0.2, 2.0, (3, 4)), requires_grad=True)
    y = dtrain.tensor(rng.standard_normal((4,)), requires_grad=True)
    for f in (lambda a: a.exp() * a.log(), lambda a: a.sqrt().sigmoid().tanh(), lambda a: dtrain.softmax(a, 1),
              lambda a: dtrain.log_softmax(a, 0), lambda a: _DF.gelu(a, approximate="tanh"),
              lambda a: _DF.gelu(a), lambda a: _DF.silu(a).rsqrt(),
              lambda a: _DF.softplus(a).reciprocal().log1p().expm1()):
        assert gradcheck(f, (x,))
    assert gradcheck(lambda a, b: (a ** b).atan2(a) / b.abs().maximum(a), (x, y))
    assert gradcheck(lambda a, b: dtrain.where(a > 1, a * b, b.sin()).clamp(-0.5, 1.5), (x, y))


@pytest.mark.parametrize("shape", [(64, 300), (2, 512, 520)])
def test_gelu_float32_large(device, shape):
    """Large float32 GELU (computed block by block, on several threads) matches torch in value and gradient,
    including far tails, -inf and NaN; the non-contiguous input takes the same path. (+inf is left out: torch's
    float32 kernel gives NaN there, its float64 one inf, as dtrain does for both.)"""
    x = (np.random.default_rng(5).standard_normal(shape) * 3).astype(np.float32)
    x.reshape(-1)[:6] = [-np.inf, np.nan, 0.0, -10.0, 10.0, -5.7]
    check(lambda m, t: F(m).gelu(t), x, device=device, dtype=np.float32, atol=2e-6, rtol=2e-6)
    check(lambda m, t: F(m).gelu(t.transpose(0, 1)), x, device=device, dtype=np.float32, atol=2e-6, rtol=2e-6)


@pytest.mark.parametrize("shape", [(64, 300), (2, 512, 520)])
def test_gelu_tanh_float32_large(device, shape):
    """Large float32 tanh-GELU (fused block by block: the cube as x·x·x, never np.power) matches torch in value
    and gradient, including tails, ±inf and NaN, for contiguous and transposed input."""
    x = (np.random.default_rng(6).standard_normal(shape) * 3).astype(np.float32)
    x.reshape(-1)[:7] = [-np.inf, np.inf, np.nan, 0.0, -10.0, 10.0, -5.7]
    gelu = lambda m, t: F(m).gelu(t, approximate="tanh")  # noqa: E731
    check(gelu, x, device=device, dtype=np.float32, atol=1e-5, rtol=1e-5)
    check(lambda m, t: gelu(m, t.transpose(0, 1)), x, device=device, dtype=np.float32, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_grad_special_values_bitwise(device, dtype):
    # relu's backward multiplies the gradient by its mask read as int8 (a faster cast than bool's): torch's values
    # where the gradient is finite, a NaN output passing its gradient through, and bit for bit the product with
    # the boolean mask (so -0 where the gradient is negative and the input not positive; torch writes +0 there)
    import torch
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 33)).astype(dtype)
    x.flat[::17] = np.nan
    x.flat[4::9] = -0.0
    g = rng.standard_normal((64, 33)).astype(dtype)
    g.flat[3::5] = -0.0
    t = torch.tensor(x, requires_grad=True)
    torch.relu(t).backward(torch.tensor(g))
    d = dtrain.tensor(x, device=device, requires_grad=True)
    dtrain.relu(d).backward(dtrain.tensor(g, device=device))
    got = np.array(dtrain._backend.to_numpy(d.grad._data))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, t.grad.numpy())
    np.testing.assert_array_equal(got.view(np.uint8), (g * ~(np.maximum(x, 0) <= 0)).view(np.uint8))
