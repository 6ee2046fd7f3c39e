"""Double-backward formulas (see dtrain.autograd._double) for shape, indexing and the layers of dtrain.nn
(convolution, pooling, normalisation, attention, embedding, dropout), padding, fold and unpooling; the shape
ops, gathers and scatters are in dtrain.autograd._double_index, linear algebra and sparse ops in
dtrain.autograd._double_linalg, which use the helpers here.

Two patterns recur. A layer whose backward is a hand-written kernel gets torch's derivative written in tensor
ops (a convolution's gradients are themselves convolutions; a norm's are its closed form over statistics
recomputed from the input). An op whose backward is linear in the incoming gradient and reads nothing
differentiable (pooling, gathers, shape ops) runs that very backward as a `LinearMap` node, whose own backward
is the map's adjoint: its first-order gradient is the ordinary one by construction, and every higher order is
the same pair of maps with their roles swapped.

A formula key is an op's class name, and a few classes share one (batch norm's op and torch.norm's are both
Norm): `_shared_key` registers a formula for its own class and leaves the others theirs."""
import numpy as np

from .graph import Function
from ._double import _FORMULAS, const, formula, input_t, sum_to


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
    return 1.0 / (var_t + const(eps)).sqrt()


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
        shift = const(x_up._data - xhat / rstd)  # the running mean, where xt is the input itself (else zero)
        xh = (x_up - shift) * const(rstd)
        lead = g.ndim - len(pshape)
        red = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(pshape) if s == 1)
        gxh = g_up * w_up.reshape(pshape) if has_w else g_up
        gx = gxh * const(rstd) if want[0] else None
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
    from ..nn.functional._pool import _flat_argmax
    if node.fused is not None:
        return node.saved[1]
    if len(node.saved) == 4:  # returned with the values: saved by the forward
        return node.saved[3]
    return _flat_argmax(node.xp, node.saved[1], node.saved[2], node.geom)


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
    return g * const(node.mask)  # the scaled mask is a constant of the step


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
    s = (qt @ kt.mT) * node.scale + const(fixed)
    if mask_t is not None:
        s = s + mask_t
    # softmax from the scores as tensors; a fully masked row (every score -inf) gives zeros, as the forward
    e = (s - const(_row_max(xp, s._data))).exp()
    tot = e.sum(-1, keepdim=True)
    pt = e / (tot + const((tot._data == 0).astype(p.dtype)))
    keep = node.keep
    pd = pt * const(keep) if keep is not None else pt
    gv = sum_to(pd.mT @ g, v.shape) if nig[2] else None
    gq = gk = gmask = None
    if nig[0] or nig[1] or node.has_mask:
        dp = g @ vt.mT
        if keep is not None:
            dp = dp * const(keep)
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
