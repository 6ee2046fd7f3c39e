"""How op results are laid out in memory, as torch lays them out.

A result's strides decide whether `.view()` of it works, what `is_contiguous()` and `stride()` say, and what a
later in-place write counts as a partial overlap, so dtrain's must be torch's. NumPy's choices differ in three
places, each handled here:
- reductions, scans, softmax and most ops that are not elementwise: torch allocates a new contiguous result,
  NumPy keeps the input's order of dims (`c_ordered`);
- clone and the *_like factories: torch keeps the input's order of dims (preserve_format), NumPy's copy() is
  C order (`empty_preserving`);
- elementwise ops: torch's TensorIterator orders the dims by the inputs' strides, the first input that tells
  two dims apart deciding, equal strides by size; NumPy's iterator breaks ties and weighs several inputs its own
  way (`iterator_layout`, called by Function.apply for the ops registered in POINTWISE).
"""
import functools

from .. import _memory_format as _mf
from ..autograd import graph as _graph

_c_strides = _graph._c_strides  # whether every stride, those of size-1 dims included, is C order's


def tensor_iterator_order(shape, operand_strides):
    """TensorIterator's order of dims, innermost first (its reorder_dimensions): an insertion sort in which
    the first operand whose strides of the two dims are both nonzero and differ decides; equal strides put
    the smaller dim inner; ties keep the later dim inner."""
    n = len(shape)
    perm = list(range(n))[::-1]
    for i in range(1, n):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            a, b = perm[d0], perm[d1]
            c = 0
            for st in operand_strides:
                s0, s1 = st[a], st[b]
                if s0 == 0 or s1 == 0:
                    continue
                if s0 != s1:
                    c = 1 if s0 > s1 else -1
                    break
                if shape[a] > shape[b]:
                    c = 1
                    break
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    return perm


def _empty_in_order(xp, shape, order, dtype):
    """An uninitialised array of `shape`, dense with its dims laid out outermost-first in `order`."""
    inverse = [0] * len(order)
    for i, d in enumerate(order):
        inverse[d] = i
    return xp.empty([shape[d] for d in order], dtype).transpose(inverse)


def empty_strided(xp, shape, strides, dtype):
    """An uninitialised array of `shape` with `strides` (in elements, none negative) over a new buffer of torch's
    storage size for them: 1 + sum((n - 1) * stride), none when a dim is 0."""
    n = 0 if 0 in shape else 1 + sum((d - 1) * st for d, st in zip(shape, strides))
    size = xp.dtype(dtype).itemsize
    return xp.lib.stride_tricks.as_strided(xp.empty(n, dtype), tuple(shape), tuple(st * size for st in strides))


def preserve_order(shape, strides):
    """The dims of a tensor, outermost first, in the order torch's preserve_format keeps them (its
    infer_dense_strides, TensorIterator's order for one operand); None where that is plain C order."""
    order = tensor_iterator_order(shape, (strides,))[::-1]
    return None if order == list(range(len(shape))) else order


def empty_preserving(xp, a, dtype=None):
    """An uninitialised array of a's shape laid out as torch's preserve_format lays out a copy of `a`: in
    a's order of dims, densely (torch's clone of a transposed tensor stays transposed; NumPy's copy() is C
    order)."""
    dtype = a.dtype if dtype is None else dtype
    if (a.flags.c_contiguous and ((a.size and 1 not in a.shape) or _c_strides(a))) or any(s < 0 for s in a.strides):
        return xp.empty(a.shape, dtype)
    strides = tuple(s // a.itemsize for s in a.strides)
    if a.size == 0 or dense(a.shape, strides):
        # torch keeps a dense tensor's strides exactly, those of its size-1 dims too (they decide what a later
        # copy_ between the copy and a view of it counts as a partial overlap); an empty tensor counts as dense
        size = xp.dtype(dtype).itemsize
        return xp.lib.stride_tricks.as_strided(xp.empty(max(a.size, 1), dtype), a.shape,
                                               tuple(st * size for st in strides))
    order = preserve_order(a.shape, a.strides)
    return xp.empty(a.shape, dtype) if order is None else _empty_in_order(xp, a.shape, order, dtype)


def dense(shape, strides):
    """torch's is_non_overlapping_and_dense: ordered by stride, the elements tile their memory without gaps."""
    expected = 1
    for n, st in sorted(((n, st) for n, st in zip(shape, strides) if n != 1), key=lambda p: p[1]):
        if st != expected:
            return False
        expected *= n
    return True


def copy_preserving(xp, a, dtype=None):
    """A copy of `a` (cast to `dtype`) in torch's preserve_format layout (see empty_preserving)."""
    if a.flags.c_contiguous and ((a.size and 1 not in a.shape) or _c_strides(a)):
        return a.copy() if dtype is None or dtype == a.dtype else a.astype(dtype)
    out = empty_preserving(xp, a, dtype)
    xp.copyto(out, a, casting="unsafe")
    return out


def c_order(a):
    """`a` laid out in C order. torch's reductions, scans, softmax and most ops that are not elementwise
    allocate a new contiguous result; NumPy's keep the input's order of dims (a reduction of a transposed
    tensor comes back transposed, and `.view()` of it would then refuse what torch's accepts)."""
    return a if a.flags.c_contiguous else a.copy()


def _replace_saved(ctx, old, new):
    """The forward saved `old` (its result) for backward: save `new`, its relaid copy, instead, so that the
    check for in-place writes into the result still finds it."""
    if ctx.saved:
        ctx.saved = tuple(new if s is old else s for s in ctx.saved)


def c_ordered(forward):
    """Decorates a Function's forward whose result torch lays out contiguously: the result (each one, for a
    tuple) in C order, and the copy saved for backward in its place where the forward saved the result."""
    @functools.wraps(forward)
    def run(ctx, *args, **kwargs):
        y = forward(ctx, *args, **kwargs)
        ys = y if type(y) is tuple else (y,)
        if all(o.flags.c_contiguous for o in ys):
            return y
        cs = tuple(c_order(o) for o in ys)
        for o, c in zip(ys, cs):
            if c is not o:
                _replace_saved(ctx, o, c)
        return cs if type(y) is tuple else cs[0]
    return run


def channels_last_format(*operands):
    """channels_last or channels_last_3d where one of the arrays (4-D or 5-D) is laid out so (torch's
    suggest_memory_format), else None; arrays in C order are answered at once (NumPy's flag alone does not
    settle it: with size-1 dims a channels-last tensor is C-contiguous too)."""
    for a in operands:
        if a is None or a.ndim not in (4, 5) or a.flags.c_contiguous and (1 not in a.shape or _c_strides(a)):
            continue
        f = _mf.suggest(a.shape, tuple(st // a.itemsize for st in a.strides))
        if f is not _mf.contiguous_format:
            return f
    return None


def in_input_format(ctx, y, *operands):
    """`y` (each array of a tuple) in the memory format torch's convolution, pooling and batch/group norm
    kernels write: channels-last (or channels-last-3d) where one of `operands` is laid out so
    (suggest_memory_format), else `y` as it is. A relaid copy replaces the result where forward saved it."""
    fmt = channels_last_format(*operands)
    if fmt is None:
        return y
    ys = y if type(y) is tuple else (y,)
    out = []
    for o in ys:
        want = _mf.strides(fmt, o.shape) if o.ndim == operands[0].ndim else None
        if want is None or o.size == 0 or tuple(v // o.itemsize for v in o.strides) == want:
            out.append(o)
            continue
        c = empty_strided(ctx.xp, o.shape, want, o.dtype)
        c[...] = o
        _replace_saved(ctx, o, c)
        out.append(c)
    return tuple(out) if type(y) is tuple else out[0]


def iterator_layout(xp, out, arrays):
    """`out`, the result of an elementwise op on `arrays` (one of them not C-contiguous), laid out as torch's
    TensorIterator lays it out: dense, its dims in tensor_iterator_order of the inputs' strides (broadcast
    dims count as stride 0). A copy where NumPy chose otherwise."""
    shape = out.shape
    n = len(shape)
    operand_strides = []
    for a in arrays:
        lead = n - a.ndim
        if lead < 0:
            return out
        operand_strides.append((0,) * lead + tuple(0 if sa == 1 and so != 1 else st
                                                   for sa, st, so in zip(a.shape, a.strides, shape[lead:])))
    perm = tensor_iterator_order(shape, operand_strides)
    want, acc = [0] * n, out.itemsize
    for d in perm:
        want[d] = acc
        acc *= shape[d]
    if tuple(want) == out.strides or out.size == 0:
        return out
    new = _empty_in_order(xp, shape, perm[::-1], out.dtype)
    xp.copyto(new, out)
    return new


def pointwise(*classes):
    """Register elementwise Functions: Function.apply lays out their results with iterator_layout (and saves
    the relaid result where the forward saved its own)."""
    for cls in classes:
        cls._pointwise = True


_graph._iterator_layout = iterator_layout
