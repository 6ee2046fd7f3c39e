"""Lower-precision arithmetic as torch's kernels do it: accumulate in float32, round once.

torch's CPU kernels for bfloat16 and float16 (its `opmath` type) load each element as float32, run the
whole product or reduction there and round the result to the input's dtype at the end. NumPy instead sums
bfloat16 in bfloat16 (a 1000-element sum of 0.01 comes out 30 % low) and multiplies float16 matrices in
float16. `widened` wraps an op's forward and backward so both see float32 arrays and hand back arrays of the
dtype they were given: results then match torch's to the last bit of the lower-precision dtype.

On CUDA, float16 stays as it is (cuBLAS and CuPy's reductions already accumulate it in float32);
bfloat16, which CuPy only carries, is widened on every device."""
import functools

import numpy as np

from .. import _dtype
from .._backend import kernels

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_BF16 = _dtype.bfloat16.np


def low_dtype(arrays, xp):
    """The lower-precision dtype among `arrays` that must be computed in float32 here, or None."""
    for a in arrays:
        d = getattr(a, "dtype", None)
        if d is not None and (d == _BF16 or (d == _F16 and not kernels[xp].native_float16)):
            return d
    return None


def _narrow(out, d):
    if isinstance(out, tuple):
        return tuple(_narrow(o, d) for o in out)
    if getattr(out, "dtype", None) == _F32:
        return out.astype(d)
    return out


def _widen(a, d):
    return a.astype(_F32) if getattr(a, "dtype", None) == d else a


def widened(fn):
    """Run `fn(ctx, *arrays, **params)` on float32 copies of its lower-precision arrays; round what it
    returns back to that dtype (integer outputs, such as indices, pass through)."""
    @functools.wraps(fn)
    def run(ctx, *args, **kwargs):
        d = low_dtype(args, ctx.xp)
        if d is None:
            return fn(ctx, *args, **kwargs)
        return _narrow(fn(ctx, *[_widen(a, d) for a in args], **kwargs), d)
    return run


def rounded_once(fn):
    """A composite op (addmm = input + mat1 @ mat2, einsum, ...) on lower-precision tensors, computed on
    float32 casts of them and rounded once at the end, as torch's fused kernels do; the casts are part of the
    graph, so gradients come back in the inputs' dtype."""
    from .._tensor import Tensor

    @functools.wraps(fn)
    def run(*args, out=None, **kwargs):
        tensors = [a for a in args if isinstance(a, Tensor)]
        for a in args:
            if isinstance(a, (list, tuple)):
                tensors += [t for t in a if isinstance(t, Tensor)]
        d = low_dtype([t._data for t in tensors], tensors[0]._device.xp) if tensors else None
        if d is None:
            return fn(*args, **kwargs) if out is None else fn(*args, out=out, **kwargs)
        from ._util import out_copy
        from .conversion import to_device_dtype
        up = (lambda a: to_device_dtype(a, None, _dtype.float32, False)
              if isinstance(a, Tensor) and a._data.dtype == d else a)
        wide = [[up(t) for t in a] if isinstance(a, (list, tuple)) else up(a) for a in args]
        return out_copy(to_device_dtype(fn(*wide, **kwargs), None, _dtype._FROM_NP[d], False), out)
    return run
