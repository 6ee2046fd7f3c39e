"""LU factorization with partial pivoting, triangular solves, Householder products and the general (non-symmetric)
eigendecomposition, as `Function`s over arrays; torch's top-level names (lu, lu_unpack, lu_solve,
triangular_solve, geqrf, orgqr, ormqr) over them. The torch.linalg spellings are in dtrain.linalg.

Pivots follow LAPACK's getrf and torch: int32, 1-based, row i of A swapped with row pivots[i] in order, so that
A = P L U. The factorization and the triangular solve are the backend's kernels (SciPy's batched LAPACK
wrappers on the CPU, cupyx.scipy.linalg per matrix on a GPU)."""
import warnings

import numpy as np

from .. import _dtype
from .._backend import kernels, to_numpy
from .._tensor import _wrap
from ..autograd.graph import Function
from ._util import method, on_input_device, out_copy, unbroadcast
from .decomp import LinAlgError, _check_float, _check_square, _mT, _not_implemented
from .reduce import _named
from ..amp._dispatch import autocast_op

return_lu_unpack = _named("lu_unpack", ("P", "L", "U"))
return_lu_with_info = _named("_lu_with_info", ("LU", "pivots", "info"))
return_triangular_solve = _named("triangular_solve", ("solution", "cloned_coefficient"))
return_geqrf = _named("geqrf", ("a", "tau"))
return_linalg_lu = _named("linalg_lu", ("P", "L", "U"))
return_linalg_lu_factor = _named("linalg_lu_factor", ("LU", "pivots"))
return_linalg_lu_factor_ex = _named("linalg_lu_factor_ex", ("LU", "pivots", "info"))
return_linalg_eig = _named("linalg_eig", ("eigenvalues", "eigenvectors"))


# ---- array routines, batched ----

def _getrf(xp, a):
    """The packed LU factors of a batch (L's strict lower triangle below U), 0-based int32 pivots, and LAPACK's
    info: the 1-based index of the first exactly zero diagonal entry of U (0 if none)."""
    m, n = a.shape[-2:]
    k = min(m, n)
    if a.size == 0:
        return a.copy(), xp.broadcast_to(xp.arange(k, dtype=np.int32), a.shape[:-2] + (k,)).copy(), \
            xp.zeros(a.shape[:-2], np.int32)
    # a singular matrix is no error here: its info says so, and the caller decides
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lu, piv = kernels[xp].lu_factor(a)
    zero = xp.diagonal(lu, axis1=-2, axis2=-1) == 0
    info = xp.where(zero.any(-1), zero.argmax(-1) + 1, 0).astype(np.int32)
    return lu, piv.astype(np.int32), info


def _trsm(xp, a, b, lower, unit=False, trans=False):
    """x with op(T) x = b, T the lower (or upper) triangle of a with a unit diagonal if `unit`, op(T) = T^T if
    `trans`; batch dims broadcast. Only T's triangle is read."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = xp.broadcast_to(a, batch + a.shape[-2:]), xp.broadcast_to(b, batch + b.shape[-2:])
    if b.size == 0:
        return xp.zeros(b.shape, b.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return kernels[xp].solve_triangular(a, b, int(trans), lower, unit)


def _solve_tri(xp, a, b, upper, left, unit, trans=False):
    """X with op(A) X = B (left) or X op(A) = B, A triangular (upper or lower), op transposing if `trans`."""
    if left:
        return _trsm(xp, a, b, not upper, unit, trans)
    return _mT(_trsm(xp, a, _mT(b), not upper, unit, not trans))  # X A = B  <=>  A^T X^T = B^T


def _permutation(xp, piv, m):
    """perm with A[..., perm, :] = L U, from 0-based LAPACK pivots: the row swaps applied to 0..m-1."""
    batch, k = piv.shape[:-1], piv.shape[-1]
    perm = xp.broadcast_to(xp.arange(m), batch + (m,)).reshape(-1, m).copy()
    piv = piv.reshape(-1, k).astype(np.int64)
    rows = xp.arange(perm.shape[0])
    # each swap acts on the rows the earlier ones left: a loop over the k pivots, vectorised over the batch
    for i in range(k):
        j = piv[:, i]
        here = perm[:, i].copy()
        perm[:, i] = perm[rows, j]
        perm[rows, j] = here
    return perm.reshape(batch + (m,))


def _perm_matrix(xp, perm, dtype):
    """P with P[perm[j], j] = 1, so that A = P (A[perm])."""
    m = perm.shape[-1]
    return (xp.arange(m)[:, None] == perm[..., None, :]).astype(dtype)


def _unpack(xp, lu):
    """L (unit lower, m x k) and U (upper, k x n) from packed factors."""
    m, n = lu.shape[-2:]
    k = min(m, n)
    lo = xp.tril(lu[..., :, :k], -1)
    i = xp.arange(k)
    lo[..., i, i] = 1
    return lo, xp.triu(lu[..., :k, :])


# ---- LU ----

def _lu_backward(xp, gl, gu, lo, up):
    """The gradient of A = P L U (without P) from those of L (m x k) and U (k x n): torch's linalg_lu_backward
    (Functions Manual), for square, wide (m < n) and tall (m > n) A."""
    m, n = lo.shape[-2], up.shape[-1]
    k = min(m, n)
    gl, gu = xp.tril(gl, -1), xp.triu(gu)
    if m == n:
        # gA = L^{-T} [L^T gL o 1_L + gU U^T o 1_U] U^{-T}
        ga = xp.tril(_mT(lo) @ gl, -1) + xp.triu(gu @ _mT(up))
        ga = _solve_tri(xp, up, ga, upper=True, left=False, unit=False, trans=True)
        return _solve_tri(xp, lo, ga, upper=False, left=True, unit=True, trans=True)
    if m < n:
        # gA1 = L^{-T} [gU1 + (L^T gL o 1_L - gU U^T o 1_L) U1^{-T}],  gA2 = L^{-T} gU2
        ga = xp.tril(_mT(lo) @ gl - gu @ _mT(up), -1)
        ga = _solve_tri(xp, up[..., :k], ga, upper=True, left=False, unit=False, trans=True)
        ga = xp.concatenate([ga + gu[..., :k], gu[..., k:]], axis=-1)
        return _solve_tri(xp, lo, ga, upper=False, left=True, unit=True, trans=True)
    # tall: gA1 = [gL1 + L1^{-T} (gU U^T o 1_U - L^T gL o 1_U)] U^{-T},  gA2 = gL2 U^{-T}
    ga = xp.triu(gu @ _mT(up) - _mT(lo) @ gl)
    ga = _solve_tri(xp, lo[..., :k, :], ga, upper=False, left=True, unit=True, trans=True)
    ga = xp.concatenate([ga + gl[..., :k, :], gl[..., k:, :]], axis=-2)
    return _solve_tri(xp, up, ga, upper=True, left=False, unit=False, trans=True)


class LuFactor(Function):
    """P A = L U by partial pivoting (LAPACK's getrf): the packed factors, torch's 1-based int32 pivots, info."""
    _grad_fn_name = "LinalgLuFactorExBackward0"

    def forward(ctx, a):
        lu, piv, info = _getrf(ctx.xp, a)
        ctx.save_for_backward(lu, piv)
        ctx.mark_non_differentiable(1, 2)
        return lu, piv + 1, info

    def backward(ctx, glu, gpiv, ginfo):
        lu, piv = ctx.saved
        xp = ctx.xp
        m, n = lu.shape[-2:]
        k = min(m, n)
        lo, up = _unpack(xp, lu)
        ga = _lu_backward(xp, glu[..., :, :k], glu[..., :k, :], lo, up)
        inverse = xp.argsort(_permutation(xp, piv, m), axis=-1)  # P ga: row perm[j] of the result is ga's row j
        return xp.take_along_axis(ga, inverse[..., :, None], axis=-2)


class LuUnpack(Function):
    """P, L, U from packed factors and 1-based pivots; an output not asked for is an empty tensor."""

    def forward(ctx, lu, piv, unpack_data=True, unpack_pivots=True):
        xp = ctx.xp
        empty = xp.empty((0,), lu.dtype)
        lo, up = _unpack(xp, lu) if unpack_data else (empty, empty)
        m = lu.shape[-2]
        p = _perm_matrix(xp, _permutation(xp, piv - 1, m), lu.dtype) if unpack_pivots else empty
        ctx.mark_non_differentiable(0)
        ctx.shape, ctx.unpack_data = lu.shape, unpack_data
        return p, lo, up

    def backward(ctx, gp, gl, gu):
        xp = ctx.xp
        m, n = ctx.shape[-2:]
        k = min(m, n)
        ga = xp.zeros(ctx.shape, gl.dtype)
        if ctx.unpack_data:
            ga[..., :, :k] += xp.tril(gl, -1)
            ga[..., :k, :] += xp.triu(gu)
        return ga, None


class SolveTriangular(Function):
    """X with A X = B (left) or X A = B, A's upper or lower triangle read (its diagonal taken as ones if
    unitriangular); batch dims broadcast."""
    _grad_fn_name = "LinalgSolveTriangularBackward0"

    def forward(ctx, a, b, upper, left=True, unitriangular=False):
        x = _solve_tri(ctx.xp, a, b, upper, left, unitriangular)
        ctx.save_for_backward(a, x)
        ctx.params, ctx.b_shape = (upper, left, unitriangular), b.shape
        return x

    def backward(ctx, gx):
        a, x = ctx.saved
        xp = ctx.xp
        upper, left, unit = ctx.params
        gb = _solve_tri(xp, a, gx, upper, left, unit, trans=True)  # A^{-T} gX, or gX A^{-T}
        ga = None
        if ctx.needs_input_grad[0]:
            ga = -(gb @ _mT(x)) if left else -(_mT(x) @ gb)
            # only the triangle is an input: the gradient lives there (off the diagonal if unitriangular)
            ga = xp.triu(ga, int(unit)) if upper else xp.tril(ga, -int(unit))
            ga = unbroadcast(ga, a.shape)
        return ga, unbroadcast(gb, ctx.b_shape)


# ---- checks ----

def _check_lu_input(A, fn, kernel="lu"):
    if A.ndim < 2:
        raise RuntimeError(f"{fn}: Expected tensor with 2 or more dimensions. Got size: [{A._shape_str()}] instead")
    if not A.dtype.is_floating_point and not A.dtype.is_complex:
        raise _not_implemented(A, kernel)
    _check_float(A, fn, kernel)


def _check_pivots(pivots, fn):
    if pivots.dtype is not _dtype.int32:
        raise RuntimeError(f"{fn}: pivots should be a Tensor of scalar type torch.int32")


def _lu_error(info, fn):
    """torch's error for the first matrix whose U has a zero on its diagonal."""
    info = to_numpy(info)
    bad = np.flatnonzero(info)
    if bad.size:
        where = f"(Batch element {bad[0]}): " if info.ndim else ""
        i = info.flat[bad[0]]
        raise LinAlgError(f"{fn}: {where}U[{i},{i}] is zero and using it on lu_solve would result in a division by "
                          f"zero. If you still want to perform the factorization, consider calling linalg.lu(A, pivot) "
                          f"or linalg.lu_factor_ex(A, pivot)")


def _check_pivot_flag(A, pivot):
    if not pivot:
        # LAPACK has no unpivoted LU, and cuSOLVER's is not reachable from CuPy
        where = "CPU" if A.device.type == "cpu" else "GPU"
        raise RuntimeError(f"linalg.lu_factor: LU without pivoting is not implemented on the {where}")


def _lu_factor_ex(A, pivot, fn="torch.lu_factor"):
    _check_lu_input(A, fn)
    _check_pivot_flag(A, pivot)
    return LuFactor.apply(A)


# ---- torch's top-level names ----

@method()
def lu(A, pivot=True, get_infos=False, out=None):
    """(LU, pivots), or with get_infos (LU, pivots, info): torch's older spelling of linalg.lu_factor(_ex). A
    singular matrix is no error here (its info is nonzero)."""
    LU, pivots, info = _lu_factor_ex(A, pivot)
    if get_infos:
        return return_lu_with_info(LU, pivots, info)
    return LU, pivots


@on_input_device
def lu_unpack(LU_data, LU_pivots, unpack_data=True, unpack_pivots=True, *, out=None):
    """P, L, U with A = P L U from linalg.lu_factor's output; those not asked for are empty."""
    if LU_data.ndim < 2:
        raise RuntimeError(f"torch.lu_unpack: Expected tensor with 2 or more dimensions. Got size: "
                           f"[{LU_data._shape_str()}] instead")
    if unpack_pivots and LU_pivots.dtype is not _dtype.int32:
        raise RuntimeError("torch.lu_unpack: LU_pivots is expected to be a contiguous tensor of torch.int32 dtype.\n"
                           "Note: this function is intended to be used with the output produced by "
                           "torch.linalg.lu_factor")
    k = min(LU_data.shape[-2:])
    if unpack_pivots and tuple(LU_pivots.shape) != tuple(LU_data.shape[:-2]) + (k,):
        raise RuntimeError(f"torch.lu_unpack: Expected LU_pivots.size(-1) == min(LU.size(-1), LU.size(-2)) and "
                           f"matching batch dims, but got LU_pivots of shape [{LU_pivots._shape_str()}] for LU of "
                           f"shape [{LU_data._shape_str()}]")
    if unpack_pivots and LU_pivots.numel():
        piv = LU_pivots._data
        if not bool(((piv >= 1) & (piv <= LU_data.shape[-2])).all()):
            raise RuntimeError("pivots passed to lu_unpack must be between 1 and LU.size(-2) inclusive.Did you "
                               "properly pass the result of lu_factor?")
    return return_lu_unpack(*LuUnpack.apply(LU_data, LU_pivots, unpack_data=unpack_data,
                                            unpack_pivots=unpack_pivots))


def _rows(B, perm):
    """B[..., perm, :] for a batch of permutations (an int64 tensor), differentiable in B."""
    return B.gather(-2, perm.unsqueeze(-1).expand(*perm.shape, B.shape[-1]))


@on_input_device
def _lu_solve(LU, pivots, B, left=True, adjoint=False, fn="linalg.lu_solve"):
    """X with A X = B (A^T X = B if adjoint; X A = B or X A^T = B if not left) for A = P L U given as
    linalg.lu_factor's output. Composed of triangular solves and row gathers, so gradients flow to LU and B."""
    if LU.ndim < 2 or B.ndim < 2:
        which = "LU" if LU.ndim < 2 else "B"
        raise RuntimeError(f"{fn}: The input tensor {which} must have at least 2 dimensions.")
    _check_square(LU, f"torch.{fn}")
    _check_pivots(pivots, fn)
    n = LU.shape[-1]
    if (B.shape[-2] if left else B.shape[-1]) != n:
        raise RuntimeError(f"{fn}: Incompatible shapes of A and B for the equation {'AX = B' if left else 'XA = B'} "
                           f"({n}x{n} and {B.shape[-2]}x{B.shape[-1]})")
    if tuple(pivots.shape) != tuple(LU.shape[:-1]):
        raise RuntimeError(f"{fn}: Number of pivots per batch should be same as the dimension of the matrix")
    if LU.dtype != B.dtype:
        raise RuntimeError(f"{fn}: Expected LU and B to have the same dtype, but found LU of type "
                           f"{_dtype.scalar_name(LU.dtype)} and B of type {_dtype.scalar_name(B.dtype)} instead")
    _check_float(LU, fn, "lu_solve")
    if not left:  # X A = B  <=>  A^T X^T = B^T
        return _lu_solve(LU, pivots, B.mT, True, not adjoint, fn).mT
    from .linalg import _broadcast_shapes  # torch's error for batch dims that do not broadcast
    xp = LU._device.xp
    batch = tuple(_broadcast_shapes(tuple(LU.shape[:-2]), tuple(B.shape[:-2])))
    LU, B = LU.expand(*batch, n, n), B.expand(*batch, *B.shape[-2:])
    perm = _permutation(xp, xp.broadcast_to(pivots._data, batch + (n,)) - 1, n)
    if not adjoint:  # A = P L U:  X = U^{-1} L^{-1} P^T B
        y = SolveTriangular.apply(LU, _rows(B, _wrap(perm, LU._device)), upper=False, unitriangular=True)
        return SolveTriangular.apply(LU, y, upper=True)
    # A^T X = B:  X = P L^{-T} U^{-T} B
    y = SolveTriangular.apply(LU.mT, B, upper=False)
    y = SolveTriangular.apply(LU.mT, y, upper=True, unitriangular=True)
    return _rows(y, _wrap(xp.argsort(perm, axis=-1), LU._device))


@method()
@autocast_op("lu_solve")
def lu_solve(input, LU_data, LU_pivots, *, out=None):
    """X with A X = input for A given by torch.lu / linalg.lu_factor (torch's older argument order)."""
    return out_copy(_lu_solve(LU_data, LU_pivots, input), out)


def _solve_triangular(A, B, upper, left, unitriangular, fn):
    for name, t in (("A", A), ("B", B)):
        if t.ndim < 2:
            raise RuntimeError(f"{fn}: The input tensor {name} must have at least 2 dimensions.")
    _check_square(A, fn)
    n = A.shape[-1]
    if (B.shape[-2] if left else B.shape[-1]) != n:
        raise RuntimeError(f"{fn}: Incompatible shapes of A and B for the equation {'AX = B' if left else 'XA = B'} "
                           f"({n}x{n} and {B.shape[-2]}x{B.shape[-1]})")
    if A.dtype != B.dtype:  # torch computes in A's dtype here (linalg.solve refuses mixed dtypes)
        B = B.to(A.dtype)
    if not A.dtype.is_floating_point and not A.dtype.is_complex:
        raise _not_implemented(A, "triangular_solve")
    _check_float(A, fn, "triangular_solve")
    from .linalg import _broadcast_shapes  # torch's error for batch dims that do not broadcast
    _broadcast_shapes(tuple(A.shape[:-2]), tuple(B.shape[:-2]))
    return SolveTriangular.apply(A, B, upper=upper, left=left, unitriangular=unitriangular)


@method()
@autocast_op("triangular_solve")
def triangular_solve(input, A, upper=True, transpose=False, unitriangular=False, *, out=None):
    """X with op(A) X = input for triangular A (op transposing if `transpose`), and a copy of A: torch's older
    spelling of linalg.solve_triangular."""
    for name, t in (("A", A), ("b", input)):
        if t.ndim < 2:
            raise RuntimeError(f"torch.triangular_solve: Expected {name} to have at least 2 dimensions, but it has "
                               f"{t.ndim} dimensions instead")
    if A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"A must be batches of square matrices, but they are {A.shape[-2]} by {A.shape[-1]} "
                           f"matrices")
    if input.shape[-2] != A.shape[-1]:
        raise RuntimeError(f"Incompatible matrix sizes for triangular_solve: each A matrix is {A.shape[-1]} by "
                           f"{A.shape[-1]} but each b matrix is {input.shape[-2]} by {input.shape[-1]}")
    X = _solve_triangular(A.mT if transpose else A, input, upper != transpose, True, unitriangular,
                          "torch.triangular_solve")
    return return_triangular_solve(X, A.clone())


# ---- Householder reflections ----

class Geqrf(Function):
    """A = Q R by Householder reflections, packed as LAPACK's geqrf: R on and above the diagonal, the
    reflectors' tails below it, and their scales tau. Not differentiable (as in torch)."""

    def forward(ctx, a):
        h, tau = ctx.xp.linalg.qr(a, mode="raw")  # h comes transposed (Fortran order)
        return _mT(h).copy(), tau

    def backward(ctx, ga, gtau):
        raise RuntimeError("the derivative for 'geqrf' is not implemented.")


@method()
@autocast_op("geqrf")
def geqrf(input, *, out=None):
    """The QR decomposition in LAPACK's packed form (a, tau); linalg.householder_product(a, tau) gives Q."""
    if input.ndim < 2:
        raise RuntimeError("torch.geqrf: input must have at least 2 dimensions.")
    if not input.dtype.is_floating_point and not input.dtype.is_complex:
        raise _not_implemented(input, "geqrf")
    _check_float(input, "torch.geqrf", "geqrf")
    return return_geqrf(*Geqrf.apply(input))


def _reflectors(A, tau, fn):
    """V (m x k: A's columns below the diagonal, ones on it) and the k x k upper triangle S = tau * triu(V^T V, 1)
    of the UT transform: H_1 ... H_k = I - V T V^T with T = (I + S)^{-1} diag(tau) (Joffrain et al. 2006)."""
    if A.ndim < 2:
        raise RuntimeError(f"{fn}: input must have at least 2 dimensions.")
    if tau.ndim != A.ndim - 1:
        raise RuntimeError(f"{fn}: Expected tau to have one dimension less than input, but got tau.ndim equal to "
                           f"{tau.ndim} and input.ndim is equal to {A.ndim}")
    if tuple(tau.shape[:-1]) != tuple(A.shape[:-2]):
        raise RuntimeError(f"{fn}: Expected batch dimensions of tau to be equal to input.shape[:-2], but got "
                           f"{list(tau.shape[:-1])}")
    if A.dtype != tau.dtype:
        raise RuntimeError(f"{fn}: tau dtype {_dtype.scalar_name(tau.dtype)} does not match input dtype "
                           f"{_dtype.scalar_name(A.dtype)}")
    _check_float(A, fn, "orgqr")
    m, k = A.shape[-2], tau.shape[-1]
    from .creation import eye
    V = A[..., :, :k].tril(-1) + eye(m, k, dtype=A.dtype, device=A.device)
    S = tau.unsqueeze(-1) * (V.mT @ V).triu(1)
    return V, S


def _apply_q(V, S, tau, C, left, transpose):
    """op(Q) C (left) or C op(Q), Q = I - V T V^T, T = (I + S)^{-1} diag(tau), op transposing if `transpose`;
    every reflector at once through one unit triangular solve."""
    def t_times(X):  # T X
        return SolveTriangular.apply(S, tau.unsqueeze(-1) * X, upper=True, unitriangular=True)

    def tt_times(X):  # T^T X = diag(tau) (I + S)^{-T} X
        return tau.unsqueeze(-1) * SolveTriangular.apply(S.mT, X, upper=False, unitriangular=True)

    if left:  # Q C = C - V T V^T C,  Q^T C = C - V T^T V^T C
        W = V.mT @ C
        return C - V @ (tt_times(W) if transpose else t_times(W))
    W = (C @ V).mT  # C Q = C - (C V) T V^T = C - (T^T (C V)^T)^T V^T
    return C - (tt_times(W) if not transpose else t_times(W)).mT @ V.mT


def _householder_product(A, tau, fn="torch.linalg.householder_product"):
    if A.ndim >= 2 and A.shape[-2] < A.shape[-1]:
        raise RuntimeError(f"{fn}: input.shape[-2] must be greater than or equal to input.shape[-1]")
    if tau.ndim >= 1 and A.ndim >= 2 and A.shape[-1] < tau.shape[-1]:
        raise RuntimeError(f"{fn}: input.shape[-1] must be greater than or equal to tau.shape[-1]")
    V, S = _reflectors(A, tau, fn)
    from .creation import eye
    m, n = A.shape[-2:]
    return _apply_q(V, S, tau, eye(m, n, dtype=A.dtype, device=A.device), True, False)


@method()
@autocast_op("orgqr")
def orgqr(input, tau):
    """The first n columns of H_1 ... H_k from geqrf's reflectors (torch's older name of
    linalg.householder_product)."""
    return _householder_product(input, tau)


@method()
@autocast_op("ormqr")
def ormqr(input, input2, input3, left=True, transpose=False, *, out=None):
    """op(Q) @ input3 (left) or input3 @ op(Q), with Q = H_1 ... H_k the m x m product of geqrf's reflectors
    (input, tau = input2) and op transposing if `transpose`."""
    fn = "torch.ormqr"
    if input3.ndim < 2:
        raise RuntimeError(f"{fn}: other must have at least 2 dimensions.")
    m = input3.shape[-2] if left else input3.shape[-1]
    if input.ndim >= 2 and input.shape[-2] != m:
        raise RuntimeError(f"{fn}: other.shape[{-2 if left else -1}] must be equal to input.shape[-2]")
    if input2.shape[-1] > m:
        raise RuntimeError(f"{fn}: tau.shape[-1] must be less than or equal to input.shape[-2]")
    V, S = _reflectors(input, input2, fn)
    return out_copy(_apply_q(V, S, input2, input3, left, transpose), out)


# ---- general eigendecomposition ----

def _geev(xp, a, vectors):
    """Eigenvalues (and right eigenvectors, unit norm) of real matrices, always complex, as LAPACK's geev."""
    ctype = np.complex64 if a.dtype == np.float32 else np.complex128
    if not hasattr(xp.linalg, "eig"):  # older CuPy has no general eigensolver: through the host
        w, v = _geev(np, to_numpy(a), vectors)
        return xp.asarray(w), (xp.asarray(v) if vectors else None)
    if vectors:
        w, v = xp.linalg.eig(a)
        return w.astype(ctype), v.astype(ctype)
    return xp.linalg.eigvals(a).astype(ctype), None


class Eig(Function):
    """A V = V diag(w) for real A; w and V complex. The gradient is torch's linalg_eig_backward: real part of
    V^{-H} (diag(gw) + (V^H gV - V^H V Re diag(V^H gV)) / conj(E)) V^H, E_ij = w_j - w_i."""
    _grad_fn_name = "LinalgEigBackward0"  # torch's linalg ops name their nodes Linalg<Op>[Ex]

    def forward(ctx, a):
        w, v = _geev(ctx.xp, a, True)
        ctx.save_for_backward(w, v)
        return w, v

    def backward(ctx, gw, gv):
        w, v = ctx.saved
        xp = ctx.xp
        vh = _mT(v).conj()
        vhgv = vh @ gv
        g = vhgv - vh @ (v * xp.real(xp.diagonal(vhgv, axis1=-2, axis2=-1))[..., None, :])
        e = w[..., None, :] - w[..., :, None]
        i = xp.arange(w.shape[-1])
        e[..., i, i] = 1
        g = g / e.conj()
        g[..., i, i] = gw
        return xp.real(xp.linalg.solve(vh, g @ vh))


class Eigvals(Function):
    _grad_fn_name = "LinalgEigBackward0"

    def forward(ctx, a):
        w, v = _geev(ctx.xp, a, ctx.needs_input_grad[0])
        ctx.save_for_backward(v)
        return w

    def backward(ctx, gw):
        (v,) = ctx.saved
        xp = ctx.xp
        vh = _mT(v).conj()
        return xp.real(xp.linalg.solve(vh, gw[..., :, None] * vh))


@on_input_device
def _check_eig(A, fn):
    _check_square(A, fn)
    if not A.dtype.is_floating_point and not A.dtype.is_complex:
        raise RuntimeError(f"Unknown Complex ScalarType for {_dtype.scalar_name(A.dtype)}")
    _check_float(A, fn, "linalg_eig")
    if not bool(A._device.xp.isfinite(A._data).all()):
        raise RuntimeError(f"{fn}: input tensor should not contain infs or NaNs.")
