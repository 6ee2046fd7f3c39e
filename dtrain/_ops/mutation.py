"""In-place writes that are not arithmetic: zero_, fill_, copy_, and the random fills (uniform_, normal_, ...)."""
import numpy as np

from .._device import META
from .._tensor import Tensor, _wrap
from .. import _dtype
from .._backend import kernels, on_device
from ..autograd import grad_mode
from ..autograd.graph import Function
from ..random import default_generator_for
from ._util import device_array, method, on_input_device, unbroadcast
from .inplace import _recompute_in_order, _write_in_order, assign_, check_inplace, check_overlap, check_partial_overlap, same_data


class Overwrite(Function):
    """The new values of a tensor filled in place from `v` (broadcast, cast): no gradient to the old values."""

    def forward(ctx, x, v):
        ctx.vshape, ctx.vdtype = v.shape, v.dtype
        return ctx.xp.broadcast_to(v.astype(x.dtype, copy=False), x.shape).copy()

    def backward(ctx, g):
        gv = unbroadcast(g, ctx.vshape).astype(ctx.vdtype, copy=False) if ctx.needs_input_grad[1] else None
        return ctx.xp.zeros_like(g), gv


class _Copy(Overwrite):
    """copy_'s node, under torch's (sic) name."""
    _grad_fn_name, _late_name = "CopyBackwards", False

    def name(self):
        return "torch::autograd::CopyBackwards"


def _in_graph(t):
    return grad_mode.is_grad_enabled() and t.requires_grad


def _write(t, array_or_value, name):
    """Raw in-place write of constants (zero_, fill_, the random fills). A tensor in a graph keeps a node whose
    gradient to the old values is zero, as in torch; `name` is torch's name for it (ZeroBackward0)."""
    check_inplace(t)
    if t._device is META:
        return t
    if _in_graph(t):
        v = _wrap(device_array(array_or_value, t._device, t._data.dtype), t._device)
        return assign_(t, Overwrite.named(name).apply(t, v), fill=True)
    # torch fills an expanded tensor (its shared elements get one value)
    if t._device._gpu is None:
        t._data[...] = array_or_value
    else:
        with on_device(t._device):  # CuPy writes with a kernel on the current device
            t._data[...] = array_or_value
    t._vc.value += 1
    return t


@method()
def zero_(self):
    return _write(self, 0, "ZeroBackward0")


@method()
def fill_(self, value):
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} dimensions.")
        if (value.requires_grad or self.requires_grad) and grad_mode.is_grad_enabled():
            check_inplace(self)
            return assign_(self, Overwrite.named("FillBackward3").apply(self, value.to(self._device)))
        value = value.item()
    return _write(self, value, "FillBackward2")


def _take(dst, src):
    return src


@method()
def copy_(self, src, non_blocking=False):
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'other' must be Tensor, not {type(src).__name__}")
    try:
        np.broadcast_to(np.empty(src.shape, bool), self.shape)
    except ValueError:
        raise RuntimeError(f"The size of tensor a ({self.shape[-1] if self.ndim else 1}) must match the size of "
                           f"tensor b ({src.shape[-1] if src.ndim else 1}) at non-singleton dimension "
                           f"{max(self.ndim - 1, 0)}") from None
    if self._device is META or src._device is META:
        return self
    # torch's copy_ returns before its overlap checks (and writes nothing) when src is self or the same
    # elements seen the same way; the version still moves and autograd records the copy
    same = src is self or same_data(src._data, self._data)
    # a source torch lets through that shares self's memory is read while self is written (element by element)
    reads_self = not same and check_partial_overlap(self, src)
    write = (lambda: None) if same else (lambda: _recompute_in_order(self, _take, (src,), {}, elements=True)) \
        if reads_self else None
    # src.requires_grad, not the flag: a view requires grad through its base (reading a stale view made under
    # no_grad of a base that now requires grad raises, as torch's)
    if (src.requires_grad or self.requires_grad) and grad_mode.is_grad_enabled():
        # gradient flows to src (back to its own device and dtype) and not to self's old values
        return assign_(self, _Copy.apply(self, src.to(self._device)), fill=same, write=write)
    check_inplace(self)
    if same:
        self._vc.value += 1
        return self
    check_overlap(self)
    if reads_self:
        write()
        self._vc.value += 1
        return self
    data = src._data
    if src._device is not self._device:
        from .conversion import _move
        data = _move(data, self._device, self.dtype)
    if self._device._gpu is None:
        _write_in_order(np, self._data, data)
    else:
        with on_device(self._device):
            _write_in_order(self._device.xp, self._data, data)
    self._vc.value += 1
    return self


def _gen(t, generator):
    return generator if generator is not None else default_generator_for(t._device)


def _float_only(kernel, t):
    if not (t.dtype.is_floating_point or t.dtype.is_complex):
        raise NotImplementedError(f'"{kernel}" not implemented for \'{_dtype.scalar_name(t.dtype)}\'')


@method()
def uniform_(self, a=0, b=1, *, generator=None):
    _float_only("check_uniform_bounds", self)
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    if self._device is META:
        return self
    return _write(self, _gen(self, generator).uniform(self.shape, self._data.dtype, self._device, a, b),
                  "UniformBackward0")


@method()
def normal_(self, mean=0, std=1, *, generator=None):
    _float_only("normal_kernel_cpu", self)
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    if self._device is META:
        return self
    return _write(self, _gen(self, generator).normal(self.shape, self._data.dtype, self._device, mean, std),
                  "NormalBackward0")


@method()
@on_input_device  # the random draws are transformed here, outside Function.apply
def bernoulli_(self, p=0.5, *, generator=None):
    if self._device is META:
        return self
    if isinstance(p, Tensor):
        pa = p._data
        if pa.size and (bool((pa < 0).any()) or bool((pa > 1).any())):
            raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    else:
        pa = p
        if not 0 <= p <= 1:
            raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    return _write(self, _gen(self, generator).uniform(self.shape, np.float64, self._device) < pa,
                  "BernoulliBackward1" if isinstance(p, Tensor) else "BernoulliBackward2")


@method()
def bernoulli(input, p=None, *, generator=None):
    out = input.new_empty(input.shape)
    return out.bernoulli_(input if p is None else p, generator=generator)


class Poisson(Function):
    """torch.poisson's node: the counts are not differentiable in the rates, so their gradient is zero (torch's
    PoissonBackward0)."""

    def forward(ctx, rates, counts):
        return counts

    def backward(ctx, g):
        return ctx.xp.zeros_like(g)


@on_input_device  # the draws are made here, outside Function.apply
def poisson(input, generator=None):
    """Counts drawn from Poisson(rate) for each rate in `input`, in input's (floating) dtype."""
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f'"poisson_cpu" not implemented for \'{_dtype.scalar_name(input.dtype)}\'')
    if input._device is META:
        return input.new_empty(input.shape)
    rates = input._data
    if rates.size and not bool((rates >= 0).all()):  # NaN included, as in torch
        raise RuntimeError("invalid Poisson rate, expected rate to be non-negative")
    g = _gen(input, generator)
    xp = input._device.xp
    with on_device(input._device):
        # a new C-ordered tensor, whatever the rates' layout (torch's at::empty)
        counts = xp.asarray(g._rng(input._device).poisson(rates.astype(np.float64))).astype(rates.dtype)
    return Poisson.apply(input, counts=counts)


@method()
def random_(self, from_=0, to=None, *, generator=None):
    # torch's overloads: random_() RandomBackward2, random_(to) 1, random_(from, to) 0
    name = "RandomBackward0" if to is not None else "RandomBackward1" if from_ else "RandomBackward2"
    if to is None:
        from_, to = 0, from_ if from_ else 2 ** 31
    return _write(self, _gen(self, generator).integers(from_, to, self.shape, self._data.dtype, self._device), name)


# the C++ names torch's cauchy_ check prints for a non-floating dtype (exponential_'s prints the ScalarType's)
_CPP_NAMES = {np.dtype(np.int64): "long int", np.dtype(np.int32): "int", np.dtype(np.int16): "short int",
              np.dtype(np.int8): "signed char", np.dtype(np.uint8): "unsigned char", np.dtype(np.bool_): "bool",
              np.dtype(np.complex64): "c10::complex<float>", np.dtype(np.complex128): "c10::complex<double>"}


def _continuous_only(what, t, name):
    if not t.dtype.is_floating_point:
        raise RuntimeError(f"{what} distribution is a continuous probability distribution. dtype must be a "
                           f"floating point but you specified {name}")


@method()
@on_input_device  # the random draws are transformed here, outside Function.apply
def exponential_(self, lambd=1.0, *, generator=None):
    _continuous_only("Exponential", self, _dtype.scalar_name(self.dtype))
    if not lambd > 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    u = _gen(self, generator).uniform(self.shape, np.float64, self._device)
    return _write(self, -self._device.xp.log1p(-u) / lambd, "ExponentialBackward0")


@method()
@on_input_device  # the random draws are transformed here, outside Function.apply
def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
    _continuous_only("Cauchy", self, _CPP_NAMES.get(self._data.dtype, _dtype.scalar_name(self.dtype)))
    if not sigma > 0:
        raise RuntimeError(f"cauchy_ expects sigma > 0.0, but found sigma={sigma}")
    u = _gen(self, generator).uniform(self.shape, np.float64, self._device)
    return _write(self, median + sigma * self._device.xp.tan(np.pi * (u - 0.5)), "CauchyBackward0")


@method()
@on_input_device  # the random draws are transformed here, outside Function.apply
def geometric_(self, p, *, generator=None):
    if self.dtype is _dtype.bool:
        raise NotImplementedError("\"geometric_cpu\" not implemented for 'Bool'")
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")
    u = _gen(self, generator).uniform(self.shape, np.float64, self._device)
    return _write(self, self._device.xp.ceil(self._device.xp.log1p(-u) / np.log1p(-p)), "GeometricBackward0")


@method()
@on_input_device  # the random draws are transformed here, outside Function.apply
def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
    _float_only("log_normal_cpu", self)
    if not std > 0:
        raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={std}")
    normal = _gen(self, generator).normal(self.shape, np.float64, self._device, mean, std)
    return _write(self, self._device.xp.exp(normal), "LogNormalBackward0")


def normal(mean, std=1.0, size=None, *, generator=None, out=None, dtype=None, device=None, requires_grad=False):
    from .creation import empty
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        ref = mean if isinstance(mean, Tensor) else std
        shape = np.broadcast_shapes(*(x.shape for x in (mean, std) if isinstance(x, Tensor)))
        z = _wrap(_gen(ref, generator).normal(shape, ref._data.dtype, ref._device), ref._device)
        return z * std + mean
    t = empty(size, dtype=dtype, device=device)
    return t.normal_(mean, std, generator=generator).requires_grad_(requires_grad)


@on_input_device
def multinomial(input, num_samples, replacement=False, *, generator=None):
    p = input._data / input._data.sum(-1, keepdims=True)
    xp = input._device.xp
    g = _gen(input, generator)
    rows = p.reshape(-1, p.shape[-1])
    out = []
    for r in rows:
        rr = kernels[xp].to_host(r)
        rng = g._np
        out.append(rng.choice(len(rr), size=num_samples, replace=replacement, p=rr / rr.sum()))
    res = np.stack(out).astype(np.int64).reshape(p.shape[:-1] + (num_samples,))
    return _wrap(xp.asarray(res), input._device)


@method()
def multinomial_(input, num_samples, replacement=False, *, generator=None):
    return multinomial(input, num_samples, replacement, generator=generator)


Tensor.multinomial = lambda self, num_samples, replacement=False, *, generator=None: \
    multinomial(self, num_samples, replacement, generator=generator)


@method()
def set_(self, source):
    self._data, self._device = source._data, source._device
    self._vc.value += 1
    return self


@method()
def resize_(self, *sizes):
    from ._util import normalize_shape
    shape = normalize_shape(sizes)
    xp = self._device.xp
    new = xp.zeros(shape, self._data.dtype)
    flat = self._data.reshape(-1)
    n = min(flat.size, new.size)
    new.reshape(-1)[:n] = flat[:n]
    self._data = new
    return self
