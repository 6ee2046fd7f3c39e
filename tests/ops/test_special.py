"""Special functions, number theory, complex views and the dtrain.special namespace, against torch."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises, to_numpy

import dtrain

_rng = np.random.default_rng(0)
ANY = _rng.standard_normal((3, 4))
POS = np.abs(_rng.standard_normal((3, 4))) + 0.2  # away from the poles of lgamma, digamma, ...
NEG = -_rng.integers(0, 3, (3, 4)) - _rng.uniform(0.2, 0.8, (3, 4))  # negative, away from the integers
UNIT = _rng.uniform(0.05, 0.95, (3, 4))  # domain of ndtri, logit
SIGNED_UNIT = UNIT * 2 - 1  # domain of erfinv
WITH_ZERO = np.where(_rng.uniform(size=(3, 4)) < 0.3, 0.0, POS)


def S(m):
    return m.special

UNARY = {
    "erfc": (lambda m, x: m.erfc(x), ANY), "erfc_method": (lambda m, x: x.erfc(), ANY),
    "exp2": (lambda m, x: m.exp2(x), ANY), "exp2_method": (lambda m, x: x.exp2(), ANY),
    "sinc": (lambda m, x: m.sinc(x), ANY), "sinc_method": (lambda m, x: (x * 3).sinc(), ANY),
    "deg2rad": (lambda m, x: m.deg2rad(x * 100), ANY), "rad2deg": (lambda m, x: x.rad2deg(), ANY),
    "lgamma": (lambda m, x: m.lgamma(x), POS), "lgamma_neg": (lambda m, x: x.lgamma(), NEG),
    "lgamma_large": (lambda m, x: m.lgamma(x * 100), POS),
    "digamma": (lambda m, x: m.digamma(x), POS), "digamma_neg": (lambda m, x: x.digamma(), NEG),
    "polygamma0": (lambda m, x: m.polygamma(0, x), POS), "polygamma1": (lambda m, x: m.polygamma(1, x), POS),
    "polygamma2_neg": (lambda m, x: m.polygamma(2, x), NEG), "polygamma3": (lambda m, x: x.polygamma(3), POS),
    "i0": (lambda m, x: m.i0(x * 3), ANY), "i0_method": (lambda m, x: x.i0(), ANY),
    "mvlgamma": (lambda m, x: m.mvlgamma(x + 2, 3), POS), "mvlgamma_method": (lambda m, x: (x + 1).mvlgamma(p=1), POS),
    # torch.special
    "special.erf": (lambda m, x: S(m).erf(x), ANY), "special.erfc": (lambda m, x: S(m).erfc(x), ANY),
    "special.erfinv": (lambda m, x: S(m).erfinv(x), SIGNED_UNIT), "special.expit": (lambda m, x: S(m).expit(x), ANY),
    "special.logit": (lambda m, x: S(m).logit(x), UNIT), "special.logit_eps": (lambda m, x: S(m).logit(x, 0.2), UNIT),
    "special.exp2": (lambda m, x: S(m).exp2(x), ANY), "special.expm1": (lambda m, x: S(m).expm1(x), ANY),
    "special.log1p": (lambda m, x: S(m).log1p(x), POS), "special.gammaln": (lambda m, x: S(m).gammaln(x), POS),
    "special.digamma": (lambda m, x: S(m).digamma(x), POS), "special.psi": (lambda m, x: S(m).psi(x), NEG),
    "special.polygamma": (lambda m, x: S(m).polygamma(2, x), POS), "special.i0": (lambda m, x: S(m).i0(x), ANY),
    "special.i0e": (lambda m, x: S(m).i0e(x * 3), ANY), "special.i1": (lambda m, x: S(m).i1(x * 3), ANY),
    "special.i1e": (lambda m, x: S(m).i1e(x * 3), ANY), "special.erfcx": (lambda m, x: S(m).erfcx(x * 3), ANY),
    "special.sinc": (lambda m, x: S(m).sinc(x), ANY), "special.entr": (lambda m, x: S(m).entr(x), POS),
    "special.ndtr": (lambda m, x: S(m).ndtr(x * 2), ANY), "special.ndtri": (lambda m, x: S(m).ndtri(x), UNIT),
    "special.log_ndtr": (lambda m, x: S(m).log_ndtr(x * 3), ANY),
    "special.multigammaln": (lambda m, x: S(m).multigammaln(x + 1, 2), POS),
    "special.round": (lambda m, x: S(m).round(x * 3), ANY),
    "special.logsumexp": (lambda m, x: (S(m).logsumexp(x, 1), S(m).logsumexp(x, (0, 1), keepdim=True)), ANY),
    "special.softmax": (lambda m, x: (S(m).softmax(x, 0), S(m).softmax(x, -1, dtype=m.float64)), ANY),
    "special.log_softmax": (lambda m, x: S(m).log_softmax(x, 1), ANY),
}
_TOL = {np.float64: dict(atol=1e-6, rtol=1e-5), np.float32: dict(atol=1e-4, rtol=1e-4)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op", UNARY)
def test_unary(device, op, dtype):
    fn, data = UNARY[op]
    check(fn, data.astype(dtype), device=device, **_TOL[dtype])


@pytest.mark.parametrize("op", ["erfc", "exp2", "sinc", "lgamma", "digamma", "i0", "deg2rad"])
def test_unary_noncontiguous_and_shapes(device, op):
    fn = UNARY[op][0]
    check(lambda m, x: fn(m, x.t()), np.ascontiguousarray(POS.T), device=device)
    for shape in [(), (0,), (2, 0, 3)]:
        check(fn, np.asarray(np.abs(_rng.standard_normal(shape)) + 0.5), device=device)


@pytest.mark.parametrize("op", ["erfc", "exp2", "sinc", "deg2rad", "rad2deg", "lgamma", "digamma", "polygamma1", "i0",
                                "mvlgamma", "special.entr", "special.ndtr", "special.i1", "special.erfcx",
                                "special.log_ndtr", "special.gammaln", "special.expit"])
@pytest.mark.parametrize("dt", [np.int64, np.int32, np.uint8, np.bool_])
def test_unary_integer_inputs(device, op, dt):
    x = (np.arange(12).reshape(3, 4) % 4 + 1).astype(dt)
    check(UNARY[op][0], x, device=device)


@pytest.mark.parametrize("op", ["erfc", "exp2", "sinc", "deg2rad", "lgamma", "digamma", "polygamma1", "i0",
                                "special.i1", "special.ndtr", "special.entr"])
def test_unary_float16(device, op):
    check(UNARY[op][0], UNARY[op][1].astype(np.float16), device=device, grad=False, atol=1e-2, rtol=1e-2)


def test_large_arrays_in_parallel_slices(device, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # SciPy runs in slices across threads above a size
    x = np.abs(_rng.standard_normal(600_001)).astype(np.float32) + 0.5
    check(lambda m, x: (m.erfc(x), m.lgamma(x), m.polygamma(2, x), S(m).i1e(x)), x, device=device, atol=1e-4,
          rtol=1e-4)


def test_special_values(device):
    x = np.array([0.0, -0.0, -1.0, -2.0, -2.5, np.inf, -np.inf, np.nan, 1e-300, 200.0])
    check(lambda m, x: (m.lgamma(x), m.digamma(x), m.erfc(x), m.exp2(x), m.sinc(x), m.i0(x), S(m).entr(x),
                        S(m).ndtr(x), S(m).log_ndtr(x), S(m).erfcx(x)), x, device=device, grad=False)
    check(lambda m, x: (S(m).ndtri(x), m.logaddexp2(x, x)),
          np.array([0.0, 0.5, 1.0, 2.0, -np.inf, np.inf, np.nan]), device=device, grad=False)


@pytest.mark.parametrize("fn", [lambda m, x: m.sinc(x), lambda m, x: S(m).entr(x), lambda m, x: S(m).i1(x),
                                lambda m, x: S(m).i1e(x), lambda m, x: S(m).i0e(x)])
def test_gradients_at_special_points(device, fn):
    check(fn, np.array([-1.0, 0.0, -0.0, 1e-20, 0.5, 1.0, 3.0]), device=device)


def test_log_ndtr_gradient_in_the_tails(device):
    check(lambda m, x: S(m).log_ndtr(x), np.array([-40.0, -10.0, 0.0, 10.0]), device=device)


def test_polygamma_errors(device):
    check_raises(lambda m, x: m.polygamma(-1, x), (3,), device=device, match="does not support negative n")
    check_raises(lambda m, x: m.polygamma(1.5, x), (3,), device=device, match="argument 'n' (position 1) must be int")
    check_raises(lambda m, x: m.mvlgamma(x, 0), (3,), device=device, match="p has to be greater than or equal to 1")


BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 1), (4,)), ((), (3, 4)), ((2, 3, 4), (1, 4))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sa,sb", BINARY_SHAPES)
def test_binary(device, sa, sb, dtype):
    a = _rng.standard_normal(sa).astype(dtype)
    b = (np.abs(_rng.standard_normal(sb)) + 0.2).astype(dtype)
    check(lambda m, x, y: (m.logaddexp2(x, y), x.logaddexp2(y * 30), m.xlogy(x, y), x.xlogy(y),
                           S(m).xlogy(x, y), S(m).xlog1py(x, y), m.ldexp(x, y), x.ldexp(y)),
          a, b, device=device, **_TOL[dtype])


def test_xlogy_zeros_and_edges(device):
    x = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 1.5])
    y = np.array([0.0, np.nan, np.inf, 0.0, -1.0, 3.0, 2.0, -2.0])
    check(lambda m, x, y: (m.xlogy(x, y), S(m).xlog1py(x, y - 1), S(m).xlog1py(x, y)), x, y, device=device)
    check(lambda m, x: (m.xlogy(x, x), S(m).xlog1py(x, x)), WITH_ZERO, device=device)


def test_xlogy_scalars_and_dtypes(device):
    check(lambda m, x: (m.xlogy(2, x), m.xlogy(x, 2.5), x.xlogy(3), m.xlogy(True, x), S(m).xlog1py(2, x),
                        S(m).xlog1py(x, 2)), POS, device=device)
    i, f = np.arange(6).reshape(2, 3), POS[:2, :3].astype(np.float32)
    check(lambda m, i, f: (m.xlogy(i, i), m.xlogy(i, f), m.xlogy(f, i), m.xlogy(i, 2.5), m.xlogy(2.5, i),
                           m.xlogy(f, f.double()), S(m).xlog1py(i, i), m.xlogy(i.bool(), i.int())), i, f,
          device=device)
    check_raises(lambda m: m.xlogy(2, 3), device=device)


def test_logaddexp2_dtypes_and_errors(device):
    i, f = np.arange(6).reshape(2, 3), POS[:2, :3].astype(np.float32)
    check(lambda m, i, f: (m.logaddexp2(i, f), m.logaddexp2(f, f.double()), m.logaddexp2(f.half(), f.half())), i, f,
          device=device, atol=1e-3, rtol=1e-3)
    check(lambda m, x, y: m.logaddexp2(x * 1e3, y * -1e3), (3, 4), (3, 4), device=device)  # no overflow
    check_raises(lambda m, i: m.logaddexp2(i, i), i, device=device,
                 match="\"logaddexp2_cpu\" not implemented for 'Long'")
    check_raises(lambda m, i: m.logaddexp2(i.bool(), i.bool()), i, device=device, match="'Bool'")
    check_raises(lambda m, f: m.logaddexp2(f, 2), f, device=device,
                 match="logaddexp2(): argument 'other' (position 2) must be Tensor, not int")
    check_raises(lambda m, f: m.logaddexp2(2.0, f), f, device=device,
                 match="argument 'input' (position 1) must be Tensor, not float")
    check_raises(lambda m, x, y: m.logaddexp2(x, y), (3,), (4,), device=device, match="must match the size")


_INT_DTYPES = [np.int64, np.int32, np.int16, np.int8, np.uint8]


@pytest.mark.parametrize("da", _INT_DTYPES)
@pytest.mark.parametrize("db", [np.int64, np.uint8])
def test_gcd_lcm(device, da, db):
    a = _rng.integers(-12 if np.dtype(da).kind == "i" else 0, 13, (3, 4)).astype(da)
    b = _rng.integers(0, 13, (4,)).astype(db)
    check(lambda m, a, b: (m.gcd(a, b), a.gcd(b), m.lcm(a, b), a.lcm(b), m.gcd(a, a[:1])), a, b, device=device)


def test_gcd_lcm_errors(device):
    i, f = np.arange(6), np.arange(6.0)
    for name in ("gcd", "lcm"):
        check_raises(lambda m, i, f: getattr(m, name)(i, f), i, f, device=device,
                     match=f"\"{name}_cpu\" not implemented for 'Double'")
        check_raises(lambda m, i: getattr(m, name)(i.bool(), i.bool()), i, device=device, match="'Bool'")
        check_raises(lambda m, i: getattr(m, name)(i, 2), i, device=device,
                     match=f"{name}(): argument 'other' (position 2) must be Tensor, not int")
        check_raises(lambda m, i: getattr(m, name)(2, i), i, device=device,
                     match=f"{name}(): argument 'input' (position 1) must be Tensor, not int")


_DTYPES = {"f64": np.float64, "f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32,
           "u8": np.uint8, "b": np.bool_}


@pytest.mark.parametrize("da", _DTYPES)
@pytest.mark.parametrize("db", _DTYPES)
def test_ldexp_dtypes(device, da, db):
    a = (np.arange(6).reshape(2, 3) % 3).astype(_DTYPES[da])
    b = (np.arange(3) % 2 + 1).astype(_DTYPES[db])
    if np.dtype(_DTYPES[db]).kind == "b" and np.dtype(_DTYPES[da]).kind == "f":
        check_raises(lambda m, a, b: m.ldexp(a, b), a, b, device=device,
                     match="\"ldexp_cpu_exp\" not implemented for 'Bool'")
    else:
        check(lambda m, a, b: m.ldexp(a, b), a, b, device=device, grad=False)


def test_ldexp_errors_and_int_exponents(device):
    e = np.arange(-6, 6).reshape(3, 4)
    check(lambda m, x, e: (m.ldexp(x, e), x.ldexp(e * 40), x.ldexp(e * -40)), (3, 4), e, device=device, grad=False)
    # torch's gradient takes 2 ** e in integers (0 for e < 0): compared where that is exact
    check(lambda m, x, e: (m.ldexp(x, e.abs()), x.ldexp(e.abs() * 4)), (3, 4), e, device=device)
    check_raises(lambda m, x: m.ldexp(x, 2), (3,), device=device,
                 match="ldexp(): argument 'other' (position 2) must be Tensor, not int")


@pytest.mark.parametrize("op,args", [
    ("erfc_", ()), ("exp2_", ()), ("sinc_", ()), ("deg2rad_", ()), ("rad2deg_", ()), ("lgamma_", ()),
    ("digamma_", ()), ("i0_", ()), ("polygamma_", (1,)), ("mvlgamma_", (2,))])
def test_unary_inplace(device, op, args):
    check(lambda m, x: getattr(x * 1 + 2, op)(*args), POS, device=device)


def test_binary_inplace(device):
    check(lambda m, x, y: ((x * 1).xlogy_(y), (x * 1).ldexp_(y), (x * 1).xlogy_(2)), (3, 4), POS[0], device=device)
    a, b = _rng.integers(-9, 9, (3, 4)), _rng.integers(1, 9, (4,))
    check(lambda m, a, b: (a.clone().gcd_(b), a.clone().lcm_(b), a.int().gcd_(b)), a, b, device=device)


@pytest.mark.parametrize("op", ["erfc_", "exp2_", "sinc_", "lgamma_", "digamma_", "i0_", "deg2rad_"])
def test_inplace_on_integers_raises(device, op):
    check_raises(lambda m, x: getattr(x, op)(), np.arange(3), device=device,
                 match="result type Float can't be cast to the desired output type Long")


def test_out(device):
    def fn(m, x, y):
        x, y = x.detach(), y.detach()
        out = m.empty(0, dtype=m.float64)
        assert m.erfc(x, out=out) is out
        return (out, m.xlogy(x, y, out=m.empty(3, 4, dtype=m.float64)), m.lgamma(y, out=m.empty(0, dtype=m.float64)),
                m.polygamma(1, y, out=m.empty(0, dtype=m.float64)), m.logaddexp2(x, y, out=m.empty(0, dtype=m.float64)),
                S(m).entr(y, out=m.empty(0, dtype=m.float64)), S(m).erfinv(x.tanh(), out=m.empty(0, dtype=m.float64)),
                m.gcd(y.long(), y.long() + 2, out=m.empty(0, dtype=m.int64)),
                m.view_as_real(m.complex(x, y, out=m.empty(0, dtype=m.complex128))))
    check(fn, (3, 4), POS, device=device, grad=False)


# ------------------------------------------------------------------------------------------- predicates
def test_isreal(device):
    z = np.array([1 + 2j, 3 + 0j, complex(1, -0.0), complex(np.nan, 0), complex(0, np.nan)])
    check(lambda m, z: (m.isreal(z), z.isreal()), z, device=device)
    check(lambda m, x: (m.isreal(x), m.isreal(x.long()), m.isreal(x > 0), m.isreal(x.float())), (3, 4), device=device)


def test_isin(device):
    e, t = np.arange(12).reshape(3, 4), np.array([[1, 3], [5, 11]])
    check(lambda m, e, t: (m.isin(e, t), m.isin(e, t, invert=True), m.isin(e, t, assume_unique=True),
                           m.isin(e, t.double() + 0.5), m.isin(e.float() + 0.5, t), m.isin(e, 2), m.isin(e, 2.0),
                           m.isin(3, t), m.isin(2.5, e), m.isin(e, t[:0]), m.isin(e.int(), t)), e, t, device=device)
    check(lambda m, x: m.isin(x, x[1:]), np.array([np.nan, 1.0, np.nan, 2.0]), device=device, grad=False)


def test_isin_errors(device):
    check_raises(lambda m: m.isin(2, 3), device=device)
    check_raises(lambda m, i: m.isin(i.bool(), i), np.arange(3), device=device,
                 match="Unsupported input type encountered for isin(): Bool")
    check_raises(lambda m, i: m.isin(i, i.bool()), np.arange(3), device=device, match="isin(): Bool")
    check_raises(lambda m, z: m.isin(z, z), np.array([1j]), device=device, match="isin(): ComplexDouble")


# ---------------------------------------------------------------------------------------------- complex
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sa,sb", BINARY_SHAPES)
def test_complex_and_polar(device, sa, sb, dtype):
    a, b = _rng.standard_normal(sa).astype(dtype), _rng.standard_normal(sb).astype(dtype)
    check(lambda m, x, y: (m.view_as_real(m.complex(x, y)), m.view_as_real(m.polar(x.abs(), y)),
                           m.view_as_real(m.polar(x, y * 3) * m.complex(y, x))), a, b, device=device, **_TOL[dtype])
    check(lambda m, x, y: (m.complex(x, y), m.polar(x, y)), a, b, device=device, grad=False, **_TOL[dtype])


def test_complex_and_polar_errors(device):
    f, i = np.ones(2, np.float32), np.arange(2)
    for name, args in (("complex", ("real", "imag")), ("polar", ("abs", "angle"))):
        fn = lambda m, *t: getattr(m, name)(*t)  # noqa: E731
        check_raises(fn, f, f.astype(np.float64), device=device,
                     match="Expected object of scalar type Float but got scalar type Double for second argument")
        check_raises(fn, f, i, device=device,
                     match="Expected both inputs to be Half, Float or Double tensors but got Float and Long")
        check_raises(fn, i, i, device=device, match="but got Long and Long")
        check_raises(lambda m, x: getattr(m, name)(x, 1.0), f, device=device,
                     match=f"{name}(): argument '{args[1]}' (position 2) must be Tensor, not float")
        check_raises(lambda m, x: getattr(m, name)(2.0, x), f, device=device,
                     match=f"{name}(): argument '{args[0]}' (position 1) must be Tensor, not float")
        check_raises(fn, f, np.ones(3, np.float32), device=device, match="must match the size")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_view_as_complex_and_real_grads(device, dtype):
    check(lambda m, x: m.view_as_real(m.view_as_complex(x) * m.view_as_complex(x * 2)), (3, 4, 2), device=device,
          dtype=dtype, **_TOL[dtype])
    check(lambda m, x: m.view_as_real(m.view_as_complex(x[::2])).sum(-1), (4, 2), device=device, dtype=dtype)
    check(lambda m, x: m.view_as_real(m.view_as_complex(x).t()), (2, 3, 2), device=device, dtype=dtype)
    check(lambda m, x: m.view_as_real(m.view_as_complex(x.expand(3, 4, 2))), (4, 2), device=device, dtype=dtype)
    check(lambda m, x: m.view_as_real(m.view_as_complex(x)), (2,), device=device, dtype=dtype)


def test_view_as_real_layouts(device):
    z = _rng.standard_normal((3, 4)) + 1j * _rng.standard_normal((3, 4))
    check(lambda m, z: (m.view_as_real(z), m.view_as_real(z.t()), m.view_as_real(z.t()).stride(),
                        m.view_as_real(z[0, 1]), m.view_as_real(z[:, ::2]).stride(), m.view_as_real(z[:0]),
                        m.view_as_complex(m.view_as_real(z.t())), m.view_as_complex(m.view_as_real(z)).stride()),
          z, device=device)
    check(lambda m, z: (m.view_as_real(z), m.view_as_real(z).dtype == m.float32), z.astype(np.complex64),
          device=device)


def test_views_write_through(device):
    def fn(m, x):
        base = x.detach().clone()
        z = m.view_as_complex(base)
        r = m.view_as_real(z)
        r[0, 1] = 7.0  # the imaginary part of z[0], and base[0, 1]
        z.mul_(2)
        r.add_(1)
        return base, z, r
    check(fn, (3, 2), device=device, grad=False)


def test_view_as_real_grad_of_complex_leaf(device):
    z = _rng.standard_normal(3) + 1j * _rng.standard_normal(3)
    w = _rng.standard_normal((3, 2))
    grads = []
    for m, dev in ((dtrain, device), (torch, "cpu")):
        leaf = m.tensor(z, device=dev, requires_grad=True)
        (m.view_as_real(leaf * (1 + 2j)) * m.tensor(w, device=dev)).sum().backward()
        grads.append(leaf.grad.cpu().numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)


def test_view_as_complex_errors(device):
    match = {"int": "only supported for half, float and double tensors, but got a tensor of scalar type: Long",
             "0-d": "Input tensor must have one or more dimensions", "size": "must have a last dimension of size 2",
             "stride": "must have a last dimension with stride 1",
             "odd": "must have a stride divisible by 2 for all but last dimension",
             "offset": "must have a storage_offset divisible by 2"}
    cases = {"int": lambda m, x: m.view_as_complex(x.long()), "0-d": lambda m, x: m.view_as_complex(x[0, 0]),
             "size": lambda m, x: m.view_as_complex(x[:, :3]), "stride": lambda m, x: m.view_as_complex(x[:2, :2].t()),
             "odd": lambda m, x: m.view_as_complex(x[:, 1:3]),
             "offset": lambda m, x: m.view_as_complex(x.reshape(-1)[1:7].reshape(3, 2))}
    for name, fn in cases.items():
        check_raises(fn, np.ones((3, 5)), device=device, match=match[name])
    check_raises(lambda m, x: m.view_as_real(x), (3, 2), device=device,
                 match="view_as_real is only supported for complex tensors")


def test_resolve_conj_and_neg_are_identity(device):
    for m in (dtrain, torch):
        x = m.ones(3, device=device if m is dtrain else "cpu")
        assert m.resolve_conj(x) is x and m.resolve_neg(x) is x and x.resolve_conj() is x and x.resolve_neg() is x


def test_gradcheck():
    from dtrain.autograd import gradcheck
    x = dtrain.tensor(_rng.uniform(0.3, 2.0, (3, 4)), requires_grad=True)
    y = dtrain.tensor(_rng.uniform(0.3, 2.0, (4,)), requires_grad=True)
    for f in (lambda a: a.erfc() * a.exp2(), lambda a: a.lgamma().digamma(), lambda a: a.polygamma(2).sinc(),
              lambda a: a.i0().deg2rad(), lambda a: dtrain.special.entr(a) + dtrain.special.log_ndtr(a),
              lambda a: dtrain.special.i1e(a) * dtrain.special.erfcx(a), lambda a: dtrain.special.ndtri(a / 3)):
        assert gradcheck(f, (x,))
    assert gradcheck(lambda a, b: dtrain.xlogy(a, b) + dtrain.logaddexp2(a, b) + dtrain.special.xlog1py(b, a), (x, y))
    assert gradcheck(lambda a, b: dtrain.view_as_real(dtrain.polar(a, b) * dtrain.complex(b, a)), (x, y))


REQUIRED = ["erfc", "exp2", "logaddexp2", "xlogy", "sinc", "deg2rad", "rad2deg", "lgamma", "digamma", "polygamma",
            "i0", "gcd", "lcm", "ldexp", "isreal", "isin", "polar", "complex", "view_as_real", "view_as_complex",
            "resolve_conj", "resolve_neg", "mvlgamma"]


def test_names_match_torch():
    for name in REQUIRED:
        assert hasattr(dtrain, name) and hasattr(torch, name), name
        for method in (name, name + "_"):
            assert hasattr(dtrain.Tensor, method) == hasattr(torch.Tensor, method), method
    for name in dtrain.special.__all__:
        assert hasattr(torch.special, name), name
    for name in ["erf", "erfc", "erfinv", "expit", "logit", "exp2", "expm1", "log1p", "gammaln", "digamma", "psi",
                 "polygamma", "i0", "xlogy", "xlog1py", "sinc", "logsumexp", "softmax", "log_softmax", "entr", "ndtr",
                 "round"]:
        assert name in dtrain.special.__all__, name


def test_real_and_imag_are_views_like_torch(device):
    res = {}
    for m in (torch, dtrain):
        dev = "cpu" if m is torch else device
        z = m.tensor([1 + 2j, 3 - 1j], requires_grad=True, device=dev)
        (z.real * m.tensor([1.0, 2.0], device=dev) + z.imag * 3).sum().backward()
        w = m.zeros(3, 4, dtype=m.complex64, device=dev)[:, ::2]
        w.real.add_(1)
        w.imag.add_(2)
        w.real = m.tensor([7.0, 8.0], device=dev)
        x = m.ones(2, device=dev)
        with pytest.raises(RuntimeError, match="imag is not implemented for tensors with non-complex dtypes"):
            x.imag
        res[m] = (to_numpy(z.grad), to_numpy(w), w.imag.stride(), x.real is x, to_numpy(m.real(z.detach())),
                  to_numpy(m.imag(z.detach())))
    for a, e in zip(res[dtrain], res[torch]):
        np.testing.assert_array_equal(a, e)


def test_no_tensor_carries_conjugate_or_negative_bits():
    z = dtrain.tensor([1 + 2j])
    for t in (z, z.conj(), -z, dtrain.ones(2)):
        assert t.is_conj() is False and t.is_neg() is False
        assert dtrain.is_conj(t) is False and dtrain.is_neg(t) is False
    np.testing.assert_array_equal(z.conj().resolve_conj().numpy(), [1 - 2j])  # the conjugate is in the values
