"""torch.autograd.graph's helpers: saved-tensor hooks (saved_tensors_hooks, save_on_cpu,
disable_saved_tensors_hooks), gradient edges (GradientEdge, get_gradient_edge) and increment_version.

Saved-tensor hooks:

While hooks are registered (per thread, innermost pair wins), every op that saves something for backward hands
each saved tensor to `pack_hook` when its node is made and keeps only what the hook returns; the engine calls
`unpack_hook` on that when the node's backward runs and uses the tensor it returns. Inputs and outputs an op
saves reach `pack_hook` as the very tensors the op took or made; what dtrain keeps besides (a reshaped copy, an
intermediate) arrives as a new tensor. The hooks run with grad mode off and hooks disabled, so a hook's own ops
record nothing and pack nothing.
"""
import contextlib
import threading
from typing import Any, NamedTuple

from .grad_mode import _state, no_grad


class GradientEdge(NamedTuple):
    """Where a tensor's gradient enters the graph: its node and the node's output number (an input of
    autograd.grad where no tensor is at hand)."""
    node: Any
    output_nr: int
    ownership_token: Any = None


def get_gradient_edge(tensor):
    """The GradientEdge of a tensor that requires grad: its grad_fn, or a leaf's AccumulateGrad node."""
    if not tensor.requires_grad:
        raise RuntimeError("It is not possible to get the gradient edge for a Tensor that does not require "
                           "gradients")
    if tensor.grad_fn is None:
        return GradientEdge(tensor._grad_accumulator(), 0)
    return GradientEdge(tensor.grad_fn, tensor._output_nr)


def increment_version(tensor):
    """Count an in-place change that the version counter could not see (a write through .numpy() or a
    kernel of one's own): backward then refuses the tensor where an op saved it. A tensor or an iterable."""
    from .._tensor import Tensor
    for t in (tensor,) if isinstance(tensor, Tensor) else tensor:
        t._vc.value += 1


class Packed(tuple):
    """A node's saved state after pack hooks: (unpack_hook, packed) per saved tensor, or (None, raw) for what
    is no tensor (None, a marker)."""
    __slots__ = ()

    def unpack(self):
        """The arrays the node's backward reads, from the unpack hooks."""
        out = []
        with _hooks_off():
            for unpack, p in self:
                if unpack is None:
                    out.append(p)
                    continue
                t = unpack(p)
                out.append(getattr(t, "_data", t))
        return tuple(out)


@contextlib.contextmanager
def _hooks_off():
    saved, _state.saved_hooks = _state.saved_hooks, ()
    try:
        with no_grad():
            yield
    finally:
        _state.saved_hooks = saved


def pack(saved, hooks, tensors, device):
    """`saved` (a node's saved arrays) packed with the innermost hook pair; `tensors` are the op's inputs and
    outputs, handed to the hook themselves where their array is what was saved."""
    from .._tensor import _wrap
    pack_hook, unpack_hook = hooks[-1]
    by_array = {id(t._data): t for t in tensors}
    out = []
    with _hooks_off():
        for s in saved:
            if s is None or not hasattr(s, "shape"):
                out.append((None, s))
                continue
            t = by_array.get(id(s))
            out.append((unpack_hook, pack_hook(t if t is not None else _wrap(s, device))))
    return Packed(out)


def pack_tensors(tensors, hooks):
    """A custom Function's saved tensors, packed (Packed of (unpack_hook, packed))."""
    pack_hook, unpack_hook = hooks[-1]
    with _hooks_off():
        return Packed((None, t) if t is None else (unpack_hook, pack_hook(t)) for t in tensors)


def unpack_tensors(packed):
    with _hooks_off():
        return tuple(p if unpack is None else unpack(p) for unpack, p in packed)


live = [0]  # how many saved_tensors_hooks contexts are open, over all threads (Function.apply's cheap first test)
_live_lock = threading.Lock()


class saved_tensors_hooks:
    """Context manager: ops inside it save what `pack_hook(tensor)` returns and their backward uses
    `unpack_hook(packed)` (torch.autograd.graph.saved_tensors_hooks)."""

    def __init__(self, pack_hook, unpack_hook):
        self.pack_hook, self.unpack_hook = pack_hook, unpack_hook

    def __enter__(self):
        if _state.saved_hooks_disabled is not None:
            raise RuntimeError(_state.saved_hooks_disabled)
        _state.saved_hooks = _state.saved_hooks + ((self.pack_hook, self.unpack_hook),)
        with _live_lock:
            live[0] += 1
        return self

    def __exit__(self, *exc):
        _state.saved_hooks = _state.saved_hooks[:-1]
        with _live_lock:
            live[0] -= 1
        return False


class save_on_cpu(saved_tensors_hooks):
    """Saved tensors are kept as CPU copies and moved back to their device for backward
    (torch.autograd.graph.save_on_cpu). `pin_memory` is accepted as torch's: dtrain's host copies are plain
    host arrays (pinned memory would only speed up the copies back)."""

    def __init__(self, pin_memory=False, device_type="cuda"):
        def pack(t):
            return t.device, t.cpu()  # a CPU tensor itself, as torch's (a later in-place write reaches it)

        def unpack(p):
            device, t = p
            return t.to(device)

        super().__init__(pack, unpack)


@contextlib.contextmanager
def disable_saved_tensors_hooks(error_message):
    """Inside it, registering saved-tensor hooks raises RuntimeError(error_message)."""
    prev = _state.saved_hooks_disabled
    if _state.saved_hooks:
        raise RuntimeError(error_message)
    _state.saved_hooks_disabled = error_message
    try:
        yield
    finally:
        _state.saved_hooks_disabled = prev
