"""Double-backward formulas (see dtrain.autograd._double) for a few linear-algebra ops and for the sparse COO
ops."""
from ._double import const, formula, input_t, output_t, sum_to
from ._double_index import _add_at
from ._double_nn import _backward_of, _mapped, _shared_key


# ------------------------------------------------------------------------------------------ linear algebra
# torch's formulas (derivatives.yaml), with the inverse and the triangular solves as the ops themselves.
def _solve_tri(a, b, upper, left=True, unit=False):
    from .._ops.lu import SolveTriangular
    return SolveTriangular.apply(a, b, upper=upper, left=left, unitriangular=unit)


@formula("Inv")
def _inv(node, g):
    (y,) = node.saved
    yt = output_t(node, y).mT
    return -(yt @ g @ yt)


@formula("Det")
def _det(node, g):
    from .. import linalg
    a, d = node.saved
    return (g * output_t(node, d))[..., None, None] * linalg.inv(input_t(node, 0, a)).mT


@formula("Slogdet")
def _slogdet(node, gsign, glogabsdet):
    from .. import linalg
    (a,) = node.saved  # the sign of a real matrix is piecewise constant: no gradient
    return glogabsdet[..., None, None] * linalg.inv(input_t(node, 0, a)).mT


@formula("Cholesky")
def _cholesky(node, gl, ginfo=None):
    """Murray (2016), as the backward: gA = L^{-T} Phi(L^T gL) L^{-1}, Phi the lower triangle with a halved
    diagonal, made symmetric; L as the op's own output."""
    (lo,) = node.saved
    L = output_t(node, lo.swapaxes(-1, -2)).mT if node.upper else output_t(node, lo)
    if node.upper:
        gl = gl.mT
    ga = (L.mT @ gl).tril()
    ga = 0.5 * (ga + ga.tril(-1).mT)
    return _solve_tri(L, _solve_tri(L.mT, ga, upper=True), upper=False, left=False)


@formula("SolveTriangular")
def _solve_triangular(node, gx):
    a, x = node.saved
    upper, left, unit = node.params
    at = input_t(node, 0, a)
    gb = _solve_tri(at.mT, gx, not upper, left, unit)  # A^{-T} gX, or gX A^{-T}
    ga = None
    if node.needs_input_grad[0]:
        xt = output_t(node, x)
        ga = -(gb @ xt.mT) if left else -(xt.mT @ gb)
        # only the triangle is an input (off the diagonal if unitriangular)
        ga = sum_to(ga.triu(int(unit)) if upper else ga.tril(-int(unit)), a.shape)
    return ga, sum_to(gb, node.b_shape)


# ------------------------------------------------------------------------------------ sparse COO tensors
# The gradient that flows to a sparse tensor is its values' (nnz, ...): each op's backward maps values'
# gradients by constant indices, and sparse @ dense is bilinear in the values and the dense operand. (The
# sparse Mul, Add, Sub and Clone share their class names, and so their formula keys, with the dense ops'.)
@formula("SparseCooTensorWithDimsAndTensors", "Values", "T")
def _sparse_identity(node, g):
    return g


@formula("ToCopy")
def _sparse_to_copy(node, g):
    from .. import _dtype
    return g.to(device=node.src_device, dtype=_dtype.from_numpy_dtype(node.in_dtype))


@formula("Coalesce", "SparseSum")
def _coalesce(node, g):
    xp, inverse = node.xp, node.inverse
    n = g.shape[0]

    def spread(u):  # the adjoint of reading each input value's summed output value
        return _add_at(xp, (n,) + tuple(u.shape[1:]), inverse, u, u.dtype)
    return _mapped(g, _backward_of(node), spread)


@formula("ToDense")
def _to_dense(node, g):
    xp = node.xp
    key = tuple(node.indices[d] for d in range(node.indices.shape[0]))
    return _mapped(g, _backward_of(node), lambda u: _add_at(xp, tuple(g.shape), key, u, u.dtype))


@formula("ToSparse")
def _to_sparse(node, g):
    nz = node.nz
    return _mapped(g, _backward_of(node), (lambda u: u[None].copy()) if nz == () else (lambda u: u[nz]))


@formula("SparseAddmm", "Mm")
def _sparse_mm(node, g):
    """S @ D: the values' gradient (g @ D^T) at S's entries, D's S^T @ g, both as tensor ops of the values."""
    from .. import zeros
    from . import graph
    c, (dense,) = node.c, node.saved
    nig = node.needs_input_grad
    child = node.next_functions[0][0]
    if nig[1] and type(child) is graph.AccumulateGrad:
        raise NotImplementedError("create_graph=True through a product with a sparse leaf tensor is not supported: "
                                  "dtrain differentiates it twice where the sparse tensor is made from values "
                                  "or a dense tensor in the graph (sparse_coo_tensor, to_sparse)")
    rows, cols = (const(i) for i in c.indices)
    gv = gd = None
    if nig[0]:
        gv = (g.index_select(0, rows) * input_t(node, 1, dense).index_select(0, cols)).sum(1)
    if nig[1]:
        vt = input_t(node, 0, c.values)  # the values, on the edge their gradient goes to
        gd = zeros((c.shape[1],) + tuple(g.shape[1:]), dtype=g.dtype, device=g.device).index_add(
            0, cols, vt.unsqueeze(1) * g.index_select(0, rows))
    return gv, gd


def _sparse_class(name):
    return lambda: getattr(__import__("dtrain.sparse._ops", fromlist=[name]), name)


@_shared_key("Mul", _sparse_class("Mul"))  # sparse * number; the dense Mul keeps its own formula
def _sparse_mul(node, g):
    return g * node.factor


@_shared_key("Sub", _sparse_class("Sub"))
@_shared_key("Add", _sparse_class("Add"))
def _sparse_add(node, g):
    """Each input value's gradient is its output entry's (times alpha for the second): read by position."""
    xp, n, alpha = node.xp, g.shape[0], node.alpha
    (da, db), nig = node.dtypes, node.needs_input_grad

    def read(pos, scale, dt):
        return lambda a: (a[pos] * a.dtype.type(scale)).astype(dt, copy=False)

    def spread(pos, scale):
        return lambda u: _add_at(xp, (n,) + tuple(u.shape[1:]), pos, (u * u.dtype.type(scale)).astype(
            g._data.dtype, copy=False), g._data.dtype)
    ga = _mapped(g, read(node.pos_a, 1, da), spread(node.pos_a, 1)) if nig[0] else None
    gb = _mapped(g, read(node.pos_b, alpha, db), spread(node.pos_b, alpha)) if nig[1] else None
    return ga, gb

