"""torch's aliases and the less common ops: arc*/a*h names, comparison and arithmetic spellings, in-place view
changes, fmax/copysign/nextafter/frexp, kron/inner/take/put, addmv/addr/addbmm, the *_scatter family,
index_reduce, histogram, combinations, atleast_nd, against torch."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain

_rng = np.random.default_rng(7)
UNIT = _rng.uniform(-0.9, 0.9, (3, 4))
ABOVE_ONE = _rng.uniform(1.1, 3.0, (3, 4))
INTS = _rng.integers(-3, 4, (3, 4))
POS_INTS = _rng.integers(1, 4, (3, 4))

METHODS = """arccos arccos_ arcsin arcsin_ arctan arctan_ arccosh arccosh_ arcsinh arcsinh_ arctanh arctanh_ acosh
acosh_ asinh asinh_ atanh atanh_ arctan2 arctan2_ greater greater_ greater_equal greater_equal_ less less_ less_equal
less_equal_ not_equal not_equal_ multiply subtract divide true_divide negative_ absolute_ fix fix_ clamp_min_
clamp_max_ swapaxes_ swapdims_ transpose_ t_ squeeze_ unsqueeze_ sgn_ hypot_ heaviside_ float_power float_power_
copysign copysign_ nextafter nextafter_ fmax fmin frexp kron inner take put put_ diag_embed broadcast_to corrcoef
aminmax angle adjoint addmv addmv_ addr addr_ addbmm addbmm_ baddbmm_ addmm_ split_with_sizes sum_to_size
fill_diagonal_ index_fill_ masked_scatter_ select_scatter slice_scatter diagonal_scatter narrow_copy cdouble cfloat
index_reduce index_reduce_ positive histogram""".split()
FUNCTIONS = """atleast_1d atleast_2d atleast_3d combinations histogram positive addbmm addmv addr corrcoef copysign
nextafter frexp index_reduce fmax fmin kron inner take diag_embed select_scatter slice_scatter diagonal_scatter acosh
asinh atanh arccosh arcsinh arctanh angle adjoint put narrow_copy split_with_sizes float_power""".split()


@pytest.mark.parametrize("name", METHODS)
def test_tensor_method_exists(name):
    assert hasattr(torch.Tensor, name)
    assert callable(getattr(dtrain.Tensor, name, None)), f"Tensor.{name} missing"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_exists(name):
    assert hasattr(torch, name)
    assert callable(getattr(dtrain, name, None)), f"dtrain.{name} missing"


# --------------------------------------------------------------------------------------- unary aliases
UNARY = {"arcsin": UNIT, "arccos": UNIT, "arctan": UNIT, "arcsinh": UNIT, "arccosh": ABOVE_ONE, "arctanh": UNIT,
         "asinh": UNIT, "acosh": ABOVE_ONE, "atanh": UNIT}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inverse_trig_aliases(device, name, dtype):
    x = UNARY[name].astype(dtype)
    atol = 1e-6 if dtype == np.float64 else 1e-4
    check(lambda m, a: getattr(m, name)(a), x, device=device, atol=atol)
    check(lambda m, a: getattr(a, name)(), x, device=device, atol=atol)
    check(lambda m, a: getattr(a.clone(), name + "_")(), x, device=device, atol=atol, grad=False)
    if name in ("arcsin", "arccos", "arctan"):  # torch's backward of the a*h_ forms needs the overwritten input
        check(lambda m, a: getattr(a * 1, name + "_")(), x, device=device, atol=atol)


@pytest.mark.parametrize("name", ["arcsinh", "atanh", "acosh", "arccos"])
def test_inverse_trig_of_ints_is_float(device, name):
    check(lambda m, a: getattr(m, name)(a), POS_INTS if name == "acosh" else INTS, device=device)


def test_inplace_alias_on_leaf_raises(device):
    check_raises(lambda m, a: a.requires_grad_().arcsinh_(), (3,), device=device)


def test_unary_inplace_forms(device):
    x = _rng.standard_normal((3, 4)) * 3
    check(lambda m, a: (a * 1).negative_(), x, device=device)
    check(lambda m, a: (a * 1).absolute_(), x, device=device)
    check(lambda m, a: a.clone().fix_(), x, device=device, grad=False)
    check(lambda m, a: a.fix(), x, device=device)
    check(lambda m, a: (a * 1).clamp_min_(0.5), x, device=device)
    check(lambda m, a: (a * 1).clamp_max_(-0.5), x, device=device)
    check(lambda m, a: a.clone().sgn_(), x, device=device, grad=False)
    check(lambda m, a: a.fix(), INTS, device=device)
    check(lambda m, a: a.clone().negative_(), INTS, device=device)


def test_positive(device):
    check(lambda m, a: m.positive(a) * 2, (3, 4), device=device)
    check(lambda m, a: a.positive(), INTS, device=device)
    check_raises(lambda m, a: m.positive(a), np.array([True, False]), device=device)


def test_angle(device):
    x = np.array([-2.0, -0.0, 0.0, 1.5, np.nan, -np.inf])
    check(lambda m, a: m.angle(a), x, device=device)
    check(lambda m, a: a.angle(), x.astype(np.float32), device=device)
    check(lambda m, a: m.angle(a), INTS, device=device)
    z = (_rng.standard_normal(5) + 1j * _rng.standard_normal(5)).astype(np.complex128)
    check(lambda m, a: m.angle(a), z, device=device)


# -------------------------------------------------------------------------------------- binary aliases
BINARY = ["arctan2", "multiply", "subtract", "divide", "true_divide"]
COMPARE = ["greater", "greater_equal", "less", "less_equal", "not_equal"]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_alias_methods(device, name, dtype):
    atol = 1e-6 if dtype == np.float64 else 1e-4
    check(lambda m, a, b: getattr(a, name)(b), (3, 4), (4,), device=device, dtype=dtype, atol=atol)
    check(lambda m, a, b: getattr(m, name)(a, b), (3, 4), (3, 1), device=device, dtype=dtype, atol=atol)
    check(lambda m, a, b: getattr(a * 1, name + "_")(b), (3, 4), (4,), device=device, dtype=dtype, atol=atol)


def test_binary_alias_ints(device):
    check(lambda m, a, b: a.divide(b), INTS, POS_INTS, device=device)
    check(lambda m, a, b: a.true_divide(b), INTS, POS_INTS, device=device)
    check(lambda m, a, b: a.multiply(b), INTS, POS_INTS, device=device)
    check(lambda m, a, b: a.arctan2(b), INTS, POS_INTS, device=device)
    check_raises(lambda m, a, b: a.clone().arctan2_(b), INTS, POS_INTS, device=device)  # float into int


@pytest.mark.parametrize("name", COMPARE)
def test_comparison_aliases(device, name):
    a, b = INTS.astype(np.float64), np.roll(INTS, 1).astype(np.float64)
    check(lambda m, x, y: getattr(x, name)(y), a, b, device=device, grad=False)
    check(lambda m, x, y: getattr(m, name)(x, 0), a, b, device=device, grad=False)
    check(lambda m, x, y: getattr(x.clone(), name + "_")(y), a, b, device=device, grad=False)
    check(lambda m, x, y: getattr(x.clone(), name + "_")(y), INTS, np.roll(INTS, 1), device=device)
    check_raises(lambda m, x, y: getattr(x, name)(y), (3, 4), (5,), device=device)


# --------------------------------------------------------------------------- fmax / fmin / copysign / ...
def test_fmax_fmin(device):
    a = np.array([1.0, np.nan, 2.0, 3.0, np.nan, -1.0])
    b = np.array([1.0, 1.0, np.nan, 4.0, np.nan, -2.0])
    for name in ("fmax", "fmin"):
        check(lambda m, x, y: getattr(m, name)(x, y), a, b, device=device)
        check(lambda m, x, y: getattr(x, name)(y), (3, 4), (4,), device=device)
        check(lambda m, x, y: getattr(m, name)(x, y), (3, 4), (4,), device=device, dtype=np.float32, atol=1e-5)
        check(lambda m, x, y: getattr(m, name)(x, y), INTS, np.roll(INTS, 1), device=device)
        check(lambda m, x, y: getattr(m, name)(x, y), INTS, a[:4].reshape(1, 4), device=device)
        check_raises(lambda m, x: getattr(m, name)(x, 2.0), (3,), device=device)


def test_copysign(device):
    a = np.array([1.0, 0.0, -0.0, -2.0, 3.0, np.inf])
    b = np.array([-1.0, -1.0, 1.0, 4.0, -0.0, -1.0])
    check(lambda m, x, y: m.copysign(x, y), a, b, device=device)
    check(lambda m, x, y: x.copysign(y), (3, 4), (4,), device=device)
    check(lambda m, x: x.copysign(-1), (3, 4), device=device)
    check(lambda m, x, y: m.copysign(x, y), (3, 4), (4,), device=device, dtype=np.float32)
    check(lambda m, x, y: m.copysign(x, y), INTS, np.roll(INTS, 1), device=device)
    check(lambda m, x, y: (x * 1).copysign_(y), (3, 4), (4,), device=device)
    check_raises(lambda m, x, y: x.clone().copysign_(y), INTS, np.roll(INTS, 1), device=device)


def test_nextafter(device):
    a = np.array([1.0, 0.0, -1.0, 2.0, np.inf])
    b = np.array([2.0, -1.0, -1.0, 0.0, 0.0])
    check(lambda m, x, y: m.nextafter(x, y), a, b, device=device, grad=False)
    check(lambda m, x, y: x.nextafter(y), a.astype(np.float32), b.astype(np.float32), device=device, grad=False,
          atol=0, rtol=0)
    check(lambda m, x, y: x.clone().nextafter_(y), a, b, device=device, grad=False, atol=0, rtol=0)
    check_raises(lambda m, x, y: m.nextafter(x, y), INTS, INTS, device=device)


def test_float_power(device):
    check(lambda m, x, y: m.float_power(x, y), np.abs(make32((3, 4))) + 0.1, (4,), device=device)
    check(lambda m, x: x.float_power(2), INTS, device=device)
    check(lambda m, x: m.float_power(2, x), make32((3,)), device=device)
    check(lambda m, x: x.float_power(2.5), np.abs(make32((3,))) + 0.1, device=device)
    check(lambda m, x: (x * 1).float_power_(3), (3, 4), device=device)
    check_raises(lambda m, x: x.float().float_power_(2), (3,), device=device)


def make32(shape):
    return _rng.standard_normal(shape).astype(np.float32)


def test_hypot_heaviside_inplace(device):
    check(lambda m, x, y: x.clone().hypot_(y), (3, 4), (4,), device=device, grad=False)
    x = np.array([-1.5, 0.0, 0.0, 2.0])
    check(lambda m, a, b: a.clone().heaviside_(b), x, np.array([0.5, 0.25, 1.0, 7.0]), device=device, grad=False)
    check_raises(lambda m, a, b: a.heaviside(b), x, np.array([1, 2, 3, 4]), device=device)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_frexp(device, dtype):
    x = np.array([0.0, 1.5, -8.0, 3e-3, 1e5, -0.7]).astype(dtype)
    check(lambda m, a: m.frexp(a), x, device=device)
    check(lambda m, a: a.frexp().mantissa * 2, x, device=device)
    check(lambda m, a: m.frexp(a * 2)[1], x, device=device)
    x = np.array([np.inf, -np.inf, np.nan]).astype(dtype)
    check(lambda m, a: m.frexp(a)[0], x, device=device, grad=False)
    check_raises(lambda m, a: m.frexp(a), INTS, device=device)


# ------------------------------------------------------------------------------------- products
@pytest.mark.parametrize("shapes", [((3,), (2,)), ((2, 3), (4, 2)), ((2, 1, 3), (2, 2)), ((2,), (3, 2)), ((), (3,))])
def test_kron(device, shapes):
    check(lambda m, a, b: m.kron(a, b), *shapes, device=device)
    check(lambda m, a, b: a.kron(b), *shapes, device=device, dtype=np.float32, atol=1e-5)


def test_kron_errors_and_ints(device):
    check(lambda m, a, b: m.kron(a, b), INTS, POS_INTS[:2, :2], device=device)
    check_raises(lambda m, a: m.kron(a, 3), (3,), device=device)


@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (3,)), ((2, 3), (4, 3)), ((2, 1, 3), (4, 3)), ((), (2, 3))])
def test_inner(device, shapes):
    check(lambda m, a, b: m.inner(a, b), *shapes, device=device)
    check(lambda m, a, b: a.inner(b), *shapes, device=device, dtype=np.float32, atol=1e-5)


def test_inner_errors(device):
    check(lambda m, a, b: m.inner(a, b), INTS, np.roll(INTS, 2), device=device)
    check_raises(lambda m, a, b: m.inner(a, b), (2, 3), (4,), device=device, match="last dimension must match")


@pytest.mark.parametrize("beta, alpha", [(1, 1), (0.5, 2.0), (0, 1.5)])
def test_addmv_addr_addbmm(device, beta, alpha):
    kw = dict(beta=beta, alpha=alpha)
    check(lambda m, i, a, v: m.addmv(i, a, v, **kw), (2,), (2, 3), (3,), device=device)
    check(lambda m, i, a, v: i.addmv(a, v, **kw), (1,), (2, 3), (3,), device=device)
    check(lambda m, i, a, b: m.addr(i, a, b, **kw), (2, 3), (2,), (3,), device=device)
    check(lambda m, i, a, b: i.addr(a, b, **kw), (3,), (2,), (3,), device=device)
    check(lambda m, i, a, b: m.addbmm(i, a, b, **kw), (2, 5), (4, 2, 3), (4, 3, 5), device=device)
    check(lambda m, i, a, b: i.addbmm(a, b, **kw), (5,), (4, 2, 3), (4, 3, 5), device=device, dtype=np.float32,
          atol=1e-5)
    check(lambda m, i, a, v: (i * 1).addmv_(a, v, **kw), (2,), (2, 3), (3,), device=device)
    check(lambda m, i, a, b: (i * 1).addr_(a, b, **kw), (2, 3), (2,), (3,), device=device)
    check(lambda m, i, a, b: (i * 1).addbmm_(a, b, **kw), (2, 5), (4, 2, 3), (4, 3, 5), device=device)
    check(lambda m, i, a, b: (i * 1).baddbmm_(a, b, **kw), (4, 2, 5), (4, 2, 3), (4, 3, 5), device=device)
    check(lambda m, i, a, b: (i * 1).addmm_(a, b, **kw), (2, 5), (2, 3), (3, 5), device=device)


def test_beta_zero_ignores_nan_input(device):
    nan = np.full((2, 3), np.nan)
    check(lambda m, i, a, b: m.addr(i, a, b, beta=0), nan, (2,), (3,), device=device)
    check(lambda m, i, a, b: m.addmm(i, a, b, beta=0), nan, (2, 4), (4, 3), device=device)
    check(lambda m, i, a, v: m.addmv(i, a, v, beta=0), nan[0, :2], (2, 4), (4,), device=device)


def test_product_ints_and_errors(device):
    check(lambda m, i, a, v: m.addmv(i, a, v), INTS[0, :3], INTS[:3, :3], INTS[1, :3], device=device)
    check(lambda m, i, a, b: m.addr(i, a, b, alpha=2), INTS, INTS[:, 0], INTS[0], device=device)
    check_raises(lambda m, i, a, v: m.addmv(i, a, v), (2,), (2, 3), (2,), device=device, match="size mismatch")
    check_raises(lambda m, i, a, b: m.addr(i, a, b), (2, 2), (2,), (3,), device=device)
    check_raises(lambda m, i, a, b: m.addbmm(i, a, b), (2, 2), (3, 2, 4), (3, 5, 2), device=device)
    check_raises(lambda m, i, a, b: m.addbmm(i, a, b), (2, 2), (3, 2, 4), (2, 4, 2), device=device)


# ------------------------------------------------------------------------------------ index and take
def test_take_put(device):
    idx = np.array([[0, 5], [-1, 3]])
    check(lambda m, a, i: m.take(a, i), (2, 3), idx, device=device)
    check(lambda m, a, i: a.take(i), INTS, idx, device=device)
    check_raises(lambda m, a, i: m.take(a, i), (2, 3), np.array([6]), device=device)
    check_raises(lambda m, a, i: m.take(a, i), (2, 3), np.array([1], dtype=np.int32), device=device)
    idx = np.array([0, 4, -1])
    check(lambda m, a, i, s: m.put(a, i, s), (2, 3), idx, (3,), device=device)
    check(lambda m, a, i, s: a.put(i, s, accumulate=True), (2, 3), np.array([1, 1, 2]), (3,), device=device)
    check(lambda m, a, i, s: (a * 1).put_(i, s), (2, 3), idx, (3,), device=device)
    check(lambda m, a, i, s: a.clone().put_(i, s, accumulate=True), INTS, np.array([0, 0, 11]), INTS[0, :3],
          device=device)
    check_raises(lambda m, a, i, s: m.put(a, i, s), (2, 3), np.array([6]), (1,), device=device)
    check_raises(lambda m, a, i, s: m.put(a, i, s), (2, 3), np.array([1]), (2,), device=device)
    check_raises(lambda m, a, i, s: m.put(a, i, s), (2, 3), np.array([1]), INTS[0, :1], device=device)


def test_index_fill_masked_scatter_inplace(device):
    check(lambda m, a, i: (a * 1).index_fill_(1, i, -2.0), (3, 4), np.array([0, 2]), device=device)
    check(lambda m, a, i: a.clone().index_fill_(0, i, 7), INTS, np.array([1]), device=device)
    check_raises(lambda m, a, i: a.clone().index_fill_(0, i, 1.0), (3,), np.array([3]), device=device)
    mask = np.array([[True, False, True, False], [False, False, True, True], [True, True, True, True]])
    check(lambda m, a, k, s: (a * 1).masked_scatter_(k, s), (3, 4), mask, (12,), device=device)
    check(lambda m, a, k, s: (a * 1).masked_scatter_(k, s), (3, 4), mask[1], (8,), device=device)
    check(lambda m, a, k, s: a.clone().masked_scatter_(k, s), INTS, mask, POS_INTS, device=device)
    check_raises(lambda m, a, k, s: a.clone().masked_scatter_(k, s), (3, 4), mask, (5,), device=device)


def test_fill_diagonal_(device):
    check(lambda m, a: (a * 1).fill_diagonal_(3.0), (3, 4), device=device)
    check(lambda m, a: (a * 1).fill_diagonal_(-1.0), (5, 3), device=device)
    check(lambda m, a: (a * 1).fill_diagonal_(-1.0, wrap=True), (7, 3), device=device)
    check(lambda m, a: (a * 1).fill_diagonal_(2.0), (3, 3, 3), device=device)
    check(lambda m, a: a.clone().fill_diagonal_(9), INTS, device=device)
    check_raises(lambda m, a: a.clone().fill_diagonal_(1), (3,), device=device)
    check_raises(lambda m, a: a.clone().fill_diagonal_(1), (2, 3, 3), device=device)


@pytest.mark.filterwarnings("ignore:index_reduce")
@pytest.mark.parametrize("reduce", ["prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_index_reduce(device, reduce, include_self):
    idx = np.array([0, 2, 0, 3, 2])
    kw = dict(include_self=include_self)
    check(lambda m, a, i, s: m.index_reduce(a, 0, i, s, reduce, **kw), (4, 3), idx, (5, 3), device=device)
    check(lambda m, a, i, s: a.index_reduce(1, i, s, reduce, **kw), (2, 4), idx, (2, 5), device=device,
          dtype=np.float32, atol=1e-5)
    check(lambda m, a, i, s: (a * 1).index_reduce_(-1, i, s, reduce, **kw), (2, 4), idx, (2, 5), device=device)
    if reduce != "mean":  # torch's integer mean floors (a different rounding from true division)
        check(lambda m, a, i, s: a.clone().index_reduce_(0, i, s, reduce, **kw), INTS.T.copy(),
              idx, _rng.integers(-5, 5, (5, 3)), device=device)


@pytest.mark.filterwarnings("ignore:index_reduce")
def test_index_reduce_errors(device):
    check_raises(lambda m, a, i, s: m.index_reduce(a, 0, i, s, "sum"), (3,), np.array([0]), (1,), device=device)
    check_raises(lambda m, a, i, s: m.index_reduce(a, 0, i, s, "prod"), (3,), np.array([[0]]), (1,), device=device)
    check_raises(lambda m, a, i, s: m.index_reduce(a, 0, i, s, "prod"), (3,), np.array([0]), (2,), device=device)
    check_raises(lambda m, a, i, s: m.index_reduce(a, 0, i, s, "prod"), (3, 2), np.array([0]), (1, 3),
                 device=device)
    check_raises(lambda m, a, i, s: m.index_reduce(a, 0, i, s, "prod"), (3, 2), np.array([5]), (1, 2),
                 device=device)


# ------------------------------------------------------------------------------------------ *_scatter
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_select_slice_diagonal_scatter(device, dtype):
    atol = 1e-6 if dtype == np.float64 else 1e-5
    kw = dict(device=device, dtype=dtype, atol=atol)
    check(lambda m, a, s: m.select_scatter(a, s, 0, 1), (3, 4), (4,), **kw)
    check(lambda m, a, s: a.select_scatter(s, -1, -2), (2, 3, 4), (2, 3), **kw)
    check(lambda m, a, s: m.slice_scatter(a, s, 1, 1, 4, 2), (3, 5), (3, 2), **kw)
    check(lambda m, a, s: a.slice_scatter(s), (4, 2), (4, 2), **kw)
    check(lambda m, a, s: m.slice_scatter(a, s, 0, -2, 10), (4, 2), (2, 2), **kw)
    check(lambda m, a, s: m.diagonal_scatter(a, s), (3, 4), (3,), **kw)
    check(lambda m, a, s: a.diagonal_scatter(s, 1), (3, 4), (3,), **kw)
    check(lambda m, a, s: m.diagonal_scatter(a, s, -1, 0, 2), (4, 2, 3), (2, 3), **kw)


def test_scatter_family_ints_and_errors(device):
    check(lambda m, a, s: m.select_scatter(a, s, 1, 0), INTS, INTS[:, 1].copy(), device=device)
    check(lambda m, a, s: m.diagonal_scatter(a, s), INTS, INTS[0, :3].copy(), device=device)
    check(lambda m, a, s: m.select_scatter(a, s, 0, 0), (3, 4), INTS[0].copy(), device=device)
    check_raises(lambda m, a, s: m.select_scatter(a, s, 0, 0), (2, 3), (2,), device=device, match="src size")
    check_raises(lambda m, a, s: m.select_scatter(a, s, 0, 5), (2, 3), (3,), device=device)
    check_raises(lambda m, a, s: m.slice_scatter(a, s, 0, 0, 2), (4,), (3,), device=device)
    check_raises(lambda m, a, s: m.diagonal_scatter(a, s), (3, 3), (2,), device=device)


# --------------------------------------------------------------------------------- shapes and views
@pytest.mark.parametrize("op", [
    lambda t: t.transpose_(0, 2), lambda t: t.swapaxes_(-1, 0), lambda t: t.swapdims_(1, 2),
    lambda t: t.squeeze_(), lambda t: t.squeeze_(1), lambda t: t.unsqueeze_(-1), lambda t: t.unsqueeze_(0)])
def test_inplace_view_ops(device, op):
    def run(m, a):
        t = a * 1
        v = _version(t)
        r = op(t)
        assert r is t and _version(t) > v
        return t
    check(run, (2, 1, 3), device=device)
    check(lambda m, a: op(a.clone()), INTS.reshape(2, 1, 6), device=device)


def _version(t):
    return t._version


def test_t_(device):
    check(lambda m, a: (a * 1).t_(), (2, 3), device=device)
    check(lambda m, a: (a * 1).t_() * 2, (3,), device=device)
    check_raises(lambda m, a: a.clone().t_(), (2, 3, 4), device=device)


def test_inplace_view_ops_keep_storage(device):
    for m in (dtrain, torch):
        a = m.arange(6.0).reshape(2, 3)
        b = a.clone()
        b.t_()
        b[0, 1] = 100  # element (1, 0) of the original layout
        assert b.shape == (3, 2) and b[0, 1].item() == 100 and not b.is_contiguous()
        v = a[0]
        v.unsqueeze_(0)
        v.mul_(2)
        assert tuple(v.shape) == (1, 3) and a[0].tolist() == [0.0, 2.0, 4.0]


def test_inplace_view_op_errors(device):
    check_raises(lambda m, a: a.requires_grad_().t_(), (2, 3), device=device)
    check_raises(lambda m, a: a.clone().transpose_(0, 2), (2, 3), device=device)
    check_raises(lambda m, a: a.clone().squeeze_(3), (2, 3), device=device)


def test_adjoint(device):
    check(lambda m, a: m.adjoint(a), (2, 3), device=device)
    check(lambda m, a: a.adjoint() * 2, (4, 2, 3), device=device)
    z = (_rng.standard_normal((2, 3)) + 1j * _rng.standard_normal((2, 3)))
    check(lambda m, a: a.adjoint().resolve_conj(), z, device=device)
    check_raises(lambda m, a: a.adjoint(), (3,), device=device)


def test_split_with_sizes_narrow_copy_sum_to_size(device):
    check(lambda m, a: a.split_with_sizes([1, 3], 1), (2, 4), device=device)
    check(lambda m, a: m.split_with_sizes(a, (2, 0, 1)), (3, 2), device=device)
    check_raises(lambda m, a: a.split_with_sizes([1, 1]), (3,), device=device)
    check(lambda m, a: a.narrow_copy(1, 1, 2), (2, 4), device=device)
    check(lambda m, a: m.narrow_copy(a, 0, -2, 2), INTS, device=device)
    check_raises(lambda m, a: a.narrow_copy(0, 2, 2), (3,), device=device)
    check(lambda m, a: a.sum_to_size(1, 4), (2, 3, 4), device=device)
    check(lambda m, a: a.sum_to_size((3, 1)), (2, 3, 4), device=device)
    check(lambda m, a: a.sum_to_size(2, 3, 4), (2, 3, 4), device=device)
    check(lambda m, a: a.sum_to_size(1), INTS, device=device)
    check_raises(lambda m, a: a.sum_to_size(3), (2,), device=device)


def test_broadcast_to_diag_embed_methods(device):
    check(lambda m, a: a.broadcast_to((2, 3, 4)), (3, 1), device=device)
    check_raises(lambda m, a: a.broadcast_to((3,)), (2,), device=device)
    check(lambda m, a: a.diag_embed(), (2, 3), device=device)
    check(lambda m, a: a.diag_embed(1, 0, 2), (2, 3), device=device)
    check(lambda m, a: m.diag_embed(a, -1), INTS, device=device)
    check_raises(lambda m, a: m.diag_embed(a, dim1=0, dim2=0), (3,), device=device)


def test_cdouble_cfloat(device):
    check(lambda m, a: a.cdouble(), (2, 3), device=device, grad=False)
    check(lambda m, a: a.cfloat(), INTS, device=device, grad=False)
    check(lambda m, a: a.cfloat().real * 2, (2, 3), device=device, grad=False)


def test_aminmax_method(device):
    check(lambda m, a: a.aminmax(), (3, 4), device=device, grad=False)
    check(lambda m, a: a.aminmax(dim=1, keepdim=True), INTS, device=device)
    check_raises(lambda m, a: a.aminmax(), np.zeros(0), device=device)


# ------------------------------------------------------------------------------------------- statistics
def test_corrcoef(device):
    check(lambda m, a: m.corrcoef(a), (3, 6), device=device)
    check(lambda m, a: a.corrcoef(), (2, 5), device=device, dtype=np.float32, atol=1e-5)
    check(lambda m, a: m.corrcoef(a), (5,), device=device)
    check(lambda m, a: m.corrcoef(a), INTS, device=device)
    check_raises(lambda m, a: m.corrcoef(a), (2, 2, 2), device=device)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_histogram(device, dtype):
    x = np.concatenate([_rng.standard_normal(50), [3.0, -2.5, 3.0]]).astype(dtype)
    w = _rng.uniform(0, 2, x.shape).astype(dtype)
    kw = dict(device=device, grad=False, atol=1e-5)
    check(lambda m, a: m.histogram(a, 7), x, **kw)
    check(lambda m, a: a.histogram(4, range=(-1.0, 1.0)), x, **kw)
    check(lambda m, a, b: m.histogram(a, 5, weight=b, density=True), x, w, **kw)
    check(lambda m, a, e: m.histogram(a, e), x, np.array([-3.0, -0.5, 0.0, 2.0, 3.0], dtype=dtype), **kw)
    check(lambda m, a: m.histogram(a, 3), np.full(4, 2.0, dtype=dtype), **kw)
    check_raises(lambda m, a: m.histogram(a, 3), INTS, device=device)


def test_combinations(device):
    v = np.array([3.0, -1.0, 2.0, 5.0])
    check(lambda m, a: m.combinations(a), v, device=device)
    check(lambda m, a: m.combinations(a, 3), v, device=device)
    check(lambda m, a: m.combinations(a, 3, with_replacement=True), v, device=device)
    check(lambda m, a: m.combinations(a, 1), v, device=device)
    check(lambda m, a: m.combinations(a, 0), v, device=device, grad=False)
    check(lambda m, a: m.combinations(a, 5), v, device=device, grad=False)
    check(lambda m, a: m.combinations(a, 2, True), INTS[0], device=device)
    check_raises(lambda m, a: m.combinations(a), (2, 2), device=device)


@pytest.mark.parametrize("name", ["atleast_1d", "atleast_2d", "atleast_3d"])
def test_atleast_nd(device, name):
    for shape in [(), (3,), (2, 3), (2, 3, 4), (1, 2, 3, 4)]:
        check(lambda m, a: getattr(m, name)(a) * 2, shape, device=device)
    check(lambda m, a, b, c: getattr(m, name)(a, b, c), (), (3,), (2, 3), device=device)
    check(lambda m, a, b: getattr(m, name)([a, b]), (), (2, 3), device=device)
    check(lambda m, a: getattr(m, name)(a), INTS[0], device=device)
    check_raises(lambda m: getattr(m, name)(3), device=device)


def test_kthvalue_of_a_0d_tensor_is_its_value(device):
    for kw in ({}, {"dim": 0}, {"dim": -1, "keepdim": True}):
        x = dtrain.tensor(3.0, requires_grad=True, device=device)
        r = dtrain.kthvalue(x, 1, **kw)
        want = torch.kthvalue(torch.tensor(3.0), 1, **kw)
        assert (r.values.item(), r.indices.item(), r.values.shape) == (3.0, 0, want.values.shape)
        r.values.backward()
        assert x.grad.item() == 1.0
    for T in (torch, dtrain):
        with pytest.raises(RuntimeError, match="selected number k out of range"):
            T.kthvalue(T.tensor(3.0), 2)
        with pytest.raises(IndexError, match="Dimension out of range"):
            T.kthvalue(T.tensor(3.0), 1, dim=1)


@pytest.mark.parametrize("n", [16, 1 << 19])  # the NumPy path and, where numba is installed, the compiled kernel
def test_relu_passes_the_gradient_of_a_nan_output_as_torch(n, device):
    """torch's threshold_backward zeroes the gradient where the output is <= 0, so a NaN output (NaN input)
    passes its gradient; `y > 0` would have zeroed it."""
    a = np.linspace(-1, 1, n, dtype=np.float32)
    a[::3] = np.nan
    x = {T: T.tensor(a, requires_grad=True) for T in (torch, dtrain)}
    x[dtrain] = dtrain.tensor(a, requires_grad=True, device=device)
    for T in (torch, dtrain):
        T.relu(x[T]).backward(T.ones(n) if T is torch else T.ones(n, device=device))
    np.testing.assert_array_equal(x[dtrain].grad.cpu().numpy(), x[torch].grad.numpy())
