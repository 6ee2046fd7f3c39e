"""The Adam/AdamW step over a flat chunk of the optimizer's buffers."""
import math

from numba import njit

from ._jit import _fma


# ---- Adam / AdamW over a flat chunk ------------------------------------------------------------------------------
@njit(inline="always")
def _adam_moments(pi, g, mi, vi, maximize, decay, decoupled, wd, w1, neg_one_minus_w1, big_w1, beta2,
                  one_minus_beta2):
    # the NumPy path's operations one element at a time, each rounded as there (and as torch's CPU kernels):
    # the L2 decay grad + wd·p and the lerp are fused multiply-adds (torch's add with alpha and lerp), the rest
    # one rounding per operation, in torch's order
    if maximize:
        g = -g
    if decay and decoupled:
        pi = pi * wd
    elif decay:
        g = _fma(wd, pi, g)
    d = g - mi
    mi = _fma(neg_one_minus_w1, d, g) if big_w1 else _fma(w1, d, mi)
    vi = vi * beta2 + (g * one_minus_beta2) * g
    return pi, mi, vi


# serial and without the GIL: the optimizer already runs blocks of its flat buffers on every core
@njit(cache=True, nogil=True, error_model="numpy")
def _adam(p, grad, m, v, maximize, decay, decoupled, wd, w1, neg_one_minus_w1, big_w1, beta2, one_minus_beta2,
          bc2_sqrt, eps, neg_step_size):
    for i in range(p.size):
        pi, mi, vi = _adam_moments(p[i], grad[i], m[i], v[i], maximize, decay, decoupled, wd, w1, neg_one_minus_w1,
                                   big_w1, beta2, one_minus_beta2)
        m[i] = mi
        v[i] = vi
        p[i] = pi + (mi * neg_step_size) / (math.sqrt(vi) / bc2_sqrt + eps)


@njit(cache=True, nogil=True, error_model="numpy")
def _adam_amsgrad(p, grad, m, v, vmax, maximize, decay, decoupled, wd, w1, neg_one_minus_w1, big_w1, beta2,
                  one_minus_beta2, bc2_sqrt, eps, neg_step_size):
    for i in range(p.size):
        pi, mi, vi = _adam_moments(p[i], grad[i], m[i], v[i], maximize, decay, decoupled, wd, w1, neg_one_minus_w1,
                                   big_w1, beta2, one_minus_beta2)
        m[i] = mi
        v[i] = vi
        vi = vi if vi > vmax[i] or vi != vi else vmax[i]  # np.maximum: a NaN on either side wins
        vmax[i] = vi
        p[i] = pi + (mi * neg_step_size) / (math.sqrt(vi) / bc2_sqrt + eps)


def adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, amsgrad, beta1, beta2, lr, weight_decay,
         eps, maximize, decoupled_weight_decay):
    """One Adam/AdamW step in place over C-contiguous arrays of one shape (see dtrain.optim._functional.adam)."""
    t = param.dtype.type
    decay = weight_decay != 0
    w1 = 1 - beta1
    big_w1 = not abs(w1) < 0.5  # torch's lerp: end - (1 - w)(end - self) from w = 0.5 on
    bc2_sqrt = (1 - beta2 ** step) ** 0.5
    neg_step_size = -(lr / (1 - beta1 ** step))
    flat = [a.reshape(-1) for a in (param, grad, exp_avg, exp_avg_sq)]
    rule = (bool(maximize), decay, bool(decoupled_weight_decay),
            t(1 - lr * weight_decay) if decoupled_weight_decay else t(weight_decay), t(w1), -(t(1) - t(w1)), big_w1,
            t(beta2), t(1 - beta2), t(bc2_sqrt), t(eps), t(neg_step_size))
    if amsgrad:
        _adam_amsgrad(*flat, max_exp_avg_sq.reshape(-1), *rule)
    else:
        _adam(*flat, *rule)
