"""What the generator draws from: the shadow run's state, and operands that fit it.

Values are multiples of 1/4 in [-2, 2], so sums and products of a few of them are exact in float32 and the two
runs can be compared tightly; ops with a restricted domain (log, sqrt, pow with a fractional exponent, a
division) draw only operands whose shadow values keep a distance from their poles and kinks (see `positive`).
"""
import math

import numpy as np
import torch
from hypothesis import strategies as st

from .interp import Run

DTYPES = ("float32", "float64")
_SCALARS = st.sampled_from([2.0, -1.0, 0.5, 1.5, -0.25, 3.0])


@st.composite
def shapes(draw, min_dims=0, max_dims=3):
    nd = draw(st.integers(min_dims, max_dims))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    return shape if math.prod(shape) <= 24 else shape[:1]


def _values(draw, n, positive=False):
    """n multiples of 1/4 in [-2, 2] (in [1/4, 2] with `positive`: operands for log, sqrt, pow(0.5))."""
    return tuple(v / 4 for v in draw(st.lists(st.integers(1 if positive else -8, 8), min_size=n, max_size=n)))


class State:
    """The shadow run and the variables it holds."""

    def __init__(self):
        self.run = Run(torch)
        self.count = 0

    @property
    def ns(self):
        return self.run.ns

    def track(self, op, no_grad):
        """Run `op` on the shadow: later draws and the KNOWN predicates read its variables."""
        self.run.step(op, no_grad)

    def name(self, prefix):
        self.count += 1
        return f"{prefix}{self.count - 1}"

    def tensors(self, pred=lambda t: True):
        def ok(t):
            try:
                return pred(t)
            except Exception:  # noqa: BLE001 - torch refuses some reads (grad_fn of a stale multi-output view)
                return False
        return [n for n, v in self.ns.items() if isinstance(v, torch.Tensor) and ok(v)]

    def of(self, prefix):
        return [n for n in self.ns if n.startswith(prefix) and n[len(prefix):].isdigit()]


def _pick(draw, names):
    """One of `names`, in order of creation (so hypothesis shrinks towards the first variables)."""
    return draw(st.sampled_from(sorted(names, key=lambda n: int(n.lstrip("abcdefghijklmnopqrstuvwxyz")))))

def _slice(draw, size):
    if draw(st.integers(0, 3)) == 0:
        return draw(st.integers(-size, size - 1))
    a = draw(st.sampled_from([None] + list(range(size + 1))))
    b = draw(st.sampled_from([None] + list(range(size + 1))))
    step = draw(st.sampled_from([None, 1, 2, 3, -1]))
    return ("s", a, b, step)


def _index(draw, shape):
    k = draw(st.integers(1, len(shape)))
    return tuple(_slice(draw, shape[d]) for d in range(k))


def _fits(s, target_shape, pred=lambda t: True):
    """Variables whose shape broadcasts to target_shape (usable as in-place or copy_ operands)."""
    def ok(t):
        try:
            return np.broadcast_shapes(tuple(t.shape), target_shape) == target_shape and pred(t)
        except ValueError:
            return False
    return s.tensors(ok)


def _operand(draw, s, target_shape, scalars=_SCALARS):
    names = _fits(s, target_shape)
    if names and draw(st.booleans()):
        return _pick(draw, names)
    return draw(scalars)


def values_of(t):
    """A shadow tensor's values as float64 (empty for a tensor torch will not read)."""
    try:
        return t.detach().to(torch.float64).numpy()
    except Exception:  # noqa: BLE001 - a stale multi-output view, say
        return np.zeros(0)


def positive(t, margin=0.2):
    """Whether every value is at least `margin`: log, sqrt, rsqrt and fractional powers stay smooth there."""
    v = values_of(t)
    return v.size > 0 and bool(np.all(v >= margin))


def nonzero(t, margin=0.2):
    """Whether every value is at least `margin` away from 0: a divisor, reciprocal, pow(-1)."""
    v = values_of(t)
    return v.size > 0 and bool(np.all(np.abs(v) >= margin))


def is_float(t):
    return t.dtype in (torch.float32, torch.float64)


def index_lit(draw, size, n, unique=False):
    """An int64 index of n entries into a dim of `size` (distinct ones where a write must not collide)."""
    if unique:
        n = min(n, size)
        return tuple(draw(st.permutations(range(size)))[:n])
    return tuple(draw(st.integers(0, size - 1)) for _ in range(n))


def mask_lit(draw, shape):
    """A bool mask of `shape`, as an inline literal."""
    from .program import Lit
    n = math.prod(shape)
    return Lit(tuple(draw(st.lists(st.booleans(), min_size=n, max_size=n))), tuple(shape), "bool")


def masks(s, target_shape):
    """Bool variables that broadcast to target_shape."""
    return _fits(s, target_shape, lambda t: t.dtype == torch.bool)
