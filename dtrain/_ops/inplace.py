"""In-place writes and the autograd bookkeeping of views, as torch keeps it.

A view shares its root base's memory and version counter (`_base` is always the root, never a view). An
in-place op is computed out of place and copied into the target's memory (`assign_`); autograd then records:
- on a plain tensor: its history continues at the op's node;
- on a view: the base's history becomes `CopySlices` (the view's region comes from the op, the rest from
  the base as before), and the view's own history is regenerated from the base (`AsStridedBackward0`).
Every other view of the same base notices the write through the shared version counter: the first time its
`grad_fn` is read (or it is used by an op) after a write, it is regenerated from the base as well
(`refresh_view`), so a view taken before a write never keeps the old history.

Geometry is kept in elements relative to the lowest address the root base spans ("storage"), so bases and
views of any layout (transposed, strided, negative steps) map gradients exactly; gradients themselves may
arrive in any layout."""
import re

import numpy as np

from .. import _backend, _dtype
from . import _layout
from .._backend import data_ptr, kernels, on_device
from .._tensor import Tensor
from ..autograd import grad_mode
from ..autograd import graph as _graph
from ..autograd.graph import Function

# how a view was made (torch's CreationMeta): decides whether writing into it in a graph is allowed
DEFAULT, NO_GRAD_MODE, MULTI_OUTPUT = _graph.DEFAULT, _graph.NO_GRAD_MODE, _graph.MULTI_OUTPUT


# --------------------------------------------------------------------------------------------- geometry


def _extent(shape, strides):
    """Lowest and highest element offset an array of `shape` and element `strides` touches (None if empty)."""
    if 0 in shape:
        return None
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0)
    return lo, hi


def _elem_strides(a):
    return tuple(s // a.itemsize for s in a.strides)


def geometry(a, origin):
    """(offset, element strides, shape) of array `a` relative to the address `origin`."""
    return ((data_ptr(a) - origin) // a.itemsize, _elem_strides(a), tuple(a.shape))


def storage_of(root):
    """(lowest address, size in elements) of the memory the root array spans."""
    ext = _extent(root.shape, _elem_strides(root))
    if ext is None:
        return data_ptr(root), 0
    lo, hi = ext
    return data_ptr(root) + lo * root.itemsize, hi - lo + 1


def _on(xp, buf, where):
    """The array at `where` = (offset, strides, shape) inside the flat 1-D array `buf`."""
    off, strides, shape = where
    if 0 in shape:
        return xp.zeros(shape, buf.dtype)
    return xp.lib.stride_tricks.as_strided(buf[off:], shape, tuple(s * buf.itemsize for s in strides))


def _dense_c(where, n):
    """Whether `where` is all of a storage of n elements in row-major order (a plain contiguous base)."""
    off, strides, shape = where
    expected = 1
    for size, st in zip(reversed(shape), reversed(strides)):
        if size != 1 and st != expected:
            return False
        expected *= size
    return off == 0 and expected == n


def overlaps(shape, strides):
    """Whether two elements of an array of this geometry may share memory (torch's internal-overlap test
    sorts dims by stride: each stride must exceed everything the smaller dims span)."""
    span = 0
    for n, s in sorted(((n, abs(s)) for n, s in zip(shape, strides) if n > 1), key=lambda p: p[1]):
        if s <= span:
            return True
        span += (n - 1) * s
    return False


def _scatter(xp, buf, where, g):
    """buf[where] += g, summing where the geometry maps several elements to one place (unfold, expand)."""
    off, strides, shape = where
    if not overlaps(shape, strides):
        _on(xp, buf, where)[...] += g
        return
    idx = xp.asarray(off)
    for n, s in zip(shape, strides):  # the storage index of every element of the view
        idx = idx[..., None] + xp.arange(n) * s
    flat = idx.reshape(-1)
    gv = xp.broadcast_to(g, shape).reshape(-1)
    if kernels[xp].host and buf.dtype.kind == "f":  # NumPy's add.at is ~10x slower than a weighted bincount
        buf += np.bincount(flat, weights=gv, minlength=buf.size).astype(buf.dtype, copy=False)
    else:
        from .index import _scatter_add_at
        _scatter_add_at(xp, buf, flat, gv)


class StridedMap(Function):
    """x laid into a zeroed storage of n elements at geometry `src` (summing where src maps several elements to
    one place), read back at geometry `dst`: the linear map behind the backward of every strided view
    (as_strided, unfold, CopySlices). Its own backward is the same map with src and dst swapped, so
    `create_graph=True` goes through those backwards to any order."""

    def forward(ctx, x, n, src, dst):
        ctx.n, ctx.src, ctx.dst = n, src, dst
        return _strided_map(ctx.xp, x, n, src, dst)

    def backward(ctx, g):
        # (the map with the geometries swapped; the node keeps its own, for a second backward)
        return _strided_map(ctx.xp, g, ctx.n, ctx.dst, ctx.src)


def _strided_map(xp, x, n, src, dst):
    """x laid into a zeroed storage of n elements at geometry `src`, read back at geometry `dst`."""
    buf = xp.zeros(n, x.dtype)
    _scatter(xp, buf, src, x)
    return xp.array(_on(xp, buf, dst), order="C")


class AsStrided(Function):
    """A view given by size/stride/offset in its base's storage: torch.as_strided, and the history of a view
    regenerated after an in-place write (torch's AsStridedBackward0)."""
    _view = True

    def forward(ctx, x, size, stride, offset, storage):
        # storage: (lowest address, size) of the root; x's own geometry is needed for the backward
        origin, n = storage
        ctx.n, ctx.inp, ctx.out = n, geometry(x, origin), (offset, tuple(stride), tuple(size))
        return _on(ctx.xp, _flat_at(ctx.xp, x, origin, n) if n else x.reshape(-1), ctx.out)

    _grad_fn_name = "AsStridedBackward0"

    def backward(ctx, g):
        xp = ctx.xp
        if _dense_c(ctx.inp, ctx.n):
            out = xp.zeros(ctx.inp[2], g.dtype)
            _scatter(xp, out.reshape(-1), ctx.out, g)
            return out
        buf = xp.zeros(ctx.n, g.dtype)
        _scatter(xp, buf, ctx.out, g)
        return xp.array(_on(xp, buf, ctx.inp), order="C")


def view_at(xp, a, template):
    """An array of template's address, shape and strides made from `a` (template lies in a's memory): a
    writable twin of a read-only view."""
    pa, pt = data_ptr(a), data_ptr(template)
    flat = _flat_at(xp, a, min(pa, pt), 1 + abs(pt - pa) // a.itemsize)
    start = flat[(data_ptr(template) - data_ptr(flat)) // a.itemsize:]
    return xp.lib.stride_tricks.as_strided(start, template.shape, template.strides)


def _flat_at(xp, a, origin, n):
    """A flat 1-D array of `n` elements of a's dtype starting at address `origin` (inside a's memory)."""
    shift = (data_ptr(a) - origin) // a.itemsize
    # as_strided cannot move the start address back: start at a's first element with a negative step
    if shift:
        back = xp.lib.stride_tricks.as_strided(a, (shift + 1,), (-a.itemsize,))[::-1]
        return xp.lib.stride_tricks.as_strided(back, (n,), (a.itemsize,))
    return xp.lib.stride_tricks.as_strided(a, (n,), (a.itemsize,))


def as_strided(input, size, stride, storage_offset=None):
    """A view of `input`'s storage (its root base's memory) with the given size, stride and offset."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise RuntimeError(f"mismatch in length of strides and shape")
    if any(s < 0 for s in stride):
        raise RuntimeError("as_strided: Negative strides are not supported at the moment, got strides: "
                           f"[{', '.join(map(str, stride))}]")
    root = input._base if input._base is not None else input
    origin, n = storage_of(root._data)
    if storage_offset is None:
        storage_offset = (data_ptr(input._data) - origin) // input._data.itemsize
    ext = _extent(size, stride)
    need = 0 if ext is None else storage_offset + ext[1] + 1
    if need > n:
        raise RuntimeError(f"setStorage: sizes [{', '.join(map(str, size))}], strides [{', '.join(map(str, stride))}],"
                           f" storage offset {storage_offset}, and itemsize {input._data.itemsize} requiring a "
                           f"storage size of {need * input._data.itemsize} are out of bounds for storage of size "
                           f"{n * input._data.itemsize}")
    return AsStrided.apply(input, size=size, stride=stride, offset=storage_offset, storage=(origin, n))


_HOLDS_VIEW_FN = ("the written view's node",)  # CopySlices' saved state: a marker, no array


class CopySlices(Function):
    """A base whose view was written in place: the view's region now comes from the write, the rest of the
    base keeps its history (torch's CopySlices).

    Where the write's node `fn` took the view itself as its first input (`v.mul_(2)`: Mul(v, 2)), this node
    runs fn's backward itself, as torch's does: fn's gradient for the view's old values goes back into the
    region of the base's gradient, and the view's old node is never run (a hook registered on the view
    before the write does not fire); fn's other inputs are this node's inputs 1, 2, .... Otherwise (a write
    with a cast in between) the region's gradient goes to the write's result, input 1."""
    _grad_fn_name, _late_name = "CopySlices", False  # name() is torch::autograd::CopySlices, as torch's
    fn = None

    def forward(ctx, base, result, storage, base_where, view_where):
        ctx.n, ctx.base_where, ctx.view_where = storage[1], base_where, view_where
        # torch's CopySlices holds the written view's node and lets it go after a backward without
        # retain_graph: a second backward through it raises even when that node saved nothing (copy_, add_)
        ctx.save_for_backward(_HOLDS_VIEW_FN)
        return base

    def fold(ctx, fn):
        """Take over `fn`, the write's node, whose first input is the written view."""
        ctx.fn = fn
        ctx.next_functions = (ctx.next_functions[0],) + tuple(fn.next_functions[1:])
        ctx.needs_input_grad = (ctx.needs_input_grad[0],) + tuple(fn.needs_input_grad[1:])

    def name(self):
        return "torch::autograd::CopySlices"

    def __repr__(self):
        return f"<CopySlices object at {hex(id(self))}>"

    def backward(ctx, g):
        xp = ctx.xp
        _, strides, shape = ctx.view_where
        if any(st == 0 and n > 1 for st, n in zip(strides, shape)):
            # torch lets fill_/zero_ write into an expanded view in a graph, then refuses its backward here
            raise RuntimeError(_OVERLAP)
        # the gradient laid out in the base's own memory layout, whatever layout it arrived in
        # (fresh arrays are returned: the engine may then sum further gradients into them in place)
        if _dense_c(ctx.base_where, ctx.n):
            g_base = xp.array(g, order="C")  # the common case: one pass, and the result is its own array
            buf = g_base.reshape(-1)
        else:
            buf = xp.zeros(ctx.n, g.dtype)
            _on(xp, buf, ctx.base_where)[...] = g
            g_base = None
        region = _on(xp, buf, ctx.view_where)
        fn = ctx.fn
        if fn is not None:
            rest = _run_folded(fn, xp.array(region, order="C"))
            if rest[0] is None:
                region[...] = 0
            else:
                _write_in_order(xp, region, rest[0])  # through overlapping windows the last write wins, as torch's
            rest = tuple(rest[1:])
        else:
            rest = (xp.array(region, order="C") if ctx.needs_input_grad[1] else None,)
            region[...] = 0
        if not ctx.needs_input_grad[0]:
            return (None,) + rest
        if g_base is None:
            g_base = xp.array(_on(xp, buf, ctx.base_where), order="C")
        return (g_base,) + rest


def _run_folded(fn, g):
    """fn's backward for gradient g, with the checks the engine would make before running it."""
    if fn.saved is _graph._FREED:
        raise RuntimeError(_graph._TWICE)
    if fn._versions:
        _graph._check_versions(fn)
    out = fn.backward(g)
    return out if type(out) is tuple else (out,)


# ------------------------------------------------------------------------------------ views' history
def _short(node):
    # torch 2.13 names nodes in these messages without "Backward0" ("Output 0 of Split ...", "Pow1")
    return re.sub(r"Backward0?$", "", node.name())


def handle_view_on_rebase(t, indirect):
    """torch's refusals of writes into views whose history cannot be rewritten."""
    meta = t._view_info[1]
    if meta == DEFAULT:
        return
    gf = t._grad_fn
    what = "its base or another view of its base has been" if indirect else "is being"
    if meta == NO_GRAD_MODE or gf is None:
        prefix = (f"Output {t._output_nr} of {_short(gf)} is a view of a view which was created in" if gf is not None
                  else "A view was created in")
        msg = f"{prefix} no_grad mode and {what} modified inplace with grad mode enabled."
    else:
        msg = f"Output {t._output_nr} of {_short(gf)} is a view and {what} modified inplace."
    if meta == MULTI_OUTPUT:
        msg += (" This view is the output of a function that returns multiple views. Such functions do not allow "
                "the output views to be modified inplace. You should replace the inplace operation by an "
                "out-of-place one.")
    else:
        msg += (" Given that this use case is ambiguous and error-prone, it is forbidden. You can clarify your code "
                "by moving both the view and the inplace either both inside the no_grad block (if you don't want "
                "the inplace to be tracked) or both outside (if you want the inplace to be tracked).")
    raise RuntimeError(msg)


def refresh_view(t):
    """Regenerate a view's history from its base after the base (or any view of it) was written in place
    since the view's history was last set (torch's grad_fn regeneration)."""
    info = t._view_info
    version = t._vc.value
    if info[0] == version:
        return
    base = t._base
    if t._grad_fn is None and not base._requires_grad:
        return
    handle_view_on_rebase(t, True)
    origin, n = storage_of(base._data)
    node = AsStrided.__new__(AsStrided)
    node.xp = base._device.xp
    node._device = base._device
    node.needs_input_grad = (True,)
    node.n, node.inp, node.out = n, geometry(base._data, origin), geometry(t._data, origin)
    node.next_functions = (_graph._edge(base),)
    node._seq = next(_graph._seq)
    set_history(t, node, 0)
    info[0] = version


def set_history(t, node, output_nr):
    """t's history now continues at `node`; a retained gradient follows it, as in torch (tensor hooks
    registered earlier stay on the old node: they see the gradient of the old value)."""
    old = t._grad_fn
    t._grad_fn, t._output_nr, t._requires_grad = node, output_nr, True
    keep = t._retains_grad
    if keep and old is not node:
        handle, fn = keep
        handle.remove()
        t._retains_grad = (node._tensor_hook(output_nr, fn), fn)


# --------------------------------------------------------------------------------------- in-place writes
_OVERLAP = ("unsupported operation: more than one element of the written-to tensor refers to a single memory "
            "location. Please clone() the tensor before performing the operation.")


_PARTIAL = ("unsupported operation: some elements of the input tensor and the written-to tensor refer to a single "
            "memory location. Please clone() the tensor before performing the operation.")


def check_overlap(t):
    """torch refuses writes into a tensor whose elements share memory (an expanded tensor)."""
    a = t._data
    if a.size > 1 and any(s == 0 and n > 1 for s, n in zip(a.strides, a.shape)):  # an empty one has no elements
        raise RuntimeError(_OVERLAP)


def warn_index_put_overlap(t):
    """torch's index_put_ into a tensor whose elements share memory (an expanded one) only warns (deprecated),
    and writes; True where it warned."""
    a = t._data
    if a.size > 1 and any(st == 0 and n > 1 for st, n in zip(a.strides, a.shape)):
        import warnings
        warnings.warn("Use of index_put_ on expanded tensors is deprecated. Please clone() the tensor before "
                      "performing this operation. This also applies to advanced indexing e.g. tensor[indices] = "
                      "tensor", UserWarning, stacklevel=3)
        return True
    return False


def same_data(a, b):
    """Whether arrays a and b are the same elements seen the same way (torch's copy_ then writes nothing)."""
    return a is b or (a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides and data_ptr(a) == data_ptr(b))


def _dense(a):
    """torch's is_non_overlapping_and_dense: the elements, ordered by stride, tile their memory without gaps."""
    return _layout.dense(a.shape, _elem_strides(a))


def check_partial_overlap(dst, src):
    """torch's refusal of an in-place write whose input shares some, but not exactly all, of the target's
    memory (TensorIterator's get_overlap_status: both dense, the same span with other strides, or spans that
    overlap). An input that is not dense is too hard to tell, and let through, as in torch: True then where
    its memory does overlap the target's (torch's kernel reads it while writing, see apply_)."""
    a, b = dst._data, src._data
    if a is b or (a.base is None and b.base is None) or src is dst or a.size == 0 or b.size == 0:
        return False  # two arrays that own their memory never overlap
    if a.dtype.itemsize != b.dtype.itemsize or not _dense(a) or not _dense(b):
        (alo, ahi), (blo, bhi) = _extent(a.shape, _elem_strides(a)), _extent(b.shape, _elem_strides(b))
        a0, b0 = data_ptr(a), data_ptr(b)
        return a0 + alo * a.itemsize < b0 + (bhi + 1) * b.itemsize and b0 + blo * b.itemsize < a0 + (ahi + 1) * a.itemsize
    if _backend.owner(a) is not _backend.owner(b):
        return False  # torch compares storages: over the same memory, from_numpy's is another one
    a0, b0 = data_ptr(a), data_ptr(b)
    a1, b1 = a0 + a.nbytes, b0 + b.nbytes
    if a0 == b0 and a1 == b1:
        if a.ndim != b.ndim or _elem_strides(a) != _elem_strides(b):
            raise RuntimeError(_PARTIAL)
    elif a0 < b1 and b0 < a1:
        raise RuntimeError(_PARTIAL)
    return False


def check_no_overlap(dst, src):
    """torch's assert_no_overlap, which the indexed writes (index_add_, index_copy_, index_put_, scatter_)
    apply to their source: it may share none of the target's memory, not even exactly the same elements
    (elementwise ops allow that); a source that is not dense is too hard to tell and passes, as in torch."""
    if not isinstance(src, Tensor):
        return
    if src is dst:
        raise RuntimeError(_PARTIAL)
    a, b = dst._data, src._data
    if a.size == 0 or b.size == 0 or (a.base is None and b.base is None and a is not b):
        return  # two arrays that own their memory never overlap
    if not _dense(a) or not _dense(b):
        return  # torch: too hard to tell (t.detach() of a strided window writes without complaint)
    check_partial_overlap(dst, src)  # raises on a partial overlap
    if _backend.owner(a) is _backend.owner(b) and data_ptr(a) == data_ptr(b) and a.nbytes == b.nbytes:
        raise RuntimeError(_PARTIAL)


def assign_indexed_(t, result, src):
    """assign_ for an indexed write from `src` (scatter_, index_add_, index_copy_): torch's assert_no_overlap
    on the source first."""
    check_no_overlap(t, src)
    return assign_(t, result)


def assign_selected_(t, result, where):
    """assign_ for a write that touches only the elements where `where` (an array broadcastable to t) is set
    (masked_fill_, masked_scatter_, index_put_): where t's elements share memory (overlapping unfold
    windows), an element left alone through one alias keeps what was written through another, as in torch."""
    a = t._data
    if a.flags.c_contiguous or not _self_overlapping(a):
        return assign_(t, result)
    xp = t._device.xp
    return assign_(t, result, write=lambda: xp.copyto(a, result._data, where=xp.broadcast_to(where, a.shape)))


def _iteration_order(shape, strides):
    """The dims of a written tensor, innermost first, in the order torch's TensorIterator walks them."""
    return _layout.tensor_iterator_order(shape, (strides,))


def _self_overlapping(a):
    """Whether distinct elements of `a` share memory through strides that are not 0 (overlapping unfold
    windows, as_strided): torch cannot tell, writes element after element, and so updates a shared element
    once per occurrence."""
    if a.flags.c_contiguous or a.size < 2:
        return False
    strides = _elem_strides(a)
    return 0 not in strides and overlaps(a.shape, strides)


_SCALAR_RUN = 16  # inner runs shorter than this torch's CPU kernels do element by element (no vector loop)


def _pieces(a, elements=False):
    """Index tuples of `a` in torch's iteration order, each a 1-D run along the innermost dim (whose
    elements are distinct: a dim with a stride that is not 0 never repeats an address); with `elements`,
    each single element (0-d views) where that run is short enough for torch to go element by element."""
    import itertools
    order = _iteration_order(a.shape, _elem_strides(a))
    single = elements and a.ndim and a.shape[order[0]] < _SCALAR_RUN
    outer = (order if single else order[1:])[::-1]
    for idx in itertools.product(*(range(a.shape[d]) for d in outer)):
        key = [slice(None)] * a.ndim
        for d, i in zip(outer, idx):
            key[d] = i
        yield tuple(key) + ((Ellipsis,) if single else ())


def _write_result(t, result, write):
    """t's memory takes result's values: plainly, through the caller's `write`, or in torch's order where t's
    elements share memory."""
    if write is _PLAIN or (write is None and (t._data.flags.c_contiguous or not _self_overlapping(t._data))):
        t._device.xp.copyto(t._data, result._data, casting="unsafe")
    elif write is not None:
        write()
    else:
        _write_in_order(t._device.xp, t._data, result._data)


def _write_in_order(xp, dst, src):
    """dst[...] = src, element after element in torch's order where dst's elements share memory (the last
    write of a shared element wins, as in torch)."""
    if not _self_overlapping(dst):
        xp.copyto(dst, src, casting="unsafe")
        return
    src = xp.broadcast_to(src, dst.shape)
    for key in _pieces(dst):
        xp.copyto(dst[key], src[key], casting="unsafe")


def _recompute_in_order(t, fn, args, kwargs, elements=False):
    """The values of `t.op_(*args)` on a target whose elements share memory, or that an input reads while
    it is written: `fn` applied one run of distinct elements (with `elements`: one element, see _pieces) at
    a time, in torch's order, each reading what those before it wrote."""
    from .._tensor import _wrap
    a, dev = t._data, t._device
    xp = dev.xp

    def part(x, key):
        if isinstance(x, Tensor):
            return _wrap(xp.broadcast_to(x._data, a.shape)[key] if x._device is dev else x._data, dev)
        return x
    with grad_mode.no_grad():
        for key in _pieces(a, elements):
            r = fn(_wrap(a[key], dev), *[part(x, key) for x in args], **{k: part(v, key) for k, v in kwargs.items()})
            xp.copyto(a[key], r._data, casting="unsafe")


def apply_(t, fn, args=(), kwargs=None):
    """`t.op_(*args, **kwargs)` for an op `fn` computed out of place: torch's overlap rules, then the write."""
    kwargs = kwargs or {}
    reads_target = False
    for x in (*args, *kwargs.values()):
        # two arrays that own their memory never overlap: the common case costs no call
        if isinstance(x, Tensor) and (x._data.base is not None or t._data.base is not None):
            reads_target = check_partial_overlap(t, x) or reads_target
    result = fn(t, *args, **kwargs)
    if reads_target:
        # an input torch lets through (not dense) that shares the target's memory: its kernel reads it while
        # writing, element after element (`x[:, 1:].add_(x[:, :-1])` sums along the rows)
        return assign_(t, result, write=lambda: _recompute_in_order(t, fn, args, kwargs, elements=True))
    if not t._data.flags.c_contiguous and _self_overlapping(t._data):
        return assign_(t, result, write=lambda: _recompute_in_order(t, fn, args, kwargs))
    return assign_(t, result, write=_PLAIN)


_PLAIN = "a plain copy"  # assign_'s `write` for a target known to have no shared elements


def check_inplace(t, requires_grad=None):
    """torch's rules for writing into a tensor that autograd may need (`requires_grad`: whether the write's
    result is in a graph; t's own flag when not given)."""
    if not grad_mode._state.enabled:
        return
    if requires_grad is None:
        requires_grad = t.requires_grad
    if not requires_grad:
        return
    b = t._base
    if b is not None:
        handle_view_on_rebase(t, False)
        # the view's flag, not the base's: a view taken before its base's detach_() still requires grad
        if t.requires_grad and b.grad_fn is None:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")
    if t._requires_grad and t.grad_fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")


def assign_(t, result, fill=False, write=None, written=None):
    """Make `t` hold `result` in place: data written into t's memory, history taken over from `result`.
    `fill`: the values do not depend on t's (zero_, fill_): torch writes them even into an expanded tensor.
    `write`: writes the values itself (in place of copying `result`'s); `written`: the part of t it writes,
    whose elements must not share memory (t itself when None; False: nothing to check)."""
    check_inplace(t, result._requires_grad or t.requires_grad)
    res_dt = result._data.dtype
    dst_dt = t._data.dtype
    if res_dt != dst_dt and not np.can_cast(res_dt, dst_dt, "same_kind") and \
            not (dst_dt.kind in "fc" and res_dt.kind in "biuf"):
        raise RuntimeError(f"result type {_dtype.scalar_name(_dtype.from_numpy_dtype(res_dt))} can't be cast to the "
                           f"desired output type {_dtype.scalar_name(_dtype.from_numpy_dtype(dst_dt))}")
    if result.shape != t.shape:
        try:
            np.broadcast_to(np.empty(result.shape, bool), t.shape)
        except ValueError:
            raise RuntimeError(f"output with shape [{t._shape_str()}] doesn't match the broadcast shape "
                               f"[{result._shape_str()}]") from None
    if t._device is not result._device:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"{result._device} and {t._device}!")
    if not fill and written is not False:
        check_overlap(t if written is None else written)
    node = result._grad_fn if grad_mode._state.enabled else None
    if node is not None and node.saved and node.saved is not _graph._FREED:
        _adopt_saved(node, t, result)
    if t._device._gpu is None:
        _write_result(t, result, write)
    else:
        with on_device(t._device):
            _write_result(t, result, write)
    t._vc.value += 1
    if node is not None and node._versions:
        # an output the op saved for its backward is t itself now: a later write to t must be caught, and
        # its backward reads t's memory (a write through .numpy(), which no counter sees, shows there as in torch)
        node._versions = [(t._vc, t._vc.value, None, v[3], False) if v[0] is result._vc and v[2] is None else v
                          for v in node._versions]
        if node.saved and node.saved is not _graph._FREED and t._data.shape == result._data.shape:
            node.saved = tuple(t._data if a is result._data else a for a in node.saved)
    if grad_mode._state.enabled:
        base = t._base
        if base is not None and (node is not None or base._requires_grad):
            _rebase_view(t, base, result, (t._grad_fn, t._output_nr) if t._requires_grad else (None, 0))
        elif node is not None:
            set_history(t, node, result._output_nr)
    return t


def _adopt_saved(node, t, result):
    """The op saved t's old values as its `self` (torch saves a copy of the original self for the formulas
    that need it): keep a copy, since they are overwritten now. t saved in any other role (`y.mul_(y)`)
    keeps its version check, so the backward raises as torch's does."""
    old = t._data
    if not any(a is old for a in node.saved):
        return
    with on_device(t._device):  # CuPy's copy() is made on the current device
        node.saved = tuple(a.copy() if a is old else a for a in node.saved)
    versions = list(node._versions)
    for i, v in enumerate(versions):
        if v[2] is t:
            del versions[i]
            break
    node._versions = versions


def _rebase_view(t, base, result, view_edge):
    """torch's CopySlices: the base's history now runs through the written view (`x[0].mul_(2)`), and the
    view's own history is regenerated from the base. `view_edge`: the view's edge before the write."""
    origin, n = storage_of(base._data)
    where = geometry(base._data, origin), geometry(t._data, origin)
    if result._data.dtype != base._data.dtype:
        result = result.to(base.dtype)
    nb = CopySlices.apply(base, result, storage=(origin, n), base_where=where[0], view_where=where[1])
    fn = result._grad_fn
    if (fn is not None and fn._out_meta is None and nb._grad_fn is not None and fn.next_functions
            and fn.next_functions[0] == view_edge):
        nb._grad_fn.fold(fn)
    set_history(base, nb._grad_fn, 0)
    t._view_info[0] = -1  # stale: refreshed from the new base history right now
    refresh_view(t)


_graph._refresh_view = refresh_view
