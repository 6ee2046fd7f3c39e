"""Decompositions and the ops built on them (dtrain.linalg and torch's top-level names) against torch: values and
gradients in float64 and float32, batches, result types, errors."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises, make

import dtrain

rng = np.random.default_rng(7)
# torch warns that its own older spellings (torch.cholesky, torch.qr, torch.chain_matmul) are deprecated
pytestmark = pytest.mark.filterwarnings("ignore:torch.(cholesky|qr|chain_matmul) is deprecated")


def _sym(m, a):
    return a + a.mT


def _spd(m, a):
    return a @ a.mT + a.shape[-1] * m.eye(a.shape[-1], dtype=a.dtype, device=a.device)


def _signs(U, Vh=None):
    """Singular / eigen vectors with the sign of their first entry made positive (U and Vh flip together):
    LAPACK builds may pick either sign, and the sign is not part of the decomposition."""
    s = U[..., :1, :].sign()
    return (U * s,) if Vh is None else (U * s, Vh * s.mT)


def _lower(*shape):
    """Well-conditioned lower triangular (Cholesky) factors."""
    return np.tril(rng.standard_normal(shape)) * 0.3 + 2 * np.eye(shape[-1])


def _low_rank(*shape, rank):
    return rng.standard_normal(shape[:-1] + (rank,)) @ rng.standard_normal(shape[:-2] + (rank, shape[-1]))


def _check_error(fn, *inputs):
    """fn raises in dtrain what it raises in torch, message included (torch.linalg.LinAlgError is
    dtrain.linalg.LinAlgError); returns dtrain's exception."""
    arrays = [make(x) for x in inputs]
    with pytest.raises(Exception) as te:
        fn(torch, *[torch.from_numpy(a.copy()) for a in arrays])
    expected = dtrain.linalg.LinAlgError if issubclass(te.type, torch.linalg.LinAlgError) else te.type
    with pytest.raises(expected) as de:
        fn(dtrain, *[dtrain.tensor(a.copy()) for a in arrays])
    assert str(de.value) == str(te.value), f"{de.value} != torch's {te.value}"
    return de.value


def _svd_reduced(m, a):
    U, S, Vh = m.linalg.svd(a, full_matrices=False)
    return _signs(U, Vh), S


def _svd_full(m, a):
    U, S, Vh = m.linalg.svd(a)
    k = S.shape[-1]
    # the extra columns of a full U (rows of Vh) are an arbitrary basis: compare their shapes only
    return _signs(U[..., :k], Vh[..., :k, :]), S, tuple(U.shape), tuple(Vh.shape)


def _torch_svd(m, a):
    U, S, V = m.svd(a)
    s = U[..., :1, :].sign()
    return U * s, S, V * s, a.svd()[1]


def _eigh(m, a):
    w, v = m.linalg.eigh(_sym(m, a))
    return w, _signs(v)


SHAPES = [(5, 3), (3, 5), (4, 4), (2, 5, 3), (2, 3, 4), (2, 1, 3, 3)]
SQUARE = [(4, 4), (2, 3, 3), (2, 1, 3, 3)]

CASES = {
    "svd": (_svd_reduced, SHAPES),
    "svd_full": (_svd_full, SHAPES),
    "torch_svd": (_torch_svd, SHAPES),
    "torch_svd_some_false": (lambda m, a: m.svd(a, some=False)[1], SHAPES),
    "torch_svd_no_uv": (lambda m, a: tuple(m.svd(a, compute_uv=False)), SHAPES),
    "svdvals": (lambda m, a: m.linalg.svdvals(a), SHAPES),
    "qr": (lambda m, a: tuple(m.linalg.qr(a)), SHAPES),
    "torch_qr": (lambda m, a: (tuple(m.qr(a)), a.qr()[1]), SHAPES),
    "pinv": (lambda m, a: m.linalg.pinv(a), SHAPES),
    "pinverse": (lambda m, a: (m.pinverse(a), a.pinverse()), SHAPES),
    "eigh": (_eigh, SQUARE),
    "eigh_upper": (lambda m, a: (m.linalg.eigh(a, UPLO="U")[0], _signs(m.linalg.eigh(a, UPLO="U")[1])), SQUARE),
    "eigvalsh": (lambda m, a: (m.linalg.eigvalsh(_sym(m, a)), m.linalg.eigvalsh(a, "U")), SQUARE),
    "qr_complete_square": (lambda m, a: tuple(m.linalg.qr(a, mode="complete")), SQUARE + [(3, 5), (2, 3, 4)]),
    "cholesky": (lambda m, a: (m.linalg.cholesky(_spd(m, a)), m.linalg.cholesky(_spd(m, a), upper=True)), SQUARE),
    "cholesky_reads_one_triangle": (lambda m, a: (m.linalg.cholesky(_spd(m, a) + a.triu(1)),
                                                  m.cholesky(_spd(m, a) + a.tril(-1), upper=True)), SQUARE),
    "torch_cholesky": (lambda m, a: (m.cholesky(_spd(m, a)), _spd(m, a).cholesky(True)), SQUARE),
    "cholesky_ex": (lambda m, a: tuple(m.linalg.cholesky_ex(_spd(m, a))), SQUARE),
    "slogdet": (lambda m, a: (tuple(m.linalg.slogdet(a)), tuple(m.slogdet(a)), a.slogdet()[1]), SQUARE),
    "logdet": (lambda m, a: (m.logdet(_spd(m, a)), m.logdet(a), a.logdet()), SQUARE),
    "matrix_exp": (lambda m, a: (m.linalg.matrix_exp(a), m.matrix_exp(a * 4), a.matrix_exp()), SQUARE),
    "matrix_power": (lambda m, a: tuple(m.linalg.matrix_power(a, n) for n in (0, 1, 2, 3, 6, -1, -2)) +
                     (m.matrix_power(a, 3), a.matrix_power(-3)), SQUARE),
    "det_inverse_methods": (lambda m, a: (a.det(), a.inverse()), SQUARE),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_decompositions(name, device):
    fn, shapes = CASES[name]
    for shape in shapes:
        check(fn, shape, device=device, atol=1e-8, rtol=1e-6)


FLOAT32 = ["svd", "torch_svd", "svdvals", "qr", "pinv", "eigh", "eigvalsh", "cholesky", "slogdet", "logdet",
           "matrix_exp", "matrix_power"]


@pytest.mark.parametrize("name", FLOAT32)
def test_decompositions_float32(name, device):
    fn, shapes = CASES[name]
    for shape in shapes:
        check(fn, shape, device=device, dtype=np.float32, atol=2e-4, rtol=2e-3)


def test_qr_mode_r(device):
    for shape in SHAPES:
        check(lambda m, a: tuple(m.linalg.qr(a, mode="r")), shape, device=device, grad=False)


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("sb,sl", [((3, 2), (3, 3)), ((2, 4, 3), (2, 4, 4)), ((2, 3, 2), (3, 3)), ((3, 1), (2, 3, 3))])
def test_cholesky_solve(device, upper, sb, sl):
    L = _lower(*sl)
    f = np.swapaxes(L, -1, -2).copy() if upper else L
    check(lambda m, b, f: (m.cholesky_solve(b, f, upper), b.cholesky_solve(f, upper)), sb, f, device=device,
          atol=1e-8, rtol=1e-6)
    check(lambda m, b, f: m.cholesky_solve(b, f, upper), sb, f.astype(np.float32), device=device,
          dtype=np.float32, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3)])
def test_cholesky_inverse(device, upper, shape):
    L = _lower(*shape)
    f = np.swapaxes(L, -1, -2).copy() if upper else L
    check(lambda m, f: (m.cholesky_inverse(f, upper), f.cholesky_inverse(upper)), f, device=device, atol=1e-8,
          rtol=1e-6)


def test_cholesky_of_cholesky_solve_chain(device):
    """The factor from linalg.cholesky feeding cholesky_solve: gradients through both."""
    check(lambda m, a, b: m.cholesky_solve(b, m.linalg.cholesky(_spd(m, a))), (2, 3, 3), (2, 3, 2), device=device,
          atol=1e-8, rtol=1e-6)


def test_pinv_tolerances_and_hermitian(device):
    A = _low_rank(2, 5, 4, rank=2) + 1e-3 * rng.standard_normal((2, 5, 4))
    check(lambda m, a: (m.linalg.pinv(a, atol=0.1), m.linalg.pinv(a, rtol=0.05), m.linalg.pinv(a, 0.05),
                        m.pinverse(a, rcond=0.05)), A, device=device, atol=1e-7, rtol=1e-6)
    check(lambda m, a: (m.linalg.pinv(_sym(m, a), hermitian=True),
                        m.linalg.pinv(_spd(m, a), hermitian=True, atol=4.5)), (2, 4, 4), device=device,
          atol=1e-8, rtol=1e-6)


def test_matrix_rank(device):
    A = np.concatenate([_low_rank(1, 5, 4, rank=r) for r in (1, 2, 4)])
    S = A[:, :4] @ np.swapaxes(A[:, :4], -1, -2)
    check(lambda m, a: (m.linalg.matrix_rank(a), m.linalg.matrix_rank(a, atol=1.0), m.linalg.matrix_rank(a, tol=1.0),
                        m.linalg.matrix_rank(a, atol=0.5, rtol=0.3), m.linalg.matrix_rank(a[0].mT)), A,
          device=device, grad=False)
    check(lambda m, s: (m.linalg.matrix_rank(s, hermitian=True), m.linalg.matrix_rank(s, 1e-1, True)), S,
          device=device, grad=False)


LSTSQ = [((5, 3), (5, 2)), ((2, 5, 3), (1, 5, 2)), ((2, 5, 3), (2, 5)), ((5, 3), (5,)), ((3, 3), (3, 2))]


@pytest.mark.parametrize("sa,sb", LSTSQ)
def test_lstsq(device, sa, sb):
    check(lambda m, a, b: tuple(m.linalg.lstsq(a, b, driver="gels")), sa, sb, device=device, atol=1e-8, rtol=1e-6)


def _conditioned(shape, r, cond=3.0):
    """A random matrix (batch) whose singular values lie in [1, cond]: the gradient of a least-squares solution
    grows with cond(A)**2, so a random A (cond up to ~1e3 at 3x3) makes any float32 tolerance a matter of luck."""
    m, n = shape[-2:]
    u = np.linalg.qr(r.standard_normal(shape[:-2] + (m, m)))[0][..., :, :min(m, n)]
    v = np.linalg.qr(r.standard_normal(shape[:-2] + (n, n)))[0][..., :min(m, n), :]
    return (u * r.uniform(1.0, cond, shape[:-2] + (1, min(m, n)))) @ v


@pytest.mark.parametrize("driver", [None, "gelsy", "gelsd", "gelss"])
@pytest.mark.parametrize("sa,sb", LSTSQ)
def test_lstsq_cpu_drivers(driver, sa, sb, monkeypatch):
    # inputs and the gradient weights from this test's own seed, never from what earlier tests left behind
    import helpers
    monkeypatch.setattr(helpers, "_rng", np.random.default_rng(11))
    r = np.random.default_rng(12)
    a, b = _conditioned(sa, r), r.standard_normal(sb)
    for dtype in (np.float64, np.float32):
        eps = np.finfo(dtype).eps  # tolerances from the dtype: a few hundred ulps of a cond-3 problem
        check(lambda m, a, b: tuple(m.linalg.lstsq(a, b, driver=driver)), a.astype(dtype), b.astype(dtype),
              atol=1e3 * eps, rtol=1e3 * eps)


def test_lstsq_rank_deficient():
    """The minimum-norm solution, the rank and no residuals where A lacks full rank."""
    check(lambda m, a, b: tuple(m.linalg.lstsq(a, b, driver="gelsd")), _low_rank(2, 6, 4, rank=2), (2, 6, 3),
          grad=False, atol=1e-8, rtol=1e-6)
    check(lambda m, a, b: tuple(m.linalg.lstsq(a, b, rcond=0.2, driver="gelss")), (6, 4), (6, 3), grad=False)


MULTI_DOT = [[(3, 4), (4, 5)], [(3, 4), (4, 5), (5, 2)], [(4,), (4, 6), (6, 2), (2, 3)], [(2, 4), (4, 6), (6,)],
             [(4,), (4, 3), (3,)], [(4,), (4,)], [(10, 2), (2, 8), (8, 3), (3, 9), (9, 1)]]


@pytest.mark.parametrize("shapes", MULTI_DOT)
def test_multi_dot(device, shapes):
    check(lambda m, *ts: m.linalg.multi_dot(ts), *shapes, device=device)
    check(lambda m, *ts: m.linalg.multi_dot(list(ts)), *shapes, device=device, dtype=np.float32, atol=1e-5, rtol=1e-4)


def test_chain_matmul(device):
    check(lambda m, a, b, c: (m.chain_matmul(a, b, c), m.chain_matmul(a), m.chain_matmul(a, b)), (3, 4), (4, 5),
          (5, 2), device=device)


def test_matrix_power_int(device):
    a = rng.integers(-3, 4, (2, 3, 3))
    check(lambda m, a: tuple(m.linalg.matrix_power(a, n) for n in (0, 1, 2, 5)), a, device=device)


def test_matrix_exp_large_norm_and_zero(device):
    """Matrices that need many squarings sit in one batch with ones that need none."""
    a = rng.standard_normal((3, 4, 4)) * np.array([0.0, 0.1, 3.0])[:, None, None]
    check(lambda m, a: m.linalg.matrix_exp(a), a, device=device, atol=1e-8, rtol=1e-7)
    check(lambda m, a: m.matrix_exp(a).sum(), (2, 3, 3), device=device)


def test_vdot_vecdot(device):
    check(lambda m, a, b: (m.vdot(a, b), a.vdot(b)), (5,), (5,), device=device)
    check(lambda m, a, b: (m.linalg.vecdot(a, b), m.linalg.vecdot(a, b, dim=0), m.linalg.vecdot(a[0], b[0])),
          (4, 3), (4, 3), device=device)
    check(lambda m, a, b: m.linalg.vecdot(a, b), (2, 4, 3), (3,), device=device)
    check(lambda m, a, b: m.vdot(a, b), np.arange(4), np.arange(4) - 2, device=device)


def test_tensorinv_tensorsolve(device):
    check(lambda m, a: (m.linalg.tensorinv(a), m.linalg.tensorinv(a.reshape(24, 4, 6), ind=1)), (4, 6, 8, 3),
          device=device, atol=1e-8, rtol=1e-6)
    check(lambda m, a, b: (m.linalg.tensorsolve(a, b), m.linalg.tensorsolve(a.movedim(2, 0), b, dims=(0,))),
          (2, 3, 6), (2, 3), device=device, atol=1e-8, rtol=1e-6)


def test_gradcheck():
    """Gradients against finite differences too, not only against torch."""
    from dtrain.autograd import gradcheck
    t = lambda *s: dtrain.tensor(rng.standard_normal(s), requires_grad=True)
    assert gradcheck(lambda a: _svd_reduced(dtrain, a), (t(4, 3),))
    assert gradcheck(lambda a: _svd_reduced(dtrain, a), (t(2, 3, 4),))
    assert gradcheck(lambda a: _eigh(dtrain, a), (t(2, 3, 3),))
    assert gradcheck(lambda a: tuple(dtrain.linalg.qr(a)), (t(4, 3),))
    assert gradcheck(lambda a: tuple(dtrain.linalg.qr(a)), (t(3, 5),))
    assert gradcheck(lambda a: dtrain.linalg.cholesky(_spd(dtrain, a)), (t(2, 3, 3),))
    assert gradcheck(lambda a: dtrain.linalg.matrix_exp(a), (t(3, 3),))
    assert gradcheck(lambda a: dtrain.linalg.pinv(a), (t(3, 4),))
    # only one triangle of a Cholesky factor is read (the gradient, as torch's, is a full matrix)
    f = dtrain.tensor(_lower(3, 3), requires_grad=True)
    assert gradcheck(lambda b, f: dtrain.cholesky_solve(b, f.tril()), (t(3, 2), f))
    assert gradcheck(lambda f: dtrain.cholesky_inverse(f.mT.triu(), True), (f,))


RESULT_TYPES = [
    lambda m, a: m.linalg.svd(a), lambda m, a: m.svd(a), lambda m, a: m.linalg.slogdet(a), lambda m, a: m.slogdet(a),
    lambda m, a: m.linalg.eigh(a), lambda m, a: m.linalg.qr(a), lambda m, a: m.qr(a),
    lambda m, a: m.linalg.cholesky_ex(a), lambda m, a: m.linalg.lstsq(a, a),
]


@pytest.mark.parametrize("i", range(len(RESULT_TYPES)))
def test_result_types(i):
    a = np.eye(3) * 2
    r, tr = RESULT_TYPES[i](dtrain, dtrain.tensor(a)), RESULT_TYPES[i](torch, torch.tensor(a))
    assert type(r).__name__ == type(tr).__name__ and len(r) == len(tr)
    for f in r._fields:
        assert np.array_equal(np.asarray(getattr(r, f).numpy()), getattr(tr, f).numpy()), f
    assert repr(r).startswith(f"torch.return_types.{type(tr).__name__}(")


def test_cholesky_not_positive_definite():
    bad = np.stack([np.eye(3), [[4.0, 2, 0], [2, 1, 0], [0, 0, 1]], [[4.0, 2, 1], [2, 5, 3], [1, 3, -2]]])
    for fn in (lambda m, a: m.linalg.cholesky(a), lambda m, a: m.linalg.cholesky(a[1]), lambda m, a: m.cholesky(a),
               lambda m, a: m.linalg.cholesky_ex(a, check_errors=True), lambda m, a: m.linalg.cholesky(a, upper=True)):
        assert isinstance(_check_error(fn, bad), dtrain.linalg.LinAlgError)
    # without check_errors: info per matrix and LAPACK's partial factor
    check(lambda m, a: tuple(m.linalg.cholesky_ex(a)), bad, grad=False)


def test_qr_backward_errors():
    for mode, shape in (("r", (3, 3)), ("complete", (4, 3))):
        msgs = []
        for m in (dtrain, torch):
            a = m.ones(shape, dtype=m.float64).requires_grad_()
            Q, R = m.linalg.qr(a + m.eye(*shape, dtype=m.float64), mode=mode)
            with pytest.raises(RuntimeError) as e:
                R.sum().backward()
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1]


ERRORS = {
    "svd_1d": lambda m, a: m.linalg.svd(a[0]),
    "torch_svd_1d": lambda m, a: m.svd(a[0]),
    "svdvals_int": lambda m, a: m.linalg.svdvals(a.long()),
    "svd_half": lambda m, a: m.linalg.svd(a.half()),
    "eigh_rect": lambda m, a: m.linalg.eigh(a[:, :2]),
    "eigh_uplo": lambda m, a: m.linalg.eigh(a, UPLO="X"),
    "eigh_int": lambda m, a: m.linalg.eigvalsh(a.long()),
    "qr_mode": lambda m, a: m.linalg.qr(a, mode="full"),
    "qr_1d": lambda m, a: m.qr(a[0]),
    "qr_int": lambda m, a: m.linalg.qr(a.long()),
    "cholesky_rect": lambda m, a: m.linalg.cholesky(a[:, :2]),
    "cholesky_1d": lambda m, a: m.cholesky(a[0]),
    "cholesky_int": lambda m, a: m.cholesky(a.long()),
    "cholesky_half": lambda m, a: m.linalg.cholesky_ex(a.half()),
    "slogdet_rect": lambda m, a: m.slogdet(a[:, :2]),
    "slogdet_half": lambda m, a: m.linalg.slogdet(a.half()),
    "logdet_int": lambda m, a: m.logdet(a.long()),
    "det_int": lambda m, a: m.linalg.det(a.long()),
    "inv_int": lambda m, a: m.linalg.inv(a.long()),
    "inv_1d": lambda m, a: m.linalg.inv(a[0]),
    "solve_dtype": lambda m, a: m.linalg.solve(a, a.float()),
    "pinv_int": lambda m, a: m.linalg.pinv(a.long()),
    "pinverse_1d": lambda m, a: m.pinverse(a[0]),
    "rank_1d": lambda m, a: m.linalg.matrix_rank(a[0]),
    "rank_half": lambda m, a: m.linalg.matrix_rank(a.half()),
    "lstsq_rows": lambda m, a: m.linalg.lstsq(a, a[:2]),
    "lstsq_vec_rows": lambda m, a: m.linalg.lstsq(a, a[0, :2]),
    "lstsq_dims": lambda m, a: m.linalg.lstsq(a, a[None]),
    "lstsq_0d": lambda m, a: m.linalg.lstsq(a, a[0, 0]),
    "lstsq_1d": lambda m, a: m.linalg.lstsq(a[0], a[0]),
    "lstsq_dtype": lambda m, a: m.linalg.lstsq(a, a.float()),
    "lstsq_int": lambda m, a: m.linalg.lstsq(a.long(), a.long()),
    "lstsq_driver": lambda m, a: m.linalg.lstsq(a, a, driver="gesv"),
    "multi_dot_none": lambda m, a: m.linalg.multi_dot([]),
    "multi_dot_one": lambda m, a: m.linalg.multi_dot([a]),
    "multi_dot_first": lambda m, a: m.linalg.multi_dot([a[None], a]),
    "multi_dot_last": lambda m, a: m.linalg.multi_dot([a, a[None]]),
    "multi_dot_middle": lambda m, a: m.linalg.multi_dot([a, a[0], a]),
    "multi_dot_shapes": lambda m, a: m.linalg.multi_dot([a, a, a[:2]]),
    "multi_dot_vec": lambda m, a: m.linalg.multi_dot([a[0], a, a[0, :2]]),
    "multi_dot_dtype": lambda m, a: m.linalg.multi_dot([a, a.float()]),
    "chain_matmul_none": lambda m, a: m.chain_matmul(),
    "chain_matmul_1d": lambda m, a: m.chain_matmul(a, a[0]),
    "matrix_power_rect": lambda m, a: m.matrix_power(a[:, :2], 2),
    "matrix_power_1d": lambda m, a: m.linalg.matrix_power(a[0], 2),
    "matrix_power_neg_int": lambda m, a: m.linalg.matrix_power(a.long(), -1),
    "matrix_power_float_n": lambda m, a: m.linalg.matrix_power(a, 2.0),
    "matrix_exp_rect": lambda m, a: m.linalg.matrix_exp(a[:, :2]),
    "matrix_exp_int": lambda m, a: m.matrix_exp(a.long()),
    "vdot_2d": lambda m, a: m.vdot(a, a[0]),
    "vdot_size": lambda m, a: m.vdot(a[0], a[0, :2]),
    "vdot_dtype": lambda m, a: m.vdot(a[0], a[0].float()),
    "vecdot_dtype": lambda m, a: m.linalg.vecdot(a, a.float()),
    "vecdot_int": lambda m, a: m.linalg.vecdot(a.long(), a.long()),
    "vecdot_bcast": lambda m, a: m.linalg.vecdot(a, a[:, :2]),
    "cholesky_solve_1d": lambda m, a: m.cholesky_solve(a[0], a),
    "cholesky_solve_factor_1d": lambda m, a: m.cholesky_solve(a, a[0]),
    "cholesky_solve_dtype": lambda m, a: m.cholesky_solve(a, a.float()),
    "cholesky_solve_rect": lambda m, a: m.cholesky_solve(a, a[:2]),
    "cholesky_solve_rows": lambda m, a: m.cholesky_solve(a[:2], a),
    "cholesky_solve_batch": lambda m, a: m.cholesky_solve(a.expand(2, 3, 3), a.expand(4, 3, 3)),
    "cholesky_solve_int": lambda m, a: m.cholesky_solve(a.long(), a.long()),
    "cholesky_inverse_rect": lambda m, a: m.cholesky_inverse(a[:2]),
    "cholesky_inverse_half": lambda m, a: m.cholesky_inverse(a.half()),
    "tensorinv_ind": lambda m, a: m.linalg.tensorinv(a, ind=0),
    "tensorinv_shape": lambda m, a: m.linalg.tensorinv(a.reshape(9, 1)[:8].reshape(2, 2, 2), ind=1),
    "tensorinv_singular": lambda m, a: m.linalg.tensorinv(a.new_zeros(2, 2, 2, 2)),
    "tensorsolve_shape": lambda m, a: m.linalg.tensorsolve(a, a[0, :2]),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors(case):
    _check_error(ERRORS[case], (3, 3))


# ---------------------------------------------------------------------------------------------- cond, inv_ex
COND_ORDS = [None, 2, -2, "fro", "nuc", float("inf"), float("-inf"), 1, -1]


@pytest.mark.parametrize("p", COND_ORDS, ids=[str(p) for p in COND_ORDS])
def test_cond(p):
    A = np.random.default_rng(21).standard_normal((3, 4, 4))
    svd_based = p in (None, 2, -2)
    # torch cannot differentiate its norm-based cond (an in-place write in its graph): there dtrain's gradient
    # is checked against finite differences
    check(lambda m, a: m.linalg.cond(a, p), A, atol=1e-8, rtol=1e-7, grad=svd_based)
    if not svd_based:
        assert dtrain.autograd.gradcheck(lambda a: dtrain.linalg.cond(a, p), (dtrain.tensor(A[0], requires_grad=True),))
    if svd_based:
        check(lambda m, a: m.linalg.cond(a, p), np.random.default_rng(22).standard_normal((3, 5)), atol=1e-8, rtol=1e-7)


def test_inv_ex_and_singular_matrices():
    A = np.random.default_rng(23).standard_normal((3, 4, 4))
    check(lambda m, a: m.linalg.inv_ex(a), A, grad=False)
    check(lambda m, a: m.linalg.inv_ex(a).inverse + 0, A)
    S = np.array([[[1.0, 2], [2, 4]], [[1, 0], [0, 2]]])
    d, t = dtrain.linalg.inv_ex(dtrain.tensor(S)), torch.linalg.inv_ex(torch.tensor(S))
    assert type(d).__name__ == "linalg_inv_ex" and d.info.dtype is dtrain.int32
    np.testing.assert_array_equal(d.info.numpy(), t.info.numpy())
    np.testing.assert_array_equal(d.inverse[1].numpy(), t.inverse[1].numpy())
    assert np.isnan(d.inverse[0].numpy()).all()  # torch's holds LAPACK's leftovers (infs)
    np.testing.assert_array_equal(dtrain.linalg.cond(dtrain.tensor(S), "fro").numpy(),
                                  torch.linalg.cond(torch.tensor(S), "fro").numpy())
    for m in (torch, dtrain):
        with pytest.raises(RuntimeError, match=r"\(Batch element 0\): The diagonal element 2 is zero"):
            m.linalg.inv_ex(m.tensor(S), check_errors=True)
    check_raises(lambda m, a: m.linalg.cond(a, "fro"), (2, 3), match="2 by 3")
    check_raises(lambda m, a: m.linalg.cond(a, 3), (3, 3), match="invalid norm type")
