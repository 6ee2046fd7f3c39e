"""The update rules of the optimizers as pure functions of arrays, applied in place.

Each function takes one parameter array, its gradient and its state arrays (NumPy or CuPy, any shape) and
updates them in place with torch's single-tensor arithmetic, op for op. The optimizers call it once per
parameter, or once over a whole flat buffer when a group's parameters, gradients and state are views of
contiguous buffers: every op is elementwise, so both give the same bits.

`tmp` / `tmp2` are optional scratch arrays shaped like `param`; passing them saves allocating temporaries
(NumPy's elementwise ops are single-threaded, and each fresh large temporary costs page faults besides).
"""
import numpy as np

from .. import _cpu_kernels, _cuda_kernels
from .._axpy import axpy_, fusable, scal_
from .._backend import kernels, xp_of


def _scratch(param, tmp):
    return tmp if tmp is not None else xp_of(param).empty_like(param)


def _add_scaled_(xp, param, x, alpha, tmp):
    """param.add_(x, alpha=alpha): rounded once as torch's CPU kernel does (see dtrain._axpy) where BLAS can,
    else through a scratch product."""
    if not axpy_(param, x, alpha):
        param += xp.multiply(x, alpha, out=_scratch(param, tmp))


def _decayed(xp, param, grad, weight_decay, maximize, tmp):
    """(g, negated): the gradient with L2 weight decay added; for `maximize` without decay the negation is
    left to the caller (`negated` True), which folds it into a subtraction instead of a pass over memory."""
    if weight_decay != 0:
        g = _scratch(param, tmp)
        # torch: grad.add(param, alpha=wd), or (-grad).add(param, alpha=wd) to maximize
        if kernels[xp].host:  # rounded once, as torch's CPU kernel (see _add_scaled_)
            if maximize:
                np.negative(grad, out=g)
            else:
                np.copyto(g, grad)
            _add_scaled_(xp, g, param, weight_decay, None)
        else:
            xp.multiply(param, weight_decay, out=g)
            (xp.subtract if maximize else xp.add)(g, grad, out=g)  # x - g equals (-g) + x exactly
        return g, False
    return grad, maximize


def sgd(param, grad, momentum_buffer, *, lr, weight_decay, momentum, dampening, nesterov, maximize,
        tmp=None, whole_blas=False):
    """One SGD step; returns the momentum buffer (a new array on the first step, None without momentum).

    `whole_blas`: the passes over memory go to BLAS as whole calls that its own threads share out (see
    dtrain._axpy.scal_), for a caller that runs the step on one thread."""
    xp = xp_of(param)
    g, neg = _decayed(xp, param, grad, weight_decay, maximize, tmp)
    if neg and (nesterov or (momentum != 0 and momentum_buffer is not None and dampening != 0)):
        g, neg = xp.negative(g), False  # rare combinations: keep them simple
    buf = momentum_buffer
    if momentum != 0:
        if buf is None:
            buf = xp.negative(g) if neg else g.copy()
        else:
            if not (whole_blas and scal_(buf, momentum)):
                buf *= momentum
            if dampening != 0:
                _add_scaled_(xp, buf, g, 1 - dampening, None)  # torch: buf.add_(g, alpha=1 - dampening)
            elif neg:
                buf -= g
            elif not (whole_blas and axpy_(buf, g, 1.0, whole=True)):  # (1 * g + buf: one rounding, as +)
                buf += g
        neg = False
        if nesterov:
            d = g.copy()  # torch: g.add(buf, alpha=momentum)
            _add_scaled_(xp, d, buf, momentum, None)
            g = d
        else:
            g = buf
    # torch: param.add_(d, alpha=-lr)
    if axpy_(param, g, lr if neg else -lr, whole=whole_blas):
        return buf
    # a temporary of ours is overwritten; the gradient and the momentum buffer are not
    owned = g is not grad and g is not buf
    upd = xp.multiply(g, lr, out=g if owned else _scratch(param, tmp))
    (xp.add if neg else xp.subtract)(param, upd, out=param)
    return buf


def _lerp_(xp, self, end, weight, tmp):
    """self.lerp_(end, weight) with torch's formula (the branch on |weight| < 0.5 keeps it exact at the ends):
    self + weight*(end - self), or end - (1 - weight)*(end - self), each product and sum rounded once as
    torch's CPU kernel does, where BLAS can (see dtrain._axpy)."""
    d = xp.subtract(end, self, out=tmp)
    if abs(weight) < 0.5:
        if not axpy_(self, d, weight):
            d *= weight
            self += d
    else:
        if fusable(self, d) and fusable(self, end):
            self[...] = end
            axpy_(self, d, -(self.dtype.type(1) - self.dtype.type(weight)))  # torch: 1 - weight in self's dtype
        else:
            d *= 1 - weight
            xp.subtract(end, d, out=self)


def _addcdiv_(xp, self, t1, t2, value, tmp):
    """self.addcdiv_(t1, t2, value=value) in torch's order: self + (value * t1) / t2. `tmp` is scratch that is
    neither t2 nor self."""
    q = xp.multiply(t1, value, out=tmp)
    q /= t2
    self += q


def _addcmul_sq_(xp, self, g, value, tmp):
    """self.addcmul_(g, g, value=value): self + value * g * g."""
    t = xp.multiply(g, value, out=tmp)
    t *= g
    self += t


def _adam_moments(xp, exp_avg, exp_avg_sq, g, beta1, beta2, tmp):
    """Adam's running moments, in place: exp_avg.lerp_(g, 1 - beta1); exp_avg_sq = beta2 * exp_avg_sq +
    (1 - beta2) * g * g (shared by Adam, AdamW, NAdam and RAdam)."""
    _lerp_(xp, exp_avg, g, 1 - beta1, tmp)
    exp_avg_sq *= beta2
    _addcmul_sq_(xp, exp_avg_sq, g, 1 - beta2, tmp)


def adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, amsgrad, beta1, beta2, lr, weight_decay,
         eps, maximize, decoupled_weight_decay=False, tmp=None, tmp2=None):
    """One Adam (or AdamW, with `decoupled_weight_decay`) step; `step` is the count after this step."""
    arrays = (param, grad, exp_avg, exp_avg_sq) + ((max_exp_avg_sq,) if amsgrad else ())
    fused = _cpu_kernels.get(*arrays) or _cuda_kernels.get(*arrays)
    if fused is not None and all(a.flags.c_contiguous and a.shape == param.shape for a in arrays):
        # one pass over the five buffers where the steps below make about twelve; the same bits (CUDA: the same
        # operations in the same order, not contracted to FMAs; lerp's other branch for beta1 <= 0.5 aside)
        fused.adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step=step, amsgrad=amsgrad, beta1=beta1,
                   beta2=beta2, lr=lr, weight_decay=weight_decay, eps=eps, maximize=maximize,
                   decoupled_weight_decay=decoupled_weight_decay)
        return
    xp = xp_of(param)
    tmp2 = _scratch(param, tmp2)
    if weight_decay != 0 and decoupled_weight_decay:
        param *= 1 - lr * weight_decay
        g = xp.negative(grad, out=_scratch(param, tmp)) if maximize else grad
    else:
        g, neg = _decayed(xp, param, grad, weight_decay, maximize, tmp)
        if neg:
            g = xp.negative(grad, out=_scratch(param, tmp))
    _adam_moments(xp, exp_avg, exp_avg_sq, g, beta1, beta2, tmp2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2 ** 0.5
    if amsgrad:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        denom = xp.sqrt(max_exp_avg_sq, out=tmp2)
    else:
        denom = xp.sqrt(exp_avg_sq, out=tmp2)
    denom /= bias_correction2_sqrt
    denom += eps
    _addcdiv_(xp, param, exp_avg, denom, -step_size, _scratch(param, tmp))  # g, perhaps in tmp, is spent


def rmsprop(param, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha, eps, weight_decay, momentum,
            centered, maximize, tmp=None, tmp2=None):
    """One RMSprop step (state arrays that the options don't use are None)."""
    xp = xp_of(param)
    tmp2 = _scratch(param, tmp2)
    g, neg = _decayed(xp, param, grad, weight_decay, maximize, tmp)
    if neg:
        g = xp.negative(grad, out=_scratch(param, tmp))
    square_avg *= alpha
    _addcmul_sq_(xp, square_avg, g, 1 - alpha, tmp2)
    if centered:
        _lerp_(xp, grad_avg, g, 1 - alpha, tmp2)
        # square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        avg = xp.multiply(grad_avg, -1, out=tmp2)
        avg *= grad_avg
        avg += square_avg
        xp.sqrt(avg, out=avg)
    else:
        avg = xp.sqrt(square_avg, out=tmp2)
    avg += eps
    if momentum > 0:
        # buf.mul_(momentum).addcdiv_(g, avg); param.add_(buf, alpha=-lr)
        momentum_buffer *= momentum
        q = xp.divide(g, avg, out=avg)
        momentum_buffer += q
        _add_scaled_(xp, param, momentum_buffer, -lr, avg)
    else:
        _addcdiv_(xp, param, g, avg, -lr, _scratch(param, tmp) if g is grad else g)  # g is spent


def adagrad(param, grad, state_sum, *, step, lr, weight_decay, lr_decay, eps, maximize, tmp=None, tmp2=None):
    """One Adagrad step; `step` is the count after this step."""
    xp = xp_of(param)
    tmp2 = _scratch(param, tmp2)
    g, neg = _decayed(xp, param, grad, weight_decay, maximize, tmp)
    if neg:
        g = xp.negative(grad, out=_scratch(param, tmp))
    clr = lr / (1 + (step - 1) * lr_decay)
    sq = xp.multiply(g, g, out=tmp2)  # addcmul_(g, g, value=1)
    state_sum += sq
    std = xp.sqrt(state_sum, out=tmp2)
    std += eps
    _addcdiv_(xp, param, g, std, -clr, _scratch(param, tmp) if g is grad else g)  # g is spent


def adadelta(param, grad, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize, tmp=None, tmp2=None,
             tmp3=None):
    """One Adadelta step (torch's single-tensor arithmetic)."""
    xp = xp_of(param)
    g, neg = _decayed(xp, param, grad, weight_decay, maximize, tmp)
    if neg:
        g = xp.negative(grad, out=_scratch(param, tmp))
    square_avg *= rho
    _addcmul_sq_(xp, square_avg, g, 1 - rho, _scratch(param, tmp2))
    std = xp.add(square_avg, eps, out=_scratch(param, tmp2))
    xp.sqrt(std, out=std)
    delta = xp.add(acc_delta, eps, out=_scratch(param, tmp3))
    xp.sqrt(delta, out=delta)
    delta /= std
    delta *= g
    acc_delta *= rho
    _addcmul_sq_(xp, acc_delta, delta, 1 - rho, std)
    _add_scaled_(xp, param, delta, -lr, std)  # torch: param.add_(delta, alpha=-lr)


def _adam_family_grad(xp, param, grad, lr, weight_decay, maximize, decoupled_weight_decay, tmp):
    """The gradient an Adam-like rule averages: decoupled decay shrinks `param` itself (AdamW's step weight
    decay), L2 decay is added to the gradient; `maximize` negates it."""
    if weight_decay != 0 and decoupled_weight_decay:
        param *= 1 - lr * weight_decay
        return xp.negative(grad, out=_scratch(param, tmp)) if maximize else grad
    g, neg = _decayed(xp, param, grad, weight_decay, maximize, tmp)
    return xp.negative(grad, out=_scratch(param, tmp)) if neg else g


def adamax(param, grad, exp_avg, exp_inf, *, step, beta1, beta2, lr, weight_decay, eps, maximize, tmp=None,
           tmp2=None):
    """One Adamax step (Adam with the infinity norm); `step` is the count after this step."""
    xp = xp_of(param)
    tmp2 = _scratch(param, tmp2)
    g = _adam_family_grad(xp, param, grad, lr, weight_decay, maximize, False, tmp)
    _lerp_(xp, exp_avg, g, 1 - beta1, tmp2)
    # torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(eps), out=exp_inf)
    exp_inf *= beta2
    norm = xp.abs(g, out=tmp2)
    norm += eps
    xp.maximum(exp_inf, norm, out=exp_inf)
    clr = lr / (1 - beta1 ** step)
    _addcdiv_(xp, param, exp_avg, exp_inf, -clr, tmp2)


def nadam(param, grad, exp_avg, exp_avg_sq, *, step, mu, mu_next, mu_product, beta1, beta2, lr, weight_decay,
          eps, maximize, decoupled_weight_decay=False, tmp=None, tmp2=None, tmp3=None):
    """One NAdam step; `mu`, `mu_next` are this step's and the next step's momentum coefficients and
    `mu_product` the product of all of them up to this step (NAdam's `mu_product` state, already advanced)."""
    xp = xp_of(param)
    g = _adam_family_grad(xp, param, grad, lr, weight_decay, maximize, decoupled_weight_decay, tmp)
    tmp2, tmp3 = _scratch(param, tmp2), _scratch(param, tmp3)
    _adam_moments(xp, exp_avg, exp_avg_sq, g, beta1, beta2, tmp2)
    denom = xp.divide(exp_avg_sq, 1 - beta2 ** step, out=tmp2)
    xp.sqrt(denom, out=denom)
    denom += eps
    mu_product_next = mu_product * mu_next
    _addcdiv_(xp, param, g, denom, -lr * (1.0 - mu) / (1.0 - mu_product), tmp3)
    _addcdiv_(xp, param, exp_avg, denom, (-lr * mu_next) / (1.0 - mu_product_next), tmp3)


def radam(param, grad, exp_avg, exp_avg_sq, *, step, beta1, beta2, lr, weight_decay, eps, maximize,
          decoupled_weight_decay=False, tmp=None, tmp2=None, tmp3=None):
    """One RAdam step: Adam's update with the variance rectified, or plain momentum SGD while the
    approximated SMA length is 5 or less."""
    xp = xp_of(param)
    g = _adam_family_grad(xp, param, grad, lr, weight_decay, maximize, decoupled_weight_decay, tmp)
    tmp2, tmp3 = _scratch(param, tmp2), _scratch(param, tmp3)
    _adam_moments(xp, exp_avg, exp_avg_sq, g, beta1, beta2, tmp2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
    # param.add_(exp_avg / bc1 * lr [* adaptive_lr * rect], alpha=-1), in torch's order of operations
    upd = xp.divide(exp_avg, bias_correction1, out=tmp2)
    upd *= lr
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        adaptive = xp.sqrt(exp_avg_sq, out=tmp3)
        adaptive += eps
        # torch: (bc2 ** 0.5) / tensor, which Tensor.__rtruediv__ computes as tensor.reciprocal() * bc2 ** 0.5
        xp.reciprocal(adaptive, out=adaptive)
        adaptive *= bias_correction2 ** 0.5
        upd *= adaptive
        upd *= rect
    param -= upd


def rprop(param, grad, prev, step_size, *, etaminus, etaplus, step_size_min, step_size_max, maximize, tmp=None,
          tmp2=None):
    """One Rprop step: per-element step sizes grow by `etaplus` while the gradient keeps its sign and shrink
    by `etaminus` when it flips (and then that element does not move)."""
    xp = xp_of(param)
    g = _scratch(param, tmp2)  # a copy: the elements whose sign flipped are zeroed below
    if maximize:
        xp.negative(grad, out=g)
    else:
        g[...] = grad
    sign = xp.multiply(g, prev, out=_scratch(param, tmp))
    xp.sign(sign, out=sign)
    pos, neg, zero = sign > 0, sign < 0, sign == 0
    sign[pos] = etaplus
    sign[neg] = etaminus
    sign[zero] = 1
    step_size *= sign
    xp.clip(step_size, step_size_min, step_size_max, out=step_size)
    g[sign == etaminus] = 0
    # param.addcmul_(grad.sign(), step_size, value=-1)
    upd = xp.sign(g, out=sign)
    upd *= step_size
    param -= upd
    prev[...] = g


def asgd(param, grad, ax, *, eta, mu, lambd, weight_decay, maximize, tmp=None):
    """One ASGD step with this step's `eta` and `mu` (the state before it advanced); `ax` is the average."""
    xp = xp_of(param)
    g, neg = _decayed(xp, param, grad, weight_decay, maximize, tmp)
    param *= 1 - lambd * eta
    # torch: param.add_(grad, alpha=-eta)
    upd = _scratch(param, tmp)
    _add_scaled_(xp, param, g, eta if neg else -eta, upd)
    if mu != 1:
        # ax.add_(param.sub(ax).mul_(mu))
        d = xp.subtract(param, ax, out=upd)
        d *= mu
        ax += d
    else:
        ax[...] = param
