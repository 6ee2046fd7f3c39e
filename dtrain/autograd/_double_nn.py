"""Double-backward formulas (see dtrain.autograd._double) for shape, indexing and the layers of dtrain.nn (convolution, pooling, normalisation, attention, embedding, dropout).

Two patterns recur. A layer whose backward is a hand-written kernel gets torch's derivative written in tensor
ops (a convolution's gradients are themselves convolutions; a norm's are its closed form over statistics
recomputed from the input). An op whose backward is linear in the incoming gradient and reads nothing
differentiable (pooling, gathers, shape ops) runs that very backward as a `LinearMap` node, whose own backward
is the map's adjoint: its first-order gradient is the ordinary one by construction, and every higher order is
the same pair of maps with their roles swapped."""
import numpy as np

from .._tensor import _wrap
from .graph import Function
from ._double import _dev_of, formula, input_t, sum_to


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


def _const(array):
    return _wrap(array, _dev_of(array))


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


def _norm_grads(node, g, xt, axes, rstd, var, w_t, pshape, has_b, want):
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


@formula("Norm")
def _norm(node, g):
    xhat, rstd = node.saved[:2]
    axes, own_stats, has_w, has_b = node.cfg
    nig = node.needs_input_grad
    xc = xhat / rstd  # x - mean: the batch's statistics do not see the shift, eval mode's shift is read below
    xt = input_t(node, 0, xc)
    w_t = input_t(node, 1, node.saved[2].reshape(node.wb_shape)) if has_w else None
    pshape = node.pshape if node.pshape is not None else (1,) * g.ndim
    want = (nig[0], has_w and nig[1], has_b and nig[-1])
    if own_stats:
        var = (xc * xc).mean(axis=axes, keepdims=True)
        gx, gw, gb = _norm_grads(node, g, xt, axes, rstd, var, w_t, pshape, has_b, want)
    else:  # eval-mode batch norm: running statistics, constants
        shift = _const(xt._data - xc)  # the running mean, where xt is the input itself (else zero)
        xh = (xt - shift) * _const(rstd)
        lead = g.ndim - len(pshape)
        red = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(pshape) if s == 1)
        gxh = g * w_t.reshape(pshape) if has_w else g
        gx = gxh * _const(rstd) if want[0] else None
        gw = (g * xh).sum(red) if want[1] else None
        gb = g.sum(red) if want[2] else None
    out = (gx,) + ((gw.reshape(node.wb_shape) if gw is not None else None,) if has_w else ()) + \
        ((gb.reshape(node.wb_shape) if gb is not None else None,) if has_b else ())
    return out if len(out) > 1 else gx


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
    gx, gw, gb = _norm_grads(node, g.reshape(-1, size), xt, (1,), rstd.reshape(-1, 1), var, w_t, (size,), has_b,
                             want)
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
    return _mapped(g, lambda a: node.backward(a), read)


@formula("AdaptiveMaxPoolNd")
def _adaptive_max_pool(node, g, _gidx=None):
    planes, _ = _planes(node.x_shape, node.nd)
    read = _take(node.xp, node.saved[-1], planes, tuple(g.shape))
    return _mapped(g, lambda a: node.backward(a), read)


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
    return _mapped(g, lambda a: node.backward(a), pool)


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
    return _mapped(g, lambda a: node.backward(a), pool)


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
    return _mapped(g, lambda a: node.backward(a), rows)


# ---------------------------------------------------------------------------------------------- attention
@formula("Attention")
def _attention(node, g):
    """torch's math attention, differentiated by hand: the probabilities recomputed from q and k as tensors."""
    from . import graph
    q, k, v, p = node.saved
    nig = node.needs_input_grad
    xp = node.xp
    qt, kt, vt = (input_t(node, i, a) for i, a in enumerate((q, k, v)))
    # the node keeps neither the causal flag nor the additive mask, but the probabilities it saved give the
    # scores back up to a constant per row (which softmax ignores): log p - q k^T * scale is the mask, -inf
    # where a key is masked (or its weight underflows: zero either way, in every order of derivative)
    with np.errstate(divide="ignore"):
        fixed = xp.log(p) - xp.matmul(q, k.swapaxes(-1, -2)) * node.scale
    mask_t = None
    if node.has_mask:
        # a float mask that requires grad: its values are not saved, only a leaf's are at hand
        child = node.next_functions[3][0]
        if type(child) is not graph.AccumulateGrad:
            raise NotImplementedError(
                "create_graph=True through scaled_dot_product_attention needs the values of an attn_mask that "
                f"requires grad; dtrain has them only for a leaf mask, and this one (of shape "
                f"{tuple(node.mask_shape)}) comes from {child.name()}")
        mask_t = child.variable
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
    return (gq, gk, gv, gmask) if node.has_mask else (gq, gk, gv)


def _row_max(xp, s):
    m = s.max(axis=-1, keepdims=True)
    m[xp.isneginf(m)] = 0
    return m
