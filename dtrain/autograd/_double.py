"""Backward formulas over tensors, for `create_graph=True` (higher-order gradients).

The array-level `backward` of an op is what every ordinary backward runs; these formulas compute the same
products with tensor ops, so that the gradient itself is recorded in a graph and can be differentiated again
(gradient penalties, Hessian-vector products, gradgradcheck). An op without an entry here raises a clear error
when a graph through it is created.

The tensors a formula needs are rebuilt from what the node already keeps: its saved arrays and its edges. An
input whose edge leads to a leaf is that leaf; one whose edge leads to another op is a fresh tensor on that
edge; a saved output is a tensor on this very node. Ordinary training therefore holds no extra references.
"""
from .._tensor import _wrap
from . import graph

_FORMULAS = {}


def formula(*op_names):
    def deco(fn):
        for n in op_names:
            _FORMULAS[n] = fn
        return fn
    return deco


def lookup(node):
    fn = _FORMULAS.get(type(node)._op)
    if fn is None:
        raise NotImplementedError(
            f"create_graph=True needs the derivative of {node.name()}'s backward, which dtrain does not have; "
            f"supported ops: {', '.join(sorted(_FORMULAS))}")
    return fn


def input_t(node, i, array):
    """Input i of `node` as a tensor connected to the graph (constant when it needs no grad)."""
    child, nr = node.next_functions[i]
    if type(child) is graph.AccumulateGrad:
        return child.variable
    t = _wrap(array, _dev_of(array))
    if child is not None:
        t._requires_grad, t.grad_fn, t._output_nr = True, child, nr
    return t


def output_t(node, array, nr=0):
    """A saved output of `node` as a tensor whose history is `node` itself."""
    t = _wrap(array, _dev_of(array))
    t._requires_grad, t.grad_fn, t._output_nr = True, node, nr
    return t


def const(array):
    """A piecewise-constant array (mask, comparison, index) as a tensor outside every graph."""
    return _wrap(array, _dev_of(array))


def _dev_of(array):
    from .._device import device_of
    return device_of(array)


def sum_to(g, shape):
    """The tensor form of broadcasting's backward."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(tuple(range(lead)))
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if dims:
        g = g.sum(dims, keepdim=True)
    return g


# ------------------------------------------------------------------------------------------ the formulas
@formula("Add")
def _add(node, g):
    sa, sb = node.shapes
    nig = node.needs_input_grad
    gb = sum_to(g, sb) * node.alpha if nig[1] else None
    return (sum_to(g, sa) if nig[0] else None), gb


@formula("Sub")
def _sub(node, g):
    sa, sb = node.shapes
    nig = node.needs_input_grad
    return (sum_to(g, sa) if nig[0] else None), (sum_to(-g, sb) * node.alpha if nig[1] else None)


@formula("Mul")
def _mul(node, g):
    a, b = node.saved
    sa, sb = node.shapes
    nig = node.needs_input_grad
    ga = sum_to(g * input_t(node, 1, b), sa) if nig[0] else None
    gb = sum_to(g * input_t(node, 0, a), sb) if nig[1] else None
    return ga, gb


@formula("Div")
def _div(node, g):
    a, b = node.saved
    at, bt = input_t(node, 0, a), input_t(node, 1, b)
    nig = node.needs_input_grad
    ga = sum_to(g / bt, a.shape) if nig[0] else None
    gb = sum_to(-g * at / (bt * bt), b.shape) if nig[1] else None
    return ga, gb


@formula("Pow")
def _pow(node, g):
    a, b, y = node.saved
    at, bt = input_t(node, 0, a), input_t(node, 1, b)
    nig = node.needs_input_grad
    ga = sum_to(g * bt * at ** (bt - 1), a.shape) if nig[0] else None
    gb = sum_to(g * output_t(node, y) * at.log(), b.shape) if nig[1] else None
    return ga, gb


@formula("Neg")
def _neg(node, g):
    return -g


@formula("Exp")
def _exp(node, g):
    (y,) = node.saved
    return g * output_t(node, y)


@formula("Log")
def _log(node, g):
    (x,) = node.saved
    return g / input_t(node, 0, x)


@formula("Sqrt")
def _sqrt(node, g):
    (y,) = node.saved
    return g / (2 * output_t(node, y))


@formula("Sin")
def _sin(node, g):
    (x,) = node.saved
    return g * input_t(node, 0, x).cos()


@formula("Cos")
def _cos(node, g):
    (x,) = node.saved
    return -g * input_t(node, 0, x).sin()


@formula("Tanh")
def _tanh(node, g):
    (y,) = node.saved
    yt = output_t(node, y)
    return g * (1 - yt * yt)


@formula("Sigmoid")
def _sigmoid(node, g):
    (y,) = node.saved
    yt = output_t(node, y)
    return g * yt * (1 - yt)


@formula("Relu")
def _relu(node, g):
    (y,) = node.saved
    return g * _wrap(y > 0, _dev_of(y))  # the mask is piecewise constant: no gradient through it


@formula("Square")
def _square(node, g):
    (x,) = node.saved
    return 2 * g * input_t(node, 0, x)


@formula("Abs")
def _abs(node, g):
    (x,) = node.saved
    return g * _wrap(node.xp.sign(x), _dev_of(x))


@formula("Sum")
def _sum(node, g):
    from .._ops.reduce import _expand_back
    return _expand_back(g, node.shape, node.axes, node.keepdim).expand(node.shape)


@formula("Mean")
def _mean(node, g):
    from .._ops.reduce import _expand_back
    return _expand_back(g, node.shape, node.axes, node.keepdim).expand(node.shape) / node.n


@formula("Matmul")
def _matmul(node, g):
    a, b = node.saved  # each saved only when the other's gradient is wanted
    sa, sb = node.shapes
    # 1-D operands as matrices, as matmul itself treats them
    G = g.reshape(1, 1) if len(sa) == 1 and len(sb) == 1 else g.unsqueeze(-2) if len(sa) == 1 else \
        g.unsqueeze(-1) if len(sb) == 1 else g
    nig = node.needs_input_grad
    ga = gb = None
    if nig[0]:
        bt = input_t(node, 1, b)
        B = bt.unsqueeze(-1) if len(sb) == 1 else bt
        ga = sum_to(G @ B.mT, (1,) + sa if len(sa) == 1 else sa).reshape(sa)
    if nig[1]:
        at = input_t(node, 0, a)
        A = at.unsqueeze(0) if len(sa) == 1 else at
        gb = sum_to(A.mT @ G, sb + (1,) if len(sb) == 1 else sb).reshape(sb)
    return ga, gb


@formula("Linear")
def _linear(node, g):
    x2, w_t = node.saved  # x saved only for W's gradient, W (transposed) only for x's
    g2 = g.reshape(-1, g.shape[-1])
    nig = node.needs_input_grad
    gx = (g2 @ input_t(node, 1, w_t.T)).reshape(node.x_shape) if nig[0] else None
    # the edge expects the input's own shape
    gw = g2.T @ input_t(node, 0, x2.reshape(node.x_shape)).reshape(-1, x2.shape[-1]) if nig[1] else None
    gb = g2.sum(0) if len(nig) > 2 and nig[2] else None
    return gx, gw, gb


@formula("View", "Squeeze", "ReshapeCopy")
def _reshape(node, g):
    return g.reshape(node.in_shape)


@formula("Permute")
def _permute(node, g):
    import numpy as np
    return g.permute(*np.argsort(node.dims).tolist())


@formula("Expand")
def _expand(node, g):
    return sum_to(g, node.in_shape)


@formula("Clone")
def _identity(node, g):
    return g


# ------------------------------------------------------------------- strided views and writes through them
# Their backwards are linear maps between geometries in one storage (inplace.StridedMap), applied here as a
# recorded op, so that a graph made through them can be differentiated again.
def _strided(g, n, src, dst):
    from .._ops.inplace import StridedMap
    return StridedMap.apply(g, n=n, src=src, dst=dst)


@formula("StridedMap")
def _strided_map(node, g):
    return _strided(g, node.n, node.dst, node.src)


@formula("AsStrided")
def _as_strided(node, g):
    return _strided(g, node.n, node.out, node.inp)


@formula("Unfold")
def _unfold(node, g):
    import math
    dim, size, step = node.args
    shape = node.shape
    _, strides, _ = _c_where(shape)  # the input as a C-contiguous storage
    n = (shape[dim] - size) // step + 1
    windows = (0, strides[:dim] + (strides[dim] * step,) + strides[dim + 1:] + (strides[dim],),
               shape[:dim] + (n,) + shape[dim + 1:] + (size,))
    return _strided(g, math.prod(shape), windows, _c_where(shape))


def _c_where(shape):
    import math
    return 0, tuple(math.prod(shape[i + 1:]) for i in range(len(shape))), tuple(shape)


def _view_back(g, shape, take):
    """The backward of a view `take(x)` of x of `shape` (x as a C-contiguous storage): where the view's
    elements sit is read off the same view of an index array."""
    import math
    import numpy as np
    from .._backend import data_ptr
    from .._ops.inplace import geometry
    idx = np.arange(max(math.prod(shape), 1), dtype=np.int64)[:math.prod(shape)].reshape(shape)
    where = geometry(take(idx), data_ptr(idx))
    return _strided(g, math.prod(shape), where, _c_where(shape))


@formula("BasicIndex")
def _basic_index(node, g):
    key = node.key if any(k is Ellipsis for k in node.key) else node.key + (Ellipsis,)
    return _view_back(g, node.shape, lambda a: a[key])


@formula("Diagonal")
def _diagonal(node, g):
    import numpy as np
    return _view_back(g, node.shape, lambda a: np.diagonal(a, *node.args))


@formula("Unbind")
def _unbind(node, *gs):
    from .. import stack
    return stack(gs, node.dim)


@formula("Split")
def _split(node, *gs):
    from .. import cat
    return cat(gs, node.dim)


@formula("Overwrite", "Copy")  # copy_ is an Overwrite under torch's name
def _overwrite(node, g):
    from .. import _dtype, zeros_like
    nig = node.needs_input_grad
    gv = sum_to(g, node.vshape).to(_dtype.from_numpy_dtype(node.vdtype)) if nig[1] else None
    return zeros_like(g), gv


def _last_writes(xp, n, where):
    """1 where an element of the view at `where` is the last write of its storage element in torch's order,
    0 elsewhere."""
    import math
    from .._ops.inplace import _on, _write_in_order
    shape = where[2]
    order = xp.arange(math.prod(shape), dtype=xp.int64).reshape(shape)
    buf = xp.full(n, -1, xp.int64)
    _write_in_order(xp, _on(xp, buf, where), order)
    return (_on(xp, buf, where) == order).astype(xp.float64)


@formula("CopySlices")
def _copy_slices(node, g):
    from .._ops.inplace import _OVERLAP, _on, overlaps
    xp = node.xp
    _, strides, shape = node.view_where
    if any(st == 0 and n > 1 for st, n in zip(strides, shape)):
        raise RuntimeError(_OVERLAP)
    nig = node.needs_input_grad
    fn = node.fn  # the write's node when this one runs its backward itself (inplace.CopySlices)
    if fn is not None:
        if fn.saved is graph._FREED:
            raise RuntimeError(graph._TWICE)
        if fn._versions:
            graph._check_versions(fn)
        res = lookup(fn)(fn, _strided(g, node.n, node.base_where, node.view_where))
        res = res if type(res) is tuple else (res,)
        back, rest = res[0], tuple(res[1:])
    else:
        back, rest = None, (_strided(g, node.n, node.base_where, node.view_where) if nig[1] else None,)
    g_base = None
    if nig[0]:
        # the base's gradient outside the written region: g times a constant mask; inside it, what fn's
        # gradient for the view's old values puts there
        buf = xp.ones(node.n, g._data.dtype)
        _on(xp, buf, node.view_where)[...] = 0
        mask = xp.array(_on(xp, buf, node.base_where), order="C")
        g_base = g * _wrap(mask, _dev_of(mask))
        if back is not None:
            if overlaps(shape, strides):  # overlapping windows: the last write of a shared element wins
                back = back * _wrap(_last_writes(xp, node.n, node.view_where), _dev_of(mask))
            g_base = g_base + _strided(back, node.n, node.view_where, node.base_where)
    return (g_base,) + rest


# the formulas of the remaining op families, in modules of their own; importing them registers them
from . import _double_math, _double_reduce, _double_nn, _double_index, _double_linalg  # noqa: E402,F401
