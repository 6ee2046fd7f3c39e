"""dtrain.linalg: vector and matrix norms, inverse, determinant and solve, with gradients."""
import numpy as np

from ._ops._util import method, to_float
from ._tensor import Tensor, _wrap
from .autograd.graph import Function

__all__ = ["LinAlgError", "vector_norm", "matrix_norm", "norm", "inv", "det", "slogdet", "solve", "matmul", "cross", "diagonal"]


class LinAlgError(RuntimeError):
    """torch.linalg.LinAlgError: a linear-algebra routine failed (a singular matrix, ...)."""


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    """The `ord`-norm of x flattened (dim=None) or along `dim`."""
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


def _check_square(A, fn):
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"linalg.{fn}: A must be batches of square matrices, but they are "
                           f"{A.shape[-2] if A.ndim >= 2 else A.shape[-1]} by {A.shape[-1]} matrices")


class Inv(Function):
    def forward(ctx, a):
        xp = ctx.xp
        try:
            y = xp.linalg.inv(a)
        except np.linalg.LinAlgError:
            raise LinAlgError("linalg.inv: The diagonal element 1 is zero, the inversion could not be completed "
                               "because the input matrix is singular.") from None
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        yt = y.swapaxes(-1, -2)
        return -(yt @ g @ yt)


class Det(Function):
    def forward(ctx, a):
        d = ctx.xp.linalg.det(a)
        ctx.save_for_backward(a, d)
        return d

    def backward(ctx, g):
        a, d = ctx.saved
        # d det / dA = det * A^{-T}
        return (g * d)[..., None, None] * ctx.xp.linalg.inv(a).swapaxes(-1, -2)


def inv(A, *, out=None):
    _check_square(A, "inv")
    return Inv.apply(to_float(A))


def det(A, *, out=None):
    _check_square(A, "det")
    return Det.apply(to_float(A))


def slogdet(A, *, out=None):
    d = det(A)
    return d.sign(), d.abs().log()


def solve(A, B, *, left=True, out=None):
    """X with A X = B (left) or X A = B, through the inverse (differentiable in both)."""
    _check_square(A, "solve")
    Ai = inv(A)
    if not left:
        return B @ Ai
    return (Ai @ B.unsqueeze(-1)).squeeze(-1) if B.ndim == A.ndim - 1 else Ai @ B


def matmul(input, other, *, out=None):
    return input @ other


def cross(input, other, *, dim=-1):
    from . import cross as _cross
    return _cross(input, other, dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    return A.diagonal(offset, dim1, dim2)


@method()
def inverse(input):
    return inv(input)


Tensor.det = lambda self: det(self)
