"""LU factorization and its relatives (lu_factor, lu, lu_unpack, lu_solve, solve_triangular, triangular_solve,
geqrf, householder_product / orgqr, ormqr, eig / eigvals) against torch: values (pivots included), gradients in
float64, batches, float32, reconstructions and residuals, and errors."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises
from test_linalg_decomp import _check_error  # same type and message as torch (LinAlgError mapped)

import dtrain

rng = np.random.default_rng(11)
# torch warns that its older spellings (torch.lu, torch.lu_solve, torch.triangular_solve) are deprecated
pytestmark = pytest.mark.filterwarnings("ignore:.*(deprecated|will be removed).*")

SHAPES = [(4, 4), (2, 3, 3), (5, 3), (3, 5), (2, 1, 4, 6), (2, 6, 4)]
DTYPES = [np.float64, np.float32]


def _a(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def _tri(*shape, upper, dtype=np.float64):
    """Well-conditioned triangular matrices with the other triangle filled with noise (it must be ignored)."""
    n = shape[-1]
    a = rng.standard_normal(shape) * 0.3 + 2 * np.eye(n)
    return a.astype(dtype)


def _tol(dtype):
    return dict(atol=1e-9, rtol=1e-7) if dtype == np.float64 else dict(atol=2e-4, rtol=2e-4)


# ---- lu_factor, lu, lu_unpack ----

@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_lu_factor(shape, dtype, device):
    check(lambda m, a: m.linalg.lu_factor(a), _a(*shape, dtype=dtype), device=device, dtype=dtype,
          grad=dtype == np.float64, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_linalg_lu(shape, dtype, device):
    P, L, U = check(lambda m, a: m.linalg.lu(a), _a(*shape, dtype=dtype), device=device, dtype=dtype,
                    grad=dtype == np.float64, **_tol(dtype))
    assert not P.requires_grad


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_lu_reconstructs(shape, device):
    a = _a(*shape)
    A = dtrain.tensor(a, device=device)
    P, L, U = dtrain.linalg.lu(A)
    np.testing.assert_allclose((P @ L @ U).cpu().numpy(), a, atol=1e-12)
    k = min(shape[-2:])
    assert np.allclose(np.diagonal(L.cpu().numpy(), axis1=-2, axis2=-1), 1)
    assert np.allclose(np.triu(L.cpu().numpy(), 1), 0) and np.allclose(np.tril(U.cpu().numpy(), -1), 0)
    assert tuple(L.shape[-2:]) == (shape[-2], k) and tuple(U.shape[-2:]) == (k, shape[-1])
    # P is a permutation matrix
    p = P.cpu().numpy()
    np.testing.assert_array_equal(p.sum(-1), 1)
    np.testing.assert_array_equal(p.sum(-2), 1)


def test_lu_factor_ex_info(device):
    a = _a(3, 3, 3)
    a[1] = 0  # singular: U[1, 1] == 0
    a[2, :, 1] = 0  # singular: U[2, 2] == 0
    check(lambda m, x: m.linalg.lu_factor_ex(x), a, device=device, grad=False)
    check(lambda m, x: m.lu(x, get_infos=True), a, device=device, grad=False)
    _check_error(lambda m, x: m.linalg.lu_factor_ex(x, check_errors=True), a)
    _check_error(lambda m, x: m.linalg.lu_factor(x), a)
    _check_error(lambda m, x: m.linalg.lu_factor(x), a[1])


def test_torch_lu(device):
    a = _a(2, 4, 4)
    check(lambda m, x: m.lu(x), a, device=device)
    check(lambda m, x: x.lu(), a, device=device)
    check(lambda m, x: x.lu(get_infos=True), a, device=device)
    assert type(dtrain.lu(dtrain.tensor(a))) is tuple


@pytest.mark.parametrize("flags", [(True, True), (True, False), (False, True), (False, False)], ids=str)
@pytest.mark.parametrize("shape", [(4, 4), (2, 5, 3), (3, 5)], ids=str)
def test_lu_unpack(shape, flags, device):
    LU, piv = torch.linalg.lu_factor(torch.from_numpy(_a(*shape)))
    p = piv.numpy()

    def fn(m, lu):
        return m.lu_unpack(lu, m.tensor(p, device=lu.device), *flags)
    # with unpack_data=False torch's own backward fails (triu of an empty L): no gradient compared there
    check(fn, LU.numpy(), device=device, grad=flags[0])


def test_lu_unpack_roundtrip(device):
    a = _a(3, 4, 4)
    LU, piv = dtrain.linalg.lu_factor(dtrain.tensor(a, device=device))
    P, L, U = dtrain.lu_unpack(LU, piv)
    np.testing.assert_allclose((P @ L @ U).cpu().numpy(), a, atol=1e-12)


def test_lu_errors():
    check_raises(lambda m, a: m.linalg.lu_factor(a), (3,))
    check_raises(lambda m, a: m.linalg.lu(a), (3,))
    check_raises(lambda m, a: m.linalg.lu_factor(a.long()), (3, 3))
    check_raises(lambda m, a: m.linalg.lu_factor(a, pivot=False), (3, 3))
    check_raises(lambda m, a: m.linalg.lu_factor_ex(a.half()), (3, 3))
    _check_error(lambda m, a: m.linalg.lu(a), (3,))
    _check_error(lambda m, a: m.linalg.lu_factor(a), (3,))
    _check_error(lambda m, a: m.linalg.lu_factor(a, pivot=False), (3, 3))
    _check_error(lambda m, a: m.lu_unpack(*m.linalg.lu_factor(a)[:1], m.linalg.lu_factor(a)[1].long()), (3, 3))
    _check_error(lambda m, a: m.lu_unpack(a, m.full((3,), 4, dtype=m.int32)), (3, 3))
    with pytest.raises(RuntimeError, match="LU_pivots"):  # torch reads past the pivots here
        dtrain.lu_unpack(dtrain.ones(3, 3), dtrain.ones(2, dtype=dtrain.int32))
    check_raises(lambda m, a: m.lu_unpack(a.sum(0), m.ones(3, dtype=m.int32)), (3, 3))


# ---- lu_solve ----

@pytest.mark.parametrize("left,adjoint", [(True, False), (True, True), (False, False), (False, True)])
@pytest.mark.parametrize("shapes", [((4, 4), (4, 2)), ((2, 3, 3), (2, 3, 4)), ((2, 3, 3), (3, 3)),
                                    ((2, 1, 3, 3), (4, 3, 2))], ids=str)
def test_lu_solve(shapes, left, adjoint, device):
    sa, sb = shapes
    b = _a(*sb) if left else np.swapaxes(_a(*sb), -1, -2).copy()

    def fn(m, a, b):
        LU, piv = m.linalg.lu_factor(a)  # the gradient flows through the factorization to A
        return m.linalg.lu_solve(LU, piv, b, left=left, adjoint=adjoint)
    check(fn, _a(*sa), b, device=device, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("left,adjoint", [(True, False), (True, True), (False, False), (False, True)])
def test_lu_solve_residual(left, adjoint, device):
    a, b = _a(2, 5, 5), _a(2, 5, 3)
    if not left:
        b = np.swapaxes(b, -1, -2).copy()
    A, B = dtrain.tensor(a, device=device), dtrain.tensor(b, device=device)
    X = dtrain.linalg.lu_solve(*dtrain.linalg.lu_factor(A), B, left=left, adjoint=adjoint)
    op = A.mT if adjoint else A
    np.testing.assert_allclose((op @ X if left else X @ op).cpu().numpy(), b, atol=1e-10)


def test_lu_solve_gradient_wrt_lu(device):
    """The packed factors themselves as the differentiated input (not through lu_factor)."""
    LU, piv = torch.linalg.lu_factor(torch.from_numpy(_a(2, 4, 4)))
    p = piv.numpy()
    for adjoint in (False, True):
        check(lambda m, lu, b: m.linalg.lu_solve(lu, m.tensor(p, device=lu.device), b, adjoint=adjoint),
              LU.numpy(), _a(2, 4, 3), device=device, atol=1e-9, rtol=1e-7)


def test_lu_solve_float32(device):
    dt = np.float32
    check(lambda m, a, b: m.linalg.lu_solve(*m.linalg.lu_factor(a), b), _a(3, 4, 4, dtype=dt), _a(3, 4, 2, dtype=dt),
          device=device, dtype=dt, grad=False, atol=1e-4, rtol=1e-4)


def test_torch_lu_solve(device):
    def fn(m, a, b):
        LU, piv = m.lu(a)
        return m.lu_solve(b, LU, piv), b.lu_solve(LU, piv)
    check(fn, _a(2, 4, 4), _a(2, 4, 3), device=device, atol=1e-9, rtol=1e-7)


def test_lu_solve_errors():
    def solve(pivots=lambda p: p, n=3, bshape=(3, 2), **kw):
        return lambda m, a: m.linalg.lu_solve(m.linalg.lu_factor(a)[0][..., :n],
                                              pivots(m.linalg.lu_factor(a)[1]), m.ones(bshape, dtype=a.dtype), **kw)
    _check_error(solve(pivots=lambda p: p.long()), (3, 3))
    _check_error(solve(n=2), (3, 3))
    _check_error(solve(bshape=(4, 2)), (3, 3))
    _check_error(solve(bshape=(3, 2), left=False), (3, 3))
    _check_error(solve(bshape=(3,)), (3, 3))
    _check_error(solve(pivots=lambda p: p[:2]), (3, 3))
    check_raises(lambda m, a: m.lu_solve(m.ones(3, 2), *m.lu(a)[:1], m.lu(a)[1].long()), (3, 3))


# ---- triangular solves ----

@pytest.mark.parametrize("unit", [False, True], ids=["nonunit", "unit"])
@pytest.mark.parametrize("left", [True, False], ids=["left", "right"])
@pytest.mark.parametrize("upper", [True, False], ids=["upper", "lower"])
def test_solve_triangular(upper, left, unit, device):
    b = _a(2, 4, 3) if left else _a(2, 3, 4)
    check(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=upper, left=left, unitriangular=unit),
          _tri(2, 4, 4, upper=upper), b, device=device, atol=1e-9, rtol=1e-7)


def test_solve_triangular_broadcast_float32(device):
    dt = np.float32
    check(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=False), _tri(2, 1, 3, 3, upper=False, dtype=dt),
          _a(4, 3, 2, dtype=dt), device=device, dtype=dt, atol=1e-4, rtol=1e-4)
    check(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True), _tri(3, 3, upper=True), _a(2, 3, 5),
          device=device, atol=1e-9, rtol=1e-7)


def test_solve_triangular_residual(device):
    t = np.triu(_tri(3, 5, 5, upper=True))
    b = _a(3, 5, 2)
    X = dtrain.linalg.solve_triangular(dtrain.tensor(t, device=device), dtrain.tensor(b, device=device), upper=True)
    np.testing.assert_allclose(t @ X.cpu().numpy(), b, atol=1e-12)


@pytest.mark.parametrize("upper,transpose,unit", [(True, False, False), (False, False, True), (True, True, False),
                                                  (False, True, True)])
def test_triangular_solve(upper, transpose, unit, device):
    def fn(m, b, a):
        return m.triangular_solve(b, a, upper, transpose, unit), b.triangular_solve(a, upper=upper)
    check(fn, _a(2, 4, 3), _tri(2, 4, 4, upper=upper), device=device, atol=1e-9, rtol=1e-7)


def test_triangular_errors():
    check_raises(lambda m, a, b: m.linalg.solve_triangular(a, b), (3, 3), (3, 2))  # upper is required
    _check_error(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True), (3, 4), (3, 2))
    _check_error(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True), (3, 3), (4, 2))
    _check_error(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True, left=False), (3, 3), (3, 2))
    _check_error(lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True), (3, 3), (3,))
    _check_error(lambda m, a, b: m.linalg.solve_triangular(a.long(), b.long(), upper=True), (3, 3), (3, 2))
    _check_error(lambda m, b, a: m.triangular_solve(b, a), (2, 2), (3, 3))
    _check_error(lambda m, b, a: m.triangular_solve(b, a), (3,), (3, 3))
    _check_error(lambda m, b, a: m.triangular_solve(b, a), (3, 2), (3, 4))


def test_solve_triangular_mixed_dtypes(device):
    """torch computes in A's dtype."""
    for fa, fb in ((lambda t: t.float(), lambda t: t), (lambda t: t, lambda t: t.float())):
        check(lambda m, a, b: m.linalg.solve_triangular(fa(a), fb(b), upper=True), _tri(3, 3, upper=True), _a(3, 2),
              device=device, atol=1e-5, rtol=1e-5)


# ---- Householder reflections ----

@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", [(5, 3), (4, 4), (2, 6, 2)], ids=str)
def test_geqrf(shape, dtype, device):
    out = check(lambda m, a: m.geqrf(a), _a(*shape, dtype=dtype), device=device, dtype=dtype, grad=False,
                **_tol(dtype))
    check(lambda m, a: a.geqrf(), _a(*shape, dtype=dtype), device=device, dtype=dtype, grad=False, **_tol(dtype))
    assert out[0].dtype == getattr(dtrain, np.dtype(dtype).name)


@pytest.mark.parametrize("shape,k", [((5, 3), 3), ((4, 4), 4), ((2, 6, 4), 2), ((3, 5, 3), 3)], ids=str)
def test_householder_product(shape, k, device):
    tau = rng.uniform(0.5, 1.5, shape[:-2] + (k,))
    check(lambda m, a, t: m.linalg.householder_product(a, t), _a(*shape), tau, device=device, atol=1e-9, rtol=1e-7)
    check(lambda m, a, t: a.orgqr(t), _a(*shape), tau, device=device, atol=1e-9, rtol=1e-7)
    check(lambda m, a, t: m.orgqr(a, t), _a(*shape, dtype=np.float32), tau.astype(np.float32), device=device,
          dtype=np.float32, atol=1e-4, rtol=1e-4)


def test_householder_product_of_geqrf_is_q(device):
    a = _a(3, 6, 4)
    A = dtrain.tensor(a, device=device)
    h, tau = dtrain.geqrf(A)
    Q = dtrain.linalg.householder_product(h, tau)
    np.testing.assert_allclose((Q @ h[..., :4, :].triu()).cpu().numpy(), a, atol=1e-12)
    np.testing.assert_allclose((Q.mT @ Q).cpu().numpy(), np.broadcast_to(np.eye(4), (3, 4, 4)), atol=1e-12)


def test_householder_zero_tau(device):
    """tau = 0 is the identity reflector (no division by tau)."""
    tau = np.array([0.7, 0.0, 1.2])
    check(lambda m, a, t: m.linalg.householder_product(a, t), _a(5, 3), tau, device=device, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("left,transpose", [(True, False), (True, True), (False, False), (False, True)])
def test_ormqr(left, transpose, device):
    c = _a(2, 5, 3) if left else _a(2, 3, 5)
    tau = rng.uniform(0.5, 1.5, (2, 3))
    check(lambda m, a, t, c: m.ormqr(a, t, c, left, transpose), _a(2, 5, 3), tau, c, device=device, atol=1e-9,
          rtol=1e-7)


def test_householder_errors():
    _check_error(lambda m, a, t: m.linalg.householder_product(a, t), (3, 4), (3,))
    _check_error(lambda m, a, t: m.linalg.householder_product(a, t), (4, 3), (4,))
    _check_error(lambda m, a, t: m.linalg.householder_product(a, t), (4, 3), (4, 3))
    _check_error(lambda m, a: m.geqrf(a), (3,))
    _check_error(lambda m, a: m.geqrf(a.long()), (3, 3))
    _check_error(lambda m, a, t, c: m.ormqr(a, t, c), (4, 3), (3,), (5, 2))
    a = dtrain.tensor(_a(3, 3)).requires_grad_()
    with pytest.raises(RuntimeError, match="derivative for 'geqrf' is not implemented"):
        dtrain.geqrf(a).a.sum().backward()


# ---- general eigendecomposition ----

def _sorted(w):
    w = np.asarray(w)
    key = np.round(w.real, 6) * 1e3 + np.round(w.imag, 6)
    return np.take_along_axis(w, np.argsort(key, -1), -1)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", [(4, 4), (2, 5, 5), (1, 1)], ids=str)
def test_eigvals_eig(shape, dtype, device):
    a = _a(*shape, dtype=dtype)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    A = dtrain.tensor(a, device=device)
    w_t = torch.linalg.eigvals(torch.from_numpy(a)).numpy()
    for w in (dtrain.linalg.eigvals(A), dtrain.linalg.eig(A).eigenvalues):
        assert str(w.dtype) == str(torch.linalg.eigvals(torch.from_numpy(a)).dtype)
        np.testing.assert_allclose(_sorted(w.cpu().numpy()), _sorted(w_t), atol=tol, rtol=tol)
    w, V = dtrain.linalg.eig(A)
    assert str(V.dtype) == str(w.dtype) and tuple(V.shape) == shape
    w, V = w.cpu().numpy(), V.cpu().numpy()
    np.testing.assert_allclose(a @ V, V * w[..., None, :], atol=10 * tol)
    np.testing.assert_allclose(np.linalg.norm(V, axis=-2), 1, atol=10 * tol)


def test_eigvals_gradient(device):
    """The gradient of real functions of the eigenvalues (their sum of squares is tr(A^2))."""
    a = _a(2, 4, 4)
    for f in (lambda w: (w * w).real.sum(), lambda w: (w * w * w).imag.sum(), lambda w: (w.abs() ** 2).sum()):
        grads = []
        for m in (dtrain, torch):
            A = (m.tensor(a, device=device) if m is dtrain else torch.from_numpy(a.copy())).requires_grad_()
            f(m.linalg.eigvals(A)).backward()
            grads.append(A.grad.cpu().numpy() if m is dtrain else A.grad.numpy())
        np.testing.assert_allclose(*grads, atol=1e-9, rtol=1e-7)


def test_eig_gradient(device):
    """Through the eigenvectors: a loss invariant to their phase (|V|^2 weighted), as torch requires."""
    a = _a(4, 4)
    wts = rng.standard_normal((4, 4))
    grads = []
    for m in (dtrain, torch):
        A = (m.tensor(a, device=device) if m is dtrain else torch.from_numpy(a.copy())).requires_grad_()
        w, V = m.linalg.eig(A)
        W = m.tensor(wts, device=device) if m is dtrain else torch.from_numpy(wts)
        ((V.abs() ** 2) * W).sum().add(w.real.sum()).backward()
        grads.append(A.grad.cpu().numpy() if m is dtrain else A.grad.numpy())
    np.testing.assert_allclose(*grads, atol=1e-8, rtol=1e-6)


def test_eig_errors():
    _check_error(lambda m, a: m.linalg.eig(a), (3, 4))
    _check_error(lambda m, a: m.linalg.eigvals(a), (3,))
    _check_error(lambda m, a: m.linalg.eigvals(a.long()), (3, 3))
    # torch's CPU kernel aborts the process on a non-finite input; dtrain raises torch's CUDA error
    with pytest.raises(RuntimeError, match="should not contain infs or NaNs"):
        dtrain.linalg.eigvals(dtrain.full((3, 3), float("nan")))
