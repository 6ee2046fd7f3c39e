"""The array-level twin of each fused CUDA kernel, registered under the kernel's name: it takes the kernel's
arguments as `_kernels` passes them (C-contiguous arrays, NumPy scalars) and writes the same outputs with the array
module's operations, computing in the kernel's type (the scalars' type). The emulated devices run these in place
of the kernels; on a real GPU they are what the kernels are checked against (`_kernels.CHECK`)."""
from .. import _backend
from .._emulate import reference


def _xp():
    return _backend.cupy()


def _erf(x):
    xp = _xp()
    return _backend.kernels[xp].special("erf")(x)


# ---- GELU -------------------------------------------------------------------------------------------------------
_SQRT1_2, _INV_SQRT_2PI, _K = 0.70710678118654752440, 0.39894228040143267794, 0.79788456080286535588


@reference("dtrain_gelu_forward")
def _gelu_forward(x, y, n):
    y[...] = x * 0.5 * (1 + _erf(x * x.dtype.type(_SQRT1_2)))


@reference("dtrain_gelu_backward")
def _gelu_backward(g, x, gx, n):
    t = x.dtype.type
    cdf = t(0.5) * (1 + _erf(x * t(_SQRT1_2)))
    pdf = _xp().exp(t(-0.5) * x * x) * t(_INV_SQRT_2PI)
    gx[...] = g * (cdf + x * pdf)


@reference("dtrain_gelu_tanh_forward")
def _gelu_tanh_forward(x, y, n):
    t = x.dtype.type
    y[...] = t(0.5) * x * (1 + _xp().tanh(t(_K) * (x + t(0.044715) * x * x * x)))


@reference("dtrain_gelu_tanh_backward")
def _gelu_tanh_backward(g, x, gx, n):
    t = x.dtype.type
    th = _xp().tanh(t(_K) * (x + t(0.044715) * x * x * x))
    gx[...] = g * (t(0.5) * (1 + th) + t(0.5) * x * (1 - th * th) * t(_K) * (1 + t(3 * 0.044715) * x * x))


# ---- softmax and log_softmax ------------------------------------------------------------------------------------
def _log_softmax(x):
    xp = _xp()
    m = x.max(axis=1, keepdims=True)
    return x - (m + xp.log(xp.exp(x - m).sum(axis=1, keepdims=True)))


@reference("dtrain_softmax_forward")
def _softmax_forward(x, y, rows, c):
    xp = _xp()
    e = xp.exp(x - x.max(axis=1, keepdims=True))
    y[...] = e * (1 / e.sum(axis=1, keepdims=True))


@reference("dtrain_log_softmax_forward")
def _log_softmax_forward(x, z, rows, c):
    z[...] = _log_softmax(x)


@reference("dtrain_softmax_backward")
def _softmax_backward(g, y, gx, rows, c):
    gx[...] = y * (g - (g * y).sum(axis=1, keepdims=True))


@reference("dtrain_log_softmax_backward")
def _log_softmax_backward(g, z, gx, rows, c):
    gx[...] = g - _xp().exp(z) * g.sum(axis=1, keepdims=True)


# ---- layer norm and RMS norm ------------------------------------------------------------------------------------
@reference("dtrain_layer_norm_forward")
def _layer_norm_forward(x, w, b, y, mean, rstd, rows, c, eps, has_w, has_b):
    xp = _xp()
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    rs = 1 / xp.sqrt((xc * xc).mean(axis=1, keepdims=True) + eps)
    v = xc * rs
    if has_w:
        v = v * w
    if has_b:
        v = v + b
    y[...] = v
    mean[...] = mu[:, 0]
    rstd[...] = rs[:, 0]


@reference("dtrain_layer_norm_backward")
def _layer_norm_backward(g, x, mean, rstd, w, gx, rows, c, has_w):
    gh = g * w if has_w else g
    xhat = (x - mean[:, None]) * rstd[:, None]
    gx[...] = rstd[:, None] * (gh - gh.mean(axis=1, keepdims=True) - xhat * (gh * xhat).mean(axis=1, keepdims=True))


@reference("dtrain_rms_norm_forward")
def _rms_norm_forward(x, w, y, rstd, rows, c, eps, has_w):
    xp = _xp()
    rs = 1 / xp.sqrt((x * x).mean(axis=1, keepdims=True) + eps)
    y[...] = x * rs * w if has_w else x * rs
    rstd[...] = rs[:, 0]


@reference("dtrain_rms_norm_backward")
def _rms_norm_backward(g, x, rstd, w, gx, rows, c, has_w):
    gh = g * w if has_w else g
    xhat = x * rstd[:, None]
    gx[...] = rstd[:, None] * (gh - xhat * (gh * xhat).mean(axis=1, keepdims=True))


@reference("dtrain_norm_affine_backward")
def _norm_affine_backward(g, x, mean, rstd, part_w, part_b, rows, c, per_chunk, has_mean, want_b):
    # the kernel's partial sums chunk by chunk: rows padded with zeros to whole chunks
    xp = _xp()
    xhat = ((x - mean[:, None]) if has_mean else x) * rstd[:, None]
    chunks = part_w.shape[0]
    pad = chunks * int(per_chunk) - int(rows)

    def chunked(a):
        a = a.astype(part_w.dtype, copy=False)
        if pad:
            a = xp.concatenate([a, xp.zeros((pad, int(c)), part_w.dtype)])
        return a.reshape(chunks, int(per_chunk), int(c)).sum(axis=1)
    part_w[...] = chunked(g * xhat)
    if want_b:
        part_b[...] = chunked(g)


# ---- cross-entropy ----------------------------------------------------------------------------------------------
@reference("dtrain_cross_entropy_forward")
def _cross_entropy_forward(x, t, w, z, loss, w_t, rows, c, ignore_index, ls, has_w):
    xp = _xp()
    zz = _log_softmax(x)
    z[...] = zz
    valid = t != ignore_index
    safe = xp.where(valid, t, 0)
    wi = (w[safe] if has_w else xp.ones(int(rows), z.dtype)).astype(loss.dtype) * valid
    nll = -(1 - ls) * wi * zz[xp.arange(int(rows)), safe]
    smooth = ((zz * w).sum(axis=1) if has_w else zz.sum(axis=1)) * valid
    loss[...] = nll - ls / int(c) * smooth
    w_t[...] = wi


@reference("dtrain_cross_entropy_backward")
def _cross_entropy_backward(z, t, w, w_t, wsum, scale, gx, rows, c, ignore_index, ls, has_w):
    xp = _xp()
    valid = (t != ignore_index)[:, None]
    p = xp.exp(z)
    ws = wsum[0] if has_w else int(c)
    v = (1 - ls) * w_t[:, None] * p + ls / int(c) * (ws * p - (w if has_w else 1))
    rows_ = xp.arange(int(rows))
    safe = xp.where(valid[:, 0], t, 0)
    v[rows_, safe] -= (1 - ls) * w_t
    gx[...] = xp.where(valid, scale[:, None] * v, 0)


# ---- Adam / AdamW -----------------------------------------------------------------------------------------------
@reference("dtrain_adam")
def _adam(p, g, m, v, vmax, n, amsgrad, maximize, decoupled, decay, wd, w1, beta2, one_minus_beta2, bc2_sqrt, eps,
          neg_step_size):
    xp = _xp()
    pi = p.copy()
    gi = -g if maximize else g
    if decay:
        if decoupled:
            pi *= wd
        else:
            gi = gi + wd * pi
    m += w1 * (gi - m)
    v[...] = beta2 * v + one_minus_beta2 * gi * gi
    vi = v
    if amsgrad:
        xp.maximum(vmax, v, out=vmax)
        vi = vmax
    p[...] = pi + (m * neg_step_size) / (xp.sqrt(vi) / bc2_sqrt + eps)
