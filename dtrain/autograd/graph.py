"""The autograd graph: op nodes (`Function`), leaf accumulators, and the iterative backward engine.

An op is one `Function` subclass with `forward(ctx, *arrays, **params)` and `backward(ctx, *grads)` over
raw arrays of the tensors' array module (`ctx.xp`). Calling `Op.apply(*tensors, **params)` runs forward
and, when grad is enabled and an input requires grad, makes the instance a node of the graph.
"""
import heapq
import itertools
import re
import sys
import threading

from .. import _backend
from .._device import CPU
from . import _saved_hooks, grad_mode
from ._saved_hooks import (GradientEdge, disable_saved_tensors_hooks, get_gradient_edge,  # noqa: F401 (torch's names)
                           increment_version, save_on_cpu, saved_tensors_hooks)
from .grad_mode import _state

_new = object.__new__
_wrap = None  # dtrain._tensor._wrap, bound once the tensor module is loaded (it imports this one)
_seq = itertools.count()
# dtrain.profiler's one hook into ops: while a profile records, Function.apply hands every op to
# _profiler_hook(cls, inputs, params), which times it and runs it (with the hook unset for the nested call)
_profiler_hook = None
# and _profiler_node(node): a context manager timing one node's backward in the engine (torch's
# "autograd::engine::evaluate_function: <node>" around "<node>"); None while nothing records
_profiler_node = None
_FREED = (None,)  # marker (a unique object): saved arrays were released by a backward without retain_graph
_TWICE = ("Trying to backward through the graph a second time (or directly access saved tensors after they have "
          "already been freed). Saved intermediate values of the graph are freed when you call .backward() or "
          "autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or if "
          "you need to access saved tensors after calling backward.")


class RemovableHandle:
    __slots__ = ("_store", "_key")
    _ids = itertools.count()

    def __init__(self, store):
        self._store, self._key = store, next(RemovableHandle._ids)

    def remove(self):
        self._store.pop(self._key, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Node:
    """What every graph node has: edges to the nodes of its inputs, a creation order, and hooks."""
    __slots__ = ("next_functions", "_seq", "__dict__", "__weakref__")
    _pre_hooks = _hooks = None  # class defaults: most nodes never get hooks, so no per-node store
    _fresh_grads = False  # see Function
    _grad_dst = None  # see Function
    _device = CPU  # the device its backward runs on (made current by the engine); set by each op that records

    def name(self):
        return type(self).__name__

    def __repr__(self):
        # torch prints the node's class name: AccumulateGrad, not its name() torch::autograd::AccumulateGrad
        return f"<{self.name().replace('torch::autograd::', '')} object at {hex(id(self))}>"

    def register_hook(self, fn):
        """fn(grad_inputs, grad_outputs) after the node's backward; it may return a tuple that replaces
        grad_inputs (torch's Node.register_hook)."""
        if self._hooks is None:
            self._hooks = {}
        h = RemovableHandle(self._hooks)
        self._hooks[h._key] = fn
        return h

    def register_prehook(self, fn):
        """fn(grad_outputs) before the node's backward; it may return a tuple that replaces them (torch's
        Node.register_prehook)."""
        return self._tensor_hook(None, fn)

    def _tensor_hook(self, output_nr, fn):
        """A hook run before backward: fn(gradient) on output `output_nr`'s gradient (a tensor's hook), or, for
        None, fn(the tuple of every output's gradient) (the node's own pre-hook)."""
        if self._pre_hooks is None:
            self._pre_hooks = {}
        h = RemovableHandle(self._pre_hooks)
        self._pre_hooks[h._key] = (output_nr, fn)
        return h


class Function(Node):
    """Base of every differentiable op (the node type the graph is made of).

    An op whose outputs are views of its first input sets `_view = True`: they share its version counter.
    An op whose backward returns only arrays it has just allocated (no input gradient passed through, no saved
    array, none returned twice) sets `_fresh_grads = True`: the engine may then add into them in place and a
    leaf may keep one as its `.grad` without a copy.

    An op that can write an input's gradient into a given array sets `_takes_grad_dst = True`: before its
    backward the engine may set `ctx._grad_dst = {input index: (array, scale)}` for inputs whose gradient goes
    whole to a leaf with a writable destination (`set_grad_destination`); the op then writes `scale` times
    the gradient (scale None: 1) into `array` and returns `array` itself, which saves a copy of the largest
    gradients (a Linear's weight). The op learns nothing of who owns the array."""
    __slots__ = ("needs_input_grad", "xp")
    _view = False
    _pointwise = False  # an elementwise op: its result is laid out as torch's TensorIterator lays it out
    saved = ()
    _versions = ()
    _out_meta = None
    _non_diff = None
    _takes_grad_dst = False
    _late_name = False

    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    def backward(ctx, *grads):
        raise NotImplementedError

    def save_for_backward(ctx, *arrays):
        ctx.saved = arrays

    def mark_non_differentiable(ctx, *indices):
        ctx._non_diff = indices

    def __init_subclass__(cls, **kw):
        # `type(y.grad_fn).__name__` is torch's node name (AddBackward0, Log1PBackward0): the class is written
        # under the op's own name (`Add`), which stays `_op` (the profiler's aten:: name, the double-backward
        # formulas' key), and takes torch's as its `__name__`, from `_grad_fn_name` where the rule does not give
        # it. Variants (`named`) keep their op's `_op`. Done once per class: nothing per call.
        super().__init_subclass__(**kw)
        if "_variant_of" not in cls.__dict__:
            cls._op = cls.__name__.lstrip("_")
        name = cls.__dict__.get("_grad_fn_name") or cls._op + "Backward0"
        cls.__name__ = cls.__qualname__ = name
        cls._variants = {}
        # an op whose name() depends on its arguments (t/transpose are permutes, x[0] a select) takes that name
        # as its type when it joins a graph (apply's tracked path: untracked calls pay nothing)
        cls._late_name = cls.__dict__.get("_late_name", "name" in cls.__dict__ or cls._late_name)

    @classmethod
    def named(cls, name):
        """This op under another of torch's node names (one op of dtrain standing for several of torch's:
        `Sum` for sum → SumBackward0 and sum(dim) → SumBackward1). Cached: call sites may ask each time."""
        v = cls._variants.get(name)
        if v is None:
            # its name() is its type's: the op's own name() may read what backward frees
            v = cls._variants[name] = type(cls)(name, (cls,), {"__slots__": (), "_variant_of": cls, "_late_name": False,
                                                               "_grad_fn_name": name, "__module__": cls.__module__,
                                                               "name": Function.name})
        return v

    def name(self):
        return type(self).__name__

    def rename(ctx, name):
        """Give this node torch's name `name` (a composite whose top node torch names after the whole op: mse_loss's
        mean is MseLossBackward0); for ops whose name depends on their arguments, from inside forward."""
        ctx.__class__ = type(ctx).__dict__.get("_variant_of", type(ctx)).named(name)

    @classmethod
    def apply(cls, *inputs, **params):
        # the hot path of every op: kept flat, no imports, no work for graph state when nothing is tracked.
        # One and two inputs (nearly every call) are spelled out: no loop, list or comprehension per call.
        if _profiler_hook is not None:
            return _profiler_hook(cls, inputs, params)
        ctx = _new(cls)
        first = inputs[0]
        dev = first._device
        n = len(inputs)
        # a view requires grad when its base does, even one made before the base did (torch's rule); a view
        # made under no_grad of a base that requires grad requires grad too (its gradient goes nowhere, as in
        # torch, but the op saves what that gradient needs, and checks it for in-place writes)
        if n == 1:
            arrays = (first._data,)
            track = (first._requires_grad or (first._base is not None and first._base._requires_grad)) and \
                _state.enabled
            if track:
                if first._base is not None and first._view_info[0] != first._vc.value:
                    _refresh_view(first)  # its base (or a sibling view) was written in place since: new history
                ctx.needs_input_grad = _ONE_GRAD  # the one input, tracked: it requires grad
            else:
                ctx.needs_input_grad = _NO_GRADS
        else:
            if n == 2:
                second = inputs[1]
                if second._device is dev:
                    arrays = (first._data, second._data)
                else:
                    dev, arrays = _common_device(cls, inputs)
                need = (first._requires_grad or (first._base is not None and first._base._requires_grad),
                        second._requires_grad or (second._base is not None and second._base._requires_grad))
            else:
                arrays = [t._data for t in inputs]
                for t in inputs:
                    if t._device is not dev:
                        dev, arrays = _common_device(cls, inputs)
                        break
                need = tuple([t._requires_grad or (t._base is not None and t._base._requires_grad) for t in inputs])
            track = _state.enabled and True in need
            if track:
                for t in inputs:
                    if t._base is not None and t._view_info[0] != t._vc.value:
                        _refresh_view(t)
                ctx.needs_input_grad = need
            else:
                ctx.needs_input_grad = _NO_GRADS
        ctx.xp = dev._xp or dev.xp
        if dev._gpu is not None:
            # CuPy runs a kernel on the current device and refuses arrays of another: the inputs' device is made
            # current for the forward (and restored after), whichever device the calling thread has selected
            with _backend.on_device(dev):
                out = ctx.forward(*arrays, **params)
        elif params:
            out = ctx.forward(*arrays, **params)
        else:
            out = ctx.forward(*arrays)
        if cls._pointwise and out.ndim > 1:  # (an elementwise op has one result)
            for a in arrays:
                # NumPy and torch lay out the result alike for C-ordered inputs, unless one is broadcast and its
                # size-1 dims carry other strides (a permuted view): torch orders the dims by those too
                if not a.flags.c_contiguous or (a.shape != out.shape and 1 in a.shape and not _c_strides(a)):
                    out = _relaid(ctx, dev, out, arrays)
                    break
        if cls._view:
            return _wrap_views(ctx, out, first, dev, track)
        if not track:
            if type(out) is tuple:
                return tuple([_wrap(o, dev) for o in out])
            return _wrap(out, dev)
        ctx.next_functions = (_edge(first),) if n == 1 else (_edge(first), _edge(second)) if n == 2 else \
            tuple([_edge(t) for t in inputs])
        ctx._seq = next(_seq)
        if cls._late_name:
            ctx.__class__ = cls.named(ctx.name())
        ctx._device = dev
        saved = ctx.saved
        versions = None
        single = type(out) is not tuple
        saves_out = False
        # saved-tensor checks, one per saved input or output: (counter, version when saved, the input, the
        # shape it was saved in, whether the input itself was saved rather than a reshape of it) or (counter,
        # version, None, (output_nr, shape, dtype), False)
        if saved:
            # each saved array checks one input: the one in its own position where it is that input's array
            # (two inputs may share one array, as t and t.detach() do: `t.detach().mul_(t)` saves only self)
            hit = 0  # the inputs checked already, one bit each
            for i, s in enumerate(saved):
                if s is None:
                    continue
                if single and s is out:
                    saves_out = True
                own = True
                if i < n and arrays[i] is s:
                    j = i
                else:
                    j = _input_of(s, arrays)
                    if j is None:
                        continue
                    own = s is arrays[j]
                if hit >> j & 1:
                    continue
                hit |= 1 << j
                t = inputs[j]
                vc = t._vc
                if versions is None:
                    versions = [(vc, vc.value, t, s.shape, own)]
                else:
                    versions.append((vc, vc.value, t, s.shape, own))
        if single:
            t = _wrap(out, dev)
            if out.dtype.kind in "fcV":  # V: bfloat16 (ml_dtypes)
                t._requires_grad = True
                t._grad_fn = ctx
            if saves_out:
                versions = (versions or []) + [(t._vc, 0, None, (0, out.shape, out.dtype), False)]
            out = t
        else:
            ctx._out_meta = tuple([(o.shape, o.dtype) for o in out])
            res = []
            nd = ctx._non_diff
            for i, o in enumerate(out):
                t = _wrap(o, dev)
                if (nd is None or i not in nd) and o.dtype.kind in "fcV":
                    t._requires_grad, t._grad_fn, t._output_nr = True, ctx, i
                if saved and any(s is o for s in saved):
                    versions = (versions or []) + [(t._vc, 0, None, (i, o.shape, o.dtype), False)]
                res.append(t)
            out = tuple(res)
        if versions is not None:
            ctx._versions = versions
        if saved and _hooks_live[0] and _state.saved_hooks:
            # what the hooks keep is theirs: torch checks no version counter for a tensor saved through hooks
            ctx.saved = _saved_hooks.pack(ctx.saved, _state.saved_hooks, inputs + (out if type(out) is tuple else (out,)),
                                          dev)
            ctx._versions = ()
        return out


def _input_of(s, arrays):
    """Which input a saved array `s` is (not in its own position): the input itself, or a reshape of it
    (Linear saves a 3-d input as a matrix); None for neither."""
    for k, a in enumerate(arrays):
        if s is a or (getattr(s, "base", None) is not None and s.size == a.size and (s.base is a or s.base is a.base)):
            return k
    return None

def _c_strides(a):
    """Whether every stride of `a`, those of size-1 dims included, is C order's."""
    acc = a.itemsize
    for n, st in zip(reversed(a.shape), reversed(a.strides)):
        if st != acc:
            return False
        acc *= n
    return True


def _relaid(ctx, dev, out, arrays):
    """An elementwise op's result laid out as torch's TensorIterator lays it out (on the result's device), and
    saved in its place where the forward saved it."""
    if dev._gpu is None:
        new = _iterator_layout(ctx.xp, out, arrays)
    else:
        with _backend.on_device(dev):
            new = _iterator_layout(ctx.xp, out, arrays)
    if new is not out and ctx.saved:
        ctx.saved = tuple([new if s is out else s for s in ctx.saved])
    return new


def renamed(t, name):
    """`t` with its node named `name` (torch's name for the composite that made it: F.mse_loss's top node is
    MseLossBackward0); the node must be one the caller has just made."""
    node = t._grad_fn
    if node is not None:
        node.rename(name)
    return t


class _NoGrads(tuple):
    """needs_input_grad when nothing is tracked: False for every index."""

    def __getitem__(self, i):
        return False


_NO_GRADS = _NoGrads()
_ONE_GRAD = (True,)


# how a view was made (torch's CreationMeta): decides whether it may be written in place in a graph
DEFAULT, NO_GRAD_MODE, MULTI_OUTPUT = 0, 1, 2


def make_view(t, base, multi=False):
    """Mark `t` (sharing base's memory) as a view of `base`: the root base, its version counter, the version
    its history was set at, and how it was made (under no_grad; one of several outputs of split/unbind)."""
    root = base._base
    if root is None:
        root = base
    t._vc, t._base = base._vc, root
    meta = (MULTI_OUTPUT if multi else DEFAULT) if _state.enabled else NO_GRAD_MODE
    if meta == DEFAULT and base._base is not None:
        meta = base._view_info[1]  # a view of a no-grad or multi-output view inherits its restriction
    t._view_info = [base._vc.value, meta]
    return t


_refresh_view = None  # dtrain._ops.inplace.refresh_view, bound when that module loads
_iterator_layout = None  # dtrain._ops._layout.iterator_layout, bound when that module loads
_Packed = _saved_hooks.Packed
_hooks_live = _saved_hooks.live  # [threads inside saved_tensors_hooks]: apply skips the per-thread lookup at 0


def _wrap_views(ctx, out, base, dev, track):
    from .._tensor import _wrap
    outs = out if type(out) is tuple else (out,)
    res = []
    multi = type(out) is tuple and getattr(ctx, "_multi_output", True)
    for i, o in enumerate(outs):
        t = make_view(_wrap(o, dev), base, multi)
        if track:
            t._requires_grad, t._grad_fn, t._output_nr = True, ctx, i
        res.append(t)
    if track:
        ctx.next_functions = (_edge(base),)
        ctx._seq = next(_seq)
        if ctx._late_name:
            ctx.__class__ = type(ctx).named(ctx.name())
        ctx._device = dev
        ctx._versions = ()
        ctx._out_meta = tuple((o.shape, o.dtype) for o in outs) if type(out) is tuple else None
    return tuple(res) if type(out) is tuple else res[0]


def _common_device(cls, inputs):
    """Device and arrays for an op whose inputs sit on different devices (only CPU scalars may join)."""
    dev = _check_devices(cls, inputs)
    with _backend.on_device(dev):  # the CPU scalar is copied to the op's device, not to the current one
        return dev, [t._data if t._device is dev else dev.xp.asarray(t._data) for t in inputs]


def _check_devices(cls, inputs):
    """The device an op runs on; CPU 0-dim tensors may join CUDA ones (as in torch), nothing else mixes."""
    devs = {t._device for t in inputs if not (t._device.type == "cpu" and t._data.ndim == 0)}
    if len(devs) > 1:
        a, b = sorted(devs, key=str)[:2]
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"{b} and {a}! (when running {cls._op})")
    return devs.pop() if devs else inputs[0]._device


def _edge(t):
    if not t._requires_grad:
        return (None, 0)
    if t._grad_fn is not None:
        return (t._grad_fn, t._output_nr)
    return (t._grad_accumulator(), 0)


class AccumulateGrad(Node):
    """The node of a leaf tensor: sums incoming gradients into `variable.grad`, then runs its hooks."""
    __slots__ = ("variable",)

    def __init__(self, variable):
        self.variable = variable
        self.next_functions = ()
        # highest priority, as in torch: a leaf's gradient is accumulated (and its hooks run, e.g. DDP's
        # bucket launch) as soon as it is complete, not after the rest of the graph
        self._seq = sys.maxsize

    def name(self):
        return "torch::autograd::AccumulateGrad"

    @property
    def _device(self):
        var = self.variable
        return var._device if var is not None else CPU

    def live(self):
        """Whether the leaf still takes gradients, as torch's AccumulateGrad decides: a leaf given a history
        since (`detach_()` then an in-place op from the graph) is an error; one that no longer requires grad
        (`detach_()`) is skipped: the graph recorded before no longer reaches it."""
        var = self.variable
        if var._grad_fn is not None:
            raise RuntimeError("leaf variable has been moved into the graph interior")
        return var._requires_grad

    def accumulate(self, g, owned):
        """Add gradient array `g` into the leaf's `.grad`; `owned`: no one else holds `g`, so a fresh `.grad`
        may be `g` itself."""
        var = self.variable
        if var._grad_fn is not None or not var._requires_grad:  # self.live(), inlined: once per leaf per backward
            if not self.live():
                return
        for hook in list(var._hooks.values()) if var._hooks else ():
            r = hook(_wrap(g, var._device))
            if r is not None:
                g, owned = r._data, False
        if var.grad is None:
            dest = var.__dict__.get(_DESTINATION) if var.__dict__ else None
            if g.shape != var._data.shape:
                g, owned = _expand_grad(g, var), True
            if dest is not None:
                # written in place by the producing op (Function._takes_grad_dst), or copied in here
                var.grad = _wrap(g if g is getattr(dest, "array", None) else dest(g), var._device)
            else:
                if not owned or g.dtype != var._data.dtype or g.strides != var._data.strides:
                    # a fresh array in the leaf's own layout, as torch's: a transposed gradient must not make
                    # `.grad.view(-1)` fail on a contiguous parameter
                    out = var._device.xp.empty_like(var._data)
                    var._device.xp.copyto(out, g, casting="unsafe")
                    g = out
                var.grad = _wrap(g, var._device)
        else:
            gd = var.grad._data
            if gd.shape != g.shape:
                g = _expand_grad(g, var)
            gd += g
            var.grad._vc.value += 1
        for hook in list(var._post_acc_hooks.values()) if var._post_acc_hooks else ():
            hook(var)


_DESTINATION = "_grad_destination"


def set_grad_destination(tensor, destination):
    """The engine's one extension point for where a leaf's gradient goes.

    When backward creates `tensor.grad` afresh (it was None), the engine calls `destination(grad)` with the
    summed gradient array (already shaped and hooked as for `.grad`) and makes the array it returns the data
    of the new `.grad`: an owner of a flat gradient buffer (DDP's buckets) copies the gradient into its
    slot there, scaled as it likes, and returns the slot. A gradient that accumulates into an existing
    `.grad` does not pass through it (post-accumulate-grad hooks see those). `None` removes it.

    A destination with attributes `array` and `scale` may instead be written directly by the op that
    produces the whole gradient (see `Function._takes_grad_dst`): `array` then holds `scale` times the
    gradient (scale None: 1) without the copy."""
    if destination is None:
        tensor.__dict__.pop(_DESTINATION, None)
    else:
        tensor.__dict__[_DESTINATION] = destination


def _offer_destinations(node, deps, buffers):
    """Set `node._grad_dst` for inputs whose whole gradient goes to a leaf with a writable destination: this
    node is the leaf's only producer (one edge left, nothing arrived), the leaf has no .grad yet and no hook
    that could replace the gradient."""
    offers = None
    for i, (child, _) in enumerate(node.next_functions):
        if type(child) is not AccumulateGrad:
            continue
        var = child.variable
        # the destination first: most leaves have none (an empty __dict__), and that ends the tests
        dest = var.__dict__.get(_DESTINATION) if var.__dict__ else None
        if dest is None or deps.get(child) != 1 or child in buffers or child._pre_hooks:
            continue
        array = getattr(dest, "array", None)
        if array is None or var.grad is not None or var._hooks or array.dtype != var._data.dtype:
            continue
        offers = offers or {}
        offers[i] = (array, dest.scale)
    node._grad_dst = offers


def _expand_grad(g, var):
    xp = var._device.xp
    return xp.array(xp.broadcast_to(g, var._data.shape), dtype=var._data.dtype)


# ---------------------------------------------------------------------------------------------------------
# the engine
#
# Each backward call is one graph task: its dependency counts, gradient buffers and end-of-pass callbacks
# live on that object, so backward calls on different threads run side by side, and a backward run from
# inside another (a checkpoint's recompute) is a task of its own, as in torch.

class _GraphTask:
    __slots__ = ("callbacks",)

    def __init__(self):
        self.callbacks = []

    def run_callbacks(self):
        while self.callbacks:
            self.callbacks.pop(0)()


class _Running(threading.local):
    tasks = ()  # the graph tasks running on this thread, innermost last


_running = _Running()


def queue_callback(fn):
    """Run `fn()` when the backward pass running on this thread finishes (DDP waits for its reductions here)."""
    if not _running.tasks:
        raise RuntimeError("Final callbacks can only be installed during backward pass.")
    _running.tasks[-1].callbacks.append(fn)


def _enter_task():
    task = _GraphTask()
    _running.tasks = _running.tasks + (task,)
    return task


def _leave_task():
    _running.tasks = _running.tasks[:-1]


def _dependencies(roots):
    deps = {}
    seen = set()
    stack = [n for n in roots if n is not None]
    for n in stack:
        seen.add(n)
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            deps[child] = deps.get(child, 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return deps


def _needed(roots, capture):
    """The nodes autograd.grad must run to reach the `capture` keys (an AccumulateGrad node, or (node, i): the
    gradient into node's output i), as torch's exec_info: a node whose edges lead to no key is never run (nor
    are its saved tensors freed), however far the graph goes on below it."""
    memo = {}
    for root in roots:
        if root is None or root in memo:
            continue
        stack = [(root, iter(root.next_functions))]
        memo[root] = False
        while stack:
            node, edges = stack[-1]
            for child, nr in edges:
                if child is None:
                    continue
                if (child, nr) in capture or child in capture:
                    memo[node] = True
                if child not in memo:
                    memo[child] = False
                    stack.append((child, iter(child.next_functions)))
                    break
                if memo[child]:
                    memo[node] = True
            else:
                stack.pop()
                if stack and memo[node]:
                    memo[stack[-1][0]] = True
    return {n for n, need in memo.items() if need}


def _narrow(node, needed, capture):
    """Narrow node.needs_input_grad, for its backward, to the inputs autograd.grad wants a gradient from:
    those whose edge leads to a captured gradient, as torch's nodes compute only the outputs exec_info marks
    (grad(y, x) through a layer computes no weight gradient). Returns the flags to put back afterwards, or
    None where nothing was narrowed."""
    nig = node.needs_input_grad
    edges = node.next_functions
    if len(nig) != len(edges):
        return None
    want = tuple(bool(w) and child is not None and (child in needed or child in capture or (child, nr) in capture)
                 for w, (child, nr) in zip(nig, edges))
    if want == tuple(map(bool, nig)):
        return None
    node.needs_input_grad = want
    return nig


def run_backward(roots, grads, retain_graph=False, capture=None, accumulate=True):
    """Propagate `grads` (arrays) from `roots` ((node, output_nr) pairs) through the graph.

    With `capture` (a dict node-key → None) the gradients reaching those edges are returned instead of
    accumulated into leaves (autograd.grad)."""
    deps = _dependencies([n for n, _ in roots])
    needed = _needed([n for n, _ in roots], capture) if capture is not None else None
    buffers = {}
    for (node, nr), g in zip(roots, grads):
        _add_grad(buffers, node, nr, g, False)
    ready = []
    for node, _ in roots:
        if node is not None and deps.get(node, 0) == 0 and node not in (r[2] for r in ready):
            heapq.heappush(ready, (-node._seq, id(node), node))
    captured = {}
    task = _enter_task()
    # each node runs with its device current (hooks, gradient sums and accumulation included), as torch runs
    # it on its device's thread; the thread's own current device comes back when the pass ends
    dev, entered = CPU, []
    try:
        while ready:
            _, _, node = heapq.heappop(ready)
            slots = buffers.pop(node, None)
            if slots is None:
                continue
            if node._device is not dev:
                dev = node._device
                if dev._gpu is not None:
                    _backend.make_current(dev, entered)
            if node._pre_hooks:
                _run_pre_hooks(node, slots)
            leaf = isinstance(node, AccumulateGrad)
            if capture is not None and leaf and node in capture:
                captured[node] = slots[0][0]
                continue
            if leaf:
                if accumulate and slots[0] is not None:
                    if _profiler_node is None:
                        node.accumulate(*slots[0])
                    else:
                        with _profiler_node(node):
                            node.accumulate(*slots[0])
                continue
            if capture is not None:
                for i, s in enumerate(slots):
                    if (node, i) in capture and s is not None:
                        captured[(node, i)] = s[0]
                if node not in needed:
                    continue  # leads to no captured edge: not run, its saved tensors kept (torch's exec_info)
            in_grads = (slots[0][0],) if node._out_meta is None else _grads_in(node, slots)
            saved = node.saved
            if saved is _FREED:
                raise RuntimeError(_TWICE)
            if node._versions:
                _check_versions(node)
            if type(saved) is _Packed:
                node.saved = saved.unpack()  # for this backward; the packed form stays the node's state
            if node._takes_grad_dst and accumulate and capture is None:
                _offer_destinations(node, deps, buffers)
            nig = _narrow(node, needed, capture) if capture is not None else None
            try:
                if _profiler_node is None:
                    out = node.backward(*in_grads)
                else:
                    with _profiler_node(node):
                        out = node.backward(*in_grads)
            finally:
                if nig is not None:
                    node.needs_input_grad = nig
            if type(out) is not tuple:
                out = (out,)
            if not retain_graph and saved:  # a node that saved nothing can run again, as in torch
                node.saved = _FREED
            elif type(saved) is _Packed:
                node.saved = saved
            if node._hooks:
                out = _run_post_hooks(node, out, in_grads)
            fresh = node._fresh_grads
            for (child, nr), g in zip(node.next_functions, out):
                if child is None:
                    continue
                if g is not None:
                    # the ownership flag: declared by the op, and checked where it is cheap to (an input
                    # gradient handed through, or one array returned for two inputs, is never owned)
                    owned = fresh and g.base is None and _only_once(g, in_grads, out)
                    _add_grad(buffers, child, nr, g, owned)
                d = deps[child] - 1
                deps[child] = d
                if d == 0:
                    heapq.heappush(ready, (-child._seq, id(child), child))
        task.run_callbacks()
    finally:
        if entered:
            _backend.restore_current(entered)
        _leave_task()
    return captured


def run_backward_create_graph(roots, grads, capture=None, accumulate=True):
    """run_backward for create_graph=True: gradients are tensors and every formula is recorded in a graph
    (the tensor-level formulas live in autograd/_double.py). The graph is always retained, as in torch."""
    from . import _double
    from .._device import device_of
    deps = _dependencies([n for n, _ in roots])
    needed = _needed([n for n, _ in roots], capture) if capture is not None else None
    buffers = {}

    def add(node, nr, g):
        slots = buffers.setdefault(node, [None] * (len(node._out_meta) if getattr(node, "_out_meta", None) else 1))
        slots[nr] = g if slots[nr] is None else slots[nr] + g

    for (node, nr), g in zip(roots, grads):
        add(node, nr, g if hasattr(g, "_data") else _wrap(g, device_of(g)))
    ready = [(-n._seq, id(n), n) for n, _ in roots if n is not None and deps.get(n, 0) == 0]
    heapq.heapify(ready)
    captured = {}
    task = _enter_task()
    dev, entered = CPU, []  # each node runs with its device current, as in run_backward
    try:
        with grad_mode.enable_grad():
            while ready:
                _, _, node = heapq.heappop(ready)
                slots = buffers.pop(node, None)
                if slots is None:
                    continue
                if node._device is not dev:
                    dev = node._device
                    if dev._gpu is not None:
                        _backend.make_current(dev, entered)
                if node._pre_hooks:
                    for output_nr, fn in list(node._pre_hooks.values()):
                        if output_nr is None:  # the node's own: the tuple of every output's gradient
                            r = fn(tuple(slots))
                            if r is not None:
                                slots = list(_hook_result(tuple(slots), r, fn))
                        elif output_nr < len(slots) and slots[output_nr] is not None:
                            r = fn(slots[output_nr])
                            if r is not None:
                                slots[output_nr] = r
                if isinstance(node, AccumulateGrad):
                    if capture is not None and node in capture:
                        captured[node] = slots[0]
                    elif accumulate and slots[0] is not None and node.live():
                        var = node.variable
                        for hook in list(var._hooks.values()) if var._hooks else ():
                            r = hook(slots[0])
                            slots[0] = r if r is not None else slots[0]
                        var.grad = slots[0] if var.grad is None else var.grad + slots[0]
                        for hook in list(var._post_acc_hooks.values()) if var._post_acc_hooks else ():
                            hook(var)
                    continue
                if capture is not None:
                    for i, gt in enumerate(slots):
                        if (node, i) in capture and gt is not None:
                            captured[(node, i)] = gt
                    if node not in needed:
                        continue
                if node.saved is _FREED:
                    raise RuntimeError("Trying to backward through the graph a second time (or directly access "
                                       "saved tensors after they have already been freed). Specify "
                                       "retain_graph=True if you need to backward through the graph a second time.")
                if node._versions:
                    _check_versions(node)
                packed = node.saved if type(node.saved) is _Packed else None
                if packed is not None:
                    node.saved = packed.unpack()
                meta = node._out_meta
                if meta is not None:
                    from .. import zeros
                    slots = [gt if gt is not None else zeros(shape, dtype=_dtype_from(dt)) for gt, (shape, dt)
                             in zip(slots, meta)]
                nig = _narrow(node, needed, capture) if capture is not None else None
                try:
                    if _profiler_node is None:
                        out = _double.lookup(node)(node, *slots)
                    else:
                        with _profiler_node(node):
                            out = _double.lookup(node)(node, *slots)
                finally:
                    if nig is not None:
                        node.needs_input_grad = nig
                if packed is not None:
                    node.saved = packed
                if type(out) is not tuple:
                    out = (out,)
                if node._hooks:
                    for fn in list(node._hooks.values()):
                        r = fn(out, tuple(slots))
                        if r is not None:
                            out = _hook_result(out, r, fn)
                for (child, nr), g in zip(node.next_functions, out):
                    if child is None:
                        continue
                    if g is not None:
                        add(child, nr, g)
                    d = deps[child] - 1
                    deps[child] = d
                    if d == 0:
                        heapq.heappush(ready, (-child._seq, id(child), child))
        task.run_callbacks()
    finally:
        if entered:
            _backend.restore_current(entered)
        _leave_task()
    return captured


def _dtype_from(np_dtype):
    from .. import _dtype
    return _dtype.from_numpy_dtype(np_dtype)


def _only_once(g, in_grads, out):
    """Whether `g` is none of `in_grads` and appears once in `out` (loops, not generators: this runs for
    every gradient of every backward)."""
    for x in in_grads:
        if g is x:
            return False
    n = 0
    for y in out:
        if g is y:
            n += 1
    return n == 1


def _add_grad(buffers, node, nr, g, owned):
    """Sum gradient `g` into input slot `nr` of `node`; in place where the slot's array is owned (the
    engine's own sum, or one an op declared fresh)."""
    slots = buffers.get(node)
    if slots is None:
        n = len(node._out_meta) if getattr(node, "_out_meta", None) else 1
        slots = buffers[node] = [None] * n
    cur = slots[nr]
    if cur is None:
        slots[nr] = (g, owned and getattr(g, "base", None) is None)
    else:
        a, a_owned = cur
        if a_owned and a.shape == g.shape and a.dtype == g.dtype:
            a += g
            slots[nr] = (a, True)
        else:
            slots[nr] = (a + g, True)


def _grads_in(node, slots):
    meta = node._out_meta
    if meta is None:
        return (slots[0][0],)
    xp = node.xp
    return tuple(s[0] if s is not None else xp.zeros(shape, dtype) for s, (shape, dtype) in zip(slots, meta))


def _tensors(arrays):
    from .._tensor import _wrap
    from .._device import device_of
    return tuple(None if a is None else _wrap(a, device_of(a)) for a in arrays)


def _run_pre_hooks(node, slots):
    """The node's pre-hooks on its gradient slots ((array, owned) or None), in place."""
    for output_nr, fn in list(node._pre_hooks.values()):
        if output_nr is None:  # the node's own: the tuple of every output's gradient
            go = _tensors([None if s is None else s[0] for s in slots])
            r = fn(go)
            if r is not None:
                slots[:] = [None if t is None else (t._data, False) for t in _hook_result(go, r, fn)]
            continue
        s = slots[output_nr] if output_nr < len(slots) else None
        if s is not None:
            r = fn(_tensors((s[0],))[0])
            if r is not None:
                slots[output_nr] = (r._data, False)


def _run_post_hooks(node, grad_inputs, grad_outputs):
    """The node's hooks; what they return replaces the input gradients (arrays in, arrays out)."""
    gi, go = _tensors(grad_inputs), _tensors(grad_outputs)
    replaced = False
    for fn in list(node._hooks.values()):
        r = fn(gi, go)
        if r is not None:
            gi, replaced = _hook_result(gi, r, fn), True
    return tuple(None if t is None else t._data for t in gi) if replaced else grad_inputs


def _hook_result(prev, result, fn):
    """A hook's replacement for a tuple of gradients, checked as torch checks it."""
    from .._tensor import Tensor
    name = getattr(fn, "__name__", None) or repr(fn)
    if type(result) is not tuple:
        raise TypeError(f"expected tuple, but hook returned '{type(result).__name__}'")
    if len(result) != len(prev):
        raise RuntimeError(f"hook '{name}' has returned an incorrect number of values (got {len(result)}, but "
                           f"expected {len(prev)})")
    for p, r in zip(prev, result):
        if r is None:
            continue
        if p is None:
            raise RuntimeError("can't replace a None gradient with a non-None value")
        if not isinstance(r, Tensor):
            raise TypeError(f"expected Variable, but hook returned '{type(r).__name__}'")
        if r.dtype != p.dtype or r.device != p.device:
            raise RuntimeError(f"hook '{name}' has changed the type of value (was {p.type()} got {r.type()})")
        if r.shape != p.shape:
            raise RuntimeError(f"hook '{name}' has changed the size of value")
    return result


def _check_versions(node):
    for counter, expected, t, out, own in node._versions:  # out: for an input, the shape it was saved in
        if counter.value != expected:
            raise RuntimeError(_modified_message(node, counter.value, expected, t, out))
        # (torch refuses only a saved tensor that was itself detached: a saved reshape of it keeps its history)
        if own and t.__dict__ and t.__dict__.get("_detached_inplace", -1) > node._seq:
            raise RuntimeError("Trying to use a saved tensor that has been detached in-place, i.e. with "
                               ".detach_().This is not supported, please use out-of-place `.detach()` instead")


def _modified_message(node, now, expected, t, out):
    """torch's text for a saved tensor written in place since: it names the tensor by its type and shape and,
    where it has a history, by the node it is an output of (an input's current one; for a saved output,
    this node)."""
    from .._tensor import _wrap
    if t is None:
        nr, shape, dtype = out
        kind, shape = _wrap(node.xp.empty(0, dtype), None).type_name(), ", ".join(map(str, shape))
    else:
        node, nr = t.grad_fn, t._output_nr
        kind, shape = t.type_name(), ", ".join(map(str, out))
    which = f", which is output {nr} of {re.sub(r'Backward0?$', '', node.name())}," if node is not None else ""
    return ("one of the variables needed for gradient computation has been modified by an inplace operation: "
            f"[{kind} [{shape}]]{which} is at version {now}; expected version {expected} instead. Hint: the "
            "backtrace further above can point to the operation that failed to compute its gradient.")
