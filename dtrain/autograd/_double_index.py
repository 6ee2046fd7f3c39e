"""Double-backward formulas (see dtrain.autograd._double) for shape ops, gathers and scatters: each runs the
op's own backward as a LinearMap node (see dtrain.autograd._double_nn), its adjoint the way back."""
import numpy as np

from ._double import const, formula, input_t, output_t
from ._double_nn import _NotImplemented, _backward_of, _mapped


# ------------------------------------------------------------------------------------------ shape ops
# Linear in their input: the gradient is the adjoint shape op applied to g, itself an op with a formula.
@formula("Cat")
def _cat(node, g):
    from .. import zeros
    parts = iter(g.split(node.sizes, node.dim))
    return tuple(zeros(0, dtype=g.dtype, device=g.device) if s else next(parts) for s in node.skip)


@formula("Stack")
def _stack(node, g):
    return g.unbind(node.dim)


@formula("Repeat")
def _repeat(node, g):
    reps, shape = node.reps, node.in_shape
    full = (1,) * (len(reps) - len(shape)) + tuple(shape)
    split = [v for r, s in zip(reps, full) for v in (r, s)]
    return g.reshape(split).sum(tuple(range(0, 2 * len(reps), 2))).reshape(shape)


@formula("Flip")
def _flip(node, g):
    return g.flip(node.dims)


@formula("Roll")
def _roll(node, g):
    from .._ops.shape import Roll
    shifts = tuple(-s for s in node.shifts) if isinstance(node.shifts, tuple) else -node.shifts
    return Roll.apply(g, shifts=shifts, dims=node.dims)


@formula("Tri")
def _tri(node, g):
    return g.triu(node.k) if node.upper else g.tril(node.k)


@formula("DiagEmbed")
def _diag_embed(node, g):
    return g.diagonal(node.offset)


@formula("SelectEvenly")
def _select_evenly(node, g):
    x, v = node.saved
    mask = (x == v) | (node.xp.isnan(x) & node.xp.isnan(v)) if x.dtype.kind == "f" else x == v
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * const((mask / mask.sum()).astype(x.dtype))  # which elements share it is piecewise constant


@formula("Einsum")
def _einsum(node, g):
    """The backward of Einsum, each product an einsum of tensors (so again differentiable); a letter repeated in
    an operand (its diagonal) is put back by an einsum with identity matrices."""
    from .. import einsum, eye
    xs = node.saved
    ins, out = node.eq.split("->")
    subs = ins.split(",")
    ts = [input_t(node, i, x) for i, x in enumerate(xs)]
    spare = [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in node.eq]
    grads = []
    for i, x in enumerate(xs):
        if not node.needs_input_grad[i]:
            grads.append(None)
            continue
        others = [s for j, s in enumerate(subs) if j != i]
        target = subs[i]
        avail = set(out) | set("".join(others))
        uniq = "".join(dict.fromkeys(target))
        size = {c: x.shape[target.index(c)] for c in uniq}
        keep = "".join(c for c in uniq if c in avail)
        r = einsum(",".join([out] + others) + "->" + keep, g, *[t for j, t in enumerate(ts) if j != i])
        wide = tuple(k for k, c in enumerate(keep) if size[c] == 1 and r.shape[k] != 1)
        if wide:
            r = r.sum(wide, keepdim=True)
        if keep != uniq:  # letters only in this operand were summed out: broadcast back
            r = r.reshape([size[c] if c in keep else 1 for c in uniq]).expand([size[c] for c in uniq])
        if uniq != target:
            seen, renamed, deltas = set(), "", []
            for c in target:
                if c in seen:
                    deltas.append((c, spare.pop()))
                    renamed += deltas[-1][1]
                else:
                    seen.add(c)
                    renamed += c
            r = einsum(",".join([uniq] + [c + n for c, n in deltas]) + "->" + renamed, r,
                       *[eye(size[c], dtype=g.dtype, device=g.device) for c, _ in deltas])
        grads.append(r)
    return tuple(grads)


# ------------------------------------------------------------------------------- gathers and scatters
# Each input's gradient is a gather or scatter of g by constant indices; the adjoint is the other one.
def _add_at(xp, shape, key, u, dtype):
    from .._ops.index import _scatter_add_at
    out = xp.zeros(shape, dtype)
    _scatter_add_at(xp, out, key, u)
    return out


def _masked(xp, key, region=None):
    """g with zeros where `key` wrote (a diagonal map: its own adjoint)."""
    def f(a):
        out = a.copy()
        (region(out) if region else out)[key] = 0
        return out
    return f


@formula("AdvancedIndex")
def _advanced_index(node, g):
    key = node.key
    return _mapped(g, _backward_of(node), lambda u: u[key])


@formula("Gather")
def _gather(node, g, *_):
    from .._ops.scatter import _fits, _sub
    xp, idx, dim = node.xp, node.idx, node.dim

    def gather(u):
        return xp.take_along_axis(u if idx.shape == u.shape or _fits(idx, u, dim) else u[_sub(idx, u, dim)], idx,
                                  axis=dim)
    return _mapped(g, _backward_of(node, 0), gather), None


@formula("IndexSelect")
def _index_select(node, g, *_):
    xp, idx, dim = node.xp, node.idx, node.dim
    return _mapped(g, _backward_of(node, 0), lambda u: xp.take(u, idx, axis=dim)), None


@formula("Scatter")
def _scatter(node, g, *_):
    if node.reduce not in (None, "add"):
        raise NotImplementedError(f"create_graph=True through scatter(reduce={node.reduce!r}) is not supported")
    from .._ops.scatter import check_src_grad
    xp, full, nig = node.xp, node.full, node.needs_input_grad
    gx = gs = None
    if nig[0]:
        gx = g if node.reduce == "add" else _mapped(g, *(2 * (_masked(xp, full),)))
    if len(nig) > 1 and nig[1]:
        check_src_grad(node)  # (src's gradient has the index's shape, which must be src's)
        gs = _mapped(g, lambda a: a[full], lambda u: _add_at(xp, g.shape, full, u, u.dtype))
    return gx, gs, None


@formula("IndexAdd")
def _index_add(node, g, *_):
    xp, key, alpha = node.xp, node.key, node.alpha
    nig = node.needs_input_grad
    gs = _mapped(g, lambda a: a[key] * alpha, lambda u: _add_at(xp, g.shape, key, u * alpha, u.dtype)) \
        if nig[1] else None
    return g, gs, None


@formula("IndexCopy")
def _index_copy(node, g, *_):
    xp, key, nig = node.xp, node.key, node.needs_input_grad
    gx = _mapped(g, *(2 * (_masked(xp, key),))) if nig[0] else None
    gs = _mapped(g, lambda a: a[key], lambda u: _add_at(xp, g.shape, key, u, u.dtype)) if nig[1] else None
    return gx, gs, None


@formula("ScatterInto")
def _scatter_into(node, g):
    xp, key, nig = node.xp, node.key, node.needs_input_grad
    gx = _mapped(g, *(2 * (_masked(xp, key, node.region),))) if nig[0] else None

    def put(u):
        out = xp.zeros(g.shape, u.dtype)
        node.region(out)[key] = u
        return out
    gs = _mapped(g, lambda a: xp.ascontiguousarray(node.region(a)[key]), put) if nig[1] else None
    return gx, gs


@formula("IndexPut", "SetSlices")
def _index_put(node, g):
    xp, key, vshape, nig = node.xp, node.key, node.vshape, node.needs_input_grad
    gx = gv = None
    if nig[0]:
        gx = g if node.accumulate else _mapped(g, *(2 * (_masked(xp, key),)))
    if nig[1]:
        picked = xp.empty(g.shape, bool)[key].shape

        def spread(u):  # the adjoint of g[key] summed to v's shape: v broadcast over the key, added there
            return _add_at(xp, g.shape, key, xp.broadcast_to(u if len(picked) >= len(vshape) else u.reshape(()),
                                                              picked), u.dtype)
        gv = _mapped(g, _backward_of(node, 1), spread)
    return gx, gv


@formula("ScatterReduce")
def _scatter_reduce(node, g, *_):
    """sum, mean, amax, amin: each input's gradient is g scaled by constants (the counts averaged over, which
    elements hold the extremum), gathered for src; prod's depends on the values (below)."""
    from .._ops.index import _scatter_add_at
    if node.reduce == "prod":
        return _scatter_prod(node, g)
    xp, full, nig = node.xp, node.full, node.needs_input_grad
    x, s, out = node.saved
    dt = g._data.dtype
    scale = chosen = None  # per output element; per src element
    if node.reduce == "mean":
        n = xp.ones(g.shape, dt) if node.include_self else xp.zeros(g.shape, dt)
        _scatter_add_at(xp, n, full, xp.ones(s.shape, dt))
        n[n == 0] = 1
        scale = 1 / n
    elif node.reduce in ("amax", "amin"):  # the backward's own rule: shared evenly by the elements equal to it
        chosen = (s == out[full]).astype(dt)
        count = (x == out).astype(dt)
        _scatter_add_at(xp, count, full, chosen)
        with np.errstate(divide="ignore"):
            scale = 1 / count
    sub = tuple(slice(0, k) for k in node.idx_shape)

    def spread(u):  # the adjoint of gathering (g * scale)[full] * chosen into src's shape
        r = _add_at(xp, g.shape, full, u[sub] * chosen if chosen is not None else u[sub], u.dtype)
        return r * scale if scale is not None else r
    # x's gradient is g times a constant (zero where include_self=False leaves the slot out)
    gx = g * const(node.backward(xp.ones(g.shape, dt))[0]) if nig[0] else None
    gs = _mapped(g, _backward_of(node, 1), spread) if nig[1] else None
    return gx, gs, None


def _scatter_dim(node):
    """The dim scattered along and the index, read off the index grids (`_full_index`): every grid but the
    index's is an arange along its own dim. Where the index is such a grid as well, every reading is the same
    scatter."""
    xp, full, shape = node.xp, node.full, node.idx_shape
    for d, grid in enumerate(full):
        along = tuple(n if k == d else 1 for k, n in enumerate(shape))
        if grid.shape != along or not bool((grid == xp.arange(shape[d]).reshape(along)).all()):
            return d, xp.broadcast_to(grid, shape)
    return 0, xp.broadcast_to(full[0], shape)


def _scatter_prod(node, g):
    """torch's formula (scatter_reduce_backward): the product of the others, exact where one factor is zero,
    as tensor ops (masked_fill and where as products with constant masks)."""
    from .._ops.index import _scatter_add_at
    from ..nn.functional import pad
    xp, full, nig, inc = node.xp, node.full, node.needs_input_grad, node.include_self
    x, s, out = node.saved
    dt = g._data.dtype
    dim, idx = _scatter_dim(node)
    idx_t = const(xp.ascontiguousarray(idx))
    sub = tuple(slice(0, k) for k in node.idx_shape)
    src = xp.zeros(node.src_shape, s.dtype)
    src[sub] = s  # src's entries past the index's shape take no part: any value does
    xt, st = input_t(node, 0, x), input_t(node, 1, src)[sub]
    gx = gs = None
    if nig[0]:
        masked = xt + const((x == 0).astype(dt))  # self.masked_fill(self == 0, 1)
        gx = g * masked.scatter_reduce(dim, idx_t, st, "prod", include_self=inc) / masked
        if not inc:
            keep = xp.ones(g.shape, dt)
            keep[full] = 0
            gx = gx * const(keep)
    if nig[1]:
        zero = s == 0
        zeros_in = xp.zeros(x.shape, dt)
        _scatter_add_at(xp, zeros_in, full, zero.astype(dt))
        zeros_in = zeros_in[full]
        single = (zero & (zeros_in == 1)).astype(dt)
        a = (g * xt.scatter_reduce(dim, idx_t, st * const(1 - single) + const(single), "prod",
                                   include_self=inc)).gather(dim, idx_t)
        b = (g * output_t(node, out)).gather(dim, idx_t) / (st * const(1 - zero.astype(dt)) +
                                                            const(zero.astype(dt)))
        gs = a * const(single) + b * const(1 - single)
        if bool((zeros_in > 1).any()):  # torch's gradient is then an Error node
            gs = _NotImplemented.apply(g, input_t(node, 1, src), grad=gs._data, message=(
                "scatter_reduce(): Double backward is unsupported for src when >1 zeros in src are scattered to "
                "the same position in self"))
        if tuple(gs.shape) != tuple(node.src_shape):
            gs = pad(gs, [v for n, k in zip(reversed(node.src_shape), reversed(node.idx_shape)) for v in (0, n - k)])
    return gx, gs, None