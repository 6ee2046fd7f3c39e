"""DistributedDataParallel: gradients averaged across ranks in buckets, each bucket's all-reduce started
while backward is still computing the gradients of earlier layers.

How one synced iteration goes:
1. construction: parameter shapes are compared across ranks, parameters and buffers broadcast from rank 0,
   and the parameters that need grad are laid out in buckets (reverse registration order: gradients of the
   last layers arrive first in backward). A bucket holds parameters of one dtype and device.
2. backward: a gradient that autograd creates afresh goes straight to its bucket slot, divided by the world
   size on the way in (torch divides while copying into the bucket), through the engine's one extension
   point for that (`autograd.graph.set_grad_destination`); one that accumulates into an existing `.grad`
   is copied there, divided, by a post-accumulate-grad hook. When a bucket is complete
   the hook starts its all-reduce (a sum) asynchronously. Buckets start in index order on every rank, so
   ranks issue the same collectives in the same order whatever order the hooks fire in.
3. end of backward (an autograd end-of-pass callback): buckets of parameters that got no gradient are
   completed (find_unused_parameters) or reported, every reduction is waited for, and the averaged values
   are in `.grad` before `backward()` returns.

Memory layout. The bucket buffers are slices of one flat array per (dtype, device) laid out in parameter
order, so the gradients an optimizer sees are contiguous and it steps over them without gathering them.
With gradient_as_bucket_view, `.grad` *is* the bucket slot, always. Without it (torch's default), a `.grad`
the user keeps must not be overwritten by the next reduction, yet copying every gradient out of the bucket
costs a pass over memory: so there are two such flat arrays. A gradient created afresh in a synced pass
(after zero_grad(set_to_none=True), torch's default) is its slot, and the two arrays swap roles after that
pass; an existing `.grad` (zero_grad(set_to_none=False), no_sync accumulation) keeps its own memory and gets
the reduced values copied in, as torch's reducer does, so it stays the same tensor at the same address.
"""
import contextlib
import warnings

import numpy as np

from ... import _backend
from ..._backend import xp_of
from ..._tensor import _wrap
from ...autograd import graph as _graph
from ...autograd.grad_mode import no_grad
from ...distributed.algorithms.join import Join, Joinable, JoinHook, _all_reduce_scalar, _JoinConfig
from ..modules.module import Module
from . import _ddp_args

__all__ = ["DistributedDataParallel"]

_FIRST_BUCKET_BYTES = 1024 * 1024  # torch's dist._DEFAULT_FIRST_BUCKET_BYTES


class GradBucket:
    """What a communication hook receives (torch.distributed.GradBucket): the flat buffer, and the parameters
    in the order their gradients lie in it, with `gradients()` as views of the buffer."""

    def __init__(self, index, buffer, params, is_last):
        self._index, self._buffer, self._params, self._is_last = index, buffer, params, is_last

    def index(self):
        return self._index

    def buffer(self):
        return self._buffer

    def parameters(self):
        return list(self._params)

    def gradients(self):
        flat, out, o = self._buffer._data, [], 0
        for p in self._params:
            n = p.numel()
            out.append(_wrap(flat[o:o + n].reshape(p._data.shape), self._buffer._device))
            o += n
        return out

    def is_last(self):
        return self._is_last

    def set_buffer(self, buffer):
        self._buffer._data[...] = buffer._data


class _Slot:
    """Where a parameter's fresh gradient goes (`set_grad_destination`): its slot in a flat gradient array of
    DDP's, times `scale` when one is given (the 1/world average taken on the way in). An op that produces the
    whole gradient may write it there itself (`array`, `scale`: the engine offers them), saving the copy."""
    __slots__ = ("view", "scale")

    def __init__(self, view, scale):
        self.view, self.scale = view, scale

    @property
    def array(self):
        return self.view

    def __call__(self, g):
        view, scale = self.view, self.scale
        xp = xp_of(view)
        if scale is None:
            xp.copyto(view, g, casting="unsafe")
        elif g.dtype == view.dtype:
            xp.multiply(g, scale, out=view)
        else:
            xp.copyto(view, g * scale, casting="unsafe")
        return view


class _Bucket:
    __slots__ = ("index", "params", "idx", "views", "flat", "pending", "ready", "future", "launched", "dtype",
                 "device")

    def __init__(self, index, params, idx, dtype, device):
        self.index, self.params, self.idx, self.dtype, self.device = index, params, idx, dtype, device
        self.flat = self.views = None  # bound by DistributedDataParallel._bind
        self.reset()

    def reset(self):
        self.pending = len(self.params)
        self.ready = [False] * len(self.params)
        self.future = None
        self.launched = False


class DistributedDataParallel(Module, Joinable):
    """torch.nn.parallel.DistributedDataParallel over dtrain.distributed (MPI or NCCL)."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=None,
                 init_sync=True, process_group=None, bucket_cap_mb=None, find_unused_parameters=False,
                 check_reduction=False, gradient_as_bucket_view=False, static_graph=False,
                 delay_all_reduce_named_params=None, param_to_hook_all_reduce=None, mixed_precision=None,
                 device_mesh=None, skip_all_reduce_unused_params=False, bucket_cap_mb_list=None,
                 batched_grad_copy=False, forward_sync_buffers=None):
        # what each argument does here: _ddp_args' docstring
        super().__init__()
        from ... import distributed as dist
        if not dist.is_initialized():
            raise RuntimeError("Default process group has not been initialized, please make sure to call "
                               "init_process_group.")
        self._dist = dist
        params, init_sync_buffers = _ddp_args.resolve(
            self, module, device_ids, output_device, broadcast_buffers, forward_sync_buffers, process_group,
            device_mesh, check_reduction, delay_all_reduce_named_params, param_to_hook_all_reduce, mixed_precision)
        self.module = module
        self.dim = dim
        self.mixed_precision = mixed_precision
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.skip_all_reduce_unused_params, self.batched_grad_copy = skip_all_reduce_unused_params, batched_grad_copy
        self.static_graph = False
        if static_graph:
            self._set_static_graph()
        self.bucket_bytes_cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * 1024 * 1024)
        # per-bucket caps (the last one repeats), as torch's bucket_cap_mb_list; its largest is the cap
        self._bucket_caps = [int(mb * 1024 * 1024) for mb in bucket_cap_mb_list or ()]
        if self._bucket_caps:
            self.bucket_bytes_cap = max(self._bucket_caps)
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        self._world = dist.get_world_size(self.process_group)
        self._rank = dist.get_rank(self.process_group)
        self._join_config = _JoinConfig.construct_disabled_join_config()
        self._divide_by_initial_world_size = True
        self._active = None          # ranks still training this iteration, under join
        self._comm_hook = None
        self._comm_state = None
        self._names = {id(p): n for n, p in module.named_parameters()}
        # DDP's own array code (the flat buffers, the bucket copies) runs with the parameters' device current,
        # which need not be the calling thread's (a rank that set another device, or none)
        self._device_of = params[0]._device if params else None
        with self._on_device():
            self._check_same_model()
            if init_sync:
                self._sync_module_states(init_sync_buffers)
            self._params = params
            self._index = {id(p): i for i, p in enumerate(params)}
            self._build_buckets(params)
        self._armed = None           # what the grad views were last set up for (_arm)
        self._hook_handles = [p.register_post_accumulate_grad_hook(self._make_hook(i))
                              for i, p in enumerate(params)]
        self._pass = None            # state of the backward pass in flight
        self._held, self._stash = {}, {}  # .grad tensors that are slots of the next buckets (_hand_over)
        self._unfinished = None      # parameter names that got no gradient in the last synced pass
        self._unused = ()            # parameters not reached from the forward output (find_unused_parameters)
        self._arm()

    # ------------------------------------------------------------------------------------- construction
    def _on_device(self):
        return _backend.on_device(self._device_of) if self._device_of is not None else contextlib.nullcontext()

    def _check_same_model(self):
        dist = self._dist
        if self._world == 1:
            return
        mine = [(n, tuple(p.shape), str(p.dtype)) for n, p in self.module.named_parameters()]
        everyone = [None] * self._world
        dist.all_gather_object(everyone, mine, group=self.process_group)
        ref = everyone[0]
        me = dist.get_rank(self.process_group)
        for rank, theirs in enumerate(everyone):
            if len(theirs) != len(ref):
                raise RuntimeError(f"DDP expects same model across all ranks, but Rank {rank} has {len(theirs)} "
                                   f"params, while rank 0 has inconsistent {len(ref)} params.")
            for i, ((n0, s0, d0), (n, s, d)) in enumerate(zip(ref, theirs)):
                if s != s0 or d != d0:
                    raise RuntimeError(f"DDP expects same model across all ranks, but params[{i}] ({n}) has sizes "
                                       f"{list(s)} and dtype {d} on rank {rank}, and sizes {list(s0)} and dtype "
                                       f"{d0} on rank 0 (this is rank {me}).")

    def _sync_module_states(self, buffers=True):
        """Broadcast parameters (and buffers) from rank 0, coalesced into one message per dtype."""
        if self._world == 1:
            return
        tensors = [p for p in self.module.parameters()] + ([b for b in self.module.buffers()] if buffers else [])
        self._broadcast_coalesced(tensors)

    def _broadcast_coalesced(self, tensors, src=0):
        """Broadcast `tensors` from group rank `src`, one message per (dtype, device)."""
        groups = {}
        for t in tensors:
            groups.setdefault((t._data.dtype, t._device), []).append(t)
        for (dtype, device), ts in groups.items():
            xp = device.xp
            flat = xp.concatenate([t._data.reshape(-1) for t in ts]) if len(ts) > 1 else ts[0]._data.reshape(-1).copy()
            ft = _wrap(flat, device)
            self._dist.broadcast(ft, group=self.process_group, group_src=src)
            o = 0
            for t in ts:
                n = t._data.size
                t._data[...] = flat[o:o + n].reshape(t._data.shape)
                o += n

    def _build_buckets(self, params):
        """Reverse registration order; the first bucket about 1 MB, the rest about bucket_cap_mb."""
        self._buckets = []
        self._where = {}  # param index → (bucket, position)
        cur, cur_bytes, cur_key = [], 0, None
        # torch's first bucket is 1 MiB so the first reduction starts early; a smaller requested cap wins
        caps = self._bucket_caps or [min(_FIRST_BUCKET_BYTES, self.bucket_bytes_cap), self.bucket_bytes_cap]
        cap = caps[0]

        def close():
            nonlocal cur, cur_bytes, cap
            if not cur:
                return
            b = _Bucket(len(self._buckets), [params[i] for i in cur], cur, cur_key[0], cur_key[1])
            for pos, i in enumerate(cur):
                self._where[i] = (b, pos)
            self._buckets.append(b)
            cur, cur_bytes, cap = [], 0, caps[min(len(self._buckets), len(caps) - 1)]

        for i in reversed(range(len(params))):
            p = params[i]
            key = (p._data.dtype, p._device)
            if cur and (key != cur_key or cur_bytes >= cap):
                close()
            cur_key = key
            cur.append(i)
            cur_bytes += p._data.nbytes
        close()
        # one param-ordered flat array per (dtype, device), two of them unless .grad is the bucket (see above)
        self._layouts = [_flat_views(params) for _ in range(1 if self.gradient_as_bucket_view else 2)]
        self._cur = 0  # which layout the next synced backward fills
        self._prescaled = [False] * len(params)
        self._bind(0)
        if self.gradient_as_bucket_view:
            for b in self._buckets:
                for pos, p in enumerate(b.params):
                    if p.grad is not None:
                        b.views[pos][...] = p.grad._data
                        p.grad._data = b.views[pos]

    def _bind(self, k):
        views, spans = self._layouts[k]
        for b in self._buckets:
            b.views = [views[i] for i in b.idx]
            flat, lo, _ = spans[b.idx[-1]]  # b.idx runs backwards: its last is first in the flat array
            _, o, n = spans[b.idx[0]]
            b.flat = flat[lo:o + n]

    def _arm(self):
        """Point every parameter's fresh gradient at the slot it should materialise in: the bucket of the next
        synced backward, divided by the world size on the way in; under no_sync, the other layout, undivided,
        so the bucket stays free for the synced pass. A parameter with post-accumulate hooks of the user's
        gets its gradient as usual (those hooks must see it undivided); DDP's hook copies it over."""
        sync = self.require_backward_grad_sync
        hooks = sum(len(p._post_acc_hooks) for p in self._params)
        key = (self._cur, sync, hooks, self._comm_hook is None)
        if key == self._armed:
            return
        self._armed = key
        k = self._cur if sync or len(self._layouts) == 1 else 1 - self._cur
        scale = self._scale() if sync and len(self._layouts) == 2 else None
        views = self._layouts[k][0]
        for i, p in enumerate(self._params):
            alone = len(p._post_acc_hooks) == 1  # DDP's hook
            _graph.set_grad_destination(p, _Slot(views[i], scale) if alone or scale is None else None)
            self._prescaled[i] = alone and scale is not None

    def _scale(self):
        """The factor for the average when DDP takes it (not a comm hook, which averages itself)."""
        return 1.0 / self._world if self._comm_hook is None and self._world > 1 else None

    # ---------------------------------------------------------------------------------------- forward
    def forward(self, *inputs, **kwargs):
        if self._unfinished:
            names, self._unfinished = self._unfinished, None
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting a new one. This error "
                "indicates that your module has parameters that were not used in producing loss. You can enable "
                "unused parameter detection by passing the keyword argument `find_unused_parameters=True` to "
                "`torch.nn.parallel.DistributedDataParallel`, and by \nmaking sure all `forward` function outputs "
                "participate in calculating loss. \nParameters which did not receive grad for rank "
                f"{self._dist.get_rank(self.process_group)}: {', '.join(names)}")
        joining = self._join_config.enable and self._world > 1
        if joining:  # say this rank is still training; learn how many are
            active = Join.notify_join_context(self)
            self._active = self._world if active is None else int(active)
        with self._on_device():
            if self.forward_sync_buffers and self.require_forward_param_sync and self._world > 1:
                self._sync_buffers(True if joining else None)
            if joining:  # tell joined ranks whether this iteration's backward reduces
                _all_reduce_scalar(int(self.require_backward_grad_sync), self.join_device, self.process_group)
            self._arm()
        if self.device_ids:  # torch moves the inputs to the module's device
            inputs, kwargs = _to_device((inputs, kwargs), f"cuda:{self.device_ids[0]}")
        out = self.module(*inputs, **kwargs)
        if (self.find_unused_parameters or self.static_graph) and self.require_backward_grad_sync:
            self._unused = self._find_unused(out)
        return out

    def _sync_buffers(self, cond=None):
        """Broadcast the module's buffers from rank 0; under join (`cond` given), from the highest rank where
        `cond` holds: a rank still training."""
        bufs = list(self.module.buffers())
        if bufs:
            src = 0 if cond is None else self._find_common_rank(cond)
            with no_grad():
                self._broadcast_coalesced(bufs, src)

    def _find_common_rank(self, cond):
        """The highest group rank among those where `cond` holds (one all-reduce)."""
        from ... import distributed as dist
        r = _all_reduce_scalar(self._rank if cond else -1, self.join_device, self.process_group, dist.ReduceOp.MAX)
        if r < 0:
            raise ValueError("BUG! Expected rank_cond to be true for at least one process.")
        return int(r)

    def _find_unused(self, out):
        """Parameters the autograd graph of `out` does not reach: their gradient will be zero."""
        from ..._tensor import Tensor
        roots = [t.grad_fn for t in _tensors_in(out) if isinstance(t, Tensor) and t.grad_fn is not None]
        reached, seen, stack = set(), set(roots), list(roots)
        while stack:
            node = stack.pop()
            if type(node) is _graph.AccumulateGrad:
                reached.add(id(node.variable))
                continue
            for child, _ in node.next_functions:
                if child is not None and child not in seen:
                    seen.add(child)
                    stack.append(child)
        for t in _tensors_in(out):
            if isinstance(t, Tensor) and t.grad_fn is None and t.requires_grad:
                reached.add(id(t))
        return tuple(i for i, p in enumerate(self._params) if id(p) not in reached)

    # --------------------------------------------------------------------------------------- backward
    def _make_hook(self, i):
        def hook(p):
            if self._armed[1]:  # as in torch, the forward decides: one run under no_sync is not synced
                self._mark_ready(i, p)
        return hook

    def _begin_pass(self):
        self._pass = True
        _graph.queue_callback(self._finish_pass)
        for b in self._buckets:
            b.reset()
        for i in self._unused:  # known unused: their slots are zero and count as ready now
            b, pos = self._where[i]
            g = self._params[i].grad
            if g is not None and g._data is b.views[pos]:
                self._stash[i] = g._data.copy()  # a .grad that is the slot: restored if no rank used it
            b.views[pos][...] = 0
            self._set_ready(b, pos)

    def _mark_ready(self, i, p):
        if self._pass is None:
            self._begin_pass()
        b, pos = self._where[i]
        if b.ready[pos]:
            return
        view = b.views[pos]
        g = p.grad._data
        scale = None if self.gradient_as_bucket_view else self._scale()
        if g is not view:
            if scale is None:
                view[...] = g
            else:
                b.device.xp.multiply(g, scale, out=view)  # .grad has its parameter's dtype
            if self.gradient_as_bucket_view:
                p.grad._data = view
        elif scale is not None and self._held.get(i) is p.grad:
            view *= scale  # an existing .grad that is this pass's slot (see _hand_over): averaged where it is
        self._set_ready(b, pos)

    def _set_ready(self, b, pos):
        b.ready[pos] = True
        b.pending -= 1
        # launch complete buckets strictly in index order, the same on every rank
        for bk in self._buckets:
            if bk.launched:
                continue
            if bk.pending:
                break
            self._launch(bk)

    def _launch(self, b):
        b.launched = True
        buf = _wrap(b.flat, b.device)
        if self._comm_hook is not None:
            # b.params run backwards through the buffer (the order their gradients arrive in)
            gb = GradBucket(b.index, buf, b.params[::-1], b.index == len(self._buckets) - 1)
            b.future = self._comm_hook(self._comm_state, gb)
            return
        if self._world > 1:
            if self.gradient_as_bucket_view:
                b.flat *= 1.0 / self._world  # otherwise each gradient was divided on its way in
            b.future = self._dist.all_reduce(buf, group=self.process_group, async_op=True)

    def _globally_used(self):
        """Which parameters some rank used this pass (find_unused_parameters): one small all-reduce, as torch."""
        used = np.ones(len(self._params), np.int32)
        used[list(self._unused)] = 0
        if self._world > 1:
            t = _wrap(used, _cpu())
            self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX, group=self.process_group)
        return used

    def _finish_pass(self):
        with self._on_device():
            self._finish_pass_here()

    def _finish_pass_here(self):
        used = self._globally_used() if self.find_unused_parameters or self.static_graph else None
        missing = []
        for b in self._buckets:
            if b.pending:
                missing += [self._names.get(id(p), "?") for p, r in zip(b.params, b.ready) if not r]
        if missing:
            # never issue a collective some rank may not issue: report at the next forward, like torch
            self._unfinished = missing
        for b in self._buckets:
            if not b.launched:
                continue
            if b.future is not None:
                res = b.future.wait()
                if self._comm_hook is not None:
                    res = res[0] if isinstance(res, (list, tuple)) else res
                    if res is not None and res._data is not b.flat:
                        b.flat[...] = res._data.reshape(-1)
                elif self._active is not None and self._active < self._world and \
                        not self._divide_by_initial_world_size:
                    b.flat *= self._world / self._active  # the average over the ranks still training
        if not self.gradient_as_bucket_view:
            self._hand_over(used)
        self._pass = None

    def _hand_over(self, used):
        """The reduced bucket slots become `.grad`'s values. A gradient created in this pass already is its
        slot, and the other layout becomes the next pass's buckets (a `.grad` the user keeps after
        zero_grad(set_to_none=True) is not overwritten by the next pass). An existing `.grad` keeps its own
        memory and takes a copy of its slot, as torch's reducer does: `p.grad` stays the same tensor at the
        same address across steps with zero_grad(set_to_none=False)."""
        k = self._cur
        views = self._layouts[k][0]
        fresh = False
        for b in self._buckets:
            for pos, p in enumerate(b.params):
                i = b.idx[pos]
                v = views[i]
                g = p.grad
                if b.launched and (used is None or used[i]):
                    if g is None:
                        p.grad = _wrap(v, p._device)
                        fresh = True
                    else:
                        if g._data is v:
                            fresh = True
                        else:
                            b.device.xp.copyto(g._data, v)
                        g._vc.value += 1
                elif g is not None and g._data is v:
                    kept = self._stash.get(i)
                    if kept is not None:
                        v[...] = kept  # unused on every rank: .grad keeps its value, as in torch
                    elif self._prescaled[i] and b.ready[pos]:
                        v *= self._world  # a fresh gradient divided on its way in, never reduced: undivided again
        self._stash = {}
        nxt = 1 - k if fresh else k
        views = self._layouts[nxt][0]
        # existing gradients that are slots of the next pass's buckets: that pass averages them where they are
        self._held = {i: p.grad for i, p in enumerate(self._params) if p.grad is not None and p.grad._data is views[i]}
        self._cur = nxt
        self._bind(nxt)
        self._arm()

    # ---------------------------------------------------------------------------------------- public
    @property
    def broadcast_buffers(self):
        return self.forward_sync_buffers

    @broadcast_buffers.setter
    def broadcast_buffers(self, value):
        self.forward_sync_buffers = value

    def _set_static_graph(self):
        """static_graph: the parameters a forward leaves unused get zero gradients (torch learns them in the
        first iteration; dtrain finds them in every one, as with find_unused_parameters)."""
        if self.static_graph:
            warnings.warn("You've set static_graph to be True, no need to set it again.", stacklevel=2)
            return
        self.static_graph = True
        if self.find_unused_parameters:
            warnings.warn("You passed find_unused_parameters=true to DistributedDataParallel, `_set_static_graph` will "
                          "detect unused parameters automatically, so you do not need to set "
                          "find_unused_parameters=true, just be sure these unused parameters will not change during "
                          "training loop while calling `_set_static_graph`.", stacklevel=2)

    @contextlib.contextmanager
    def no_sync(self):
        """Skip gradient synchronisation inside the block (gradient accumulation); the next synced backward
        reduces everything accumulated."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    # ------------------------------------------------------------------------------------------- join
    def join(self, divide_by_initial_world_size: bool = True, enable: bool = True,
             throw_on_early_termination: bool = False):
        """Context manager for uneven inputs: a rank that runs out of batches shadows the others' collectives
        until all are done, then every rank takes the model of one that trained to the end. Gradients of an
        iteration some ranks sat out are divided by the initial world size, or with
        divide_by_initial_world_size=False by the number of ranks that took part."""
        return Join([self], enable, throw_on_early_termination,
                    divide_by_initial_world_size=divide_by_initial_world_size)

    def join_hook(self, **kwargs):
        return _DDPJoinHook(self, kwargs.get("divide_by_initial_world_size", True))

    @property
    def join_device(self):
        return self._params[0]._device

    @property
    def join_process_group(self):
        return self.process_group

    def _shadow_backward(self):
        """A joined rank's part in a backward of the ranks still training: every bucket's reduction with zeros
        as this rank's gradients (through the comm hook when there is one, in bucket order) and a vote of
        "unused" for every parameter (find_unused_parameters). Afterwards `.grad` holds the others' reduced
        gradients as after a synced backward of its own, so an optimizer that must step its shard under join
        (ZeroRedundancyOptimizer) steps with the right values."""
        unused, self._unused = self._unused, tuple(range(len(self._params)))
        self._pass = True
        try:
            for b in self._buckets:
                b.reset()
                b.flat[...] = 0
                b.pending, b.ready = 0, [True] * len(b.params)
            for b in self._buckets:
                self._launch(b)
            self._finish_pass()
        finally:
            self._unused = unused

    def register_comm_hook(self, state, hook):
        """hook(state, GradBucket) -> Future whose value is the reduced bucket tensor."""
        if self._comm_hook is not None:
            raise RuntimeError("register_comm_hook or register_builtin_comm_hook can only be called once.")
        self._comm_hook, self._comm_state = hook, state
        self._arm()

    def _get_ddp_logging_data(self):
        return {"bucket_sizes": [int(b.flat.nbytes) for b in self._buckets], "world_size": self._world}

    @property
    def bucket_count(self):
        return len(self._buckets)

    def __getstate__(self):
        raise RuntimeError("DistributedDataParallel is not picklable; save `model.module` or its state_dict")


class _DDPJoinHook(JoinHook):
    """What a joined rank does for DDP while others train: the forward's buffer broadcast and, when that
    iteration reduces, the backward's reductions; at the end it takes the final model."""

    def __init__(self, ddp, divide_by_initial_world_size):
        self.ddp, self._active = ddp, None
        ddp._divide_by_initial_world_size = divide_by_initial_world_size

    def main_hook(self):
        ddp = self.ddp
        ddp._active = self._active  # set by Join: how many ranks train this iteration
        if ddp.forward_sync_buffers and ddp.require_forward_param_sync:
            ddp._sync_buffers(False)
        if _all_reduce_scalar(0, ddp.join_device, ddp.process_group):  # the others' backward reduces
            ddp._shadow_backward()

    def post_hook(self, is_last_joiner):
        ddp = self.ddp
        src = ddp._find_common_rank(is_last_joiner)
        with no_grad():
            ddp._broadcast_coalesced(list(ddp.module.parameters()) + list(ddp.module.buffers()), src)


def _flat_views(params):
    """One zeroed flat array per (dtype, device), laid out in parameter order: per parameter, its view and
    its span (flat array, offset, size)."""
    groups = {}
    for i, p in enumerate(params):
        groups.setdefault((p._data.dtype, p._device), []).append(i)
    views, spans = [None] * len(params), [None] * len(params)
    for (dtype, device), idx in groups.items():
        flat = device.xp.zeros(sum(params[i].numel() for i in idx), dtype)
        o = 0
        for i in idx:
            n = params[i].numel()
            views[i] = flat[o:o + n].reshape(params[i]._data.shape)
            spans[i] = (flat, o, n)
            o += n
    return views, spans


def _cpu():
    from ..._device import CPU
    return CPU


def _to_device(obj, device):
    """obj with every tensor in its tuples, lists and dicts moved to `device`."""
    from ..._tensor import Tensor
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, (list, tuple)):
        moved = [_to_device(o, device) for o in obj]
        return type(obj)(*moved) if hasattr(obj, "_fields") else type(obj)(moved)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def _tensors_in(out):
    if isinstance(out, (list, tuple)):
        for o in out:
            yield from _tensors_in(o)
    elif isinstance(out, dict):
        for o in out.values():
            yield from _tensors_in(o)
    else:
        yield out
