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
    fn = _FORMULAS.get(type(node).__name__)
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
    if not node.keepdim and node.axes:
        g = g.reshape([1 if i in node.axes else s for i, s in enumerate(node.shape)])
    return g.expand(node.shape)


@formula("Mean")
def _mean(node, g):
    if not node.keepdim and node.axes:
        g = g.reshape([1 if i in node.axes else s for i, s in enumerate(node.shape)])
    return g.expand(node.shape) / node.n


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
    x2, w = node.saved  # x saved only for W's gradient, W only for x's
    g2 = g.reshape(-1, g.shape[-1])
    nig = node.needs_input_grad
    gx = (g2 @ input_t(node, 1, w)).reshape(node.x_shape) if nig[0] else None
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


@formula("Clone", "_To")
def _identity(node, g):
    return g
