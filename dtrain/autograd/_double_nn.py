"""Double-backward formulas (see dtrain.autograd._double) for shape, indexing and the layers of dtrain.nn
(convolution, pooling, normalisation, attention, embedding, dropout), for a few of linear algebra and for the
sparse COO ops.

Two patterns recur. A layer whose backward is a hand-written kernel gets torch's derivative written in tensor
ops (a convolution's gradients are themselves convolutions; a norm's are its closed form over statistics
recomputed from the input). An op whose backward is linear in the incoming gradient and reads nothing
differentiable (pooling, gathers, shape ops) runs that very backward as a `LinearMap` node, whose own backward
is the map's adjoint: its first-order gradient is the ordinary one by construction, and every higher order is
the same pair of maps with their roles swapped.

A formula key is an op's class name, and a few classes share one (batch norm's op and torch.norm's are both
Norm): `_shared_key` registers a formula for its own class and leaves the others theirs."""
import numpy as np

from .._tensor import _wrap
from .graph import Function
from ._double import _FORMULAS, _dev_of, formula, input_t, output_t, sum_to


class _LinearMap(Function):
    """y = f(g) for a linear map given as two array functions, f and its adjoint (the backward)."""

    def forward(ctx, g, f=None, adjoint=None):
        ctx.maps = (f, adjoint)
        return f(g)

    def backward(ctx, gg):
        return ctx.maps[1](gg)


@formula("LinearMap")
def _linear_map(node, gg):
    f, adjoint = node.maps
    return _LinearMap.apply(gg, f=adjoint, adjoint=f)


def _mapped(g, f, adjoint):
    return _LinearMap.apply(g, f=f, adjoint=adjoint)


def _backward_of(node, i=None):
    """node's own array backward (its gradient for input i) as a function of the incoming gradient alone. A
    map made here may run again long after this pass, when the node's saved arrays are packed by
    saved-tensor hooks or freed by a backward without retain_graph: it keeps the arrays it read now."""
    saved = node.saved

    def backward(a):
        now, node.saved = node.saved, saved
        try:
            r = node.backward(a)
        finally:
            node.saved = now
        return r if i is None else r[i]
    return backward


def _const(array):
    return _wrap(array, _dev_of(array))


def _shared_key(name, op_class):
    """Register a formula under `name` for nodes of `op_class` only: another op class of that name (its key is
    its class name) keeps the formula registered before this module's, or none."""
    other = _FORMULAS.get(name)  # _double imports the other family's module first

    def deco(mine):
        @formula(name)
        def dispatch(node, *grads):
            if isinstance(node, op_class()):
                return mine(node, *grads)
            if other is None:
                raise NotImplementedError(f"create_graph=True needs the derivative of {node.name()}'s backward, "
                                          "which dtrain does not have")
            return other(node, *grads)
        return mine
    return deco


def _norm_class():
    from ..nn.functional._norm import _Norm
    return _Norm


def _im2col_class():
    from ..nn.functional._conv import Unfold
    return Unfold


# ------------------------------------------------------------------------------------------- convolutions
# The input gradient of a convolution is a transposed convolution of the incoming gradient with the weight,
# its weight gradient a convolution of the input with the incoming gradient as the kernel; and the other way
# round for a transposed convolution. Written with the two ops themselves, each formula's result is
# differentiable again through the other's.
def _conv_geometry(node):
    if len(node.geom) == 3:  # the direct kernel's path: 2-D, one group
        stride, pads, dilation = node.geom
        return stride, pads, dilation, 1
    _, _, _, stride, pads, dilation, groups, _ = node.geom
    return stride, pads, dilation, groups


def _conv_weight_grad(inp, gout, k, stride, pads, dilation, groups):
    """The gradient of conv(inp, w) (w of spatial size k) with respect to w, for an incoming gradient `gout`:
    a convolution of inp, with channels and batch swapped, by gout as the kernel (stride and dilation swap
    too), each group of channels against its own group of outputs."""
    from ..nn.functional._conv import ConvNd
    n, c = inp.shape[:2]
    sp = tuple(inp.shape[2:])
    nd = len(sp)
    cg = c // groups
    # channel (g, n) of x2 is channel g*cg + c' of sample n: groups=G pairs it with gout's group g
    x2 = inp.reshape((n, groups, cg) + sp).permute(2, 1, 0, *range(3, 3 + nd)).reshape((cg, groups * n) + sp)
    r = ConvNd.apply(x2, gout.transpose(0, 1), stride=tuple(dilation), pads=tuple(pads), dilation=tuple(stride),
                     groups=groups)  # (cg, O, *k'), k' >= k: the trailing positions no window reaches
    r = r[(slice(None), slice(None)) + tuple(slice(0, kk) for kk in k)]
    return r.transpose(0, 1)


@formula("ConvNd")
def _conv(node, g):
    from ..nn.functional._conv import ConvTransposeNd
    x, w = node.saved[:2]  # the inputs, kept in front of the column matrices
    stride, pads, dilation, groups = _conv_geometry(node)
    nig = node.needs_input_grad
    nd = x.ndim - 2
    k, size, out = w.shape[2:], x.shape[2:], tuple(g.shape[2:])
    gx = gw = gb = None
    if nig[0]:
        padded = [sz + pads[2 * i] + pads[2 * i + 1] for i, sz in enumerate(size)]
        # the rows and columns of the padded input that no window reaches (stride > 1) get output_padding
        extra = tuple(padded[i] - ((out[i] - 1) * stride[i] + dilation[i] * (k[i] - 1) + 1) for i in range(nd))
        full = ConvTransposeNd.apply(g, input_t(node, 1, w), stride=tuple(stride), padding=(0,) * nd,
                                     output_padding=extra, dilation=tuple(dilation), groups=groups)
        gx = full[(slice(None), slice(None)) + tuple(slice(pads[2 * i], pads[2 * i] + sz) for i, sz in enumerate(size))]
    if nig[1]:
        gw = _conv_weight_grad(input_t(node, 0, x), g, k, stride, pads, dilation, groups)
    if len(nig) > 2 and nig[2]:
        gb = g.sum((0,) + tuple(range(2, nd + 2)))
    return gx, gw, gb


@formula("ConvTransposeNd")
def _conv_transpose(node, g):
    from ..nn.functional._conv import ConvNd
    x, w = node.saved[:2]
    x_shape, full, stride, padding, dilation, groups = node.geom
    nig = node.needs_input_grad
    nd = len(full)
    pads = tuple(v for p in padding for v in (p, p))
    gx = gw = gb = None
    if nig[0]:
        gx = ConvNd.apply(g, input_t(node, 1, w), stride=tuple(stride), pads=pads, dilation=tuple(dilation),
                          groups=groups)
        if tuple(gx.shape[2:]) != tuple(x_shape[2:]):  # an output_padding of a stride or more (below dilation)
            gx = gx[(slice(None), slice(None)) + tuple(slice(0, s) for s in x_shape[2:])]
    if nig[1]:
        gw = _conv_weight_grad(g, input_t(node, 0, x), w.shape[2:], stride, pads, dilation, groups)
    if len(nig) > 2 and nig[2]:
        gb = g.sum((0,) + tuple(range(2, nd + 2)))
    return gx, gw, gb


# ------------------------------------------------------------------------------------------ normalisation
# The norms save the normalized input and 1/std, not the input's statistics or eps. Their closed-form
# gradient is rebuilt over statistics recomputed from the input tensor, and eps as the per-row constant that
# turns the recomputed variance back into the saved 1/std (1/rstd^2 - var: exact to rounding).
def _rstd_of(var_t, rstd, var):
    """1/sqrt(var_t + eps) as a function of the tensor var_t, eps recovered from the saved rstd and the
    array var it was computed from."""
    eps = (1.0 / (rstd.astype(np.float64) ** 2) - var).astype(var_t._data.dtype)
    return 1.0 / (var_t + _const(eps)).sqrt()


def _norm_grads(g, xt, axes, rstd, var, w_t, pshape, want):
    """gx, gw, gb of y = xhat * w + b, xhat = (x - mean) * rstd over `axes`, statistics of x itself."""
    mean = xt.mean(axes, keepdim=True)
    xc = xt - mean
    rs = _rstd_of((xc * xc).mean(axes, keepdim=True), rstd, var)
    xh = xc * rs
    lead = g.ndim - len(pshape)
    red = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(pshape) if s == 1)
    gxh = g * w_t.reshape(pshape) if w_t is not None else g
    gx = gw = gb = None
    if want[0]:
        gx = rs * (gxh - gxh.mean(axes, keepdim=True) - xh * (gxh * xh).mean(axes, keepdim=True))
    if want[1]:
        gw = (g * xh).sum(red)
    if want[2]:
        gb = g.sum(red)
    return gx, gw, gb


@_shared_key("Norm", _norm_class)  # batch, layer, group and instance norm's op; torch.norm's is Norm too
def _norm(node, g):
    from .. import _dtype
    xhat, rstd = node.saved[:2]
    axes, own_stats, has_w, has_b = node.cfg
    nig = node.needs_input_grad
    dt = g._data.dtype
    # x - mean: the batch's statistics do not see the shift, eval mode's shift is read below
    xt = input_t(node, 0, (xhat / rstd).astype(dt, copy=False))
    w_t = input_t(node, 1, node.saved[2].reshape(node.wb_shape).astype(dt, copy=False)) if has_w else None
    # a half-precision input is normalized in float32 (`widened`), and so is its gradient, as torch's kernels
    wide = _dtype.from_numpy_dtype(xhat.dtype)
    up = (lambda t: t.to(wide)) if xhat.dtype != dt else (lambda t: t)
    x_up, g_up = up(xt), up(g)
    w_up = up(w_t) if has_w else None
    pshape = node.pshape if node.pshape is not None else (1,) * g.ndim
    want = (nig[0], has_w and nig[1], has_b and nig[-1])
    if own_stats:
        var = ((xhat / rstd).astype(np.float64) ** 2).mean(axis=axes, keepdims=True)
        gx, gw, gb = _norm_grads(g_up, x_up, axes, rstd, var, w_up, pshape, want)
    else:  # eval-mode batch norm: running statistics, constants
        shift = _const(x_up._data - xhat / rstd)  # the running mean, where xt is the input itself (else zero)
        xh = (x_up - shift) * _const(rstd)
        lead = g.ndim - len(pshape)
        red = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(pshape) if s == 1)
        gxh = g_up * w_up.reshape(pshape) if has_w else g_up
        gx = gxh * _const(rstd) if want[0] else None
        gw = (g_up * xh).sum(red) if want[1] else None
        gb = g_up.sum(red) if want[2] else None
    down = (lambda t: None if t is None else t.to(_dtype.from_numpy_dtype(dt))) if xhat.dtype != dt else \
        (lambda t: t)
    out = (down(gx),) + ((down(gw.reshape(node.wb_shape) if gw is not None else None),) if has_w else ()) + \
        ((down(gb.reshape(node.wb_shape) if gb is not None else None),) if has_b else ())
    return out if len(out) > 1 else out[0]


@formula("FusedLayerNorm")
def _fused_layer_norm(node, g):
    xr, mean, rstd = node.saved[:3]
    shape, wb_shape, has_w, has_b = node.cfg
    nig = node.needs_input_grad
    size = xr.shape[1]
    xt = input_t(node, 0, xr.reshape(shape)).reshape(-1, size)
    w_t = input_t(node, 1, node.saved[3].reshape(wb_shape)).reshape(-1) if has_w else None
    xc = xr.astype(np.float64) - mean.reshape(-1, 1)
    var = (xc * xc).mean(axis=1, keepdims=True)
    want = (nig[0], has_w and nig[1], has_b and nig[-1])
    gx, gw, gb = _norm_grads(g.reshape(-1, size), xt, (1,), rstd.reshape(-1, 1), var, w_t, (size,), want)
    out = ((gx.reshape(shape) if gx is not None else None,)
           + ((gw.reshape(wb_shape) if gw is not None else None,) if has_w else ())
           + ((gb.reshape(wb_shape) if gb is not None else None,) if has_b else ()))
    return out if len(out) > 1 else out[0]


@formula("FusedRMSNorm")
def _fused_rms_norm(node, g):
    xr, rstd = node.saved[:2]
    shape, w_shape = node.cfg
    nig = node.needs_input_grad
    size = xr.shape[1]
    xt = input_t(node, 0, xr.reshape(shape)).reshape(-1, size)
    x64 = xr.astype(np.float64)
    rs = _rstd_of((xt * xt).mean(1, keepdim=True), rstd.reshape(-1, 1), (x64 * x64).mean(axis=1, keepdims=True))
    xh = xt * rs
    g2 = g.reshape(-1, size)
    w_t = input_t(node, 1, node.saved[2]).reshape(-1) if w_shape is not None else None
    gxh = g2 * w_t if w_t is not None else g2
    gx = (rs * (gxh - xh * (gxh * xh).mean(1, keepdim=True))).reshape(shape) if nig[0] else None
    if w_t is None:
        return gx
    gw = (g2 * xh).sum(0).reshape(w_shape) if nig[1] else None
    return gx, gw


# -------------------------------------------------------------------------- pooling, dropout, embedding
# Their backwards are linear in the incoming gradient and read only constants (window positions, argmax
# indices, masks): the backward itself runs as a LinearMap, beside its adjoint.
def _planes(shape, nd):
    spatial = int(np.prod(shape[-nd:]))
    return int(np.prod(shape)) // spatial, spatial


def _max_pool_flat(node):
    """The flat (per-plane) input index of each window's maximum, as the forward picked it."""
    from ..nn.functional._pool import _first, _first_max
    if node.fused is not None:
        return node.saved[1]
    if len(node.saved) == 4:  # returned with the values: saved by the forward
        return node.saved[3]
    xp = node.xp
    a, y = node.saved[1:3]
    x_shape, k, s, p, d, out = node.geom
    nd, size = len(k), x_shape[2:]
    arg = xp.zeros(y.shape, dtype=xp.int64)
    for i, (off, hit) in enumerate(_first_max(xp, a, y, k, s, d, out, p, size)):
        if i:
            arg[hit] = i
    arg = arg.transpose(_first(nd))
    flat = 0
    for i in range(nd):
        start = (xp.arange(out[i]) * s[i] - p[i]).reshape((-1,) + (1,) * (nd - 1 - i))
        flat = flat * size[i] + start + (arg // int(np.prod(k[i + 1:])) % k[i]) * d[i]
    return flat


def _take(xp, flat, planes, out_shape):
    return lambda u: xp.take_along_axis(xp.ascontiguousarray(u).reshape(planes, -1), xp.ascontiguousarray(
        xp.broadcast_to(flat, out_shape)).reshape(planes, -1), 1).reshape(out_shape)


@formula("MaxPoolNd")
def _max_pool(node, g, _gidx=None):
    x_shape = node.saved[0].shape
    nd = g.ndim - 2
    planes, _ = _planes(x_shape, nd)
    read = _take(node.xp, _max_pool_flat(node), planes, tuple(g.shape))
    return _mapped(g, _backward_of(node), read)


@formula("AdaptiveMaxPoolNd")
def _adaptive_max_pool(node, g, _gidx=None):
    planes, _ = _planes(node.x_shape, node.nd)
    read = _take(node.xp, node.saved[-1], planes, tuple(g.shape))
    return _mapped(g, _backward_of(node), read)


@formula("AvgPoolNd")
def _avg_pool(node, g):
    from ..nn.functional._conv import _first, _offsets
    from ..nn.functional._pool import _padded, _window
    x_shape, _, k, s, p, out = node.geom
    d = (1,) * len(k)
    xp = node.xp

    def pool(u):  # the forward on u: window sums over the zero-padded u, over the same divisors
        a = _padded(xp, u, k, s, p, d, out, 0)
        y = sum(_window(a, off, s, d, out) for off in _offsets(k)) / node.div
        return xp.ascontiguousarray(y.transpose(_first(len(k))))
    return _mapped(g, _backward_of(node), pool)


@formula("AdaptiveAvgPoolNd")
def _adaptive_avg_pool(node, g):
    from ..nn.functional._pool import _adaptive_bounds
    xp = node.xp
    x_shape, out = node.x_shape, node.out

    def pool(u):  # the forward on u
        y = u
        for i, o in enumerate(out):
            dd = u.ndim - len(out) + i
            y = xp.concatenate([y[(slice(None),) * dd + (slice(a, b),)].mean(dd, keepdims=True)
                                for a, b in _adaptive_bounds(x_shape[dd], o)], dd)
        return y
    return _mapped(g, _backward_of(node), pool)


@formula("Dropout")
def _dropout(node, g):
    return g * _const(node.mask)  # the scaled mask is a constant of the step


@formula("Embedding")
def _embedding(node, g):
    idx, pad = node.idx, node.padding_idx

    def rows(u):  # the adjoint of the scatter-add: the rows read back, none for the padding row
        r = u[idx]
        if pad is not None:
            r[idx == pad] = 0
        return r
    return _mapped(g, _backward_of(node), rows)


# ---------------------------------------------------------------------------------------------- attention
@formula("Attention")
def _attention(node, g):
    """torch's math attention, differentiated by hand: the probabilities recomputed from q and k as tensors."""
    from .. import _dtype
    q, k, v, p = node.saved
    nig = node.needs_input_grad
    xp = node.xp
    # half-precision inputs are saved as their float32 copies (`widened`): the formula runs in float32 too, on
    # tensors of the inputs' own dtype
    dt = g._data.dtype
    qt, kt, vt = (input_t(node, i, a.astype(dt, copy=False)) for i, a in enumerate((q, k, v)))
    if p.dtype != dt:
        wide = _dtype.from_numpy_dtype(p.dtype)
        qt, kt, vt, g = (t.to(wide) for t in (qt, kt, vt, g))
    # the node keeps neither the causal flag nor the additive mask, but the probabilities it saved give the
    # scores back up to a constant per row (which softmax ignores): log p - q k^T * scale is the mask, -inf
    # where a key is masked (or its weight underflows: zero either way, in every order of derivative)
    with np.errstate(divide="ignore"):
        fixed = xp.log(p) - xp.matmul(q, k.swapaxes(-1, -2)) * node.scale
    mask_t = None
    if node.has_mask:
        # a float mask that requires grad: the scores are linear in it, so the tensor on its edge needs the
        # mask's values only where it is a leaf (then it is the leaf itself); elsewhere zeros stand in for them
        # and the saved probabilities carry the whole of the scores
        mask_t = input_t(node, 3, xp.zeros(node.mask_shape, dt))
        if mask_t.dtype != qt.dtype:
            mask_t = mask_t.to(qt.dtype)
        fixed = fixed - mask_t._data
    s = (qt @ kt.mT) * node.scale + _const(fixed)
    if mask_t is not None:
        s = s + mask_t
    # softmax from the scores as tensors; a fully masked row (every score -inf) gives zeros, as the forward
    e = (s - _const(_row_max(xp, s._data))).exp()
    tot = e.sum(-1, keepdim=True)
    pt = e / (tot + _const((tot._data == 0).astype(p.dtype)))
    keep = node.keep
    pd = pt * _const(keep) if keep is not None else pt
    gv = sum_to(pd.mT @ g, v.shape) if nig[2] else None
    gq = gk = gmask = None
    if nig[0] or nig[1] or node.has_mask:
        dp = g @ vt.mT
        if keep is not None:
            dp = dp * _const(keep)
        ds = pt * (dp - (dp * pt).sum(-1, keepdim=True))
        gmask = sum_to(ds, node.mask_shape) if node.has_mask and nig[3] else None
        ds = ds * node.scale
        gq = sum_to(ds @ kt, q.shape) if nig[0] else None
        gk = sum_to(ds.mT @ qt, k.shape) if nig[1] else None
    out = (gq, gk, gv, gmask) if node.has_mask else (gq, gk, gv)
    if p.dtype != dt:
        out = tuple(None if t is None else t.to(_dtype.from_numpy_dtype(dt)) for t in out)
    return out


def _row_max(xp, s):
    m = s.max(axis=-1, keepdims=True)
    m[xp.isneginf(m)] = 0
    return m


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
        return g * _const((mask / mask.sum()).astype(x.dtype))  # which elements share it is piecewise constant


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


# --------------------------------------------------------------------------------- padding, fold, unpool
@formula("ConstantPad")
def _constant_pad(node, g):
    xp = node.xp

    def pad(u):  # the forward with 0 as the value: the adjoint of reading the input's region back
        out = xp.zeros(g.shape, u.dtype)
        out[node.dst] = u[node.src]
        return out
    return _mapped(g, _backward_of(node), pad)


@formula("IndexPad")
def _index_pad(node, g):
    xp = node.xp

    def pad(u):  # the forward: each output position reads one input position per dim
        for d, idx in node.maps:
            u = xp.take(u, idx, axis=d)
        return u
    return _mapped(g, _backward_of(node), pad)


@formula("Fold")
def _fold(node, g):
    from ..nn.functional._conv import _im2col, _pad4
    xp = node.xp
    x_shape, k, d, p, s = node.geom
    out = tuple(g.shape[2:])
    n, ck, ho, wo = x_shape
    c = ck // (k[0] * k[1])

    def fold(u):  # Fold's forward: columns summed back into planes
        from ..nn.functional._conv import _col2im
        cols = xp.ascontiguousarray(u.transpose(1, 0, 2, 3)).reshape(ck, -1)
        buf = _col2im(xp, cols, (c, n, out[0] + 2 * p[0], out[1] + 2 * p[1]), k, s, d, (ho, wo))
        return xp.ascontiguousarray(buf[:, :, p[0]:p[0] + out[0], p[1]:p[1] + out[1]].transpose(1, 0, 2, 3))

    def unfold(a):  # its backward
        cols = _im2col(xp, _pad4(xp, a, (p[0], p[0], p[1], p[1]), order=(1, 0)), k, s, d, (ho, wo))
        return xp.ascontiguousarray(cols.reshape(ck, n, ho, wo).transpose(1, 0, 2, 3))
    return _mapped(g, unfold, fold)


@_shared_key("Unfold", _im2col_class)  # F.unfold's op (Im2ColBackward0); Tensor.unfold's is Unfold too
def _im2col(node, g):
    from ..nn.functional._conv import _im2col as im2col, _pad4
    xp = node.xp
    x_shape, pad_shape, k, stride, dil, padding, out_hw = node.geom
    n = x_shape[0]

    def unfold(u):  # F.unfold's forward
        cols = im2col(xp, _pad4(xp, u, (padding[0], padding[0], padding[1], padding[1]), order=(1, 0)), k, stride,
                      dil, out_hw)
        return xp.ascontiguousarray(cols.reshape(cols.shape[0], n, -1).transpose(1, 0, 2))
    return _mapped(g, _backward_of(node), unfold)


@formula("MaxUnpool")
def _max_unpool(node, g):
    from .._ops.index import _scatter_add_at
    xp = node.xp
    rows, flat, shape = node.spots

    def unpool(u):  # the exact adjoint of reading g back: an add at the (maybe repeated) places
        out = xp.zeros((rows.shape[0], g.shape[-1]), u.dtype)
        _scatter_add_at(xp, out, (rows, flat), u.reshape(rows.shape[0], -1))
        return out.reshape(g.shape)
    return _mapped(g, _backward_of(node), unpool)


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
    xp, full, nig = node.xp, node.full, node.needs_input_grad
    sub = tuple(slice(0, n) for n in node.idx.shape)
    gx = gs = None
    if nig[0]:
        gx = g if node.reduce == "add" else _mapped(g, *(2 * (_masked(xp, full),)))

    def take(a):
        out = xp.zeros(node.src_shape, a.dtype)
        out[sub] = a[full]
        return out
    if len(nig) > 1 and nig[1]:
        gs = _mapped(g, take, lambda u: _add_at(xp, g.shape, full, u[sub], u.dtype))
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
    gx = g * _const(node.backward(xp.ones(g.shape, dt))[0]) if nig[0] else None
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
    idx_t = _const(xp.ascontiguousarray(idx))
    sub = tuple(slice(0, k) for k in node.idx_shape)
    src = xp.zeros(node.src_shape, s.dtype)
    src[sub] = s  # src's entries past the index's shape take no part: any value does
    xt, st = input_t(node, 0, x), input_t(node, 1, src)[sub]
    gx = gs = None
    if nig[0]:
        masked = xt + _const((x == 0).astype(dt))  # self.masked_fill(self == 0, 1)
        gx = g * masked.scatter_reduce(dim, idx_t, st, "prod", include_self=inc) / masked
        if not inc:
            keep = xp.ones(g.shape, dt)
            keep[full] = 0
            gx = gx * _const(keep)
    if nig[1]:
        zero = s == 0
        zeros_in = xp.zeros(x.shape, dt)
        _scatter_add_at(xp, zeros_in, full, zero.astype(dt))
        zeros_in = zeros_in[full]
        single = (zero & (zeros_in == 1)).astype(dt)
        a = (g * xt.scatter_reduce(dim, idx_t, st * _const(1 - single) + _const(single), "prod",
                                   include_self=inc)).gather(dim, idx_t)
        b = (g * output_t(node, out)).gather(dim, idx_t) / (st * _const(1 - zero.astype(dt)) +
                                                            _const(zero.astype(dt)))
        gs = a * _const(single) + b * _const(1 - single)
        if bool((zeros_in > 1).any()):  # torch's gradient is then an Error node
            gs = _NotImplemented.apply(g, input_t(node, 1, src), grad=gs._data, message=(
                "scatter_reduce(): Double backward is unsupported for src when >1 zeros in src are scattered to "
                "the same position in self"))
        if tuple(gs.shape) != tuple(node.src_shape):
            gs = pad(gs, [v for n, k in zip(reversed(node.src_shape), reversed(node.idx_shape)) for v in (0, n - k)])
    return gx, gs, None
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
    rows, cols = (_const(i) for i in c.indices)
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


# ------------------------------------------------------------------------ ops torch differentiates once only
class _NotImplemented(Function):
    """The first-order gradient of an op whose backward torch does not differentiate, computed by the op's own
    backward and connected to the op's input, as torch's: differentiating it raises torch's error."""
    _grad_fn_name = "NotImplemented"  # torch's node for such a gradient

    def forward(ctx, g, x, grad=None, message=None):
        ctx.message = message
        return grad

    def backward(ctx, gg):
        raise RuntimeError(ctx.message)


@formula("NotImplemented")
def _not_implemented(node, gg):
    raise RuntimeError(node.message)


@formula("CTCLoss")
def _ctc_loss(node, g):
    (lp,) = node.saved[:1]
    return _NotImplemented.apply(g, input_t(node, 0, lp), grad=_backward_of(node)(g._data),
                                 message="derivative for aten::_ctc_loss_backward is not implemented")
