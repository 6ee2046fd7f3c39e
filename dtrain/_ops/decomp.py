"""Matrix decompositions and the ops built on one (SVD, eigh, QR, Cholesky, slogdet, pinv, matrix_exp) as
`Function`s over arrays, with torch's checks and result types. The public functions are in dtrain.linalg and,
for torch's top-level names, in _ops/linalg.py. Backward formulas follow torch's (autograd/FunctionsManual.cpp),
so gradients agree with it, including its conventions where a derivative is not unique."""

import numpy as np

from .. import _dtype
from .._backend import kernels, to_numpy
from ..autograd.graph import Function
from .reduce import _named
from ._util import unbroadcast


class LinAlgError(RuntimeError):
    """torch.linalg.LinAlgError: a linear-algebra routine failed (a singular matrix, ...)."""
    __module__ = "dtrain.linalg"


return_svd = _named("svd", ("U", "S", "V"))
return_linalg_svd = _named("linalg_svd", ("U", "S", "Vh"))
return_slogdet = _named("slogdet", ("sign", "logabsdet"))
return_linalg_slogdet = _named("linalg_slogdet", ("sign", "logabsdet"))
return_linalg_eigh = _named("linalg_eigh", ("eigenvalues", "eigenvectors"))
return_qr = _named("qr", ("Q", "R"))
return_linalg_qr = _named("linalg_qr", ("Q", "R"))
return_linalg_cholesky_ex = _named("linalg_cholesky_ex", ("L", "info"))
return_linalg_lstsq = _named("linalg_lstsq", ("solution", "residuals", "rank", "singular_values"))


# ---- checks, with torch's messages ----

def _check_matrix(A, fn):
    if A.ndim < 2:
        raise RuntimeError(f"{fn}: The input tensor A must have at least 2 dimensions.")


def _check_square(A, fn):
    _check_matrix(A, fn)
    if A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"{fn}: A must be batches of square matrices, but they are {A.shape[-2]} by {A.shape[-1]} "
                           f"matrices")


def _not_implemented(A, kernel):
    """torch's error for a dtype its kernel lacks, as `"linalg_svd_cpu" not implemented for 'Half'`."""
    return NotImplementedError(f"\"{kernel}_{A.device.type}\" not implemented for '{_dtype.scalar_name(A.dtype)}'")


def _check_float(A, fn, kernel=None):
    """Integer input is refused by name; half precision has no LAPACK kernel (`kernel` names the one torch
    reports, or the op says "Low precision dtypes not supported"). Complex matrices are not supported here."""
    dt = A.dtype
    if dt.is_complex:
        raise NotImplementedError(f"{fn}: complex matrices are not supported")
    if not dt.is_floating_point:
        raise RuntimeError(f"{fn}: Expected a floating point or complex tensor as input. Got {_dtype.scalar_name(dt)}")
    if dt.itemsize < 4:
        if kernel:
            raise _not_implemented(A, kernel)
        raise RuntimeError(f"{fn}: Low precision dtypes not supported. Got {_dtype.scalar_name(dt)}")


# ---- array helpers ----

def _mT(a):
    return a.swapaxes(-1, -2)


def _set_diag(a, d, xp):
    i = xp.arange(a.shape[-1])
    a[..., i, i] = d
    return a


def _solve_right(a, b, xp):
    """X with X a = b."""
    return _mT(xp.linalg.solve(_mT(a), _mT(b)))


def _given(g):
    """None for a gradient the engine filled with zeros because its output was not used: torch leaves such
    terms out, which keeps 0/0 (zero or repeated singular values) out of the result."""
    return g if g.any() else None


def _raising(xp):
    """CuPy reports a failed factorization only when asked to (its default returns garbage), NumPy always."""
    return kernels[xp].linalg_raising()


# ---- SVD ----

class Svd(Function):
    """A = U diag(S) Vh, reduced or (full_matrices) complete."""
    _grad_fn_name = "LinalgSvdBackward0"

    def forward(ctx, a, full_matrices=False):
        u, s, vh = ctx.xp.linalg.svd(a, full_matrices=full_matrices)
        ctx.save_for_backward(u, s, vh)
        return u, s, vh

    def backward(ctx, gu, gs, gvh):
        u, s, vh = ctx.saved
        k = s.shape[-1]
        # a complete U's extra columns (Vh's extra rows) are an arbitrary basis: their gradients are dropped
        return _svd_backward(ctx.xp, _given(gu[..., :k]), gs, _given(gvh[..., :k, :]), u[..., :k], s, vh[..., :k, :])


class Svdvals(Function):
    """The singular values alone; U and V are computed only when a backward will need them."""
    _grad_fn_name = "LinalgSvdBackward0"

    def forward(ctx, a):
        xp = ctx.xp
        if not ctx.needs_input_grad[0]:
            return xp.linalg.svd(a, compute_uv=False)
        u, s, vh = xp.linalg.svd(a, full_matrices=False)
        ctx.save_for_backward(u, vh)
        return s

    def backward(ctx, gs):
        u, vh = ctx.saved
        return (u * gs[..., None, :]) @ vh


def _svd_backward(xp, gu, gs, gvh, u, s, vh):
    """torch's svd_backward (real case); gu / gvh are None where that output has no gradient. Finite for
    distinct nonzero singular values."""
    m, n = u.shape[-2], vh.shape[-1]
    if gu is None and gvh is None:
        return (u * gs[..., None, :]) @ vh
    s2 = s * s
    e = _set_diag(s2[..., None, :] - s2[..., :, None], 1, xp)  # e_ij = s_j^2 - s_i^2, any nonzero on the diagonal
    sj, si = s[..., None, :], s[..., :, None]
    uhgu = vhgv = None
    if gu is not None:
        uhgu = _mT(u) @ gu
        uhgu = uhgu - _mT(uhgu)
    if gvh is not None:
        vhgv = vh @ _mT(gvh)
        vhgv = vhgv - _mT(vhgv)
    if uhgu is not None and vhgv is not None:
        ga = (uhgu * sj + si * vhgv) / e
    elif uhgu is not None:
        ga = uhgu / e * sj
    else:
        ga = si * (vhgv / e)
    _set_diag(ga, gs, xp)  # the skew terms vanish on the diagonal
    if m > n and gu is not None:  # the part of gU outside U's span
        gusinv = gu / sj
        ga = u @ ga + gusinv - u @ (_mT(u) @ gusinv)
        return ga @ vh
    if m < n and gvh is not None:
        sinvgvh = gvh / si
        ga = ga @ vh + sinvgvh - (sinvgvh @ _mT(vh)) @ vh
        return u @ ga
    return u @ (ga @ vh) if m >= n else (u @ ga) @ vh


# ---- symmetric eigendecomposition ----

class Eigh(Function):
    """A = V diag(L) V^T from one triangle of A (UPLO)."""
    _grad_fn_name = "LinalgEighBackward0"

    def forward(ctx, a, uplo="L"):
        w, v = ctx.xp.linalg.eigh(a, UPLO=uplo)
        ctx.save_for_backward(w, v)
        return w, v

    def backward(ctx, gw, gv):
        w, v = ctx.saved
        xp = ctx.xp
        if _given(gv) is None:
            return (v * gw[..., None, :]) @ _mT(v)
        vtgv = _mT(v) @ gv
        vtgv = 0.5 * (vtgv - _mT(vtgv))  # the tangent space of the orthogonal group: skew-symmetric matrices
        e = _set_diag(w[..., None, :] - w[..., :, None], 1, xp)  # e_ij = w_j - w_i
        return v @ _set_diag(vtgv / e, gw, xp) @ _mT(v)


class Eigvalsh(Function):
    _grad_fn_name = "LinalgEighBackward0"

    def forward(ctx, a, uplo="L"):
        xp = ctx.xp
        if not ctx.needs_input_grad[0]:
            return xp.linalg.eigvalsh(a, UPLO=uplo)
        w, v = xp.linalg.eigh(a, UPLO=uplo)
        ctx.save_for_backward(v)
        return w

    def backward(ctx, gw):
        (v,) = ctx.saved
        return (v * gw[..., None, :]) @ _mT(v)


# ---- QR ----

class Qr(Function):
    """A = Q R by Householder reflections (LAPACK's geqrf, as torch), mode 'reduced', 'complete' or 'r'."""
    _grad_fn_name = "LinalgQrBackward0"

    def forward(ctx, a, mode="reduced"):
        xp = ctx.xp
        ctx.mode = mode
        if mode == "r":
            return xp.empty((0,), a.dtype), xp.linalg.qr(a, mode="r")
        q, r = xp.linalg.qr(a, mode=mode)
        ctx.save_for_backward(q, r)
        return q, r

    def backward(ctx, gq, gr):
        if ctx.mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed when mode='r'. Please "
                               "use linalg.qr(A, mode='reduced') if you are going to differentiate through linalg.qr.")
        q, r = ctx.saved
        xp = ctx.xp
        m, n = q.shape[-2], r.shape[-1]
        if ctx.mode == "complete" and m > n:
            raise RuntimeError("The QR decomposition is not differentiable when mode='complete' and nrows > ncols.")
        x = gr @ _mT(r) - _mT(q) @ gq
        if m >= n:
            sym = xp.triu(x)
            sym = sym + _mT(sym)
            i = xp.arange(n)
            sym[..., i, i] *= 0.5
            return _solve_right(_mT(r), q @ sym + gq, xp)  # (Q sym + gQ) R^{-T}
        skew = xp.tril(_mT(x) - x)
        ga = _solve_right(_mT(r[..., :, :m]), q @ skew, xp)
        ga = xp.concatenate([ga, xp.zeros(ga.shape[:-1] + (n - m,), ga.dtype)], axis=-1)
        return ga + q @ gr


# ---- Cholesky ----

def _potf2(a):
    """LAPACK's unblocked Cholesky of one matrix's lower triangle (NumPy): the factor and info, the order of
    the first leading minor that is not positive-definite (0 if none). A failed factor is partial, as LAPACK's."""
    lo = np.tril(a).copy()
    for j in range(a.shape[0]):
        ajj = lo[j, j] - lo[j, :j] @ lo[j, :j]
        if not ajj > 0:
            lo[j, j] = ajj
            return lo, j + 1
        lo[j, j] = ajj = np.sqrt(ajj)
        lo[j + 1:, j] = (lo[j + 1:, j] - lo[j + 1:, :j] @ lo[j, :j]) / ajj
    return lo, 0


def _cholesky_info(xp, a):
    """Lower Cholesky factors of the lower triangles of a batch, and LAPACK's info per matrix (int32)."""
    a = xp.tril(a) + _mT(xp.tril(a, -1))
    try:
        with _raising(xp):
            return xp.linalg.cholesky(a), xp.zeros(a.shape[:-2], np.int32)
    except np.linalg.LinAlgError:
        pass
    # some matrix is not positive-definite: factor one by one on the host to learn which, and where
    n = a.shape[-1]
    factors, infos = [], []
    for m in to_numpy(a).reshape(-1, n, n):
        try:
            lo, info = np.linalg.cholesky(m), 0
        except np.linalg.LinAlgError:
            lo, info = _potf2(m)
        factors.append(lo)
        infos.append(info)
    lo = np.stack(factors).reshape(a.shape) if factors else np.empty(a.shape, a.dtype)
    return xp.asarray(lo), xp.asarray(np.array(infos, np.int32).reshape(a.shape[:-2]))


def _check_info(info, fn):
    """Raise torch's error for the first matrix whose Cholesky factorization failed."""
    info = to_numpy(info)
    bad = np.flatnonzero(info)
    if bad.size:
        where = f"(Batch element {bad[0]}): " if info.ndim else ""
        raise LinAlgError(f"{fn}: {where}The factorization could not be completed because the input is not positive-"
                          f"definite (the leading minor of order {info.flat[bad[0]]} is not positive-definite).")


class Cholesky(Function):
    """A = L L^T from A's lower triangle, or (upper) A = U^T U from its upper one; also LAPACK's info."""
    _grad_fn_name = "LinalgCholeskyExBackward0"  # torch's linalg ops name their nodes Linalg<Op>[Ex]

    def forward(ctx, a, upper=False):
        lo, info = _cholesky_info(ctx.xp, _mT(a) if upper else a)
        ctx.save_for_backward(lo)
        ctx.upper = upper
        return (_mT(lo) if upper else lo), info

    def backward(ctx, gl, ginfo):
        (lo,) = ctx.saved
        xp = ctx.xp
        if ctx.upper:
            gl = _mT(gl)
        # Murray (2016): gA = L^{-T} Phi(L^T gL) L^{-1}, Phi taking the lower triangle with a halved diagonal,
        # made symmetric
        ga = xp.tril(_mT(lo) @ gl)
        ga = 0.5 * (ga + _mT(xp.tril(ga, -1)))
        return _solve_right(lo, xp.linalg.solve(_mT(lo), ga), xp)


def _lower_factor(lo_or_up, upper, xp):
    """The lower triangular factor L with A = L L^T, read from the triangle a Cholesky factor lives in."""
    return _mT(xp.triu(lo_or_up)) if upper else xp.tril(lo_or_up)


def _cholesky_solve(lo, b, xp):
    return xp.linalg.solve(_mT(lo), xp.linalg.solve(lo, b))


class CholeskySolve(Function):
    """X = A^{-1} B for A = L L^T (or U^T U), given the factor; batch dims broadcast."""

    def forward(ctx, b, f, upper=False):
        xp = ctx.xp
        batch = np.broadcast_shapes(b.shape[:-2], f.shape[:-2])
        bb, fb = xp.broadcast_to(b, batch + b.shape[-2:]), xp.broadcast_to(f, batch + f.shape[-2:])
        lo = _lower_factor(fb, upper, xp)
        x = _cholesky_solve(lo, bb, xp)
        ctx.save_for_backward(lo, fb, x)
        ctx.upper, ctx.shapes = upper, (b.shape, f.shape)
        return x

    def backward(ctx, g):
        lo, f, x = ctx.saved
        gb = _cholesky_solve(lo, g, ctx.xp)
        common = gb @ _mT(x)
        common = common + _mT(common)
        # the factor's gradient is a full matrix, as torch's (it is not projected onto the triangle)
        gf = -(f @ common) if ctx.upper else -(common @ f)
        return unbroadcast(gb, ctx.shapes[0]), unbroadcast(gf, ctx.shapes[1])


class CholeskyInverse(Function):
    """A^{-1} for A = L L^T (or U^T U), given the factor."""

    def forward(ctx, f, upper=False):
        xp = ctx.xp
        li = xp.linalg.inv(_lower_factor(f, upper, xp))
        y = _mT(li) @ li
        ctx.save_for_backward(f, y)
        ctx.upper = upper
        return y

    def backward(ctx, g):
        f, y = ctx.saved
        common = y @ (g + _mT(g)) @ y
        return -(f @ common) if ctx.upper else -(common @ f)


# ---- determinants, pseudo-inverse, exponential ----

class Slogdet(Function):
    """sign(det A) and log|det A|; the sign of a real matrix has no gradient."""
    _grad_fn_name = "LinalgSlogdetBackward0"

    def forward(ctx, a):
        xp = ctx.xp
        sign, logabsdet = xp.linalg.slogdet(a)
        ctx.save_for_backward(a)
        return xp.asarray(sign), xp.asarray(logabsdet)

    def backward(ctx, gsign, glogabsdet):
        (a,) = ctx.saved
        xp = ctx.xp
        try:  # d log|det A| / dA = A^{-T}
            ainv_t = _mT(xp.linalg.inv(a))
        except np.linalg.LinAlgError:  # a singular matrix: log|det| = -inf, no finite gradient
            ainv_t = xp.full(a.shape, np.nan, a.dtype)
        return glogabsdet[..., None, None] * ainv_t


def _default_rtol(A):
    return np.finfo(A._data.dtype).eps * max(A.shape[-2:])


class Pinv(Function):
    """The Moore-Penrose inverse from the SVD (or, hermitian, the eigendecomposition of A's lower triangle);
    singular values at or below max(atol, rtol * largest) count as zero."""
    _grad_fn_name = "LinalgPinvBackward0"

    def forward(ctx, a, atol=0.0, rtol=0.0, hermitian=False):
        xp = ctx.xp
        if hermitian:
            w, v = xp.linalg.eigh(a)
            s, left, right = xp.abs(w), v, _mT(v)
        else:
            u, s, vh = xp.linalg.svd(a, full_matrices=False)
            w, left, right = s, _mT(vh), _mT(u)
        if s.shape[-1]:
            tol = xp.maximum(xp.asarray(atol)[..., None], xp.asarray(rtol)[..., None] * s.max(-1, keepdims=True))
            keep = s > tol
            winv = xp.where(keep, 1 / xp.where(keep, w, 1), 0).astype(a.dtype)
        else:
            winv = s
        p = (left * winv[..., None, :]) @ right
        ctx.save_for_backward(a, p)
        return p

    def backward(ctx, g):
        # torch's pinv_backward: the derivative of A -> A^+ where the rank does not change
        a, p = ctx.saved
        pt, gt = _mT(p), _mT(g)
        if a.shape[-2] <= a.shape[-1]:
            k = gt @ p
            kpt = k @ pt
            return -_mT(p @ k) + kpt - (a @ p) @ kpt + (pt @ p) @ (gt - k @ a)
        k = p @ gt
        ptk = pt @ k
        return -_mT(k @ p) + (gt - a @ k) @ p @ pt + ptk - ptk @ p @ a


_PADE13 = (64764752532480000., 32382376266240000., 7771770303897600., 1187353796428800., 129060195264000.,
           10559470521600., 670442572800., 33522128640., 1323241920., 40840800., 960960., 16380., 182., 1.)
_THETA13 = 5.371920351148152  # the largest 1-norm for which the [13/13] Pade approximant is exact in double


def _expm(xp, a):
    """exp(a) by scaling and squaring with the [13/13] Pade approximant (Higham 2005); each matrix of a
    batch is scaled by its own power of two."""
    n = a.shape[-1]
    if n == 0 or a.size == 0:
        return a.copy()
    with np.errstate(divide="ignore", invalid="ignore"):  # log2(0) = -inf: a zero matrix needs no scaling
        s = xp.ceil(xp.log2(xp.abs(a).sum(-2).max(-1) / _THETA13))
    s = xp.where(xp.isfinite(s) & (s > 0), s, 0)
    a = a / (2.0 ** s).astype(a.dtype)[..., None, None]
    b = _PADE13
    ident = xp.eye(n, dtype=a.dtype)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4 + b[3] * a2 + b[1] * ident)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * ident
    r = xp.linalg.solve(v - u, v + u)
    for k in range(int(s.max())):
        r = xp.where((s > k)[..., None, None], r @ r, r)
    return r


class MatrixExp(Function):
    _grad_fn_name = "LinalgMatrixExpBackward0"

    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _expm(ctx.xp, a)

    def backward(ctx, g):
        (a, ) = ctx.saved
        xp = ctx.xp
        # the adjoint of the Frechet derivative at A applied to G is the upper-right block of
        # exp([[A^T, G], [0, A^T]]) (Najfeld & Havel 1995), as torch computes it
        n = a.shape[-1]
        big = xp.zeros(a.shape[:-2] + (2 * n, 2 * n), a.dtype)
        big[..., :n, :n] = big[..., n:, n:] = _mT(a)
        big[..., :n, n:] = g
        return _expm(xp, big)[..., :n, n:]
