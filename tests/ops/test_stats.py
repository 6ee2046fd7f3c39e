"""Statistics and scans against torch: quantiles, nanmedian, mode, histc, cov, trapezoid, cummax/cummin,
logcumsumexp, unique_consecutive, renorm (values, dtypes, gradients, ties, NaN, errors)."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain
from dtrain._ops import stats

FLOATS = [np.float64, np.float32]
TOL = {np.float64: {}, np.float32: dict(atol=1e-5, rtol=1e-4)}
_rng = np.random.default_rng(42)


def _data(shape, dtype=np.float64, ties=False, nans=0):
    """Random values; with `ties` drawn from a few integers; `nans` entries set to NaN."""
    x = np.round(_rng.standard_normal(shape) * 1.5) if ties else _rng.standard_normal(shape)
    flat = x.reshape(-1)
    flat[_rng.choice(flat.size, nans, replace=False)] = np.nan
    return x.astype(dtype)


# ----------------------------------------------------------------------------------------------- quantile
INTERP = ["linear", "lower", "higher", "midpoint", "nearest"]
QS = {"float": 0.3, "0d": np.array(0.625), "1d": np.array([0.0, 0.25, 0.5, 0.9, 1.0])}


@pytest.mark.parametrize("fn", ["quantile", "nanquantile"])
@pytest.mark.parametrize("interpolation", INTERP)
@pytest.mark.parametrize("dim,keepdim", [(None, False), (None, True), (0, False), (1, True), (-1, False)])
@pytest.mark.parametrize("q", QS)
def test_quantile(device, fn, interpolation, dim, keepdim, q):
    # ties only where a sorted row has at most 16 elements: torch's sort keeps ties in order there (beyond, its
    # unstable sort decides which of the tied elements takes the gradient)
    qa = QS[q]
    for x in (_data((3, 4, 5)), _data((2, 4, 2), ties=True)):
        if isinstance(qa, np.ndarray):
            f = lambda m, x, q: getattr(m, fn)(x, q, dim, keepdim, interpolation=interpolation)
            check(f, x, qa, device=device)
        else:
            check(lambda m, x: getattr(x, fn)(qa, dim=dim, keepdim=keepdim, interpolation=interpolation), x,
                  device=device)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("interpolation", ["linear", "midpoint", "nearest"])
def test_quantile_nan(device, dtype, interpolation):
    # 15 elements: torch's sort keeps the order of the NaNs, which decides the one that takes the gradient
    x = _data((3, 5), dtype, nans=4)
    x[1] = np.nan  # a row with nothing but NaN
    q = np.array([0.1, 0.5, 0.75], dtype)
    for fn in ("quantile", "nanquantile"):
        check(lambda m, x, q: (getattr(m, fn)(x, q, 1, interpolation=interpolation),
                               getattr(m, fn)(x, q, 0, True, interpolation=interpolation),
                               getattr(x, fn)(0.4, interpolation=interpolation)), x, q, device=device,
              **TOL[dtype])


@pytest.mark.parametrize("dtype", FLOATS)
def test_quantile_float32_and_0d(device, dtype):
    check(lambda m, x, q: (m.quantile(x, q, dim=-2), x.nanquantile(q, 1, keepdim=True)), _data((3, 5, 2), dtype),
          np.array([0.2, 0.7], dtype), device=device, **TOL[dtype])
    check(lambda m, x: (m.quantile(x, 0.5), m.quantile(x, 0.2, dim=0), x.nanquantile(0.9, 0, True),
                        m.quantile(x, 0.5, keepdim=True)), np.array(1.5, dtype), device=device)


def test_quantile_out(device):
    def fn(m, x):
        o = m.empty(0, dtype=m.float64, device=x.device)
        assert m.quantile(x.detach(), 0.4, 1, out=o) is o
        return o
    check(fn, (3, 4), device=device, grad=False)


QUANTILE_ERRORS = {
    "int": lambda m, x: m.quantile(x.long(), 0.5),
    "q_range": lambda m, x: m.quantile(x, 1.5),
    "q_negative": lambda m, x: x.nanquantile(-0.1),
    "q_tensor_range": lambda m, x: m.quantile(x, m.tensor([0.5, 2.0], dtype=m.float64)),
    "q_2d": lambda m, x: m.quantile(x, m.tensor([[0.5]], dtype=m.float64)),
    "q_dtype": lambda m, x: m.quantile(x, m.tensor([0.5])),
    "empty": lambda m, x: m.quantile(x[:0], 0.5),
    "interpolation": lambda m, x: m.quantile(x, 0.5, interpolation="cubic"),
    "dim": lambda m, x: m.nanquantile(x, 0.5, dim=2),
}


@pytest.mark.parametrize("name", QUANTILE_ERRORS)
def test_quantile_errors(device, name):
    e, te = check_raises(QUANTILE_ERRORS[name], (3, 4), device=device)
    assert str(e) == str(te)


# ---------------------------------------------------------------------------------------- nanmedian, mode
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim,keepdim", [(0, False), (1, True), (-1, False), (-3, True)])
def test_nanmedian_dim(device, dtype, dim, keepdim):
    # distinct values: among equal ones (NaN too) torch's index comes from nth_element and is unspecified
    x = _data((3, 4, 5), dtype, nans=12)
    check(lambda m, x: (m.nanmedian(x, dim, keepdim), x.nanmedian(dim=dim, keepdim=keepdim)), x, device=device)


def test_nanmedian_all_nan_row(device):
    x = np.array([[np.nan] * 5, [1.0, np.nan, 3.0, 2.0, np.nan]])
    r, tr = dtrain.nanmedian(dtrain.tensor(x, device=device), 1), torch.nanmedian(torch.tensor(x), 1)
    np.testing.assert_array_equal(r.values.cpu().numpy(), tr.values.numpy())
    assert r.indices.tolist()[1] == tr.indices.tolist()[1] and np.isnan(x[0, r.indices.tolist()[0]])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", ["plain", "ties", "nan", "all_nan", "even"])
def test_nanmedian_all(device, dtype, case):
    x = {"plain": _data((3, 5), dtype), "ties": np.array([[1.0, 2.0, 2.0], [2.0, 0.0, 3.0]], dtype),
         "nan": np.array([1.0, np.nan, 1.0, 3.0, np.nan, 1.0], dtype), "all_nan": np.full((2, 2), np.nan, dtype),
         "even": np.array([4.0, 1.0, 3.0, 2.0], dtype)}[case]
    check(lambda m, x: (m.nanmedian(x), x.nanmedian()), x, device=device)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", ["plain", "ties", "nan", "all_nan", "even"])
def test_median_all_shares_ties_and_propagates_nan(device, dtype, case):
    x = {"plain": _data((3, 5), dtype), "ties": np.array([[3.0, 1.0, 3.0], [3.0, 0.0, 4.0]], dtype),
         "nan": np.array([1.0, np.nan, 2.0, 2.0, np.nan], dtype), "all_nan": np.full((2, 2), np.nan, dtype),
         "even": np.array([4.0, 1.0, 3.0, 2.0], dtype)}[case]
    check(lambda m, x: (m.median(x), x.median()), x, device=device)


@pytest.mark.parametrize("dim,keepdim", [(1, False), (0, True)])
def test_median_dim_with_nan_rows(device, dim, keepdim):
    # a slice holding NaN gives NaN and its first NaN's index; the others their lower median (distinct values)
    x = np.array([[1.0, np.nan, 2.0, 5.0], [3.0, 1.0, 2.0, 0.5], [np.nan, np.nan, 1.0, 4.0]])
    check(lambda m, x: m.median(x, dim, keepdim), x, device=device)


def test_nanmedian_int_0d_empty(device):
    x = np.array([[3, 1, 2, 5], [4, 4, 0, 4]])
    check(lambda m, x: (m.nanmedian(x), m.nanmedian(x, 1), x.nanmedian(0, True)), x, device=device)
    check(lambda m, x: (m.nanmedian(x), m.nanmedian(x, 0), x.nanmedian(-1, True)), np.array(2.5), device=device)
    check(lambda m, x: (m.nanmedian(x), m.nanmedian(x, 1)), np.zeros((0, 3)), device=device)
    e, te = check_raises(lambda m, x: m.nanmedian(x, 0), np.zeros((0, 3)), device=device)
    assert str(e) == str(te)
    check_raises(lambda m, x: m.nanmedian(x > 0), (3,), device=device, match="not implemented for 'Bool'")
    check_raises(lambda m, x: m.nanmedian(x > 0, 0), (3,), device=device, match="not implemented for 'Bool'")


@pytest.mark.parametrize("dim,keepdim", [(-1, False), (0, True), (1, False), (-2, True)])
def test_mode(device, dim, keepdim):
    x = _data((4, 6, 5), ties=True)
    check(lambda m, x: (m.mode(x, dim, keepdim), x.mode(dim=dim, keepdim=keepdim)), x, device=device)
    xi = np.round(_data((4, 6, 5)) * 2).astype(np.int64)
    check(lambda m, x: m.mode(x, dim, keepdim), xi, device=device)
    check(lambda m, x: m.mode(x, dim, keepdim), _data((4, 6, 5), np.float32, ties=True), device=device)


def test_mode_ties_and_edges(device):
    # 1 and 2 are equally frequent: the smaller wins, at its last position
    check(lambda m, x: (m.mode(x), m.mode(x[None], 1, True)), np.array([1.0, 2, 2, 1, 3, 1, 2]), device=device)
    check(lambda m, x: (m.mode(x > 0), m.mode(x)), np.array([1, 0, 1, 0, 0]), device=device)
    check(lambda m, x: (m.mode(x), m.mode(x, 0, True)), np.array(1.5), device=device)
    check(lambda m, x: m.mode(x, 1), np.zeros((0, 3)), device=device)
    e, te = check_raises(lambda m, x: m.mode(x, 0), np.zeros((0, 3)), device=device)
    assert str(e) == str(te)


def test_named_tuples(device):
    x = [[3.0, 1.0, 3.0], [2.0, 2.0, 5.0]]
    for name, fn in [("cummax", lambda m, t: m.cummax(t, 1)), ("cummin", lambda m, t: t.cummin(0)),
                     ("mode", lambda m, t: t.mode()), ("nanmedian", lambda m, t: m.nanmedian(t, 1, True))]:
        r, tr = fn(dtrain, dtrain.tensor(x, device=device)), fn(torch, torch.tensor(x))
        assert type(r).__name__ == name and repr(type(r)(*(t.cpu() for t in r))) == repr(tr)
        assert r.values is r[0] and r.indices is r[1]


# ------------------------------------------------------------------------------------------------ histc
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("args", [(), (10,), (7, -1.0, 1.0), (4, 0.5, 0.5), (5, -3, 2.5)])
def test_histc(device, dtype, args):
    x = _data((50,), dtype)
    x[:3] = [-1.0, 1.0, 0.0]  # values on the edges
    check(lambda m, x: (m.histc(x, *args), x.histc(*args)), x, device=device, grad=False)
    check(lambda m, x: m.histc(x, *args), _data((4, 6), dtype, ties=True), device=device, grad=False)


def test_histc_edges(device):
    check(lambda m, x: (m.histc(x, 3), m.histc(x, 4, 2, 2)), np.array([2.0, 2.0]), device=device, grad=False)
    check(lambda m, x: m.histc(x, bins=4, min=0, max=3), np.array([1.0, np.nan, 2.0]), device=device, grad=False)
    check(lambda m, x: m.histc(x, 4), np.zeros(0), device=device, grad=False)
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    assert not dtrain.histc(x).requires_grad
    for fn in (lambda m, x: m.histc(x.long()), lambda m, x: m.histc(x, bins=0), lambda m, x: m.histc(x, 3, 2, 1),
               lambda m, x: m.histc(x, 3, float("-inf"), 0), lambda m, x: m.histc(x.log())):
        e, te = check_raises(fn, np.array([-1.0, 2.0]), device=device)
        assert str(e).replace("-nan", "nan") == str(te).replace("-nan", "nan")


# -------------------------------------------------------------------------------------------------- cov
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("correction", [0, 1, 2])
def test_cov(device, dtype, correction):
    fw = np.array([1, 3, 0, 2, 1, 1])
    aw = np.abs(_data((6,), dtype)) + 0.1
    check(lambda m, x: (m.cov(x, correction=correction), x.cov(correction=correction)), _data((3, 6), dtype),
          device=device, **TOL[dtype])
    check(lambda m, x, w: (m.cov(x, correction=correction, fweights=w),
                           m.cov(x[0], correction=correction, fweights=w)), _data((3, 6), dtype), fw,
          device=device, **TOL[dtype])
    check(lambda m, x, a: m.cov(x, correction=correction, aweights=a), _data((2, 6), dtype), aw, device=device,
          **TOL[dtype])
    check(lambda m, x, w, a: x.cov(correction=correction, fweights=w, aweights=a), _data((4, 6), dtype), fw, aw,
          device=device, **TOL[dtype])


def test_cov_int_and_dof(device):
    x = np.array([[0, 2, 5, 1], [3, 3, 1, 0]])
    check(lambda m, x: (m.cov(x), m.cov(x.int(), fweights=m.tensor([1, 2, 1, 1], device=x.device)),
                        m.cov(x, aweights=m.tensor([0.5, 1.0, 2.0, 1.0], dtype=m.float64, device=x.device))), x,
          device=device)
    for x, kw in [(np.array(2.0), {}), (np.ones((2, 3)), dict(correction=3)), (np.zeros((2, 0)), {})]:
        with pytest.warns(UserWarning, match="degrees of freedom is <= 0"):
            check(lambda m, x: m.cov(x, **kw), x, device=device)


COV_ERRORS = {
    "3d": lambda m, x: m.cov(x.reshape(1, 2, 3)),
    "bool": lambda m, x: m.cov(x > 0),
    "fw_dtype": lambda m, x: m.cov(x, fweights=m.ones(3)),
    "fw_ndim": lambda m, x: m.cov(x, fweights=m.ones(1, 3, dtype=m.int64)),
    "fw_numel": lambda m, x: m.cov(x, fweights=m.ones(2, dtype=m.int64)),
    "fw_negative": lambda m, x: m.cov(x, fweights=m.tensor([1, -1, 1])),
    "aw_dtype": lambda m, x: m.cov(x, aweights=m.tensor([1, 2, 3])),
    "aw_negative": lambda m, x: m.cov(x, aweights=m.tensor([1.0, -2, 3], dtype=m.float64)),
    "zero_sum": lambda m, x: m.cov(x, aweights=m.zeros(3, dtype=m.float64)),
}


@pytest.mark.parametrize("name", COV_ERRORS)
def test_cov_errors(device, name):
    e, te = check_raises(COV_ERRORS[name], (2, 3), device=device)
    assert str(e) == str(te)


# -------------------------------------------------------------------------------------------- trapezoid
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [0, 1, -1, -3])
def test_trapezoid(device, dtype, dim):
    tol = TOL[dtype]
    check(lambda m, y: (m.trapezoid(y, dim=dim), m.trapz(y, dx=0.5, dim=dim), m.trapezoid(y, dx=2, dim=dim)),
          _data((3, 4, 5), dtype), device=device, **tol)
    n = (3, 4, 5)[dim]
    check(lambda m, y, x: (m.trapezoid(y, x, dim=dim), m.trapz(y, x, dim=dim)), _data((3, 4, 5), dtype),
          np.sort(_data((n,), dtype)), device=device, **tol)
    check(lambda m, y, x: m.trapezoid(y, x, dim=dim), _data((3, 4, 5), dtype), _data((3, 4, 5), dtype),
          device=device, **tol)


def test_trapezoid_broadcast_int_empty(device):
    check(lambda m, y, x: m.trapezoid(y, x), (2, 3, 4), (3, 4), device=device)  # x has fewer dims
    check(lambda m, y, x: m.trapezoid(y, x, dim=1), (2, 3, 4), (2, 3, 1), device=device)
    check(lambda m, y: (m.trapezoid(y), m.trapz(y, dx=2), m.trapezoid(y, m.tensor([1, 2, 4], device=y.device))),
          np.array([[1, 2, 3], [0, 5, 1]]), device=device)
    check(lambda m, y: (m.trapezoid(y), m.trapezoid(y, dim=0)), np.zeros((2, 0)), device=device)
    check(lambda m, y: m.trapezoid(y), np.array([1.5]), device=device)
    for fn in (lambda m, y: m.trapezoid(y > 0), lambda m, y: m.trapezoid(y, m.ones(2, dtype=m.float64)),
               lambda m, y: m.trapezoid(y, y[0] > 0), lambda m, y: m.trapezoid(y > 0, y[0]),
               lambda m, y: m.trapezoid(y, dim=2), lambda m, y: m.trapezoid(y.sum()),
               lambda m, y: m.trapezoid(y, dx=True), lambda m, y: m.trapezoid(y, 2.0),
               lambda m, y: m.trapz(y, m.ones(3, dtype=m.float64), dx=1)):
        e, te = check_raises(fn, (2, 3), device=device)
        if not isinstance(te, TypeError):  # torch's argument-parser messages are its own
            assert str(e) == str(te)


# ------------------------------------------------------------------------------------------ cummax, cummin
@pytest.mark.parametrize("fn", ["cummax", "cummin"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cummax_cummin(device, fn, dtype, dim):
    check(lambda m, x: (getattr(m, fn)(x, dim), getattr(x, fn)(dim)), _data((4, 5, 3), dtype), device=device)
    # ties: the latest index takes the gradient
    check(lambda m, x: getattr(m, fn)(x, dim), _data((4, 5, 3), dtype, ties=True), device=device)
    check(lambda m, x: getattr(m, fn)(x, dim), _data((4, 5, 3), dtype, ties=True, nans=6), device=device)


@pytest.mark.parametrize("fn", ["cummax", "cummin"])
def test_cummax_cummin_edges(device, fn):
    nan = np.nan
    check(lambda m, x: getattr(m, fn)(x, 0), np.array([1.0, 3, 3, 2, nan, 5, nan, 1, 1]), device=device)
    check(lambda m, x: (getattr(m, fn)(x, 1), getattr(m, fn)(x > 0, 0)), np.array([[3, 1, 1, 2, 0, 0],
                                                                                   [0, 4, 4, 2, 7, 7]]),
          device=device)
    check(lambda m, x: (getattr(m, fn)(x, 0), getattr(m, fn)(x, -1)), np.array(2.5), device=device)
    check(lambda m, x: (getattr(m, fn)(x, 0), getattr(m, fn)(x, 1)), np.zeros((0, 3)), device=device)
    check(lambda m, x: getattr(m, fn)(x.t(), 1), (3, 4), device=device)  # non-contiguous
    check_raises(lambda m, x: getattr(m, fn)(x, 2), (2, 3), device=device, match="Dimension out of range")


# ------------------------------------------------------------------------------------------ logcumsumexp
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [0, 1, -1, -3])
def test_logcumsumexp(device, dtype, dim):
    check(lambda m, x: (m.logcumsumexp(x, dim), x.logcumsumexp(dim)), _data((3, 4, 5), dtype) * 30, device=device,
          **TOL[dtype])


def test_logcumsumexp_extremes(device):
    inf = np.inf
    x = np.array([[-1000.0, 0.0, 1000.0, 1.0], [-inf, -inf, 1.0, 2.0], [inf, 1.0, 2.0, -inf], [0.0, -inf, 3.0, 3.0]])
    check(lambda m, x: (m.logcumsumexp(x, 1), m.logcumsumexp(x, 0)), x, device=device)
    check(lambda m, x: (m.logcumsumexp(x, 0), m.logcumsumexp(x, -1)), np.array(1.5), device=device)
    check(lambda m, x: m.logcumsumexp(x, 1), np.zeros((2, 0)), device=device)
    check(lambda m, x: m.logcumsumexp(x, 0, out=m.empty(0, dtype=m.float64, device=x.device)), (3,), device=device,
          grad=False)
    for fn in (lambda m, x: m.logcumsumexp(x.long(), 0), lambda m, x: m.logcumsumexp(x > 0, 0),
               lambda m, x: m.logcumsumexp(x, 2)):
        e, te = check_raises(fn, (2, 3), device=device)
        assert str(e) == str(te)


@pytest.mark.parametrize("op", ["maximum", "minimum", "logaddexp", "add"])
@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
def test_doubling_scan_matches_accumulate(op, n):
    """The scan used where the array module has no accumulate (CuPy), run here on NumPy."""
    x = _data((3, n, 2), nans=1 if op == "maximum" and n > 2 else 0)
    for axis in (0, 1, 2):
        np.testing.assert_allclose(stats._doubling_scan(getattr(np, op), x, axis, np),
                                   getattr(np, op).accumulate(x, axis=axis), rtol=1e-12)


# ------------------------------------------------------------------------------------ unique_consecutive
UC_INPUTS = {
    "1d": np.array([1, 1, 2, 2, 3, 1, 1, 2]),
    "2d": np.array([[1, 1, 2], [2, 2, 2], [1, 1, 2], [1, 1, 2]]),
    "float_nan": np.array([np.nan, np.nan, 1.0, 1.0, 2.0]),
    "0d": np.array(3.0),
    "empty": np.zeros((0, 2)),
}


def _check_or_raises(fn, x, device):
    """check() where torch succeeds; the same exception and message where it raises."""
    try:
        fn(torch, torch.from_numpy(x))
    except Exception:
        e, te = check_raises(fn, x, device=device)
        assert str(e) == str(te)
        return
    check(fn, x, device=device, grad=False)


@pytest.mark.parametrize("name", UC_INPUTS)
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("flags", [(False, False), (True, False), (False, True), (True, True)])
def test_unique_consecutive(device, name, dim, flags):
    x = UC_INPUTS[name]
    inv, cnt = flags
    _check_or_raises(lambda m, x: m.unique_consecutive(x, return_inverse=inv, return_counts=cnt, dim=dim), x, device)
    _check_or_raises(lambda m, x: x.unique_consecutive(inv, cnt, dim), x, device)


def test_unique_consecutive_errors_and_grad(device):
    for fn, x in [(lambda m, x: m.unique_consecutive(x, dim=0), np.zeros((2, 0))),
                  (lambda m, x: m.unique_consecutive(x, dim=1), np.zeros((0, 0)))]:
        e, te = check_raises(fn, x, device=device)
        assert str(e) == str(te)
    check(lambda m, x: m.unique_consecutive(x, dim=1), np.zeros((2, 0)), device=device, grad=False)
    e, te = check_raises(lambda m, x: m.unique_consecutive(x.requires_grad_()).sum().backward(), (3,),
                         device=device)
    assert str(e) == str(te)
    x = dtrain.tensor([1.0, 1.0, 2.0], requires_grad=True)
    out, counts = dtrain.unique_consecutive(x, return_counts=True)
    assert out.requires_grad and not counts.requires_grad


# ------------------------------------------------------------------------------------------------ renorm
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [1, 2, 3.5, float("inf")])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_renorm(device, dtype, p, dim):
    x = _data((3, 4, 5), dtype)
    x[1] *= 0.05  # slices under maxnorm stay as they are
    check(lambda m, x: (m.renorm(x, p, dim, 1.0), x.renorm(p, dim, 0.8)), x, device=device, **TOL[dtype])


def test_renorm_small_norms(device):
    # norms near 1e-4: torch's 1e-7 guard in maxnorm / (norm + 1e-7) shows in the fourth digit
    check(lambda m, x: m.renorm(x, 2, 0, 1e-5), _data((3, 4)) * 1e-4, device=device, rtol=1e-7, atol=0)


def test_renorm_inplace_and_errors(device):
    # (torch's renorm_ cannot be differentiated: it overwrites what its own norm saved)
    check(lambda m, x: x.detach().clone().renorm_(2, 0, 0.5), (3, 4), device=device, grad=False)
    check(lambda m, x: m.renorm(x, 2, 1, 0.0), (3, 4), device=device)
    for fn in (lambda m, x: m.renorm(x, 2, 0, -1), lambda m, x: m.renorm(x, 0, 0, 1),
               lambda m, x: m.renorm(x, -1, 0, 1), lambda m, x: m.renorm(x.long(), 2, 0, 1),
               lambda m, x: m.renorm(x[0], 2, 0, 1), lambda m, x: m.renorm(x, 2, 2, 1),
               lambda m, x: m.renorm(x, 2, 0, -0.5)):
        e, te = check_raises(fn, (2, 3), device=device)
        assert str(e) == str(te)


# ------------------------------------------------------------------------------------------------ methods
def test_tensor_methods_match_torch():
    names = ["quantile", "nanquantile", "nanmedian", "mode", "histc", "cov", "trapezoid", "trapz", "cummax",
             "cummin", "logcumsumexp", "unique_consecutive", "renorm", "renorm_"]
    for n in names:
        assert hasattr(dtrain.Tensor, n) == hasattr(torch.Tensor, n), n
        assert hasattr(dtrain, n) == hasattr(torch, n), n
