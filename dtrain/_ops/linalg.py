"""matmul / mm / bmm / linear and friends. The CPU cost of a model is mostly here, so each backward picks
the BLAS-friendly layout: `(g.T @ a).T`-style products instead of `a.T @ g` (5x faster on OpenBLAS).
Also torch's top-level names for decompositions (svd, qr, cholesky, slogdet, ...), over the Functions in decomp.py."""
import numpy as np

from .. import _dtype
from .._backend import kernels
from .._tensor import Tensor
from ..autograd import graph as _graph
from ..autograd.graph import Function
from ._lowp import rounded_once, widened
from ._util import method, out_copy, unbroadcast
from .decomp import (CholeskyInverse, CholeskySolve, Slogdet, Svd, Svdvals, _check_float, _check_info, _check_square,
                     _not_implemented, return_qr, return_slogdet, return_svd)
from .lu import geqrf, lu, lu_solve, lu_unpack, orgqr, ormqr, triangular_solve  # noqa: F401 (torch's names)
from ..amp._dispatch import autocast_op


def _reshaped(a, shape):
    """`a` in `shape`, returning `a` itself when nothing changes: a fresh gradient stays base-less, so the
    engine can hand it to a leaf without a copy."""
    return a if a.shape == shape else a.reshape(shape)


def _mT(a):
    return a.swapaxes(-1, -2)


def _weight_grad(a, g, xp):
    """a^T @ g for 2-D a (n,k) and g (n,m), as a C-contiguous (k,m) array."""
    return xp.ascontiguousarray(xp.matmul(g.T, a).T)


def _foldable(a):
    """Whether a's batch dims and rows merge into one row dim without a copy (a reshape to (-1, K) is a view)."""
    st, sh = a.strides, a.shape
    return all(st[i] == st[i + 1] * sh[i + 1] or sh[i] == 1 for i in range(a.ndim - 2))


def _product(a, b, xp):
    """xp.matmul(a, b) for the products of Matmul, laid out for BLAS on the CPU.

    # NOTE: NumPy's matmul calls BLAS once per matrix of a batch. A batch against one matrix (x @ W with x of
    # shape (B, T, C)) is folded into one (B*T, C) product instead, which OpenBLAS can spread over the cores:
    # (16, 64, 128) @ (128, 512) float32, 1091 -> 932 µs on one thread, 750 -> 492 µs on two (as torch's
    # matmul folds it)."""
    if b.ndim == 2 and a.ndim > 2 and _foldable(a):  # one GEMM for cuBLAS too
        return xp.matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[-1:])
    return xp.matmul(a, b)


_MATMUL_NAMES = {(1, 1): "DotBackward0", (2, 1): "MvBackward0", (1, 2): "SqueezeBackward4", (2, 2): "MmBackward0"}


class Matmul(Function):
    _fresh_grads = True  # products and their sums: new arrays

    @widened
    def forward(ctx, a, b):
        # only what the wanted gradients read (b for a's, a for b's), as torch saves; where torch's matmul
        # copies an operand on the way to its kernel, the copy is what it saves, and an in-place change of
        # the original is then legal (torch_copies)
        nig = ctx.needs_input_grad
        ca, cb = _torch_copies(a, b) if nig[0] or nig[1] else (False, False)
        ctx.save_for_backward((a.copy() if ca else a) if nig[1] else None, (b.copy() if cb else b) if nig[0] else None)
        ctx.shapes = a.shape, b.shape
        return _product(a, b, ctx.xp)

    def name(self):
        # torch's node is the last step of its matmul for these ranks (a batched product ends in a view)
        na, nb = (len(s) for s in self.shapes)  # not the saved operands: only the needed ones are kept
        return _MATMUL_NAMES.get((na, nb), "CloneBackward0" if na == 2 else "UnsafeViewBackward0")

    @widened
    def backward(ctx, g):
        a, b = ctx.saved
        sa, sb = ctx.shapes
        xp = ctx.xp
        ga = gb = None
        sa2 = (1,) + sa if len(sa) == 1 else sa
        sb2 = sb + (1,) if len(sb) == 1 else sb
        if len(sa) == 1 and len(sb) == 1:
            g2 = g.reshape(1, 1)
        elif len(sa) == 1:
            g2 = xp.expand_dims(g, -2)
        elif len(sb) == 1:
            g2 = xp.expand_dims(g, -1)
        else:
            g2 = g
        if ctx.needs_input_grad[0]:
            b2 = b.reshape(sb2)
            ga = _product(g2, _mT(b2), xp)
            ga = _reshaped(unbroadcast(ga, sa2), sa)
        if ctx.needs_input_grad[1]:
            a2 = a.reshape(sa2)
            if a2.ndim == 2 and g2.ndim == 2:
                gb = _weight_grad(a2, g2, xp)
            elif len(sb2) == 2:  # batched a against one matrix b: fold the batch into rows
                gb = _weight_grad(a2.reshape(-1, a2.shape[-1]), g2.reshape(-1, g2.shape[-1]), xp)
            else:
                gb = unbroadcast(_product(_mT(a2), g2, xp), sb2)
            gb = _reshaped(gb, sb)
        return ga, gb


def _torch_copies(a, b):
    """Which operands torch's matmul saves as copies (so that writing the original later is no error there):
    an operand with batch dims whose batch is one element is a matrix; a matrix (or vector) against a batch
    folds the transposed batch into one matrix, a copy; batch against batch expands and reshapes each
    operand, a copy where its batch is broadcast; a batch against a matrix is folded by a view when its
    batch dims are contiguous."""
    def squeezed(x):
        return x.ndim if x.ndim < 3 or int(np.prod(x.shape[:-2])) != 1 else 2
    na, nb = squeezed(a), squeezed(b)
    if nb <= 2:
        if na <= 2:
            return False, False
        st = a.strides
        return any(st[i] != st[i + 1] * a.shape[i + 1] for i in range(a.ndim - 2)), False
    if na <= 2:
        return False, True
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return a.shape[:-2] != batch, b.shape[:-2] != batch


class Linear(Function):
    """y = x @ W.T + b, with x of any rank ≥ 1 (leading dims are a batch)."""
    _fresh_grads = True  # products and a sum: new arrays
    _takes_grad_dst = True  # W's gradient straight into a leaf's destination (Function._takes_grad_dst)

    @widened
    def forward(ctx, x, w, b=None, flat=False):
        # flat: the output as the (rows, out) matrix, which F.linear views in x's batch shape (torch's addmm)
        xp = ctx.xp
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        if x2.shape[0] * 16 <= min(w.shape) and kernels[xp].host and x2.dtype == np.float32:  # (cheapest test first)
            # a few rows through a wide layer: OpenBLAS's sgemm runs W @ x.T 15-40 % faster than x @ W.T
            # (measured for batch 8-64 and widths 512-4096; not so in float64 or for wider batches)
            y = np.ascontiguousarray(np.matmul(w, x2.T).T)
        else:
            y = xp.matmul(x2, w.T)
        if b is not None:
            y += b
        # only what the wanted gradients read, as torch saves: W for x's gradient, x for W's; an in-place
        # change of the other (an optimizer step on W of a layer whose input needs no grad) is then legal
        nig = ctx.needs_input_grad
        # (W as torch saves it, transposed: a view, whose history survives W.detach_())
        ctx.save_for_backward(x2 if nig[1] else None, w.T if nig[0] else None)
        ctx.x_shape = x.shape
        return y.reshape(x.shape[:-1] + (w.shape[0],)) if x.ndim != 2 and not flat else y

    def name(self):
        # torch's linear: addmm (mm without bias) for a matrix, reshaped around it for other ranks
        bias = len(self.next_functions) == 3
        if len(self.x_shape) == 2:
            return "AddmmBackward0" if bias else "MmBackward0"
        return "ViewBackward0" if bias else "SqueezeBackward4" if len(self.x_shape) == 1 else "UnsafeViewBackward0"

    @widened
    def backward(ctx, g):
        x2, w_t = ctx.saved
        xp = ctx.xp
        g2 = g.reshape(-1, g.shape[-1]) if g.ndim != 2 else g
        gx = gw = gb = None
        nig = ctx.needs_input_grad
        if nig[1]:
            dst = ctx._grad_dst.get(1) if ctx._grad_dst else None
            if dst is not None and dst[0].dtype == x2.dtype and dst[0].flags.c_contiguous:
                # the scale on the few rows of g, not on the (out, in) product
                gs = g2 if dst[1] is None else g2 * dst[1]
                gw = xp.matmul(gs.T, x2, out=dst[0])
            else:
                gw = xp.matmul(g2.T, x2)
        if len(nig) > 2 and nig[2]:
            gb = g2.sum(0)
        if nig[0]:
            gx = _reshaped(xp.matmul(g2, w_t.T), ctx.x_shape)
        return gx, gw, gb


_CPP_NAMES = _dtype._CPP_NAMES  # C++ type names, as torch's matmul kernels print them in dtype errors


def _x(shape):
    return "x".join(str(s) for s in shape)


def _matmul_check(a, b):
    """torch.matmul's errors, as raised by the kernel each shape pair dispatches to (dot, mv, mm or bmm)."""
    na, nb = a.ndim, b.ndim
    if na == 0 or nb == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {na}D and {nb}D")
    sa, sb = a.shape, b.shape
    ka, kb = sa[-1], sb[0] if nb == 1 else sb[-2]
    da, db = a.dtype, b.dtype
    if nb == 1:  # dot, or mv of the folded matrix
        if na == 1:
            if da is not db:
                raise RuntimeError(f"dot : expected both vectors to have same dtype, but found "
                                   f"{_dtype.scalar_name(da)} and {_dtype.scalar_name(db)}")
            if ka != kb:
                raise RuntimeError(f"inconsistent tensor size, expected tensor [{ka}] and src [{kb}] to have the same "
                                   f"number of elements, but got {ka} and {kb} elements respectively")
        else:
            if da is not db:
                raise RuntimeError(f"addmv input tensors must have the same dtype, but got {_dtype.scalar_name(db)}, "
                                   f"{_dtype.scalar_name(da)}, and {_dtype.scalar_name(db)}")
            if ka != kb:
                rows = a.numel() // ka if ka else int(np.prod(sa[:-1]))
                raise RuntimeError(f"size mismatch, got input ({rows}), mat ({rows}x{ka}), vec ({kb})")
    elif nb == 2:  # mm, with a folded to a matrix
        if da is not db:
            raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {_CPP_NAMES[da.name]} != "
                               f"{_CPP_NAMES[db.name]}")
        if ka != kb:
            rows = int(np.prod(sa[:-1]))
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{ka} and {_x(sb)})")
    else:  # bmm over the broadcast batch dims
        batch_a = sa[:-2] if na > 2 else ()
        batch = _broadcast_shapes(batch_a, sb[:-2])
        if da is not db:
            raise RuntimeError(f"expected scalar type {_dtype.scalar_name(da)} but found {_dtype.scalar_name(db)}")
        if ka != kb:
            n = int(np.prod(batch))
            raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{n}, {ka}] but got: "
                               f"[{n}, {kb}].")
    if da is _dtype.bool:
        raise NotImplementedError("\"addmm_impl_cpu_\" not implemented for 'Bool'")


def _broadcast_shapes(sa, sb):
    try:
        return np.broadcast_shapes(sa, sb)
    except ValueError:
        n = max(len(sa), len(sb))
        pa, pb = (1,) * (n - len(sa)) + tuple(sa), (1,) * (n - len(sb)) + tuple(sb)
        i = next(i for i in range(n - 1, -1, -1) if pa[i] != pb[i] and 1 not in (pa[i], pb[i]))
        raise RuntimeError(f"The size of tensor a ({pa[i]}) must match the size of tensor b ({pb[i]}) at "
                           f"non-singleton dimension {i}") from None


@method()
@autocast_op("matmul")
def matmul(input, other, *, out=None):
    """Matrix product with numpy's rules: 1-D operands are vectors, leading dims are broadcast batches."""
    a, b = input._data, other._data
    if a.dtype != b.dtype or a.dtype.kind == "b" or not a.ndim or not b.ndim or \
            a.shape[-1] != b.shape[0 if b.ndim == 1 else -2] or a.ndim > 2 and b.ndim > 2 and a.shape[:-2] != b.shape[:-2]:
        _matmul_check(input, other)
    if type(a) is not type(b) and input.is_sparse:  # torch.matmul(sparse, dense), as torch.spmm
        from ..sparse import spmm
        return out_copy(spmm(input, other), out)
    return out_copy(Matmul.apply(input, other), out)


Tensor.__matmul__ = matmul
Tensor.__rmatmul__ = lambda self, other: matmul(other, self)


@method()
@autocast_op("mm")
def mm(input, mat2, *, out=None):
    if input.is_sparse:  # torch.mm(sparse, dense), as torch.spmm
        from ..sparse import spmm
        return out_copy(spmm(input, mat2), out)
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"{'self' if input.ndim != 2 else 'mat2'} must be a matrix")
    return matmul(input, mat2, out=out)


@method()
@autocast_op("bmm")
def bmm(input, mat2, *, out=None):
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"batch{1 if input.ndim != 3 else 2} must be a 3D tensor")
    if input.shape[0] != mat2.shape[0] or input.shape[2] != mat2.shape[1]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{input.shape[0]}, {input.shape[2]}] but got: [{mat2.shape[0]}, {mat2.shape[1]}].")
    return _graph.renamed(matmul(input, mat2, out=out), "BmmBackward0")


@method()
@autocast_op("mv")
def mv(input, vec, *, out=None):
    return matmul(input, vec, out=out)


@method()
@autocast_op("dot")
def dot(input, other, *, out=None):
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    return matmul(input, other, out=out)


@method()
def inner(input, other, *, out=None):
    """Sum of products over the last dims of both tensors (a plain product when either is 0-d)."""
    if input.ndim == 0 or other.ndim == 0:
        return out_copy(input * other, out)
    if input.shape[-1] != other.shape[-1]:
        raise RuntimeError(f"inner() the last dimension must match on both input tensors but got shapes "
                           f"[{input._shape_str()}] and [{other._shape_str()}]")
    from .composite import tensordot
    return out_copy(tensordot(input, other, dims=([-1], [-1])), out)


@method()
def outer(input, vec2):
    return input.unsqueeze(1) * vec2.unsqueeze(0)


ger = outer


@autocast_op("linear")
def linear(input, weight, bias=None):
    """y = input @ weight.T + bias: one fused op with the fast layouts for all three products."""
    a, w = input._data, weight._data  # the checks read the arrays: a Size per `.shape` costs on every call
    if a.shape[-1] != w.shape[-1]:
        sa = "x".join(str(s) for s in (input.shape if input.ndim == 2 else (input.numel() // max(input.shape[-1], 1), input.shape[-1])))
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({sa} and "
                           f"{weight.shape[-1]}x{weight.shape[0]})")
    if a.dtype != w.dtype or (bias is not None and bias._data.dtype != a.dtype):
        raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {_dtype.scalar_name(input.dtype)} and "
                           f"{_dtype.scalar_name(weight.dtype)}")
    if w.ndim != 2 or a.ndim == 0:
        y = matmul(input, weight.t() if weight.ndim == 2 else weight)
        return y + bias if bias is not None else y
    if a.dtype.kind == "b":  # (torch's kernel name on the device)
        kernel = "addmm_impl_cpu_" if input._device.type == "cpu" else "addmm_cuda"
        raise NotImplementedError(f"\"{kernel}\" not implemented for 'Bool'")
    if bias is None:
        return Linear.apply(input, weight)
    if input.ndim != 2:
        # torch computes a batch with a bias as addmm on the input's rows and views the result in the batch's
        # shape: the output is a view (its base the matrix), which decides what in-place ops and detach_() do
        return Linear.apply(input, weight, bias, flat=True).view(input.shape[:-1] + (weight.shape[0],))
    return Linear.apply(input, weight, bias)


def _beta_input_plus(input, beta, r, alpha, out):
    """beta * input + alpha * r, where beta == 0 ignores input's values (NaN and inf included) as torch does,
    while input still gets a (zero) gradient."""
    if alpha != 1:
        r = r * alpha
    if beta == 0:
        scaled = input.masked_fill(input.new_ones((), dtype=_dtype.bool), 0)
    else:
        scaled = input if beta == 1 else input * beta
    return out_copy(r + scaled, out)


@method()
@autocast_op("addmm")
@rounded_once
def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    return _graph.renamed(_beta_input_plus(input, beta, matmul(mat1, mat2), alpha, out), "AddmmBackward0")


@method()
@autocast_op("baddbmm")
@rounded_once
def baddbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    return _graph.renamed(_beta_input_plus(input, beta, bmm(batch1, batch2), alpha, out), "BaddbmmBackward0")


@method()
@autocast_op("addbmm")
@rounded_once
def addbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    """beta * input + alpha * the sum over the batch of batch1[i] @ batch2[i]."""
    if batch1.ndim != 3 or batch2.ndim != 3:
        raise RuntimeError(f"batch{1 if batch1.ndim != 3 else 2} must be a 3D tensor")
    if batch1.shape[0] != batch2.shape[0]:
        raise RuntimeError(f"batch1 and batch2 must have same number of batches, got {batch1.shape[0]} and "
                           f"{batch2.shape[0]}")
    if batch1.shape[2] != batch2.shape[1]:
        raise RuntimeError(f"Incompatible matrix sizes for bmm ({batch1.shape[1]}x{batch1.shape[2]} and "
                           f"{batch2.shape[1]}x{batch2.shape[2]})")
    # one matmul: (n, b*k) @ (b*k, p) sums the batch of products
    a = batch1.permute(1, 0, 2).reshape(batch1.shape[1], -1)
    return _beta_input_plus(input, beta, matmul(a, batch2.reshape(-1, batch2.shape[2])), alpha, out)


@method()
@autocast_op("addmv")
@rounded_once
def addmv(input, mat, vec, *, beta=1, alpha=1, out=None):
    """beta * input + alpha * (mat @ vec)."""
    if mat.ndim != 2 or vec.ndim != 1 or mat.shape[1] != vec.shape[0] or \
            input.ndim > 1 or input.numel() not in (1, mat.shape[0]):
        raise RuntimeError(f"size mismatch, got input ({input._shape_str().replace(', ', 'x')}), mat "
                           f"({mat._shape_str().replace(', ', 'x')}), vec ({vec._shape_str().replace(', ', 'x')})")
    return _graph.renamed(_beta_input_plus(input, beta, matmul(mat, vec), alpha, out), "AddmvBackward0")


@method()
@autocast_op("addr")
def addr(input, vec1, vec2, *, beta=1, alpha=1, out=None):
    """beta * input + alpha * outer(vec1, vec2)."""
    if vec1.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError(f"{'vec1' if vec1.ndim != 1 else 'vec2'} must be a 1-dimensional vector, but got a "
                           f"{(vec1 if vec1.ndim != 1 else vec2).ndim}-dimensional tensor")
    shape = (vec1.shape[0], vec2.shape[0])
    try:
        np.broadcast_shapes(tuple(input.shape), shape)
        if np.broadcast_shapes(tuple(input.shape), shape) != shape:
            raise ValueError
    except ValueError:
        from .shape import expand
        expand(input, shape)  # raises torch's "The expanded size of the tensor ..."
    return _beta_input_plus(input, beta, outer(vec1, vec2), alpha, out)


def _inplace_product(fn):
    def op_(self, *args, beta=1, alpha=1):
        from .arith import assign_
        return assign_(self, fn(self, *args, beta=beta, alpha=alpha))
    op_.__name__ = fn.__name__ + "_"
    return op_


Tensor.addmm_, Tensor.baddbmm_, Tensor.addbmm_, Tensor.addmv_, Tensor.addr_ = (
    _inplace_product(f) for f in (addmm, baddbmm, addbmm, addmv, addr))


@autocast_op("einsum")
@rounded_once
def einsum(equation, *operands):
    from .shape import _einsum
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return _einsum(equation, *operands)


# ---- decompositions under torch's top-level names (the torch.linalg spellings are in dtrain.linalg) ----

def _linalg():
    from .. import linalg  # dtrain.linalg loads on first use
    return linalg


@method()
@autocast_op("svd")
def svd(input, some=True, compute_uv=True, *, out=None):
    """torch.svd: U, S, V with V (not Vh), reduced unless some=False; compute_uv=False gives zero U and V."""
    if input.ndim < 2:
        raise RuntimeError(f"linalg.svd: input should have at least 2 dimensions, but has {input.ndim} dimensions "
                           f"instead")
    _check_float(input, "linalg.svd", "linalg_svd")
    if not compute_uv:
        batch, (m, n) = tuple(input.shape[:-2]), input.shape[-2:]
        return return_svd(input.new_zeros(batch + (m, m)), Svdvals.apply(input), input.new_zeros(batch + (n, n)))
    u, s, vh = Svd.apply(input, full_matrices=not some)
    return return_svd(u, s, vh.mT)


@method()
def slogdet(input):
    return return_slogdet(*_linalg().slogdet(input))


@method()
def logdet(input):
    """log(det A): nan where det A < 0, -inf where it is 0."""
    _check_square(input, "logdet")
    _check_float(input, "logdet")
    sign, logabsdet = Slogdet.apply(input)
    return logabsdet.masked_fill(sign < 0, float("nan"))


@method()
@autocast_op("pinverse")
def pinverse(input, rcond=1e-15):
    return _linalg().pinv(input, rcond)


@method()
@autocast_op("vdot")
def vdot(input, other, *, out=None):
    """The dot product of two vectors, the first conjugated."""
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    return dot(input.conj() if input.is_complex() else input, other, out=out)


@method()
def matrix_power(input, n, *, out=None):
    return _linalg().matrix_power(input, n, out=out)


@method()
def matrix_exp(input):
    return _linalg().matrix_exp(input)


@autocast_op("chain_matmul")
def chain_matmul(*matrices, out=None):
    """The product of 2-D matrices, in the cheapest order (torch's older spelling of linalg.multi_dot)."""
    if not matrices:
        raise RuntimeError("chain_matmul(): Expected one or more matrices")
    for m in matrices:
        if m.ndim != 2:
            raise RuntimeError(f"Tensor dimension is {m.ndim}, expected 2 instead.")
    if len(matrices) == 1:
        return out_copy(matrices[0].clone(), out)
    return _linalg().multi_dot(matrices, out=out)


@method()
@autocast_op("cholesky")
def cholesky(input, upper=False, *, out=None):
    L, info = _linalg()._cholesky(input, upper, "cholesky")
    _check_info(info._data, "cholesky")
    return out_copy(L, out)


def _check_factor_dtype(t, kernel):
    if not t.dtype.is_floating_point or t.dtype.itemsize < 4:
        raise _not_implemented(t, kernel)
    _check_float(t, kernel)


@method()
@autocast_op("cholesky_solve")
def cholesky_solve(input, input2, upper=False, *, out=None):
    """X with A X = B for B = input and A's Cholesky factor input2 (lower, or upper if upper=True); only
    that triangle of input2 is read."""
    for name, t in (("b", input), ("u", input2)):
        if t.ndim < 2:
            raise RuntimeError(f"{name} should have at least 2 dimensions, but has {t.ndim} dimensions instead")
    if input.dtype != input2.dtype:
        b, a = _dtype.scalar_name(input.dtype), _dtype.scalar_name(input2.dtype)
        raise RuntimeError(f"Expected b and A to have the same dtype, but found b of type {b} and A of type {a} instead.")
    n = input2.shape[-1]
    if input2.shape[-2] != n:
        raise RuntimeError(f"A must be batches of square matrices, but they are {input2.shape[-2]} by {n} matrices")
    if input.shape[-2] != n:
        raise RuntimeError(f"Incompatible matrix sizes for cholesky_solve: each A matrix is {n} by {n} but each b "
                           f"matrix is {input.shape[-2]} by {input.shape[-1]}")
    _broadcast_shapes(input.shape[:-2], input2.shape[:-2])
    _check_factor_dtype(input, "cholesky_solve")
    return out_copy(CholeskySolve.apply(input, input2, upper=upper), out)


@method()
@autocast_op("cholesky_inverse")
def cholesky_inverse(input, upper=False, *, out=None):
    """A^{-1} from A's Cholesky factor (lower, or upper if upper=True); only that triangle is read."""
    _check_square(input, "cholesky_inverse")
    _check_factor_dtype(input, "cholesky_inverse_out")
    return out_copy(CholeskyInverse.apply(input, upper=upper), out)


@method()
@autocast_op("qr")
def qr(input, some=True, *, out=None):
    return return_qr(*_linalg().qr(input, "reduced" if some else "complete"))


@method()
def det(input):
    return _linalg().det(input)


@method()
@autocast_op("inverse")
def inverse(input, *, out=None):
    return _linalg().inv(input, out=out)
