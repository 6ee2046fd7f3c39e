"""The hypothesis strategy for fuzz programs.

Generation runs each drawn statement on torch straight away (the shadow run), so that the next draw sees the
real shapes, dtypes and flags: operands are drawn to fit, and a statement torch refuses is still a valid
program (dtrain must refuse it too, with the same exception type).
"""
import math

import numpy as np
import torch
from hypothesis import strategies as st

from .draw import DTYPES, _SCALARS, State, _fits, _index, _operand, _pick, _values, nonzero, shapes
from .known import excluded
from .program import Op
from .vocab import gen_indexing, gen_inplace_more, gen_reduce_more, gen_unary_more

def gen_new(draw, s, dtype):
    shape = draw(shapes())
    if draw(st.integers(0, 7)) == 0:  # an integer tensor: type promotion with float scalars and tensors
        ints = tuple(draw(st.lists(st.integers(-3, 3), min_size=math.prod(shape), max_size=math.prod(shape))))
        return Op("new", "tensor", None, (shape, "int64", False, ints), s.name("t"))
    rg = draw(st.booleans())
    values = _values(draw, math.prod(shape), positive=draw(st.integers(0, 3)) == 0)
    return Op("new", "tensor", None, (shape, dtype, rg, values), s.name("t"))


def gen_linear(draw, s, dtype):
    # in_features mostly from a tensor at hand, so that the layer gets called
    dims = sorted({t.shape[-1] for t in s.ns.values() if isinstance(t, torch.Tensor) and t.dim() and t.shape[-1]})
    fin = draw(st.sampled_from(dims)) if dims and draw(st.integers(0, 3)) else draw(st.integers(1, 4))
    fout, bias = draw(st.integers(1, 3)), draw(st.booleans())
    return Op("linear", "Linear", None, (fin, fout, bias, dtype, _values(draw, fin * fout), _values(draw, fout)),
              s.name("lin"))


def _shape_args(shape):
    """view(2, 3) reads best; a 0-d target needs the tuple form, view(())."""
    return tuple(shape) if shape else ((),)


def _view_shapes(shape):
    n = math.prod(shape)
    cands = [(n,), (-1,), tuple(reversed(shape)), (1,) + shape]
    cands += [(a, n // a) for a in range(1, n + 1) if n % a == 0]
    if len(shape) >= 2:
        cands.append(shape[:-2] + (shape[-2] * shape[-1],))
    return cands


VIEWS = ["view", "reshape", "transpose", "t", "permute", "getitem", "select", "expand", "diagonal", "unfold",
         "narrow", "split", "chunk", "unbind", "squeeze", "unsqueeze", "detach", "data", "flatten",
         "contiguous", "clone", "to"]


def gen_view(draw, s, dtype):
    src = _pick(draw, s.tensors())
    t = s.ns[src]
    shape, nd = tuple(t.shape), t.dim()
    m = draw(st.sampled_from(VIEWS))
    d = draw(st.integers(0, nd - 1)) if nd else 0
    if m in ("view", "reshape"):
        a = _shape_args(draw(st.sampled_from(_view_shapes(shape))))
    elif m == "transpose" and nd >= 1:
        a = (d, draw(st.integers(0, nd - 1)))
    elif m == "permute":
        a = tuple(draw(st.permutations(range(nd))))
    elif m == "getitem" and nd:
        a = (_index(draw, shape),)
    elif m == "select" and nd:
        a = (d, draw(st.integers(-shape[d], shape[d] - 1)))
    elif m == "narrow" and nd:
        start = draw(st.integers(0, shape[d] - 1))
        a = (d, start, draw(st.integers(1, shape[d] - start)))
    elif m == "expand":
        lead = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
        a = lead + tuple(draw(st.integers(1, 3)) if x == 1 else draw(st.sampled_from([x, -1])) for x in shape)
        if math.prod(abs(x) for x in a) > 48:
            a = shape
        a = _shape_args(a)
    elif m == "diagonal" and nd >= 2:
        a = (draw(st.integers(-1, 1)), d, draw(st.sampled_from([x for x in range(nd) if x != d])))
    elif m == "unfold" and nd:
        a = (d, draw(st.integers(1, shape[d])), draw(st.integers(1, 2)))
    elif m == "split" and nd:
        size = draw(st.integers(1, shape[d]))
        a = (size, d, draw(st.integers(0, -(-shape[d] // size) - 1)))
    elif m == "chunk" and nd:
        n = draw(st.integers(1, 3))
        a = (n, d, draw(st.integers(0, len(t.chunk(n, d)) - 1)))
    elif m == "unbind" and nd:
        a = (d, draw(st.integers(0, shape[d] - 1)))
    elif m == "squeeze" and nd:
        a = (d,)
    elif m == "unsqueeze":
        a = (draw(st.integers(0, nd)),)
    elif m == "to":
        a = (draw(st.sampled_from(DTYPES)),)
    elif m in ("t", "detach", "data", "flatten", "contiguous", "clone") and (m != "t" or nd <= 2):
        a = ()
    else:
        return None
    return Op("view", m, src, a, s.name("t"))


INPLACE = ["add_", "sub_", "mul_", "div_", "copy_", "fill_", "zero_", "clamp_", "setitem", "exp_", "mul_self",
           "neg_", "tanh_"]


def gen_inplace(draw, s, dtype):
    dst = _pick(draw, s.tensors())
    shape = tuple(s.ns[dst].shape)
    if draw(st.integers(0, 2)) == 0:
        return gen_inplace_more(draw, s, dst)
    m = draw(st.sampled_from(INPLACE))
    if m in ("add_", "sub_", "mul_"):
        a = (_operand(draw, s, shape),)
    elif m == "div_":
        a = (draw(_SCALARS),)
    elif m == "copy_":
        names = _fits(s, shape)
        if not names:
            return None
        a = (_pick(draw, names),)
    elif m == "fill_":
        a = (draw(_SCALARS),)
    elif m == "clamp_":
        lo = draw(st.sampled_from([-1.0, -0.5, 0.0]))
        a = (lo, lo + draw(st.sampled_from([0.5, 1.0, 2.0])))
    elif m == "setitem":
        if not shape:
            return None
        idx = _index(draw, shape)
        try:
            sub = tuple(s.ns[dst][tuple(slice(*i[1:]) if isinstance(i, tuple) else i for i in idx)].shape)
        except (IndexError, ValueError, RuntimeError):
            sub = None
        a = (idx, _operand(draw, s, sub) if sub is not None else draw(_SCALARS))
    else:
        a = ()
    return Op("inplace", m, dst, a)


BINARY = ["add", "sub", "mul", "div", "matmul", "linear"]
UNARY = ["exp", "tanh", "sigmoid", "neg", "relu", "abs", "sin", "square"]


def gen_math(draw, s, dtype):
    a = _pick(draw, s.tensors())
    t = s.ns[a]
    shape = tuple(t.shape)
    family = draw(st.integers(0, 3))
    if family == 0:
        return Op("math", draw(st.sampled_from(UNARY)), a, (), s.name("t"))
    if family == 1:
        return gen_unary_more(draw, s, a)
    m = draw(st.sampled_from(BINARY))
    if m == "matmul":
        others = s.tensors(lambda u: t.dim() in (1, 2) and u.dim() in (1, 2) and u.shape[0] == shape[-1])
    elif m == "linear":
        others = s.tensors(lambda u: u.dim() == 2 and t.dim() >= 1 and u.shape[1] == shape[-1])
    else:
        def ok(u):
            try:
                np.broadcast_shapes(tuple(u.shape), shape)
                return m != "div" or nonzero(u)  # a divisor keeps away from 0
            except ValueError:
                return False
        others = s.tensors(ok)
        if not others or draw(st.integers(0, 3)) == 0:
            return Op("math", m, a, (draw(_SCALARS),), s.name("t"))
    if not others:
        return None
    return Op("math", m, a, (_pick(draw, others),), s.name("t"))


def gen_reduce(draw, s, dtype):
    a = _pick(draw, s.tensors())
    nd = s.ns[a].dim()
    if draw(st.booleans()):
        return gen_reduce_more(draw, s, a)
    m = draw(st.sampled_from(["sum", "mean"]))
    args = () if not nd or draw(st.booleans()) else (draw(st.integers(0, nd - 1)), draw(st.booleans()))
    return Op("reduce", m, a, args, s.name("t"))


def gen_flag(draw, s, dtype):
    m = draw(st.sampled_from(["requires_grad_", "retain_grad", "grad_none", "detach_", "grad"]))
    if m == "grad":
        names = s.tensors(lambda t: t.is_leaf and t.grad is not None)
        return Op("grad", "grad", _pick(draw, names), (), s.name("t")) if names else None
    return Op("flag", m, _pick(draw, s.tensors()))


def gen_backward(draw, s, dtype):
    names = s.tensors(lambda t: t.requires_grad)
    if len(names) >= 2 and draw(st.integers(0, 2)) == 0:
        # one loss over several tensors: every parameter of an optimizer gets a gradient
        picked = draw(st.lists(st.sampled_from(sorted(names)), min_size=2, max_size=3, unique=True))
        return Op("backward", "sum_backward", None, tuple(picked))
    if not names:
        return None
    leaves = s.tensors(lambda t: t.is_leaf and t.requires_grad)
    if leaves and draw(st.integers(0, 3)) == 0:
        # a gradient that is itself differentiable (create_graph=True), so that later statements (views, writes,
        # math, another backward) run through the second-order formulas; of the square, so it is not constant
        return Op("backward", "grad_graph", _pick(draw, names), (_pick(draw, leaves),), s.name("t"))
    if draw(st.integers(0, 9)) == 0:  # now and then one that torch refuses (no grad_fn)
        names = s.tensors()
    b = _pick(draw, names)
    t = s.ns[b]
    return Op("backward", "backward", b, (tuple(t.shape), str(t.dtype)[6:], draw(st.booleans())))


def gen_opt(draw, s, dtype):
    opts = s.of("opt")
    if opts and draw(st.integers(0, 2)):
        return Op("opt", draw(st.sampled_from(["step", "step", "zero_grad"])), _pick(draw, opts))
    leaves = s.tensors(lambda t: t.is_leaf and t.requires_grad)
    lins = s.of("lin")
    if lins and draw(st.booleans()):
        params = (_pick(draw, lins),)
    elif leaves:
        params = tuple(draw(st.lists(st.sampled_from(sorted(leaves)), min_size=1, max_size=3, unique=True)))
    else:
        return None
    m = draw(st.sampled_from(["SGD", "Adam"]))
    if m == "SGD":
        kw = (("lr", 0.1),) + ((("momentum", 0.9),) if draw(st.booleans()) else ())
    else:
        kw = (("lr", 0.1),)
    return Op("opt", m, None, (params, kw), s.name("opt"))


def gen_module(draw, s, dtype):
    lins = s.of("lin")
    if not lins or draw(st.integers(0, 4)) == 0:
        return gen_linear(draw, s, dtype)
    lin = _pick(draw, lins)
    m = draw(st.sampled_from(["call", "call", "weight", "bias"]))
    if m != "call":
        return Op("param", m, lin, (), s.name("t"))
    fin = s.ns[lin].in_features
    xs = s.tensors(lambda t: t.dim() >= 1 and t.shape[-1] == fin)
    if not xs:
        return None
    return Op("module", "call", lin, (_pick(draw, xs),), s.name("t"))


def gen_numpy(draw, s, dtype):
    arrays = s.of("a")
    m = draw(st.sampled_from(["numpy", "np_setitem", "from_numpy", "tensor"]))
    if m == "numpy":
        return Op("numpy", "numpy", _pick(draw, s.tensors()), (draw(st.integers(0, 4)) > 0,), s.name("a"))
    if not arrays:
        return None
    a = _pick(draw, arrays)
    if m == "np_setitem":
        shape = s.ns[a].shape
        if not shape:
            return None
        return Op("numpy", m, a, (_index(draw, shape), draw(_SCALARS)))
    return Op("numpy", m, a, (), s.name("t"))


_KINDS = [gen_new, gen_view, gen_view, gen_view, gen_inplace, gen_inplace, gen_inplace, gen_math, gen_math,
          gen_indexing,
          gen_reduce, gen_flag, gen_backward, gen_backward, gen_opt, gen_opt, gen_module, gen_module, gen_numpy,
          "no_grad"]
_INNER = [gen_view, gen_inplace, gen_math, gen_reduce, gen_indexing, gen_flag, gen_opt, gen_numpy]


def _one(draw, s, dtype, kinds, no_grad=False, known=True):
    """Draw one statement, run it on the shadow; None when the drawn kind does not fit the state."""
    gen = draw(st.sampled_from(kinds))
    if gen == "no_grad":
        inner = []
        for _ in range(draw(st.integers(1, 3))):
            op = _one(draw, s, dtype, _INNER, True, known)
            if op is not None:
                inner.append(op)
        return Op("no_grad", "no_grad", None, tuple(inner)) if inner else None
    if gen is not gen_new and gen is not gen_module and not s.tensors():
        return None
    try:
        op = gen(draw, s, dtype)
    except Exception:  # noqa: BLE001 - torch refused a shape query (e.g. chunk of a stale multi-output view)
        return None
    if op is None or (known and excluded(s, op, no_grad)):
        return None
    s.track(op, no_grad)
    return op


@st.composite
def programs(draw, max_ops=14, known=True):
    """A random program of up to max_ops statements; with known=True the KNOWN features are left out."""
    s = State()
    dtype = draw(st.sampled_from(DTYPES))
    first = gen_new(draw, s, dtype)
    s.track(first, False)
    ops = [first]
    for _ in range(draw(st.integers(1, max_ops))):
        op = _one(draw, s, dtype if draw(st.integers(0, 4)) else draw(st.sampled_from(DTYPES)), _KINDS,
                  known=known)
        if op is not None:
            ops.append(op)
    return tuple(ops)
