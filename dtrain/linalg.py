"""dtrain.linalg: norms, inverse, determinants, solves and decompositions (SVD, eigh, QR, Cholesky, LU, eig), with
gradients. Complex matrices are not supported by the decompositions."""
import math

import numpy as np

from . import _dtype
from ._ops._util import on_input_device, out_copy, to_float
from ._ops.decomp import (Cholesky, Eigh, Eigvalsh, LinAlgError, MatrixExp, Pinv, Qr, Slogdet, Svd, Svdvals,
                          _check_float, _check_info, _check_matrix, _check_square, _default_rtol, _not_implemented,
                          _raising, return_linalg_cholesky_ex, return_linalg_eigh, return_linalg_lstsq,
                          return_linalg_qr, return_linalg_slogdet, return_linalg_svd)
from ._ops.linalg import _CPP_NAMES
from ._ops.lu import (Eig, Eigvals, LuUnpack, _check_eig, _householder_product, _lu_error,
                      _lu_factor_ex, _lu_solve, _solve_triangular, return_linalg_eig, return_linalg_lu,
                      return_linalg_lu_factor, return_linalg_lu_factor_ex)
from ._backend import to_numpy as _backend_numpy
from ._ops.reduce import _named
from ._tensor import Tensor, _wrap
from .autograd import graph as _graph
from .autograd.graph import Function
from .amp._dispatch import autocast_op

__all__ = ["LinAlgError", "vector_norm", "matrix_norm", "norm", "inv", "det", "slogdet", "solve", "matmul", "cross",
           "diagonal", "svd", "svdvals", "eigh", "eigvalsh", "qr", "cholesky", "cholesky_ex", "pinv", "matrix_rank",
           "lstsq", "multi_dot", "matrix_power", "matrix_exp", "vecdot", "tensorinv", "tensorsolve", "lu",
           "lu_factor", "lu_factor_ex", "lu_solve", "solve_triangular", "householder_product", "eig", "eigvals",
           "inv_ex", "cond"]


@autocast_op("linalg_vector_norm")
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    """The `ord`-norm of x flattened (dim=None) or along `dim`."""
    r = _vector_norm(x, ord, dim, keepdim, dtype=dtype)
    _graph.renamed(r, "LinalgVectorNormBackward0")  # composed here, one node in torch
    return r if out is None else out.copy_(r)


def _vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    x = to_float(x) if dtype is None else x.to(dtype)
    if dim is None:
        x, dim = x.reshape(-1), 0
    if ord == float("inf"):
        return x.abs().amax(dim, keepdim)
    if ord == float("-inf"):
        return x.abs().amin(dim, keepdim)
    if ord == 0:
        return (x != 0).to(x.dtype).sum(dim, keepdim)
    if ord == 1:
        return x.abs().sum(dim, keepdim)
    if ord == 2:
        return x.square().sum(dim, keepdim).sqrt()
    return x.abs().pow(ord).sum(dim, keepdim).pow(1.0 / ord)


@autocast_op("linalg_matrix_norm")
def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None, out=None):
    A = to_float(A) if dtype is None else A.to(dtype)
    if ord == "fro":
        return A.square().sum(dim, keepdim).sqrt()
    if ord in (1, -1, float("inf"), float("-inf")):
        col = ord in (1, -1)
        s = A.abs().sum(dim[0] if col else dim[1], keepdim=True)
        r = s.amax(dim, keepdim=True) if ord > 0 else s.amin(dim, keepdim=True)
        return r if keepdim else r.squeeze(dim)
    raise NotImplementedError(f"linalg.matrix_norm: ord={ord!r} is not supported")


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None, out=None):
    if isinstance(dim, int) or (dim is None and (ord is None or A.ndim == 1)):
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    return matrix_norm(A, "fro" if ord is None else ord, (-2, -1) if dim is None else dim, keepdim, dtype=dtype)


class Inv(Function):
    _grad_fn_name = "LinalgInvExBackward0"  # torch's linalg ops name their nodes Linalg<Op>[Ex]

    def forward(ctx, a, fn="linalg.inv"):
        xp = ctx.xp
        try:
            with _raising(xp):
                y = xp.linalg.inv(a)
        except np.linalg.LinAlgError:
            raise LinAlgError(f"{fn}: The diagonal element 1 is zero, the inversion could not be completed "
                              f"because the input matrix is singular.") from None
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        yt = y.swapaxes(-1, -2)
        return -(yt @ g @ yt)


class Det(Function):
    _grad_fn_name = "LinalgDetBackward0"

    def forward(ctx, a):
        d = ctx.xp.linalg.det(a)
        ctx.save_for_backward(a, d)
        return d

    def backward(ctx, g):
        a, d = ctx.saved
        # d det / dA = det * A^{-T}
        return (g * d)[..., None, None] * ctx.xp.linalg.inv(a).swapaxes(-1, -2)


@autocast_op("linalg_inv")
def inv(A, *, out=None):
    _check_square(A, "linalg.inv")
    _check_float(A, "linalg.inv")
    return out_copy(Inv.apply(A), out)


return_linalg_inv_ex = _named("linalg_inv_ex", ("inverse", "info"))


@autocast_op("linalg_inv_ex")
def inv_ex(A, *, check_errors=False, out=None):
    """(inverse, info): info (int32, one per matrix) is 0, or for a singular matrix the 1-based index of the
    first zero pivot of its LU factorization, as torch's. A singular matrix's inverse is NaN here (torch's
    holds what LAPACK left, infs and NaNs)."""
    from .autograd.grad_mode import no_grad
    _check_square(A, "linalg.inv_ex")
    _check_float(A, "linalg.inv_ex")
    with no_grad():  # only the pivots' verdict is wanted from the factorization
        info = _lu_factor_ex(A, True, "linalg.inv_ex")[2]
    bad = info._data != 0
    if check_errors and bool(bad.any()):
        flags = np.atleast_1d(_backend_numpy(info._data))
        i = int(np.flatnonzero(flags)[0])
        where = f"(Batch element {i}): " if A.ndim > 2 else ""
        raise LinAlgError(f"linalg.inv_ex: {where}The diagonal element {int(flags[i])} is zero, the inversion could "
                          f"not be completed because the input matrix is singular.")
    if not bool(bad.any()):
        inverse = Inv.apply(A, fn="linalg.inv_ex")
    else:
        # the nonsingular matrices inverted (with gradients); the singular ones swapped for I, then NaN
        xp = A._device.xp
        sing = _wrap(xp.asarray(bad)[..., None, None], A._device)
        eye = _wrap(xp.eye(A.shape[-1], dtype=A._data.dtype), A._device)
        inverse = Inv.apply(A.where(~sing, eye), fn="linalg.inv_ex").masked_fill(sing, float("nan"))
    if out is not None:
        out_copy(inverse, out[0])
        out_copy(info, out[1])
    return return_linalg_inv_ex(inverse, info)


@autocast_op("linalg_cond")
def cond(A, p=None, *, out=None):
    """The condition number of A in the norm `p`: the ratio of extreme singular values for None, 2 and -2
    (any shape), norm(A) * norm(inv(A)) for 'fro', 'nuc', inf, -inf, 1, -1 (square A; inf where singular)."""
    inf = float("inf")
    if p in (None, 2, -2):
        _check_matrix(A, "linalg.cond")
        sv = svdvals(A)
        r = sv[..., 0] / sv[..., -1] if p != -2 else sv[..., -1] / sv[..., 0]
    elif p in ("fro", "nuc", inf, -inf, 1, -1):
        if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
            raise RuntimeError(f"linalg.cond(ord={p}): A must be batches of square matrices, but they are "
                               f"{A.shape[-2] if A.ndim >= 2 else 1} by {A.shape[-1]} matrices")
        inverse, info = inv_ex(A)

        def size(M):
            return svdvals(M).sum(-1) if p == "nuc" else matrix_norm(M, p)
        r = (size(A) * size(inverse)).masked_fill(info != 0, inf)
    else:
        raise RuntimeError(f"linalg.cond got an invalid norm type: {p}")
    return out_copy(r, out)


def det(A, *, out=None):
    _check_square(A, "linalg.det")
    _check_float(A, "linalg.det", "lu")
    return out_copy(Det.apply(A), out)


def slogdet(A, *, out=None):
    """sign(det A) and log|det A| (-inf for a singular A)."""
    _check_square(A, "linalg.slogdet")
    _check_float(A, "linalg.slogdet")
    return return_linalg_slogdet(*Slogdet.apply(A))


@autocast_op("linalg_solve")
def solve(A, B, *, left=True, out=None):
    """X with A X = B (left) or X A = B, through the inverse (differentiable in both)."""
    _check_square(A, "linalg.solve")
    _check_float(A, "linalg.solve", "lu")
    if A.dtype != B.dtype:
        raise RuntimeError(f"linalg.solve: Expected A and B to have the same dtype, but found A of type "
                           f"{_dtype.scalar_name(A.dtype)} and B of type {_dtype.scalar_name(B.dtype)} instead")
    Ai = inv(A)
    if not left:
        X = B @ Ai
    else:
        X = (Ai @ B.unsqueeze(-1)).squeeze(-1) if B.ndim == A.ndim - 1 else Ai @ B
    return _graph.renamed(X, "LinalgSolveExBackward0")  # composed here, one node in torch


def matmul(input, other, *, out=None):
    return input @ other


def cross(input, other, *, dim=-1):
    from . import cross as _cross
    return _cross(input, other, dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    return A.diagonal(offset, dim1, dim2)


# ---- decompositions ----

@autocast_op("linalg_svd")
def svd(A, full_matrices=True, *, driver=None, out=None):
    """A = U diag(S) Vh, singular values in descending order. `driver` (a cuSOLVER routine) is ignored."""
    _check_matrix(A, "linalg.svd")
    _check_float(A, "linalg.svd", "linalg_svd")
    return return_linalg_svd(*Svd.apply(A, full_matrices=full_matrices))


@autocast_op("linalg_svdvals")
def svdvals(A, *, driver=None, out=None):
    _check_matrix(A, "linalg.svd")
    _check_float(A, "linalg.svd", "linalg_svd")
    return out_copy(Svdvals.apply(A), out)


def _check_eigh(A, UPLO, fn):
    if not isinstance(UPLO, str) or UPLO.upper() not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    _check_square(A, fn)
    if not A.dtype.is_floating_point and not A.dtype.is_complex:
        raise _not_implemented(A, "linalg_eigh")
    _check_float(A, fn, "linalg_eigh")
    return UPLO.upper()


@autocast_op("linalg_eigh")
def eigh(A, UPLO="L", *, out=None):
    """Eigenvalues (ascending) and orthonormal eigenvectors of symmetric matrices, read from the UPLO triangle."""
    uplo = _check_eigh(A, UPLO, "linalg.eigh")
    return return_linalg_eigh(*Eigh.apply(A, uplo=uplo))


@autocast_op("linalg_eigvalsh")
def eigvalsh(A, UPLO="L", *, out=None):
    uplo = _check_eigh(A, UPLO, "linalg.eigh")
    return out_copy(Eigvalsh.apply(A, uplo=uplo), out)


@autocast_op("linalg_qr")
def qr(A, mode="reduced", *, out=None):
    """A = Q R; mode 'reduced', 'complete', or 'r' (R only, Q an empty tensor, not differentiable)."""
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), 'r', or "
                           f"'complete'")
    _check_matrix(A, "linalg.qr")
    _check_float(A, "linalg.qr", "geqrf")
    return return_linalg_qr(*Qr.apply(A, mode=mode))


def _cholesky(A, upper, fn):
    """The factor and LAPACK's info. A failed matrix's factor is that of the unblocked algorithm, stopped at
    the failing column (torch leaves LAPACK's partial result there too)."""
    _check_square(A, fn)
    if not A.dtype.is_floating_point and not A.dtype.is_complex:
        raise _not_implemented(A, "cholesky")
    _check_float(A, fn, "cholesky")
    return Cholesky.apply(A, upper=upper)


@autocast_op("linalg_cholesky")
def cholesky(A, *, upper=False, out=None):
    """L with A = L L^T (A's lower triangle read), or U with A = U^T U (upper triangle)."""
    L, info = _cholesky(A, upper, "linalg.cholesky")
    _check_info(info._data, "linalg.cholesky")
    return out_copy(L, out)


@autocast_op("linalg_cholesky_ex")
def cholesky_ex(A, *, upper=False, check_errors=False, out=None):
    L, info = _cholesky(A, upper, "linalg.cholesky_ex")
    if check_errors:
        _check_info(info._data, "linalg.cholesky_ex")
    return return_linalg_cholesky_ex(L, info)


# ---- pseudo-inverse, rank, least squares ----

def _tolerances(A, atol, rtol):
    """torch's defaults: atol 0; rtol eps * max(m, n), or 0 where a positive atol is given."""
    xp = A._device.xp
    a = atol._data if isinstance(atol, Tensor) else (0.0 if atol is None else atol)
    if rtol is None:
        r = _default_rtol(A) if atol is None else xp.where(xp.asarray(a) > 0, 0.0, _default_rtol(A))
    else:
        r = rtol._data if isinstance(rtol, Tensor) else rtol
    return a, r


@on_input_device  # the tolerances become arrays outside Function.apply
def pinv(A, rcond=None, hermitian=False, *, atol=None, rtol=None, out=None):
    """The pseudo-inverse, dropping singular values <= max(atol, rtol * largest); `rcond` is rtol with atol 0
    (torch's older overload)."""
    if A.ndim < 2 or not A.dtype.is_floating_point or A.dtype.itemsize < 4:
        shape = ", ".join(str(s) for s in A.shape)
        raise RuntimeError(f"linalg.pinv({_dtype.scalar_name(A.dtype)}{{[{shape}]}}): expected a tensor with 2 or "
                           f"more dimensions of float, double, cfloat or cdouble types")
    if rcond is not None:
        atol, rtol = 0.0, rcond
    atol, rtol = _tolerances(A, atol, rtol)
    return out_copy(Pinv.apply(A, atol=atol, rtol=rtol, hermitian=hermitian), out)


def _check_float_double(A):
    if A.dtype.name not in ("float32", "float64"):
        raise RuntimeError("This function doesn't handle types other than float and double")


@autocast_op("linalg_matrix_rank")
@on_input_device
def matrix_rank(A, tol=None, hermitian=False, *, atol=None, rtol=None, out=None):
    """The number of singular values (|eigenvalues| if hermitian) above max(atol, rtol * largest), as int64;
    `tol` is atol with rtol 0 (torch's older overload)."""
    if A.ndim < 2:
        raise RuntimeError("torch.linalg.matrix_rank: The input tensor input must have at least 2 dimensions.")
    _check_float_double(A)
    if tol is not None:
        atol, rtol = tol, 0.0
    atol, rtol = _tolerances(A, atol, rtol)
    xp = A._device.xp
    s = xp.abs(xp.linalg.eigvalsh(A._data)) if hermitian else xp.linalg.svd(A._data, compute_uv=False)
    if s.shape[-1] == 0:
        return _wrap(xp.zeros(s.shape[:-1], np.int64), A._device)
    tol = xp.maximum(xp.asarray(atol)[..., None], xp.asarray(rtol)[..., None] * s.max(-1, keepdims=True))
    return out_copy(_wrap((s > tol).sum(-1).astype(np.int64), A._device), out)


_DRIVERS = ("gels", "gelsy", "gelsd", "gelss")


@autocast_op("linalg_lstsq")
def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares solution of A X = B (minimum norm where A is rank-deficient), through the
    pseudo-inverse, whose gradient is the one torch uses. As in torch, `driver` decides which of residuals,
    rank and singular_values are computed (the others are empty): 'gelsy' (the CPU default) gives the rank,
    'gelsd'/'gelss' the rank and singular values, and all but 'gelsy' the residuals where m > n and A has full
    rank. 'gels' (the only CUDA driver) also returns the minimum-norm solution for a rank-deficient A, which
    LAPACK's gels does not compute."""
    if A.ndim < 2:
        raise RuntimeError("torch.linalg.lstsq: input must have at least 2 dimensions.")
    if B.ndim < 1:
        raise RuntimeError("torch.linalg.lstsq: other must have at least 1 dimension.")
    if A.dtype != B.dtype:
        raise RuntimeError(f"torch.linalg.lstsq: Expected input and other to have the same dtype, but got input's "
                           f"dtype {_dtype.scalar_name(A.dtype)} and other's dtype {_dtype.scalar_name(B.dtype)}")
    _check_float_double(A)
    if not (A.ndim >= B.ndim and A.ndim - B.ndim <= 1):
        raise RuntimeError("torch.linalg.lstsq: input.dim() must be greater or equal to other.dim() and "
                           "(input.dim() - other.dim()) <= 1")
    vector = B.ndim == A.ndim - 1
    if A.shape[-2] != B.shape[-1 if vector else -2]:
        raise RuntimeError(f"torch.linalg.lstsq: input.size(-2) should match other.size({-1 if vector else -2})")
    cuda = A.device.type == "cuda"
    driver = driver or ("gels" if cuda else "gelsy")
    if driver not in _DRIVERS:
        raise RuntimeError("torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, gelss)")
    if cuda and driver != "gels":
        raise RuntimeError("torch.linalg.lstsq: `driver` other than `gels` is not supported on CUDA")
    B2 = B.unsqueeze(-1) if vector else B
    rtol = _default_rtol(A) if rcond is None else rcond
    X = pinv(A, atol=0.0, rtol=rtol) @ B2
    m, n = A.shape[-2:]
    empty = A.new_zeros(0)
    rank = matrix_rank(A, atol=0.0, rtol=rtol) if driver != "gels" else A.new_zeros(0, dtype=_dtype.int64)
    sv = svdvals(A.detach()) if driver in ("gelsd", "gelss") else empty
    full = driver == "gels" or bool((rank == min(m, n)).all())
    residuals = (A @ X - B2).square().sum(-2) if m > n and driver != "gelsy" and full else empty
    return return_linalg_lstsq(X.squeeze(-1) if vector else X, residuals, rank, sv)


# ---- products and powers ----

def _chain_order(dims):
    """split[i][j]: where the cheapest product of matrices i..j splits (dims: rows of each, then the last's
    columns); the textbook dynamic program, as in numpy.linalg.multi_dot."""
    k = len(dims) - 1
    cost = [[0] * k for _ in range(k)]
    split = [[0] * k for _ in range(k)]
    for span in range(1, k):
        for i in range(k - span):
            j = i + span
            cost[i][j] = math.inf
            for s in range(i, j):
                c = cost[i][s] + cost[s + 1][j] + dims[i] * dims[s + 1] * dims[j + 1]
                if c < cost[i][j]:
                    cost[i][j], split[i][j] = c, s
    return split


def _chain_product(ms, split, i, j):
    if i == j:
        return ms[i]
    s = split[i][j]
    return _chain_product(ms, split, i, s) @ _chain_product(ms, split, s + 1, j)


@autocast_op("linalg_multi_dot")
def multi_dot(tensors, *, out=None):
    """The product of 2-D matrices (the first may be a row vector, the last a column vector), multiplied in
    the order that costs the fewest flops."""
    ts = list(tensors)
    n = len(ts)
    if n < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {n}")
    if ts[0].ndim not in (1, 2):
        raise RuntimeError(f"multi_dot(): the first tensor must be 1D or 2D but got {ts[0].ndim}D")
    if ts[-1].ndim not in (1, 2):
        raise RuntimeError(f"multi_dot(): the last tensor must be 1D or 2D but got {ts[-1].ndim}D")
    for i, t in enumerate(ts[1:-1], 1):
        if t.ndim != 2:
            raise RuntimeError(f"multi_dot(): tensor {i} must be 2D but got {t.ndim}D")
    for i, t in enumerate(ts[1:], 1):
        if t.dtype != ts[0].dtype:
            raise RuntimeError(f"multi_dot(): all tensors must have be the same dtype but tensor 0 is "
                               f"{_CPP_NAMES.get(ts[0].dtype.name)} and tensor {i} {_CPP_NAMES.get(t.dtype.name)}")
    ms = [ts[0].unsqueeze(0) if ts[0].ndim == 1 else ts[0]] + ts[1:-1] + \
        [ts[-1].unsqueeze(-1) if ts[-1].ndim == 1 else ts[-1]]
    for i in range(n - 1):
        if ms[i].shape[-1] != ms[i + 1].shape[0]:
            raise RuntimeError(f"multi_dot(): tensors {i} and {i + 1} with shapes {list(ts[i].shape)} and "
                               f"{list(ts[i + 1].shape)} cannot be multiplied")
    r = ms[0] @ ms[1] if n == 2 else _chain_product(ms, _chain_order([m.shape[0] for m in ms] + [ms[-1].shape[1]]),
                                                     0, n - 1)
    if ts[0].ndim == 1:
        r = r.squeeze(0)
    if ts[-1].ndim == 1:
        r = r.squeeze(-1)
    return out_copy(r, out)


def matrix_power(A, n, *, out=None):
    """A^n by repeated squaring; n < 0 powers the inverse, n = 0 gives identities (with a zero gradient)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"linalg_matrix_power(): argument 'n' (position 2) must be int, not {type(n).__name__}")
    _check_square(A, "linalg.matrix_power")
    if n == 0:
        from . import eye
        return out_copy(A.clone().zero_() + eye(A.shape[-1], dtype=A.dtype, device=A.device), out)
    if n < 0:
        A, n = inv(A), -n
    if n == 1:
        return out_copy(A.clone(), out)
    z = result = None
    while n:
        n, bit = divmod(n, 2)
        z = A if z is None else z @ z
        if bit:
            result = z if result is None else result @ z
    return out_copy(result, out)


def matrix_exp(A):
    """exp(A) = sum A^k / k!, by scaling and squaring a Pade approximant. Half precision is computed in
    float32 (torch stays in half and overflows sooner)."""
    _check_square(A, "linalg.matrix_exp")
    if not A.dtype.is_floating_point:
        _check_float(A, "linalg.matrix_exp")
    if A.dtype.itemsize < 4:
        return MatrixExp.apply(A.float()).to(A.dtype)
    return MatrixExp.apply(A)


@autocast_op("linalg_vecdot")
def vecdot(x, y, *, dim=-1, out=None):
    """sum(x * y) over `dim`, with broadcasting."""
    if x.dtype != y.dtype:
        raise RuntimeError(f"linalg.vecdot: Expected x and y to have the same dtype, but found x of type "
                           f"{_dtype.scalar_name(x.dtype)} and y of type {_dtype.scalar_name(y.dtype)} instead")
    if not x.dtype.is_floating_point and not x.dtype.is_complex:
        raise RuntimeError(f"linalg.vecdot: Expected a floating point or complex tensor as input. Got "
                           f"{_dtype.scalar_name(x.dtype)}")
    if x.ndim == 1 and y.ndim == 1:
        from . import dot
        return dot(x.conj() if x.is_complex() else x, y, out=out)
    return out_copy(((x.conj() if x.is_complex() else x) * y).sum(dim), out)


@autocast_op("linalg_tensorinv")
def tensorinv(A, ind=2, *, out=None):
    """The inverse of A seen as a matrix from its first `ind` dims to the rest; shaped A.shape[ind:] + A.shape[:ind]."""
    if ind <= 0:
        raise RuntimeError(f"Expected a strictly positive integer for 'ind', but got {ind}")
    rows, cols = math.prod(A.shape[:ind]), math.prod(A.shape[ind:])
    if rows != cols:
        raise RuntimeError(f"Expected self to satisfy the requirement prod(self.shape[ind:]) == "
                           f"prod(self.shape[:ind]), but got {cols} != {rows}")
    _check_float(A, "linalg.inv")
    Ai = Inv.apply(A.reshape(rows, cols), fn="inv")
    return out_copy(Ai.reshape(tuple(A.shape[ind:]) + tuple(A.shape[:ind])), out)


@autocast_op("linalg_tensorsolve")
def tensorsolve(A, B, dims=None, *, out=None):
    """X with tensordot(A, X, X.ndim) = B; `dims` moves those dims of A to the end first."""
    if dims is not None:
        A = A.movedim(tuple(dims), tuple(range(A.ndim - len(dims), A.ndim)))
    shape = tuple(A.shape[B.ndim:])
    n, m = math.prod(shape), B.numel()
    if n != m:
        raise RuntimeError(f"Expected self to satisfy the requirement prod(self.shape[other.ndim:]) == "
                           f"prod(self.shape[:other.ndim]), but got {n} != {m}")
    return out_copy(solve(A.reshape(n, n), B.reshape(-1)).reshape(shape), out)


# ---- LU, triangular solves, Householder products, general eigendecomposition ----

def lu_factor(A, *, pivot=True, out=None):
    """The packed LU factorization of A = P L U with partial pivoting (LAPACK's getrf) and the 1-based int32
    pivots; raises for a matrix whose U has a zero on its diagonal. Only pivot=True is supported."""
    LU, pivots, info = _lu_factor_ex(A, pivot)
    _lu_error(info._data, "torch.linalg.lu_factor")
    return return_linalg_lu_factor(LU, pivots)


def lu_factor_ex(A, *, pivot=True, check_errors=False, out=None):
    """lu_factor without the check (unless check_errors): info is the 1-based index of U's first zero
    diagonal entry per matrix, 0 where there is none."""
    LU, pivots, info = _lu_factor_ex(A, pivot)
    if check_errors:
        _lu_error(info._data, "torch.linalg.lu_factor_ex")
    return return_linalg_lu_factor_ex(LU, pivots, info)


def lu(A, *, pivot=True, out=None):
    """P, L, U with A = P L U: P a permutation, L unit lower (m x k), U upper (k x n), k = min(m, n)."""
    LU, pivots, _ = _lu_factor_ex(A, pivot, "linalg.lu")
    return return_linalg_lu(*LuUnpack.apply(LU, pivots))


def lu_solve(LU, pivots, B, *, left=True, adjoint=False, out=None):
    """X with A X = B (left) or X A = B, A (A^T if adjoint) given by lu_factor's LU and pivots."""
    return out_copy(_lu_solve(LU, pivots, B, left, adjoint), out)


def solve_triangular(A, B, *, upper, left=True, unitriangular=False, out=None):
    """X with A X = B (left) or X A = B for triangular A: only its upper (or lower) triangle is read, and its
    diagonal taken as ones if unitriangular. Batch dims broadcast."""
    return out_copy(_solve_triangular(A, B, upper, left, unitriangular, "linalg.solve_triangular"), out)


@autocast_op("linalg_householder_product")
def householder_product(A, tau, *, out=None):
    """The first n columns of H_1 ... H_k, H_i = I - tau_i v_i v_i^T, v_i being column i of A below the diagonal
    with a one on it (geqrf's packed reflectors)."""
    return out_copy(_householder_product(A, tau), out)


@autocast_op("linalg_eig")
def eig(A, *, out=None):
    """Eigenvalues and unit-norm right eigenvectors of real square matrices, as complex tensors (complex64 for
    float32). The order is LAPACK's, unsorted. Complex input is not supported."""
    _check_eig(A, "linalg.eig")
    return return_linalg_eig(*Eig.apply(A))


@autocast_op("linalg_eigvals")
def eigvals(A, *, out=None):
    _check_eig(A, "linalg.eigvals")
    return out_copy(Eigvals.apply(A), out)
