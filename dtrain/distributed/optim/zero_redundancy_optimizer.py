"""ZeroRedundancyOptimizer: ZeRO stage 1, each rank keeps optimizer state for its own partition only."""
from ..._tensor import Tensor, _wrap
from ...optim.optimizer import Optimizer
from ..algorithms.join import Join, Joinable, JoinHook, _JoinConfig


def _to_host(v):
    # state travels between ranks as NumPy arrays (pickled), and becomes tensors again on arrival
    if isinstance(v, Tensor):
        return ("__tensor__", v.detach().cpu()._data.copy())
    if isinstance(v, dict):
        return {k: _to_host(x) for k, x in v.items()}
    return v


def _from_host(v):
    from ..._ops.creation import from_numpy
    if isinstance(v, tuple) and len(v) == 2 and v[0] == "__tensor__":
        return from_numpy(v[1])
    if isinstance(v, dict):
        return {k: _from_host(x) for k, x in v.items()}
    return v


class ZeroRedundancyOptimizer(Optimizer, Joinable):
    """torch's ZeroRedundancyOptimizer (ZeRO stage 1): the parameters are partitioned over the ranks of
    `process_group` (greedily by size, largest first, as torch does); each rank builds `optimizer_class`
    over its partition only, steps it, and then every partition is broadcast from its owner.

    `state_dict()` needs `consolidate_state_dict(to)` first, as in torch. For checkpoints that stay
    sharded, `sharded_state_dict()` gives this rank's part in the global layout (global parameter
    indices) and `load_sharded_state_dict()` takes back whatever part this rank owns now, so a ZeRO
    checkpoint written at one world size loads at another. `parameters_as_bucket_view` changes only memory
    layout in torch (parameters become views of per-rank buckets), never values: dtrain keeps each parameter's
    own storage either way (views and `data_ptr()` of a parameter stay valid) and packs each broadcast into
    a flat buffer of its own.

    Under `Join([ddp_model, zero])` a rank that has run out of inputs keeps stepping its partition (with the
    gradients DDP's join hook reduced from the ranks still training) and broadcasting it."""

    def __init__(self, params, optimizer_class, process_group=None, parameters_as_bucket_view: bool = False,
                 overlap_with_ddp: bool = False, **defaults):
        from ... import distributed as dist
        if overlap_with_ddp:
            raise NotImplementedError("ZeroRedundancyOptimizer(overlap_with_ddp=True) needs DDP's ZeRO comm hook, "
                                      "which dtrain does not have; use overlap_with_ddp=False")
        super().__init__(params, defaults)
        self._dist, self.process_group = dist, process_group
        self._on = dist.is_initialized()
        self.world_size = dist.get_world_size(process_group) if self._on else 1
        self.rank = dist.get_rank(process_group) if self._on else 0
        self.global_rank = dist.get_rank() if self._on else 0
        self.optimizer_class, self.parameters_as_bucket_view = optimizer_class, parameters_as_bucket_view
        self._all_state_dicts = []
        self._join_config = _JoinConfig.construct_disabled_join_config()
        self._partition()
        local_groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": ps}
                        for g, ps in zip(self.param_groups, self._local_params)]
        self.optim = optimizer_class(local_groups, **defaults)
        # the global groups get the local optimizer's filled-in defaults (betas, eps, ...), as in torch
        for g, lg in zip(self.param_groups, self.optim.param_groups):
            g.update({k: v for k, v in lg.items() if k != "params"})

    def _partition(self):
        """Greedy partition, torch's rule: within each group, largest parameters first, each to the rank
        with the fewest elements so far (counts carry over between groups)."""
        sizes = [0] * self.world_size
        self._owner = {}
        self._index = {}
        self._local_params = []
        i = 0
        for g in self.param_groups:
            for p in g["params"]:
                self._index[id(p)] = i
                i += 1
            mine = []
            for p in sorted(g["params"], key=lambda t: t.numel(), reverse=True):
                r = sizes.index(min(sizes))
                self._owner[id(p)] = r
                sizes[r] += p.numel()
                if r == self.rank:
                    mine.append(p)
            self._local_params.append(mine)
        self._by_index = [p for g in self.param_groups for p in g["params"]]

    def _wants_state(self, index) -> bool:
        """Whether this rank keeps the state of the parameter with global index `index`."""
        return 0 <= index < len(self._by_index) and self._owner[id(self._by_index[index])] == self.rank

    def _sync_hyperparameters(self):
        # schedulers change the global groups; the local optimizer must step with the same values
        for g, lg in zip(self.param_groups, self.optim.param_groups):
            for k, v in g.items():
                if k != "params":
                    lg[k] = v

    def step(self, closure=None):
        """Step this rank's partition, then broadcast every partition from its owner."""
        Join.notify_join_context(self)
        self._sync_hyperparameters()
        loss = self.optim.step(closure)
        self._broadcast_params()
        return loss

    def _broadcast_params(self):
        if not self._on or self.world_size == 1:
            return
        # one broadcast per owner and dtype: each partition packed into a flat buffer
        for r in range(self.world_size):
            src = self._dist.get_global_rank(self.process_group, r) if self.process_group is not None else r
            owned = [p for p in self._by_index if self._owner[id(p)] == r]
            by = {}
            for p in owned:
                by.setdefault((p._device, p._data.dtype), []).append(p)
            for (dev, dt), ps in by.items():
                xp = dev.xp
                if len(ps) == 1:
                    flat = ps[0]._data if ps[0]._data.flags.c_contiguous else xp.ascontiguousarray(ps[0]._data)
                else:
                    flat = xp.concatenate([p._data.reshape(-1) for p in ps]) if r == self.rank else \
                        xp.empty(sum(p.numel() for p in ps), dt)
                self._dist.broadcast(_wrap(flat, dev), src=src, group=self.process_group)
                if r != self.rank:
                    pos = 0
                    for p in ps:
                        n = p.numel()
                        if flat is not p._data:
                            p._data[...] = flat[pos:pos + n].reshape(p._data.shape)
                        p._vc.value += 1
                        pos += n

    def join_hook(self, **kwargs):
        return _ZeROJoinHook(self)

    @property
    def join_device(self):
        return self._by_index[0]._device

    @property
    def join_process_group(self):
        return self.process_group if self.process_group is not None else self._dist.group.WORLD

    def add_param_group(self, param_group):
        if hasattr(self, "optim"):
            raise NotImplementedError("ZeroRedundancyOptimizer.add_param_group after construction is not supported "
                                      "in dtrain")
        super().add_param_group(param_group)

    # ------------------------------------------------------------------ state dicts
    def _packed_groups(self):
        return [{**{k: v for k, v in g.items() if k != "params"}, "params": [self._index[id(p)] for p in g["params"]]}
                for g in self.param_groups]

    def _local_state_global(self):
        """This rank's optimizer state keyed by global parameter index."""
        sd = self.optim.state_dict()
        local = [p for ps in self._local_params for p in ps]
        return {self._index[id(local[i])]: v for i, v in sd["state"].items()}

    def sharded_state_dict(self):
        """This rank's part of the state in the global layout: its parameters' state, all param groups."""
        return {"state": self._local_state_global(), "param_groups": self._packed_groups()}

    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gather every rank's state on rank `to` (every rank must call it), for `state_dict()` there."""
        mine = {k: _to_host(v) for k, v in self._local_state_global().items()}
        if not self._on or self.world_size == 1:
            gathered = [mine]
        else:
            gathered = [None] * self.world_size if self.global_rank == to else None
            self._dist.gather_object(mine, gathered, dst=to, group=self.process_group)
        self._all_state_dicts = []
        if self.global_rank == to:
            state = {}
            for part in gathered:
                state.update({k: _from_host(v) for k, v in part.items()})
            self._all_state_dicts = [state]

    def state_dict(self):
        """The whole optimizer state, as an unsharded optimizer's state_dict; only on the rank that
        consolidate_state_dict gathered to."""
        if not self._all_state_dicts:
            raise RuntimeError("Optimizer state has not been consolidated on this rank. Please call "
                               "`consolidate_state_dict(to=0)` on all ranks beforehand if you meant to save the "
                               "global state.")
        state = self._all_state_dicts[0]
        return {"state": {k: state[k] for k in sorted(state)}, "param_groups": self._packed_groups()}

    def load_state_dict(self, state_dict):
        """Load a whole (or sharded) state dict in the global layout; each rank takes the part it owns."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for g, sg in zip(self.param_groups, groups):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                                 "optimizer's group")
            g.update({k: v for k, v in sg.items() if k != "params"})
        local = [p for ps in self._local_params for p in ps]
        local_index = {id(p): i for i, p in enumerate(local)}
        state = {local_index[id(self._by_index[k])]: v for k, v in state_dict["state"].items()
                 if isinstance(k, int) and self._wants_state(k)}
        packed, start = [], 0
        for g, ps in zip(self.param_groups, self._local_params):
            packed.append({**{k: v for k, v in g.items() if k != "params"},
                           "params": list(range(start, start + len(ps)))})
            start += len(ps)
        self.optim.load_state_dict({"state": state, "param_groups": packed})

    load_sharded_state_dict = load_state_dict

    def __repr__(self):
        return f"ZeroRedundancyOptimizer(rank={self.rank}, world_size={self.world_size}, optim={self.optim!r})"


class _ZeROJoinHook(JoinHook):
    """A joined rank steps its partition and broadcasts it, as the ranks still training do in theirs."""

    def __init__(self, zero):
        self.zero = zero

    def main_hook(self):
        self.zero.step()
