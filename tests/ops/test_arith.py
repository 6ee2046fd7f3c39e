"""Binary arithmetic, comparisons, logical/bitwise ops and in-place rules, against torch."""
import numpy as np
import pytest
from helpers import check, check_raises

import dtrain

BCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((3,), ()), ((0, 4), (4,)), ((1, 0), (3, 1))]
OPS = {
    "add": lambda m, x, y: x + y, "sub": lambda m, x, y: x - y, "mul": lambda m, x, y: x * y,
    "div": lambda m, x, y: x / y, "pow": lambda m, x, y: x.abs() ** y, "maximum": lambda m, x, y: m.maximum(x, y),
    "minimum": lambda m, x, y: m.minimum(x, y), "atan2": lambda m, x, y: m.atan2(x, y),
    "add_alpha": lambda m, x, y: m.add(x, y, alpha=2.5), "sub_alpha": lambda m, x, y: m.sub(x, y, alpha=-3),
    "remainder": lambda m, x, y: m.remainder(x, y), "fmod": lambda m, x, y: m.fmod(x, y),
}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sa,sb", BCAST)
def test_binary(device, op, sa, sb):
    check(OPS[op], sa, sb, device=device)


@pytest.mark.parametrize("op", OPS)
def test_binary_noncontiguous(device, op):
    check(lambda m, x, y: OPS[op](m, x.t(), y[:, ::2]), (5, 3), (3, 10), device=device)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum"])
def test_binary_float32(device, op):
    check(OPS[op], (3, 4), (4,), device=device, dtype=np.float32)


SCALAR_OPS = {
    "radd": lambda m, x, s: s + x, "rsub": lambda m, x, s: s - x, "rmul": lambda m, x, s: s * x,
    "rdiv": lambda m, x, s: s / x, "add": lambda m, x, s: x + s, "sub": lambda m, x, s: x - s,
    "mul": lambda m, x, s: x * s, "div": lambda m, x, s: x / s, "pow": lambda m, x, s: x.abs() ** s,
    "rpow": lambda m, x, s: abs(s) ** x, "floordiv": lambda m, x, s: x // s, "rfloordiv": lambda m, x, s: s // x,
    "mod": lambda m, x, s: x % s, "rmod": lambda m, x, s: s % x,
}


@pytest.mark.parametrize("op", SCALAR_OPS)
@pytest.mark.parametrize("s", [2, 2.5, -1.5, np.float64(1.5), np.int64(3), np.float32(0.5)])
def test_scalar_operand(device, op, s):
    # torch has no derivative for floor_divide, nor for remainder with a scalar dividend
    check(lambda m, x: SCALAR_OPS[op](m, x, s), (3, 4), device=device, grad=op not in ("floordiv", "rfloordiv", "rmod"))


INT_OPS = ["add", "sub", "mul", "div", "floordiv", "mod", "pow", "rdiv", "radd", "rsub", "rmul"]


@pytest.mark.parametrize("op", INT_OPS)
@pytest.mark.parametrize("dt", [np.int64, np.int32, np.uint8, np.int8])
@pytest.mark.parametrize("s", [3, 2.5])
def test_scalar_int_tensor(device, op, dt, s):
    x = np.arange(1, 13, dtype=dt).reshape(3, 4)
    check(lambda m, x: SCALAR_OPS[op](m, x, s), x, device=device)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum", "remainder", "fmod"])
@pytest.mark.parametrize("da,db", [(np.int64, np.int32), (np.uint8, np.int8), (np.int32, np.float32),
                                   (np.float32, np.float64), (np.int64, np.float64), (np.uint8, np.uint8)])
def test_mixed_dtypes(device, op, da, db):
    a = np.arange(1, 13).reshape(3, 4).astype(da)
    b = np.arange(2, 6).astype(db)
    check(OPS[op], a, b, device=device)


def test_bool_arith(device):
    a, b = np.array([True, False, True]), np.array([True, True, False])
    check(lambda m, x, y: (x + y, x * y, x & y, x | y, x ^ y, ~x, x + 1, x * 2.5, x / y), a, b, device=device)
    check_raises(lambda m, x, y: x - y, a, b, device=device)


@pytest.mark.parametrize("mode", [None, "trunc", "floor"])
@pytest.mark.parametrize("dt", [np.float64, np.int64])
def test_div_rounding_mode(device, mode, dt):
    a = np.array([[-7, 7, 5, -3], [9, -9, 1, 0]]).astype(dt)
    b = np.array([2, -2, 3, 4]).astype(dt)
    check(lambda m, x, y: m.div(x, y, rounding_mode=mode), a, b, device=device, grad=mode is None)
    check(lambda m, x, y: x.div(y, rounding_mode=mode), a, 2, device=device, grad=mode is None)


def test_div_bad_rounding_mode(device):
    check_raises(lambda m, x: m.div(x, x, rounding_mode="up"), (2,), device=device)


def test_floordiv_remainder_signs(device):
    a = np.array([-7.5, 7.5, 5.0, -3.0, 0.5])
    check(lambda m, x: (x // 2, x // -2, x % 2, x % -2, m.fmod(x, -2), -3 // x), a, device=device, grad=False)


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
@pytest.mark.parametrize("other", ["tensor", 0.5, 1, "int"])
def test_compare(device, op, other):
    a = np.array([[0.0, 0.5, 1.0], [2.0, -1.0, 0.5]])
    b = np.array([0.5, 0.5, 2.0]) if other == "tensor" else np.array([0, 1, 2]) if other == "int" else other
    check(lambda m, x, y: (getattr(m, op)(x, y), getattr(x, op)(y)), a, b, device=device)


def test_compare_operators(device):
    check(lambda m, x, y: (x == y, x != y, x < y, x <= y, x > y, x >= y, 1 < x, 0.5 == x), (3, 4), (4,),
          device=device)


def test_compare_bad_shape(device):
    check_raises(lambda m, x, y: x < y, (3,), (4,), device=device, match="must match the size")


@pytest.mark.parametrize("op", ["logical_and", "logical_or", "logical_xor"])
def test_logical(device, op):
    a, b = np.array([0.0, 1.5, 0.0, -2.0]), np.array([0, 0, 3, 1])
    check(lambda m, x, y: (getattr(m, op)(x, y), getattr(x, op)(y), m.logical_not(x)), a, b, device=device)


@pytest.mark.parametrize("op", ["bitwise_and", "bitwise_or", "bitwise_xor"])
@pytest.mark.parametrize("dt", [np.int64, np.uint8, np.bool_])
def test_bitwise(device, op, dt):
    a, b = np.array([1, 6, 3, 0]).astype(dt), np.array([3, 5, 0, 1]).astype(dt)
    check(lambda m, x, y: (getattr(m, op)(x, y), getattr(x, op)(y), m.bitwise_not(x)), a, b, device=device)


def test_bitwise_float_raises(device):
    check_raises(lambda m, x: x & x, (3,), device=device)
    check_raises(lambda m, x: ~x, (3,), device=device)


def test_broadcast_error_message(device):
    e, te = check_raises(lambda m, x, y: x + y, (2, 3), (2, 4), device=device)
    assert str(e) == str(te)
    e, te = check_raises(lambda m, x, y: m.mul(x, y), (5, 3, 2), (4, 1), device=device)
    assert str(e) == str(te)


def test_bad_operand_type(device):
    check_raises(lambda m, x: x + "a", (3,), device=device)
    check_raises(lambda m, x: m.add(x, [1, 2]), (3,), device=device)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "atan2", "remainder"])
def test_out(device, op):
    def fn(m, x, y):
        out = m.empty(0, dtype=m.float64)
        r = getattr(m, op)(x.detach(), y.detach(), out=out)
        assert r is out
        return out
    check(fn, (3, 4), (4,), device=device, grad=False)


def test_out_requires_grad_raises(device):
    check_raises(lambda m, x: m.add(x.requires_grad_(), x, out=m.empty(3, requires_grad=True)), (3,), device=device)


# ------------------------------------------------------------------------------------------------- in-place
INPLACE = {
    "add_": lambda x, y: x.add_(y), "sub_": lambda x, y: x.sub_(y, alpha=2), "mul_": lambda x, y: x.mul_(y),
    "div_": lambda x, y: x.div_(y), "pow_": lambda x, y: x.abs_().pow_(y), "iadd": lambda x, y: x.__iadd__(y),
    "imul": lambda x, y: x.__imul__(y), "isub": lambda x, y: x.__isub__(y), "idiv": lambda x, y: x.__itruediv__(y),
    "clamp_": lambda x, y: x.clamp_(-0.5, 0.5), "clamp_t": lambda x, y: x.clamp_(min=y),
    "exp_": lambda x, y: x.exp_(), "sigmoid_": lambda x, y: x.sigmoid_(), "relu_": lambda x, y: x.relu_(),
    "neg_": lambda x, y: x.neg_(), "tanh_": lambda x, y: x.tanh_(),
}


@pytest.mark.parametrize("op", INPLACE)
def test_inplace(device, op):
    check(lambda m, x, y: INPLACE[op](x * 1, y), (3, 4), (4,), device=device)


@pytest.mark.parametrize("op", ["add_", "mul_", "div_", "sub_"])
def test_inplace_scalar_and_view(device, op):
    def fn(m, x):
        y = x * 1
        getattr(y[1], op)(2.5)
        return y
    check(fn, (3, 4), device=device)


def test_inplace_view_of_nonleaf(device):
    def fn(m, x, w):
        y = x * 1
        y[:, 1:3].mul_(w[:2])
        y.t()[0].add_(w[2:3])
        z = m.zeros(4, 3, dtype=m.float64)
        z[1].copy_(w)
        return y.exp(), z * 2
    check(fn, (4, 3), (3,), device=device)


def test_inplace_keeps_dtype(device):
    a = np.arange(6).astype(np.int64)
    check(lambda m, x: (x.clone().add_(2), x.clone().mul_(3), x.clone().__iadd__(True)), a, device=device)
    check(lambda m, x: x.clone().add_(1.5), np.ones(3), device=device)
    check_raises(lambda m, x: x.add_(1.5), a, device=device, match="can't be cast")
    check_raises(lambda m, x: x.div_(2), a, device=device)


def test_inplace_broadcast_error(device):
    check_raises(lambda m, x, y: x.add_(y), (3,), (2, 3), device=device, match="doesn't match the broadcast shape")


def test_inplace_on_leaf_raises(device):
    x = dtrain.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable"):
        x[:2].mul_(2)
    with dtrain.no_grad():
        x.mul_(2)
    assert x.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("save", ["exp", "mul", "sigmoid", "rsqrt", "pow"])
def test_inplace_version_error(device, save):
    import torch
    fns = {"exp": lambda m, x: m.exp(x), "mul": lambda m, x: x * x, "sigmoid": lambda m, x: m.sigmoid(x),
           "rsqrt": lambda m, x: m.rsqrt(x), "pow": lambda m, x: x ** 2}
    for m in (torch, dtrain):
        a = m.ones(3, dtype=m.float64, requires_grad=True)
        h = a * 2
        y = fns[save](m, h)
        yy = y if save in ("exp", "sigmoid", "rsqrt") else h
        yy.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_inplace_grad_through(device):
    import torch
    res = []
    for m in (torch, dtrain):
        a = m.tensor([1.0, 2.0, 3.0], dtype=m.float64, requires_grad=True)
        h = a * 2
        h.mul_(a).add_(a).div_(2).sub_(h.detach() * 0.5)
        h.exp_().sum().backward()
        res.append(a.grad.tolist())
    np.testing.assert_allclose(res[1], res[0])


def test_int_scalar_wraps(device):
    check(lambda m, x: (x - 1, x * 300, x + 256, 3 - x), np.arange(4, dtype=np.uint8), device=device)
    check(lambda m, x: (x * 100, x - 200), np.arange(4, dtype=np.int8), device=device)


# the exponents torch computes without pow(): same bits, and the same special values (sign of -0, inf, nan)
FAST_EXPONENTS = [2, 3, 0.5, -0.5, -1, -2, 1, 2.0, 3.0]
SPECIAL = np.array([0.0, -0.0, 1.5, -1.5, 3.0, -7.25, np.inf, -np.inf, np.nan, 1e-30, 1e30, -2.0])


@pytest.mark.parametrize("e", FAST_EXPONENTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pow_scalar_fast_exponents_equal_torch_bits(e, dtype):
    import torch
    x = np.concatenate([SPECIAL, np.random.default_rng(7).standard_normal(500) * 10]).astype(dtype)
    got = dtrain.pow(dtrain.tensor(x), e).numpy()
    want = torch.pow(torch.tensor(x), e).numpy()
    assert got.dtype == want.dtype
    if e in (0.5, -0.5):  # torch's vectorised sqrt (Sleef, 0.5001 ulp) is not always correctly rounded
        np.testing.assert_allclose(got, want, rtol=np.finfo(dtype).eps, atol=0)
    else:
        np.testing.assert_array_equal(got, want)  # nan where torch has nan, equal bits elsewhere
    real = ~np.isnan(want)  # the sign of a nan means nothing (sqrt(-1) is -nan in NumPy, +nan in torch)
    assert np.array_equal(np.signbit(got[real]), np.signbit(want[real]))


@pytest.mark.parametrize("e", FAST_EXPONENTS + [2.5, 0, -3])
def test_pow_scalar_gradients(e):
    check(lambda m, x: x.abs().add(0.5) ** e, (4, 5))
    check(lambda m, x: m.pow(x, e), (3, 4), rtol=1e-5) if e in (2, 3, 1, -1, -2, 0) else None


def test_pow_scalar_gradient_at_zero_and_second_order():
    import torch
    for e in (2.0, 3.0, 0.5, -1.0):
        xs = [m.tensor([0.0, 2.0, 3.0], dtype=m.float64, requires_grad=True) for m in (dtrain, torch)]
        grads = []
        for m, x in zip((dtrain, torch), xs):
            (g,) = m.autograd.grad(m.pow(x, e).sum(), x, create_graph=True)
            (gg,) = m.autograd.grad(g.sum(), x)
            grads.append((g.detach().numpy(), gg.numpy()))
        np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-12)
        np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-12)


def test_pow_scalar_fast_path_is_fast():
    # NumPy's float power of float32 ran ~100x slower than the multiplications torch uses (pow(x, 3.0):
    # 8 ms on 131 K floats); compared with a plain product in the same run, so machine speed cancels out
    import time
    x = dtrain.tensor(np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32))

    def best(f):
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return min(times)
    assert best(lambda: x ** 3.0) < 10 * best(lambda: x * x) + 2e-4
