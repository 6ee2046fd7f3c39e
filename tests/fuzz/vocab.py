"""The wider vocabulary: the math, reductions, indexing and in-place ops that training code uses beyond the basic
arithmetic of gen.py.

Each generator draws one statement whose operands fit the shadow run's state; None when nothing fits. Ops with a
restricted domain only take operands whose current values keep away from their poles and kinks (`positive`,
`nonzero`), so the two runs' gradients are comparable. Indices and masks are inline literals
(`x.index_select(0, torch.tensor([1, 0]))`); writes that must not collide (`scatter_`, `index_put_` without
accumulate, advanced-index setitem) draw distinct indices, since torch leaves the winner of a collision undefined.
"""
import numpy as np
import torch
from hypothesis import strategies as st

from .draw import _SCALARS, _fits, _operand, _pick, index_lit, mask_lit, masks, nonzero, positive, values_of
from .program import Kw, Lit, Op

POW_EXPONENTS = [0.5, 2, 3, -1, 2.5]
UNARY_MORE = ["log", "sqrt", "rsqrt", "reciprocal", "softmax", "log_softmax", "F.gelu", "F.silu", "clamp", "pow",
              "pow", "gt", "lt", "masked_fill", "torch.where"]
REDUCE_MORE = ["max", "min", "amax", "prod", "var", "std", "norm", "cumsum", "logsumexp", "argmax"]
INDEXING = ["torch.cat", "torch.stack", "index_select", "gather", "scatter", "scatter_add"]
INPLACE_MORE = ["pow_", "sqrt_", "sigmoid_", "addcmul_", "addcdiv_", "lerp_", "clamp_min_", "masked_fill_",
                "index_add_", "scatter_", "scatter_add_", "index_put_", "setitem_index", "masked_scatter_"]


def _pow_ok(t, e):
    if e in (0.5, 2.5):
        return positive(t)
    return nonzero(t) if e == -1 else True


def _broadcasts(s, shape, pred=lambda u: True):
    def ok(u):
        try:
            np.broadcast_shapes(tuple(u.shape), shape)
            return pred(u)
        except ValueError:
            return False
    return s.tensors(ok)


def _mask(draw, s, shape):
    names = masks(s, shape)
    return _pick(draw, names) if names and draw(st.booleans()) else mask_lit(draw, shape)


def gen_unary_more(draw, s, a):
    t = s.ns[a]
    shape, nd = tuple(t.shape), t.dim()
    m = draw(st.sampled_from(UNARY_MORE))
    if m in ("log", "sqrt", "rsqrt") and not positive(t) or m == "reciprocal" and not nonzero(t):
        return None
    args = ()
    if m in ("softmax", "log_softmax"):
        args = (draw(st.integers(-max(nd, 1), max(nd, 1) - 1)),)
    elif m == "clamp":
        lo = draw(st.sampled_from([-1.0, -0.5, 0.0]))
        hi = lo + draw(st.sampled_from([0.5, 1.0, 2.0]))
        args = draw(st.sampled_from([(lo, hi), (Kw("min", lo),), (Kw("max", hi),)]))
    elif m == "pow":
        if draw(st.integers(0, 2)) == 0:  # a tensor exponent: the base's gradient and the exponent's
            others = _broadcasts(s, shape)
            if not positive(t) or not others:
                return None
            args = (_pick(draw, others),)
        else:
            e = draw(st.sampled_from(POW_EXPONENTS))
            if not _pow_ok(t, e):
                return None
            args = (e,)
    elif m in ("gt", "lt"):  # bool masks for masked_fill, where and setitem
        args = (draw(st.sampled_from([0.0, 0.5, -0.5])),)
    elif m == "masked_fill":
        args = (_mask(draw, s, shape), draw(_SCALARS))
    elif m == "torch.where":
        other = _operand(draw, s, shape) if draw(st.booleans()) else _pick(draw, _broadcasts(s, shape))
        x, y = (a, other) if draw(st.booleans()) else (other, a)
        return Op("math", m, None, (_mask(draw, s, shape), x, y), s.name("t"))
    return Op("math", m, a, args, s.name("t"))


def _slices_ok(t, d, pred):
    """pred over float64 values, reduced along d (all dims when d is None): all true and finite."""
    v = values_of(t)
    if v.size == 0:
        return False
    r = pred(v, None if d is None or v.ndim == 0 else d % v.ndim)
    return bool(np.all(np.isfinite(r)) and np.all(r))


def gen_reduce_more(draw, s, a):
    t = s.ns[a]
    nd = t.dim()
    m = draw(st.sampled_from(REDUCE_MORE))
    d = draw(st.integers(-nd, nd - 1)) if nd else 0
    whole = nd == 0 or draw(st.booleans())
    keep = draw(st.booleans())
    if m in ("max", "min"):
        args = () if whole else (d, keep, draw(st.integers(0, 1)))  # [0] the values, [1] the indices
    elif m in ("amax", "prod", "argmax"):
        args = () if whole else (d, keep)
    elif m in ("var", "std"):
        c = draw(st.integers(0, 1))
        n = t.numel() if whole else (t.shape[d] if nd else 1)
        if n <= c:
            return None
        # std's gradient divides by std: keep away from slices with no spread
        if m == "std" and not _slices_ok(t, None if whole else d, lambda v, ax: v.var(axis=ax) >= 0.01):
            return None
        args = (Kw("correction", c),) if whole else (d, Kw("correction", c), Kw("keepdim", keep))
    elif m == "norm":
        p = draw(st.sampled_from([2, 1]))
        # the norm's gradient divides by the norm (p=2), and sign() has a kink at 0 (p=1)
        if not _slices_ok(t, None if whole else d, lambda v, ax: np.abs(v).min(axis=ax) >= 0.2):
            return None
        args = (p,) if whole else (p, d, keep)
    elif m == "cumsum":
        args = (d,)
    else:  # logsumexp
        args = (d, keep)
    return Op("reduce", m, a, args, s.name("t"))


def _scatter_index(draw, idx_shape, d, size, unique):
    """A Lit of idx_shape whose entries along dim d index a dim of `size` (distinct along d when `unique`)."""
    vals = np.zeros(idx_shape, dtype=np.int64)
    moved = np.moveaxis(vals, d, -1)  # a view: writing a row writes one slice along d
    for pos in np.ndindex(moved.shape[:-1]):
        moved[pos] = index_lit(draw, size, idx_shape[d], unique)
    return Lit(tuple(int(v) for v in vals.ravel()), tuple(idx_shape), "int64")


def _scatter_args(draw, s, dst, add):
    """(dim, index, src) for scatter/scatter_add into `dst`, or None."""
    t = s.ns[dst]
    nd = t.dim()
    if nd == 0 or t.numel() == 0:
        return None
    d = draw(st.integers(0, nd - 1))
    srcs = s.tensors(lambda u: u.dim() == nd and u.numel() > 0 and u.dtype == t.dtype)
    if not add and (not srcs or draw(st.integers(0, 2)) == 0):
        src, src_shape = draw(_SCALARS), None
    elif srcs:
        src = _pick(draw, srcs)
        src_shape = tuple(s.ns[src].shape)
    else:
        return None
    idx_shape = []
    for k in range(nd):
        hi = t.shape[k] if k != d else (t.shape[d] if not add else 4)
        if src_shape is not None:
            hi = min(hi, src_shape[k]) if k != d else min(hi, src_shape[d])
        idx_shape.append(draw(st.integers(1, max(1, hi))))
    return d, _scatter_index(draw, tuple(idx_shape), d, t.shape[d], not add), src


def gen_indexing(draw, s, dtype):
    """cat, stack, index_select, gather and out-of-place scatter."""
    a = _pick(draw, s.tensors())
    t = s.ns[a]
    shape, nd = tuple(t.shape), t.dim()
    m = draw(st.sampled_from(INDEXING))
    if m in ("torch.cat", "torch.stack"):
        if m == "torch.cat" and nd == 0:
            return None
        d = draw(st.integers(0, nd - 1 if m == "torch.cat" else nd))
        same = (lambda u: u.dim() == nd and all(x == y for k, (x, y) in enumerate(zip(u.shape, shape)) if k != d)) \
            if m == "torch.cat" else (lambda u: tuple(u.shape) == shape)
        others = tuple(draw(st.lists(st.sampled_from(sorted(s.tensors(same))), min_size=1, max_size=2)))
        return Op("multi", m, None, ((a,) + others, d), s.name("t"))
    if nd == 0 or t.numel() == 0:
        return None
    d = draw(st.integers(0, nd - 1))
    if m == "index_select":
        n = draw(st.integers(1, 4))
        return Op("math", m, a, (d, Lit(index_lit(draw, shape[d], n), (n,), "int64")), s.name("t"))
    if m == "gather":
        idx_shape = tuple(draw(st.integers(1, shape[k] if k != d else 4)) for k in range(nd))
        return Op("math", m, a, (d, _scatter_index(draw, idx_shape, d, shape[d], False)), s.name("t"))
    got = _scatter_args(draw, s, a, m == "scatter_add")
    return None if got is None else Op("math", m, a, got, s.name("t"))


def gen_inplace_more(draw, s, dst):
    t = s.ns[dst]
    shape, nd = tuple(t.shape), t.dim()
    m = draw(st.sampled_from(INPLACE_MORE))
    fits = _fits(s, shape)
    if m == "pow_":
        e = draw(st.sampled_from(POW_EXPONENTS))
        return Op("inplace", m, dst, (e,)) if _pow_ok(t, e) else None
    if m == "sqrt_":
        return Op("inplace", m, dst) if positive(t) else None
    if m == "sigmoid_":
        return Op("inplace", m, dst)
    if m in ("addcmul_", "addcdiv_"):
        dens = _fits(s, shape, nonzero) if m == "addcdiv_" else fits
        if not fits or not dens:
            return None
        value = (Kw("value", draw(st.sampled_from([0.5, -2.0]))),) if draw(st.booleans()) else ()
        return Op("inplace", m, dst, (_pick(draw, fits), _pick(draw, dens)) + value)
    if m == "lerp_":
        if not fits:
            return None
        w = _pick(draw, fits) if draw(st.integers(0, 2)) == 0 else draw(st.sampled_from([0.25, 0.5, 1.5]))
        return Op("inplace", m, dst, (_pick(draw, fits), w))
    if m == "clamp_min_":
        return Op("inplace", m, dst, (draw(st.sampled_from([-0.5, 0.0, 0.5])),))
    if m == "masked_fill_":
        return Op("inplace", m, dst, (_mask(draw, s, shape), draw(_SCALARS)))
    if m == "masked_scatter_":  # the source's first elements, in order, go where the mask is set
        mask = mask_lit(draw, shape)
        srcs = s.tensors(lambda u: u.numel() >= sum(mask.values) and u.dtype == t.dtype)
        return Op("inplace", m, dst, (mask, _pick(draw, srcs))) if srcs else None
    if nd == 0 or t.numel() == 0:
        return None
    if m in ("scatter_", "scatter_add_"):
        got = _scatter_args(draw, s, dst, m == "scatter_add_")
        return None if got is None else Op("inplace", m, dst, got)
    d = draw(st.integers(0, nd - 1))
    if m == "index_add_":
        srcs = s.tensors(lambda u: u.dim() == nd and all(x == y for k, (x, y) in enumerate(zip(u.shape, shape))
                                                        if k != d))
        if not srcs:
            return None
        src = _pick(draw, srcs)
        n = s.ns[src].shape[d]
        alpha = (Kw("alpha", draw(st.sampled_from([2.0, -0.5]))),) if draw(st.booleans()) else ()
        return Op("inplace", m, dst, (d, Lit(index_lit(draw, shape[d], n), (n,), "int64"), src) + alpha)
    if m == "index_put_":
        acc = draw(st.booleans())
        n = draw(st.integers(1, 3))
        idx = index_lit(draw, shape[0], n, unique=not acc)
        vals = _fits(s, (len(idx),) + shape[1:])
        if not vals:
            return None
        return Op("inplace", m, dst, ((Lit(idx, (len(idx),), "int64"),), _pick(draw, vals), Kw("accumulate", acc)))
    # setitem with an advanced key: distinct int64 indices into dim 0, or a bool mask over the leading dims
    if draw(st.booleans()):
        n = draw(st.integers(1, shape[0]))
        key = Lit(index_lit(draw, shape[0], n, unique=True), (n,), "int64")
    else:
        key = mask_lit(draw, shape[:draw(st.integers(1, nd))])
    try:
        sub = tuple(t[torch.tensor(list(key.values), dtype=getattr(torch, key.dtype)).reshape(key.shape)].shape)
    except (IndexError, RuntimeError):
        return None
    return Op("inplace", "setitem", dst, ((key,), _operand(draw, s, sub)))
