"""Indexing: __getitem__ / __setitem__, index_put, masks, where (gather and scatter: scatter.py; sort: sort.py)."""
import numpy as np

from .. import _backend, _dtype
from .._device import device_of
from .._tensor import Tensor, _wrap
from ..autograd import grad_mode
from ..autograd.graph import Function, make_view
from ._layout import c_ordered, iterator_layout
from ._util import HOLDS_INDICES, method, on_input_device, out_copy, promote, unbroadcast
from ..amp._dispatch import autocast_op


def broadcast_error(a, b):
    """torch's RuntimeError for shapes a and b that do not broadcast (checked from the last dim)."""
    n = max(len(a), len(b))
    for i in range(n - 1, -1, -1):
        sa = a[i - n + len(a)] if i - n + len(a) >= 0 else 1
        sb = b[i - n + len(b)] if i - n + len(b) >= 0 else 1
        if sa != sb and sa != 1 and sb != 1:
            return RuntimeError(f"The size of tensor a ({sa}) must match the size of tensor b ({sb}) at non-singleton "
                                f"dimension {i}")
    return None


def _scatter_add_at(xp, out, key, g):
    """out[key] += g with repeated indices summed (np.add.at; cupyx.scatter_add on the GPU)."""
    _backend.kernels[xp].scatter_add(out, key, g)


def _convert_key(key, t, _on_device=False):
    """Turn a torch index into one the array module takes; tensors become arrays, checks as torch does."""
    if t._device._gpu is not None and not _on_device:
        with _backend.on_device(t._device):  # index arrays are made on the indexed tensor's device
            return _convert_key(key, t, True)
    if isinstance(key, list) and len(key) < 32 and any(
            isinstance(k, (Tensor, list, tuple, slice)) or k is None or k is Ellipsis for k in key):
        key = tuple(key)  # torch (like old NumPy) reads such a list as a tuple of indices
    elif not isinstance(key, tuple):
        key = (key,)
    out, advanced, dim = [], False, 0
    xp = t._device.xp
    for k in key:
        if isinstance(k, Tensor):
            kd = k._data
            if kd.dtype.kind not in "iub":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            if kd.dtype == np.uint8:  # torch's deprecated byte masks
                kd = kd.astype(bool)
            if k._device is not t._device and k._data.ndim:
                kd = xp.asarray(kd) if t._device.type == "cuda" else k.cpu()._data
            if kd.dtype.kind == "b":
                _check_mask(kd, t, dim)
                dim += kd.ndim
            else:
                _check_range(kd, t, dim)
                dim += 1
            advanced = True
            out.append(kd)
        elif isinstance(k, (list,)) or (isinstance(k, np.ndarray)):
            arr = np.asarray(k)
            if arr.dtype.kind == "f":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            arr = xp.asarray(arr)
            if arr.dtype.kind != "b":
                _check_range(arr, t, dim)
            dim += arr.ndim if arr.dtype.kind == "b" else 1
            advanced = True
            out.append(arr)
        elif k is None:
            out.append(None)
        elif k is Ellipsis:
            out.append(k)
            dim = t.ndim - sum(1 for x in key[key.index(Ellipsis) + 1:] if x is not None)
        elif isinstance(k, (bool, np.bool_)):
            out.append(bool(k))
            advanced = True
        elif isinstance(k, (int, np.integer)):
            if dim >= t.ndim:
                raise IndexError(f"too many indices for tensor of dimension {t.ndim}")
            n = t.shape[dim]
            if k < -n or k >= n:
                raise IndexError(f"index {k} is out of bounds for dimension {dim} with size {n}")
            out.append(int(k))
            dim += 1
        elif isinstance(k, slice):
            if k.step is not None and k.step == 0:
                raise ValueError("slice step cannot be zero")
            if k.step is not None and k.step < 0:
                raise ValueError("step must be greater than zero")
            out.append(slice(*(int(v) if isinstance(v, Tensor) else v for v in (k.start, k.stop, k.step))))
            dim += 1
        elif isinstance(k, str):
            raise TypeError(f"new(): invalid data type 'str'")
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are "
                             "valid indices (got " + type(k).__name__ + ")")
    if dim > t.ndim:
        raise IndexError(f"too many indices for tensor of dimension {t.ndim}")
    shapes = [k.shape for k in out if hasattr(k, "shape") and k.dtype.kind != "b"]
    if len(shapes) > 1:
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes " +
                             ", ".join(f"[{', '.join(map(str, sh))}]" for sh in shapes)) from None
    return tuple(out), advanced


def _check_range(idx, t, dim):
    if dim >= t.ndim:
        raise IndexError(f"too many indices for tensor of dimension {t.ndim}")
    n = t.shape[dim]
    if not idx.size:
        return
    if type(idx) is np.ndarray:
        hi, lo = int(idx.max()), int(idx.min())
    else:
        with _backend.on_device(device_of(idx)):
            hi, lo = int(idx.max()), int(idx.min())
    if hi >= n or lo < -n:
        bad = hi if hi >= n else lo
        raise IndexError(f"index {bad} is out of bounds for dimension {dim} with size {n}")


def _check_mask(mask, t, dim):
    for i, s in enumerate(mask.shape):
        if dim + i >= t.ndim or t.shape[dim + i] != s:
            raise IndexError(f"The shape of the mask [{', '.join(map(str, mask.shape))}] at index {i} does not match "
                             f"the shape of the indexed tensor [{t._shape_str()}] at index {dim + i}")


def _newaxis_strides(xp, x, key, y):
    """y = x[key] with torch's strides for the dims that None inserts. torch indexes one dim after another,
    and a None unsqueezes what is left: its stride is the size times the stride of the input dim indexed
    next (1 at the end); NumPy's is 0."""
    n_dims = x.ndim - sum(1 for k in key if k is not None and k is not Ellipsis)  # what an Ellipsis covers
    strides = list(y.strides)
    d_in = d_out = 0
    for k in key:
        if k is None:
            strides[d_out] = x.shape[d_in] * x.strides[d_in] if d_in < x.ndim else x.itemsize
            d_out += 1
        elif k is Ellipsis:
            d_in, d_out = d_in + n_dims, d_out + n_dims
        elif isinstance(k, slice):
            d_in, d_out = d_in + 1, d_out + 1
        else:
            d_in += 1
    strides = tuple(strides)
    return y if strides == y.strides else xp.lib.stride_tricks.as_strided(y, y.shape, strides)


class BasicIndex(Function):
    _view = True

    def forward(ctx, x, key):
        ctx.shape, ctx.dtype, ctx.key = x.shape, x.dtype, key
        # a trailing Ellipsis keeps NumPy from returning a scalar copy when every dim gets an int: a 0-d view
        y = x[key if any(k is Ellipsis for k in key) else key + (Ellipsis,)]
        return _newaxis_strides(ctx.xp, x, key, y) if any(k is None for k in key) else y

    def name(self):
        # torch indexes one dim at a time; its node is the last step that did something
        for k in reversed(self.key):
            if isinstance(k, int):
                return "SelectBackward0"
            if k is None:
                return "UnsqueezeBackward0"
            if isinstance(k, slice) and k != slice(None):
                return "SliceBackward0"
        return "AliasBackward0"

    def backward(ctx, g):
        out = ctx.xp.zeros(ctx.shape, ctx.dtype)
        out[ctx.key] = g
        return out


class AdvancedIndex(Function):
    def forward(ctx, x, key, label="IndexBackward0"):
        ctx.shape, ctx.dtype, ctx.key, ctx.label = x.shape, x.dtype, key, label
        return x[key]

    def name(self):
        return self.label

    def backward(ctx, g):
        out = ctx.xp.zeros(ctx.shape, ctx.dtype)
        _scatter_add_at(ctx.xp, out, ctx.key, g)
        return out


def _stale_view_check(t, key):
    """A stale view's history is read (raising for a multi-output view written since) where torch's slicing
    reads it: at the key's first item that makes a view. A negative step before that item raises its own
    ValueError first; `...` and full slices make no view."""
    for item in (key if type(key) is tuple else (key,)):
        if item is Ellipsis or (type(item) is slice and item == slice(None)):
            continue
        if type(item) is slice and item.step is not None and not isinstance(item.step, Tensor) and item.step <= 0:
            raise ValueError("slice step cannot be zero" if item.step == 0 else "step must be greater than zero")
        break
    t.grad_fn  # noqa: B018


def _getitem(self, key):
    if type(key) is int and not (self.requires_grad and grad_mode.is_grad_enabled()):
        # the commonest index (a dataset's x[i]), without building a graph: a view, as the general path makes
        a = self._data
        if a.ndim and -a.shape[0] <= key < a.shape[0]:
            # `...` keeps a 0-d result a view rather than a scalar
            return make_view(_wrap(a[key, ...], self._device), self)
    if self._base is not None and grad_mode.is_grad_enabled() and self._view_info[0] != self._vc.value:
        _stale_view_check(self, key)
    k, advanced = _convert_key(key, self)
    if advanced:
        return AdvancedIndex.apply(self, key=k)
    return BasicIndex.apply(self, key=k)


_HOLDS_INDICES = HOLDS_INDICES  # IndexPut's saved state: a marker, no array


class IndexPut(Function):
    def forward(ctx, x, v, key, accumulate=False):
        ctx.key, ctx.vshape, ctx.accumulate = key, v.shape, accumulate
        # torch's IndexPutBackward0 saves the index tensors, and its CopySlices the written view's node; both
        # let them go after a backward without retain_graph, so a second backward through the node raises
        ctx.save_for_backward(_HOLDS_INDICES)
        out = x.copy()
        if accumulate:
            _scatter_add_at(ctx.xp, out, key, v)
        else:
            out[key] = v
        return out

    def backward(ctx, g):
        gx = gv = None
        if ctx.needs_input_grad[0]:
            gx = g.copy()
            if not ctx.accumulate:
                gx[ctx.key] = 0
        if ctx.needs_input_grad[1]:
            gv = unbroadcast(g[ctx.key], ctx.vshape) if g[ctx.key].ndim >= len(ctx.vshape) else g[ctx.key].sum()
            gv = gv.reshape(ctx.vshape) if gv.size == int(np.prod(ctx.vshape)) else gv
        return gx, gv


class _SetSlices(IndexPut):
    """x[basic key] = v: torch writes through a view of x, so its node is a CopySlices."""
    _grad_fn_name, _late_name = "CopySlices", False

    def name(self):
        return "torch::autograd::CopySlices"


@on_input_device  # the value, the key and the raw writes below are array code outside Function.apply
def _setitem(self, key, value):
    from .inplace import (_recompute_in_order, _write_in_order, assign_, check_inplace, check_overlap,
                          check_partial_overlap, same_data, warn_index_put_overlap)
    if self._base is not None and grad_mode.is_grad_enabled():
        _stale_view_check(self, key)
    k, advanced = _convert_key(key, self)
    if not isinstance(value, Tensor):
        value = _value_tensor(self, value)
    elif advanced:
        _check_index_put_value(self, key, value, False)
    if not advanced and _whole(key, self._data.shape) and (value._device is self._device or not value._data.ndim):
        # torch's indexing returns t itself for a key of full slices and `...`, so the write is t's own copy_
        # (CopyBackwards) or, from a 0-d value, its fill_ (FillBackward3): torch's copy_to
        lead = next((i for i, n in enumerate(value.shape) if n != 1), value.ndim)
        src = value.view(value.shape[lead:]) if lead and value.shape != self.shape else value
        _check_value_shape(self, k, advanced, src)
        if value.shape == self.shape:
            self.copy_(value)
        elif not value.ndim:
            self.fill_(value)
        else:
            self.copy_(src.expand(self.shape))
        return
    value_in, reads = value, None
    if value._data.dtype != self._data.dtype:
        value = value.to(self.dtype)
    if value._device is not self._device:
        if value._data.ndim == 0:
            value = value.to(self._device)
        else:
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"{self._device} and {value._device}!")
    dst = None if advanced else _wrap(self._data[k if any(x is Ellipsis for x in k) else k + (Ellipsis,)],
                                      self._device)
    lead, filled = 0, not value.ndim  # torch's copy_to fills from a 0-d value, and expands any other
    while lead < value.ndim and value.shape[lead] == 1:
        lead += 1
    if lead and (dst is None or value.shape != dst.shape):
        value = value.reshape(value.shape[lead:])  # torch drops a value's leading size-1 dims to broadcast it
    _check_value_shape(self, k, advanced, value)
    same = False
    if dst is not None and isinstance(value_in, Tensor) and (value_in.shape == dst.shape or value_in.ndim):
        # basic indexing writes as torch's copy_to: t[key].copy_(value expanded), or a fill_ from a 0-d value
        # (which never refuses an overlap); copy_ of the same elements seen the same way writes nothing
        from .shape import _torch_strides  # expanded as torch's expand_inplace lays it out
        xp = value_in._device.xp
        src = value_in if value_in.shape == dst.shape else _wrap(
            _torch_strides(xp, xp.broadcast_to(value._data, dst.shape), value._data), value_in._device)
        same = same_data(dst._data, src._data)
        if not same and check_partial_overlap(dst, src):
            reads = src  # a source torch lets through that shares the target: read while it is written
    if grad_mode.is_grad_enabled() and (self.requires_grad or value.requires_grad):  # a view of a base requiring grad too
        # the values go into t[key] only (t's other elements may share memory with them: unfold windows)
        if advanced:  # the indexed elements only (t's others may share memory with them: an expanded t)
            warn_index_put_overlap(self)
            write = lambda: _write_indexed(self, k, value)  # noqa: E731
        else:
            if not filled and value.shape != dst.shape:
                value = value.expand(dst.shape)
            write = (lambda: None) if same else \
                (lambda: _recompute_in_order(dst, lambda d, v: v, (reads,), {}, elements=True)) \
                if reads is not None else (lambda: _write_in_order(self._device.xp, dst._data, value._data))
        # only t[key] is written, so only it must not share memory (torch's copy_ into the slice)
        assign_(self, (IndexPut if advanced else _SetSlices).apply(self, value, key=k), fill=same, write=write,
                written=False if advanced else dst)
        return
    check_inplace(self)
    if same:
        self._vc.value += 1
        return
    if advanced:
        warn_index_put_overlap(self)
        _write_indexed(self, k, value)
    else:
        check_overlap(dst)
        if reads is not None:
            _recompute_in_order(dst, lambda d, v: v, (reads,), {}, elements=True)
        else:
            _write_in_order(self._device.xp, dst._data, value._data)
    self._vc.value += 1


def _whole(key, shape):
    """Whether a basic key selects all of a tensor of `shape` the way torch's indexing skips it (returns the
    tensor itself): nothing but one `...` and slices with start 0 (or none), step 1 (or none) and a stop at or
    past the end of their dim (or none)."""
    items = key if type(key) is tuple else (key,)
    if items.count(Ellipsis) > 1:
        return False
    cut = items.index(Ellipsis) if Ellipsis in items else len(items)
    front, back = items[:cut], items[cut + 1:]
    if len(front) + len(back) > len(shape):
        return False
    for item, n in zip(front + back, shape[:len(front)] + (shape[len(shape) - len(back):] if back else ())):
        if type(item) is not slice or any(isinstance(v, Tensor) for v in (item.start, item.stop, item.step)):
            return False
        if item.start not in (None, 0) or item.step not in (None, 1) or item.stop is not None and item.stop < n:
            return False
    return True


_NUMBERS = (bool, int, float, complex)


def _value_tensor(t, value):
    """torch's valueToTensor for t[key] = value: a Python bool, int, float or complex (a NumPy integer too)
    becomes a 0-d tensor of t's dtype; anything else is a TypeError, as in torch (a list or an array would have
    to be made a tensor first)."""
    if isinstance(value, np.bool_) or not isinstance(value, (*_NUMBERS, np.integer)):
        kind = type(value)
        name = "torch.Size" if kind.__name__ == "Size" and kind.__module__.startswith("dtrain") else \
            f"numpy.{kind.__name__}" if kind.__module__ == "numpy" else kind.__name__
        raise TypeError(f"can't assign a {name} to a {t.type()}")
    dt = t._data.dtype
    if isinstance(value, complex) and dt.kind != "c":
        if value.imag:
            raise RuntimeError(f"value cannot be converted to type {_dtype._CPP_NAMES.get(dt.name, dt.name)} "
                               f"without overflow")
        value = value.real
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and not -2 ** 63 <= value < 2 ** 63:
        raise ValueError("Overflow when unpacking long long")
    return _wrap(t._device.xp.asarray(value, dtype=dt), t._device)


def _write_indexed(t, key, value):
    """t[key] = value for an advanced key, on t's device."""
    with _backend.on_device(t._device):
        t._data[key] = value._data


def _check_value_shape(t, key, advanced, value):
    """torch's errors for a value that does not broadcast to t[key]. Advanced keys are checked on the host from
    their shapes only, so a GPU index never travels to the CPU for this."""
    # (a boolean mask's count of True decides the shape: like torch, that synchronises with the GPU)
    probe_key = tuple((np.zeros(k.shape, np.intp) if k.dtype.kind != "b" else _backend.to_numpy(k))
                      if hasattr(k, "shape") else k for k in key)
    probe = np.lib.stride_tricks.as_strided(np.empty(1, np.int8), shape=t.shape, strides=(0,) * t.ndim)
    try:
        target = probe[probe_key].shape
    except IndexError:
        return  # the real indexing raises its own error
    if not advanced:
        value.expand(target)  # raises torch's own message for a value that does not fit a view
        return
    try:
        np.broadcast_shapes(value.shape, target)
        if len(value.shape) > len(target) and any(s != 1 for s in value.shape[:len(value.shape) - len(target)]):
            raise ValueError
    except ValueError:
        raise RuntimeError(f"shape mismatch: value tensor of shape [{value._shape_str()}] cannot be broadcast to "
                           f"indexing result of shape [{', '.join(map(str, target))}]") from None


Tensor.__getitem__ = _getitem
Tensor.__setitem__ = _setitem


def _masked_fill_path(key, value, accumulate):
    """Whether torch's index_put_ writes as masked_fill_ (canDispatchToMaskedFill): one bool mask in the key
    and a one-element value, without accumulate. That path neither checks the value's dtype nor its memory."""
    keys = key if isinstance(key, tuple) else (key,)
    tensors = [x for x in keys if isinstance(x, Tensor)]
    return (not accumulate and value.numel() == 1 and len(tensors) == 1
            and tensors[0]._data.dtype.kind == "b" and not any(isinstance(x, (list, np.ndarray)) for x in keys))


def _tensor_values(values, name):
    if not isinstance(values, Tensor):
        raise TypeError(f"{name}(): argument 'values' (position 2) must be Tensor, not {type(values).__name__}")


def _check_index_put_value(self, key, value, accumulate, overlap=True):
    """torch's index_put_ checks on a tensor value: self's dtype, and none of self's memory."""
    if not isinstance(value, Tensor) or _masked_fill_path(key, value, accumulate):
        return
    if value.dtype is not self.dtype:
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got "
                           f"{_dtype.scalar_name(self.dtype)} for the destination and "
                           f"{_dtype.scalar_name(value.dtype)} for the source.")
    if overlap:
        from .inplace import check_no_overlap
        check_no_overlap(self, value)


@method()
@autocast_op("index_put")
def index_put(input, indices, values, accumulate=False):
    _tensor_values(values, "index_put")
    _check_index_put_value(input, tuple(indices), values, accumulate, overlap=False)
    k, _ = _convert_key(tuple(indices), input)
    _check_value_shape(input, k, True, values)
    return IndexPut.apply(input, values, key=k, accumulate=accumulate)


@method()
def index_put_(input, indices, values, accumulate=False):
    from .arith import assign_
    from .inplace import assign_selected_, warn_index_put_overlap
    _tensor_values(values, "index_put_")
    out = index_put(input, indices, values, accumulate)
    _check_index_put_value(input, tuple(indices), values, accumulate)
    a = input._data
    if a.flags.c_contiguous:
        return assign_(input, out)
    xp = input._device.xp
    touched = xp.zeros(input.shape, dtype=bool)
    touched[_convert_key(tuple(indices), input)[0]] = True
    if warn_index_put_overlap(input):  # an expanded target: torch only warns, and writes the indexed elements
        return assign_(input, out, written=False, write=lambda: xp.copyto(a, out._data, where=touched))
    return assign_selected_(input, out, touched)


# ---------------------------------------------------------------------------------------------- masks, where
class Where(Function):
    def forward(ctx, x, y, cond):
        ctx.cond, ctx.shapes = cond, (x.shape, y.shape)
        ctx.save_for_backward(_HOLDS_INDICES)  # torch's WhereBackward0 saves the condition: freed by a backward
        out = ctx.xp.where(cond, x, y)
        if not (cond.flags.c_contiguous and x.flags.c_contiguous and y.flags.c_contiguous):
            # torch's TensorIterator orders the result's dims by the operands' strides, the condition's first
            out = iterator_layout(ctx.xp, out, (cond, x, y))
        return out

    def backward(ctx, g):
        c, xp = ctx.cond, ctx.xp
        sx, sy = ctx.shapes
        # a select, not a product with the mask: a NaN or inf gradient must not leak into the other branch
        gx = unbroadcast(xp.where(c, g, 0), sx) if ctx.needs_input_grad[0] else None
        gy = unbroadcast(xp.where(c, 0, g), sy) if ctx.needs_input_grad[1] else None
        return gx, gy, None


def where(condition, input=None, other=None, *, out=None):
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor):
        raise TypeError("where(): argument 'condition' must be Tensor")
    if condition._data.dtype.kind != "b":
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{_dtype.scalar_name(condition.dtype)}")
    (x, y), _ = promote(input, other)
    err = broadcast_error(condition.shape, x.shape)
    if err is None:
        err = broadcast_error(np.broadcast_shapes(condition.shape, x.shape), y.shape)
    if err is not None:
        raise err
    return out_copy(Where.apply(x, y, condition), out)


Tensor.where = lambda self, condition, other: where(condition, self, other)


class MaskedFill(Function):
    @c_ordered
    def forward(ctx, x, mask, value):
        ctx.mask, ctx.shape = mask, x.shape
        ctx.save_for_backward(_HOLDS_INDICES)  # torch's MaskedFillBackward0 saves the mask: freed by a backward
        return ctx.xp.where(mask, ctx.xp.asarray(value, dtype=x.dtype), x)

    def backward(ctx, g):
        return unbroadcast(ctx.xp.where(ctx.mask, 0, g), ctx.shape), None


_C_TYPE_NAMES = _dtype._CPP_NAMES  # the C++ type names torch's masked_fill message prints


@method()
def masked_fill(input, mask, value):
    if mask._data.dtype.kind != "b":
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{_C_TYPE_NAMES.get(mask.dtype.name, mask.dtype.name)}")
    err = broadcast_error(mask.shape, input.shape)
    if err is not None:
        raise err
    shape = np.broadcast_shapes(mask.shape, input.shape)
    if shape != tuple(input.shape):  # the out-of-place form takes the broadcast shape
        input = input.expand(shape)
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s).")
        if value.requires_grad and grad_mode.is_grad_enabled():
            # the filled positions are differentiable with respect to the value
            v = value if value._data.dtype == input._data.dtype else value.to(input.dtype)
            return Where.apply(v.expand(input.shape), input, mask.expand(input.shape))
        value = value.item()
    return MaskedFill.apply(input, mask, value=value)


@method()
def masked_fill_(input, mask, value):
    from .inplace import assign_selected_
    err = broadcast_error(input.shape, mask.shape)
    if err is not None:
        raise err
    return assign_selected_(input, masked_fill(input, mask, value), mask._data)


@method()
def masked_select(input, mask):
    x, m = input, mask
    if m._data.dtype.kind != "b":
        raise RuntimeError(f"masked_select: expected BoolTensor for mask")
    if x.shape != m.shape:
        err = broadcast_error(m.shape, x.shape)
        if err is not None:
            raise err
        shp = np.broadcast_shapes(x.shape, m.shape)
        x, m = x.expand(shp), m.expand(shp)
    return AdvancedIndex.apply(x, key=(m._data,), label="MaskedSelectBackward0")


@method()
@on_input_device
def masked_scatter(input, mask, source):
    if source.dtype is not input.dtype:  # (torch's message runs "got" into the first name)
        raise RuntimeError(f"masked_scatter: expected self and source to have same dtypes but got"
                           f"{_dtype.scalar_name(input.dtype)} and {_dtype.scalar_name(source.dtype)}")
    n = int(input._device.xp.broadcast_to(mask._data, input.shape).sum())
    if source.numel() < n:
        raise RuntimeError("Number of elements of source < number of ones in mask")
    out = input.clone()
    out[mask.expand(input.shape)] = source.reshape(-1)[:n]
    return out


def _masked_scatter_(input, mask, source):
    from .inplace import assign_selected_
    mask.expand(input.shape)  # torch expands the mask to self first: its "The expanded size ..." error
    if mask._data.dtype.kind != "b":
        raise RuntimeError(f"masked_scatter_ only supports boolean masks, but got mask with dtype "
                           f"{_dtype.scalar_name(mask.dtype)}")
    return assign_selected_(input, masked_scatter(input, mask, source), mask._data)


Tensor.masked_scatter_ = _masked_scatter_


@method()
@on_input_device
def nonzero(input, *, as_tuple=False):
    xp = input._device.xp
    if input.ndim == 0:
        n = int(bool(input._data))
        if as_tuple:
            return (_wrap(xp.zeros(n, np.int64), input._device),)
        return _wrap(xp.zeros((n, 0), np.int64), input._device)
    idx = xp.nonzero(input._data)
    if as_tuple:
        return tuple(_wrap(i.astype(np.int64, copy=False), input._device) for i in idx)
    # torch writes the coordinates dim by dim: an (ndim, n) array seen transposed, strides (1, n)
    return _wrap(xp.stack(idx).astype(np.int64, copy=False).T if idx else xp.zeros((0, 0), np.int64),
                 input._device)


@method()
def argwhere(input):
    return nonzero(input)
