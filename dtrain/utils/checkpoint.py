"""Gradient checkpointing: keep a call's outputs, not the activations inside it; recompute them in backward.

`use_reentrant=False` works as torch's: the call runs with its graph recorded as usual, but under saved-tensor
hooks that keep a placeholder for every tensor an op saves; the first backward node that needs one re-runs the
call (with the first run's RNG state and autocast state, so dropout draws the same masks) under hooks that
collect the recomputed tensors in the same order, stopping as soon as the last one is back. The graph, its
node names and its edges are the plain call's.

`use_reentrant=True` makes the call one graph node (torch's CheckpointFunctionBackward) whose edges are where
the call's own graph led: its inputs and every parameter (or outside tensor) it used. Its backward re-runs the
call, cuts the fresh graph at those edges and sends the gradients reaching them on through the outer graph, so
unlike torch's reentrant variant, parameters get them through their usual accumulators and hooks and
`autograd.grad` works through it."""
import contextlib
import warnings

from .. import random as _random
from .._tensor import Tensor, _wrap
from ..autograd import graph
from ..autograd._saved_hooks import saved_tensors_hooks
from ..autograd.grad_mode import enable_grad, is_grad_enabled

__all__ = ["checkpoint", "checkpoint_sequential", "CheckpointError", "noop_context_fn"]


class CheckpointError(RuntimeError):
    """The recomputation in backward did not produce what the forward did."""


def noop_context_fn():
    return contextlib.nullcontext(), contextlib.nullcontext()


def _rng_states():
    gens = [_random.default_generator, *_random._cuda_generators.values()]
    return [(g, g.get_state()) for g in gens]


def _set_rng_states(states):
    for g, s in states:
        g.set_state(s)


def _outputs(out):
    """The tensors of a call's result (a tensor, or a tuple or list of them among other values)."""
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [o for o in out if isinstance(o, Tensor)]
    return []


def _edge(t):
    return (t.grad_fn, t._output_nr) if t.grad_fn is not None else (t._grad_accumulator(), 0)


def _outside(node, start):
    """Whether `node` belongs to the graph from before the call (leaves' accumulators always do)."""
    return type(node) is graph.AccumulateGrad or node._seq < start


def _inner_nodes(roots, start):
    """Every node the call created that leads from its outputs (`roots`, edges) back to its boundary."""
    seen, stack = set(), [n for n, _ in roots if not _outside(n, start)]
    seen.update(stack)
    while stack:
        for child, _ in stack.pop().next_functions:
            if child is not None and child not in seen and not _outside(child, start):
                seen.add(child)
                stack.append(child)
    return seen


def _boundary(roots, start):
    """The distinct edges by which the call's graph reaches the graph from before it, in a stable order."""
    edges = {}
    for e in roots:
        if _outside(e[0], start):
            edges.setdefault(e, None)
    for node in _inner_nodes(roots, start):
        for e in node.next_functions:
            if e[0] is not None and _outside(e[0], start):
                edges.setdefault(e, None)
    return list(edges)


class CheckpointFunction(graph.Function):
    """The graph node of one checkpointed call (its backward recomputes the call)."""
    _grad_fn_name = "CheckpointFunctionBackward"  # torch's reentrant checkpoint is a custom autograd.Function

    def backward(ctx, *grads):
        index = {e: i for i, e in enumerate(ctx.next_functions)}
        out_grads = [None] * len(index)

        def add(edge, g):
            i = index.get(edge)
            if i is not None and g is not None:
                out_grads[i] = g if out_grads[i] is None else out_grads[i] + g

        stash = _rng_states() if ctx.rng is not None else None
        if stash is not None:
            _set_rng_states(ctx.rng)
        try:
            start = next(graph._seq)
            with enable_grad(), ctx.recompute_ctx, contextlib.ExitStack() as regions:
                for region in _autocast_regions(ctx.autocast):  # recompute in the forward's precision
                    regions.enter_context(region)
                outs = [o for o in _outputs(ctx.fn(*ctx.args, **ctx.kwargs)) if o._requires_grad]
        finally:
            if stash is not None:
                _set_rng_states(stash)  # the caller's random stream goes on as if nothing was recomputed
        if ctx.check:
            got = [(o._data.shape, o._data.dtype) for o in outs]
            if got != list(ctx._out_meta):
                raise CheckpointError(
                    "torch.utils.checkpoint: Recomputed values for the following tensors have different metadata "
                    f"than during the forward pass.\nforward: {[(tuple(s), str(d)) for s, d in ctx._out_meta]}\n"
                    f"recomputed: {[(tuple(s), str(d)) for s, d in got]}")
        roots, root_grads = [], []
        for o, g in zip(outs, grads):
            e = _edge(o)
            if _outside(e[0], start):
                add(e, g)  # an output that is an input or parameter itself
            else:
                roots.append(e)
                root_grads.append(g)
        if roots:
            # cut the fresh graph at its boundary: each edge out of it ends in a sink that captures its gradient
            sinks = {}
            for node in _inner_nodes(roots, start):
                cut = []
                for e in node.next_functions:
                    if e[0] is not None and _outside(e[0], start):
                        sink = sinks.get(e)
                        if sink is None:
                            sink = sinks[e] = graph.AccumulateGrad(None)
                        e = (sink, 0)
                    cut.append(e)
                node.next_functions = tuple(cut)
            # a graph task of its own inside the outer one: callbacks queued by the outer pass (DDP's) wait for it
            captured = graph.run_backward(roots, root_grads, capture=dict.fromkeys(sinks.values()),
                                          accumulate=False)
            for e, sink in sinks.items():
                add(e, captured.get(sink))
        return tuple(out_grads)


_REENTRANT_WARNING = (
    "torch.utils.checkpoint: the use_reentrant parameter should be passed explicitly. Starting in PyTorch 2.9, "
    "calling checkpoint without use_reentrant will raise an exception. use_reentrant=False is recommended, but if "
    "you need to preserve the current default behavior, you can pass use_reentrant=True. Refer to docs for more "
    "details on the differences between the two variants.")


def _autocast_snapshot():
    """The autocast state of this thread, per device, as torch's checkpoint records it for the recompute."""
    from ..amp._dispatch import state
    return {dev: (state.enabled[dev], state.dtype[dev], state.cache_enabled) for dev in state.enabled}


def _autocast_regions(snapshot):
    from ..amp.autocast_mode import autocast
    return [autocast(dev, dtype=dt, enabled=on, cache_enabled=cache) for dev, (on, dt, cache) in snapshot.items()]


class _StopRecomputation(Exception):
    """Raised by the recomputation's hook once the last saved tensor is back: the rest of the call is skipped."""


class _Frame:
    """One non-reentrant checkpointed call: how to re-run it, what its ops saved (metadata, in order) and the
    recomputed tensors not yet handed to a backward node."""

    def __init__(self, function, args, kwargs, rng, recompute_ctx, check):
        self.function, self.args, self.kwargs, self.rng = function, args, kwargs, rng
        self.autocast = _autocast_snapshot()
        self.recompute_ctx, self.check = recompute_ctx, check
        self.meta = []  # shape, dtype and device of each saved tensor of the first run
        self.recomputed = {}

    def pack(self, t):
        self.meta.append(_meta(t))
        return _Holder(self, len(self.meta) - 1)

    def recompute(self):
        got = []

        def collect(t):
            got.append(t.detach())
            if len(got) == len(self.meta):
                raise _StopRecomputation
            return None

        stash = _rng_states() if self.rng is not None else None
        if stash is not None:
            _set_rng_states(self.rng)
        try:
            with enable_grad(), self.recompute_ctx, contextlib.ExitStack() as regions:
                for region in _autocast_regions(self.autocast):  # recompute in the forward's precision
                    regions.enter_context(region)
                with saved_tensors_hooks(collect, lambda _: None):
                    try:
                        self.function(*self.args, **self.kwargs)
                    except _StopRecomputation:
                        pass
        finally:
            if stash is not None:
                _set_rng_states(stash)  # the caller's random stream goes on as if nothing was recomputed
        if self.check:
            now = [_meta(t) for t in got]
            if now != self.meta[:len(now)] or len(now) != len(self.meta):
                raise CheckpointError(
                    "torch.utils.checkpoint: Recomputed values for the following tensors have different metadata "
                    "than during the forward pass.\n" + "\n".join(
                        f"tensor at position {i}:\nsaved metadata: {m}\nrecomputed metadata: {r}"
                        for i, (m, r) in enumerate(zip(self.meta, now + [None] * (len(self.meta) - len(now))))
                        if m != r))
        self.recomputed = dict(enumerate(got))


def _meta(t):
    return {"shape": t.shape, "dtype": t.dtype, "device": t.device}  # printed as torch prints them


class _Holder:
    """What a checkpointed call's ops keep in place of a saved tensor."""
    __slots__ = ("frame", "index")

    def __init__(self, frame, index):
        self.frame, self.index = frame, index


def _unpack(holder):
    frame = holder.frame
    t = frame.recomputed.pop(holder.index, None)
    if t is None:  # the first node to need one (or a backward after retain_graph): re-run the call
        frame.recompute()
        t = frame.recomputed.pop(holder.index)
    return t


def checkpoint(function, *args, use_reentrant=None, context_fn=noop_context_fn, determinism_check="default",
               debug=False, preserve_rng_state=True, **kwargs):
    """Run `function(*args, **kwargs)` without keeping its activations; backward recomputes them (see the
    module's docstring for the two variants)."""
    if use_reentrant is None:
        warnings.warn(_REENTRANT_WARNING, stacklevel=2)
        use_reentrant = True
    if use_reentrant:
        if context_fn is not noop_context_fn or debug:
            raise ValueError("Passing `context_fn` or `debug` is only supported when use_reentrant=False.")
        if kwargs:
            raise ValueError("Unexpected keyword arguments: " + ",".join(arg for arg in kwargs))
    if determinism_check not in ("default", "none"):
        raise ValueError(f"determinism_check should be one of ['default', 'none'], but got {determinism_check}")
    fwd_ctx, recompute_ctx = context_fn()
    if not is_grad_enabled():
        with fwd_ctx:
            return function(*args, **kwargs)
    rng = _rng_states() if preserve_rng_state else None
    if not use_reentrant:
        if debug:
            warnings.warn("torch.utils.checkpoint: dtrain records no operator traces for debug=True; a "
                          "CheckpointError names the saved tensors that differ", stacklevel=2)
        frame = _Frame(function, args, kwargs, rng, recompute_ctx, determinism_check == "default")
        with fwd_ctx, saved_tensors_hooks(frame.pack, _unpack):
            return function(*args, **kwargs)
    start = next(graph._seq)
    # the first run builds the call's graph only to find where it leads; the graph is dropped on return
    with fwd_ctx:
        out = function(*args, **kwargs)
    tracked = [o for o in _outputs(out) if o._requires_grad]
    if not tracked:
        return out
    node = CheckpointFunction.__new__(CheckpointFunction)
    node.next_functions = tuple(_boundary([_edge(o) for o in tracked], start))
    node._seq = next(graph._seq)
    node.xp = tracked[0]._device.xp
    node._device = tracked[0]._device
    node.needs_input_grad = (True,) * len(node.next_functions)
    node._out_meta = tuple((o._data.shape, o._data.dtype) for o in tracked)
    node.fn, node.args, node.kwargs, node.rng = function, args, kwargs, rng
    node.autocast = _autocast_snapshot()
    node.recompute_ctx, node.check = recompute_ctx, determinism_check == "default"
    node.saved = (args, kwargs)  # what its backward needs: released by a backward without retain_graph, as in torch
    fresh = {}
    for i, o in enumerate(tracked):
        t = _wrap(o._data, o._device)
        t._requires_grad, t.grad_fn, t._output_nr = True, node, i
        fresh[id(o)] = t
    if isinstance(out, Tensor):
        return fresh[id(out)]
    return type(out)(fresh.get(id(o), o) if isinstance(o, Tensor) else o for o in out)


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):
    """Checkpoint a sequence of modules (or functions) in `segments` pieces; the last piece runs normally."""
    if use_reentrant is None:
        warnings.warn(_REENTRANT_WARNING, stacklevel=2)
        use_reentrant = True
    preserve = kwargs.pop("preserve_rng_state", True)
    if kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(arg for arg in kwargs))

    def run_function(start, end, functions):
        def forward(input):
            for j in range(start, end + 1):
                input = functions[j](input)
            return input
        return forward

    from ..nn import Sequential
    if isinstance(functions, Sequential):
        functions = list(functions.children())
    segment_size = len(functions) // segments
    end = -1
    for start in range(0, segment_size * (segments - 1), segment_size):
        end = start + segment_size - 1
        input = checkpoint(run_function(start, end, functions), input, use_reentrant=use_reentrant,
                           preserve_rng_state=preserve)
    return run_function(end + 1, len(functions) - 1, functions)(input)
