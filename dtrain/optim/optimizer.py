"""Optimizer: torch's base class (param groups, per-parameter state, state dicts) over flat state.

A subclass names its state (`_init_state`) and its update rule (`_update`, over arrays, from
`dtrain.optim._functional`). Parameters and gradients stay where they are: a view, a `.numpy()` array or a
`data_ptr()` of a parameter taken before the optimizer was made stays an alias of it, as in torch. What the
optimizer owns, its tensor state, lives in one flat buffer per group chunk of one dtype and device (each
parameter's state tensor a view of it), so the update rule runs over each parameter's stretch of it: one
call per parameter, or per block of a large one, the blocks shared out among the cores.
"""
from collections import defaultdict
from copy import deepcopy
from itertools import chain

import numpy as np

from .. import _axpy, _dtype, _parallel
from .._backend import data_ptr, kernels, on_device
from .._device import CPU
from .._tensor import Tensor, _wrap

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Singleton class representing a required parameter for an Optimizer."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()




def _contiguous_run(arrays, total):
    """The 1-D view covering `arrays` when they are C-contiguous views of one 1-D base, back to back in
    order; None otherwise."""
    first = arrays[0]
    if len(arrays) == 1 and first.flags.c_contiguous:
        return first.reshape(-1)
    base = first.base
    if base is None or type(base) is not type(first) or base.ndim != 1 or not base.flags.c_contiguous or \
            base.dtype != first.dtype:
        return None  # no flat array under it (an owner of another kind: from_numpy's storage, a mapped file)
    item = first.itemsize
    start, rem = divmod(data_ptr(first) - data_ptr(base), item)
    if rem or start < 0 or start + total > base.size:
        return None
    at = data_ptr(first)
    for a in arrays:
        if a.base is not base or not a.flags.c_contiguous or data_ptr(a) != at:
            return None
        at += a.nbytes
    return base[start:start + total]


# large flat updates run in slices on every allowed core (see dtrain._parallel): same bits, all cores
_parallel_slices, _run_parallel = _parallel.slices, _parallel.run
_BLOCK = 1 << 18  # elements per block of a large flat update (1 MB of float32 per buffer: measured best)
# parameters up to this size that sit next to each other in a chunk are stepped together, gathered into a
# scratch buffer and scattered back: a rule's ~20 array ops per call cost more than the copies for them
_SMALL = 1 << 16


def _share_memory(params):
    """Whether any two of `params` touch the same memory."""
    spans = []
    for p in params:
        a = p._data
        if a.size:
            lo = hi = data_ptr(a)
            for n, st in zip(a.shape, a.strides):
                lo, hi = (lo + (n - 1) * st, hi) if st < 0 else (lo, hi + (n - 1) * st)
            spans.append((lo, hi + a.itemsize))
    spans.sort()
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:]))


class _Chunk:
    """The parameters of one group with one dtype and device, and the flat state buffers bound to them.

    `flats[key]` is (flat array, views): the state tensors of `key` hold exactly these views while the binding
    lasts; an identity check per tensor tells when something rebound them (a loaded state dict). The
    parameters and their gradients are never bound: they stay the user's."""

    def __init__(self, params):
        self.params = params
        self.shapes = [p._data.shape for p in params]
        self.sizes = [p._data.size for p in params]
        self.offsets = []
        n = 0
        for s in self.sizes:
            self.offsets.append(n)
            n += s
        self.numel = n
        self.device = params[0]._device
        self.xp = self.device.xp
        self.dtype = params[0]._data.dtype
        self.flats = {}
        self.scratch = []
        self.packed = None  # two scratch buffers (parameters, gradients) for the small ones stepped together
        self._plans = {}  # see plan()
        self._flat_views = {}  # see flat_params()
        # one parameter twice, or two sharing memory (t and t.detach()): stepped one after the other, as torch's
        # loop does, so that each update sees the one before (the flat step reads them all first)
        self.duplicates = len({id(p) for p in params}) != len(params) or _share_memory(params)

    def bind(self, key, tensors):
        """The flat array behind the state tensors `tensors` (shaped like the params), binding them to its views
        first (a copy, once, where they are not views of one buffer yet)."""
        cached = self.flats.get(key)
        if cached is not None and all(t._data is v for t, v in zip(tensors, cached[1])):
            return cached[0]
        arrays = [t._data for t in tensors]
        ok = all(a.dtype == self.dtype and a.shape == s for a, s in zip(arrays, self.shapes))
        flat = _contiguous_run(arrays, self.numel) if ok else None
        if flat is None:
            flat = self.xp.empty(self.numel, self.dtype)
            for t, a, o, n, s in zip(tensors, arrays, self.offsets, self.sizes, self.shapes):
                v = flat[o:o + n]
                v[...] = a.reshape(-1)
                t._data = v.reshape(s)
        self.flats[key] = (flat, [t._data for t in tensors])
        return flat

    def plan(self, apart):
        """(whole, runs) for a step where the parameters at indices `apart` are stepped on their own: `runs`, the
        runs of neighbouring small parameters stepped together; `whole`, the indices stepped by either."""
        got = self._plans.get((apart, _SMALL))
        if got is None:
            runs, cur = [], []
            for i, n in enumerate(self.sizes):
                if i not in apart and n <= _SMALL:
                    cur.append(i)
                    continue
                if len(cur) > 1:
                    runs.append(cur)
                cur = []
            if len(cur) > 1:
                runs.append(cur)
            got = self._plans[(apart, _SMALL)] = (set(apart) | {i for r in runs for i in r}, runs)
        whole, runs = got
        return set(whole), runs

    def flat_params(self, indices):
        """1-D views of the parameters at `indices` (kept while each parameter keeps its array)."""
        out = []
        for i in indices:
            a = self.params[i]._data
            got = self._flat_views.get(i)
            if got is None or got[0] is not a:
                got = self._flat_views[i] = (a, a.reshape(-1))
            out.append(got[1])
        return out

    def adopt(self, key, flat):
        """Per-parameter tensors viewing a flat array of new state."""
        ts = [_wrap(flat[o:o + n].reshape(s), self.device) for o, n, s in zip(self.offsets, self.sizes, self.shapes)]
        self.flats[key] = (flat, [t._data for t in ts])
        return ts

    def scratch_arrays(self, k):
        while len(self.scratch) < k:
            self.scratch.append(self.xp.empty(self.numel, self.dtype))
        return self.scratch[:k]

    def scratch_views(self, k, i):
        o, n, s = self.offsets[i], self.sizes[i], self.shapes[i]
        return [a[o:o + n].reshape(s) for a in self.scratch_arrays(k)]


class Optimizer:
    """Base class for all optimizers (torch.optim.Optimizer).

    Subclasses set `_state_keys` (tensor state shaped like the parameter, in torch's order), `_has_step`
    (a float32 0-d `step` tensor per parameter), `_scratch` (temporaries their rule uses), and write
    `_init_state(group, p)` and `_update(group, param, grad, state, step, tmps)` over arrays. A rule with
    0-d state besides `step` (NAdam's `mu_product`, ASGD's `eta` and `mu`) names it in `_scalar_keys` and
    advances it in `_advance`, once per step: the flat path may call `_update` once per slice of a buffer.

    A rule that can make its passes whole BLAS calls (SGD: scal and axpy) says so in `_blas_rule`; where
    NumPy's BLAS runs several threads, the flat path then calls it once per parameter from this thread with
    `_whole_blas` set, and BLAS's own threads share each pass out (see dtrain._axpy.scal_)."""
    _has_step = False
    _scalar_keys = ()
    _group_flags = ()  # (key, default) pairs __setstate__ fills into groups that lack them
    _scratch = 1
    _blas_rule = False
    _whole_blas = False  # set only while the flat path runs a _blas_rule's calls on this thread

    def _advance(self, group, state, step):
        """Advance the 0-d state of one parameter (or of a whole chunk: it is equal across the chunk) by one
        step; what this returns reaches `_update` as its `step`."""
        return step

    def __init__(self, params, defaults):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {_typename(params)}")
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)
        if any(g.get("differentiable") for g in self.param_groups):
            # torch records such a step in the autograd graph (to differentiate through the update); dtrain's
            # steps write the parameters' arrays directly, so the flag would be silently ignored
            raise NotImplementedError("differentiable=True (an optimizer step recorded by autograd) is not "
                                      "supported by dtrain's optimizers")
        self._chunks = {}

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._chunks = {}
        for group in self.param_groups:  # groups saved before a flag existed get its default, as in torch
            for k, v in self._group_flags:
                group.setdefault(k, v)

    def __repr__(self):
        format_string = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            format_string += "\n"
            format_string += f"Parameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    format_string += f"    {key}: {group[key]}\n"
        format_string += ")"
        return format_string

    def add_param_group(self, param_group):
        """Add a param group to the optimizer's `param_groups`."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        else:
            param_group["params"] = list(params)
        tensors, names = [], []
        for param in param_group["params"]:
            if isinstance(param, tuple):
                names.append(param[0])
                tensors.append(param[1])
            else:
                tensors.append(param)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = names
        for param in tensors:
            if not isinstance(param, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is " + _typename(param))
            if not self.defaults.get("differentiable", None) and not (param.is_leaf or param.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)
        if len(tensors) != len({id(p) for p in tensors}):
            import warnings
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error; see github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        seen = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                txt = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {txt} to the optimizer")
        if any(id(p) in seen for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # ------------------------------------------------------------------ gradients
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized tensors: to None, or to zero in place (their storage kept)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:
                        p.grad.detach_()
                    else:
                        p.grad.requires_grad_(False)
                    if p.grad._device._gpu is None:
                        p.grad._data.fill(0)
                    else:
                        with on_device(p.grad._device):  # CuPy fills on the current device only
                            p.grad._data.fill(0)
                    p.grad._vc.value += 1

    # ------------------------------------------------------------------ the step
    def step(self, closure=None):
        """Perform a single optimization step; `closure` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            from ..autograd.grad_mode import enable_grad
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for chunk in self._group_chunks(group):
                # the update is array code on the chunk's device: made current, whichever device the caller has;
                # a tensor given twice (torch warns) is stepped twice, one entry after the other: per parameter
                with on_device(chunk.device):
                    if chunk.duplicates or not self._step_flat(group, chunk):
                        self._step_each(group, chunk.params, chunk)
        return loss

    def _group_chunks(self, group):
        """The group's parameters that have gradients, in chunks of one dtype and device (frozen parameters
        stay out, so they don't keep the rest off the flat path)."""
        params = [p for p in group["params"] if p.grad is not None]
        key = tuple(map(id, params))
        chunks = self._chunks.get(key)
        if chunks is None or any(p._data.shape != s or p._data.dtype != c.dtype or p._device is not c.device
                                 for c in chunks for p, s in zip(c.params, c.shapes)):
            by = {}
            for p in params:
                by.setdefault((p._device, p._data.dtype), []).append(p)
            chunks = self._chunks[key] = [_Chunk(ps) for ps in by.values()]
        return chunks

    def _step_each(self, group, params, chunk):
        """The per-parameter path: the update rule once per parameter that has a gradient.

        As in torch, every state is made, and every entry's state arrays are read, before the first update: a
        tensor given twice is stepped twice, sharing its state (Adam's step counts twice), and SGD's first
        step makes a fresh momentum buffer for each entry (the last one stays)."""
        live = [(i, p, self._state_of(group, p)) for i, p in enumerate(params) if p.grad is not None]
        start = [{k: (state[k]._data if k in state else None) for k in self._state_keys} for _, _, state in live]
        for (i, p, state), arrays in zip(live, start):
            step = None
            if self._has_step:
                state["step"]._data += 1
                step = float(state["step"]._data)
            step = self._advance(group, state, step)
            tmps = chunk.scratch_views(self._scratch, i) if chunk is not None else [None] * self._scratch
            new = self._update(group, p._data, p.grad._data, arrays, step, tmps)
            for k, a in (new or {}).items():
                self.state[p][k] = _wrap(a, p._device)
            p._vc.value += 1

    def _state_of(self, group, p):
        """The state of `p`, initialised on first use; like torch, a rule without initial state (SGD) leaves
        no entry behind until it stores something."""
        state = self.state.get(p)
        if not state:
            state = self._init_state(group, p)
            if state:
                self.state[p].update(state)
        return state

    def _step_flat(self, group, chunk):
        """The chunk's update with its state in flat buffers: the rule once per parameter (or per block of a
        large one, blocks shared out among the cores), each call over the parameter, its gradient and its
        stretch of the flat state. False where the state is not alike across the chunk (then each parameter
        is stepped on its own)."""
        ps = chunk.params
        states = []
        for p in ps:
            if p.grad is None or p.grad._data.shape != p._data.shape or p.grad._data.dtype != chunk.dtype:
                return False
            states.append(self.state.get(p))
        keys0 = None if not states[0] else tuple(states[0])
        for p, s in zip(ps, states):
            if (tuple(s) if s else None) != keys0:
                return False
            for k in self._state_keys:
                if s and k in s and (s[k]._data.shape != p._data.shape or s[k]._data.dtype != chunk.dtype
                                     or s[k]._device is not chunk.device):
                    return False
        if self._has_step and keys0 is not None:
            step = float(states[0]["step"]._data)
            if any(float(s["step"]._data) != step for s in states):
                return False
        if self._scalar_keys and keys0 is not None:
            for k in self._scalar_keys:
                v = float(states[0][k]._data)
                if any(float(s[k]._data) != v for s in states):
                    return False
        if keys0 is None:
            states = [self._state_of(group, p) for p in ps]
        flats = {k: (chunk.bind(k, [s[k] for s in states]) if k in states[0] else None) for k in self._state_keys}
        step = None
        if self._has_step:
            for s in states:
                s["step"]._data += 1
            step = float(states[0]["step"]._data)
        step = self._advance(group, states[0], step)
        for s in states[1:]:
            for k in self._scalar_keys:
                s[k]._data[...] = states[0][k]._data
        tmps = chunk.scratch_arrays(self._scratch)
        new = {}  # state a rule made on this step (SGD's momentum buffer): (key, param index, start) -> array
        # (param index, None, None): a parameter or gradient that is not C-contiguous, stepped whole on its own
        calls = [(i, None, None) for i, p in enumerate(ps)
                 if not (p._data.flags.c_contiguous and p.grad._data.flags.c_contiguous)]
        whole, runs = chunk.plan(tuple(c[0] for c in calls))

        def run(i, lo, hi):
            o = chunk.offsets[i]
            if lo is None:
                s = chunk.shapes[i]
                arrays = {k: (f[o:o + chunk.sizes[i]].reshape(s) if f is not None else None) for k, f in flats.items()}
                made = self._update(group, ps[i]._data, ps[i].grad._data, arrays, step, chunk.scratch_views(
                    self._scratch, i))
                lo = 0
            else:
                arrays = {k: (f[o + lo:o + hi] if f is not None else None) for k, f in flats.items()}
                made = self._update(group, ps[i]._data.reshape(-1)[lo:hi], ps[i].grad._data.reshape(-1)[lo:hi],
                                    arrays, step, [t[o + lo:o + hi] for t in tmps])
            for k, a in (made or {}).items():
                new[(k, i, lo)] = a

        def run_packed(r):
            # the same bits as one call per parameter: every rule is elementwise
            if chunk.packed is None:
                chunk.packed = (chunk.xp.empty(chunk.numel, chunk.dtype), chunk.xp.empty(chunk.numel, chunk.dtype))
            pp, pg = chunk.packed
            lo, hi = chunk.offsets[r[0]], chunk.offsets[r[-1]] + chunk.sizes[r[-1]]
            if kernels[chunk.xp].host:
                # one gather per buffer (concatenate flattens its inputs with axis=None), not a copy each
                np.concatenate([ps[i]._data for i in r], axis=None, out=pp[lo:hi])
                np.concatenate([ps[i].grad._data for i in r], axis=None, out=pg[lo:hi])
            else:
                for i in r:
                    o, n = chunk.offsets[i], chunk.sizes[i]
                    pp[o:o + n] = ps[i]._data.reshape(-1)
                    pg[o:o + n] = ps[i].grad._data.reshape(-1)
            made = self._update(group, pp[lo:hi], pg[lo:hi],
                                {k: (f[lo:hi] if f is not None else None) for k, f in flats.items()}, step,
                                [t[lo:hi] for t in tmps])
            for i, flat in zip(r, chunk.flat_params(r)):
                o = chunk.offsets[i]
                flat[...] = pp[o:o + chunk.sizes[i]]  # a view: the parameter is written in place
            for k, a in (made or {}).items():
                new[(k, r[0], 0)] = a

        for r in runs:
            run_packed(r)
        if len(whole) == len(ps):
            pass  # every parameter stepped above (no pass over the cores to find nothing left)
        elif self._blas_rule and kernels[chunk.xp].host and _axpy.blas_threads() > 1 and _parallel.threads() > 1:
            # the rule's passes as whole BLAS calls, BLAS's threads sharing them out (the threads of dtrain's
            # own would contest the cores with BLAS's, which spin after each product)
            self._whole_blas = True
            try:
                for i, n in enumerate(chunk.sizes):
                    if i not in whole:
                        run(i, 0, n)
            finally:
                self._whole_blas = False
        elif kernels[chunk.xp].host:  # blocks over the cores; a GPU runs each call as one kernel
            def part(lo, hi):
                # the element range [lo, hi) of the chunk, cut at parameter boundaries and into blocks, so the
                # temporaries of a rule's several passes stay in cache
                for i, (o, n) in enumerate(zip(chunk.offsets, chunk.sizes)):
                    a, b = max(lo, o), min(hi, o + n)
                    if a >= b or i in whole:
                        continue
                    for c in range(a, b, _BLOCK):
                        run(i, c - o, min(c + _BLOCK, b) - o)
            _run_parallel(part, _parallel_slices(chunk.numel))
        else:
            calls += [(i, 0, n) for i, n in enumerate(chunk.sizes) if i not in whole]
        for c in calls:
            run(*c)
        for k in {k for k, _, _ in new}:
            flat = chunk.xp.empty(chunk.numel, chunk.dtype)
            for (key, i, lo), a in new.items():
                if key == k:
                    o = chunk.offsets[i] + lo
                    flat[o:o + a.size] = a.reshape(-1)
            for p, t in zip(ps, chunk.adopt(k, flat)):
                self.state[p][k] = t
        for p in ps:
            p._vc.value += 1
        return True

    # ------------------------------------------------------------------ state dicts
    def state_dict(self):
        """The optimizer state as a dict: {'state': {index: {...}}, 'param_groups': [{..., 'params': [index]}]}.

        Tensors in it are the live state, as in torch."""
        param_mappings = {}
        start_index = 0

        def pack_group(group):
            nonlocal start_index
            packed = {k: v for k, v in group.items() if k != "params"}
            param_mappings.update({id(p): i for i, p in enumerate(group["params"], start_index)
                                   if id(p) not in param_mappings})
            packed["params"] = [param_mappings[id(p)] for p in group["params"]]
            start_index += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {(param_mappings[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": packed_state, "param_groups": param_groups}

    def load_state_dict(self, state_dict):
        """Load an optimizer state produced by `state_dict()` (of dtrain's or, tensors converted, torch's)."""
        state_dict = state_dict.copy()
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))

        def cast(param, value, param_id=None, key=None):
            if isinstance(value, Tensor):
                if key == "step":
                    pg = next((g for g in state_dict["param_groups"] if param_id in g["params"]), {})
                    if pg.get("capturable", False) or pg.get("fused", False):
                        return value.to(dtype=_dtype.float32, device=param.device)
                    return value
                if param.is_floating_point():
                    return value.to(dtype=param.dtype, device=param.device)
                return value.to(device=param.device)
            if isinstance(value, dict):
                return {k: cast(param, v, param_id, key=k) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(cast(param, v, param_id) for v in value)
            return value

        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                state[id_map[k]] = cast(id_map[k], v, param_id=k)
            else:
                state[k] = v

        if any(c.__name__ in _STEP_IN_STATE and c.__module__.startswith("dtrain.optim") for c in type(self).__mro__):
            # as torch's __setstate__ of these optimizers reads every parameter's state["step"] while loading, a
            # state without it (another optimizer's: SGD's momentum buffers) is refused here, not at step()
            for v in state.values():
                if v and "step" not in v:
                    raise KeyError("step")

        def update_group(group, new_group):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        self.__setstate__({"state": state,
                           "param_groups": [update_group(g, ng) for g, ng in zip(groups, saved_groups)]})


# the optimizers that keep a `step` count in each parameter's state (torch's read it in __setstate__)
_STEP_IN_STATE = frozenset({"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "ASGD",
                            "Rprop", "Adafactor"})


def _typename(obj):
    if isinstance(obj, Tensor):
        return obj.type()
    module = getattr(type(obj), "__module__", "") or ""
    name = type(obj).__qualname__
    return name if module in ("builtins", "__builtin__", "") else f"{module}.{name}"


def _step_tensor(value=0.0, device=None):
    """torch's `step` state (and other 0-d state): a 0-d tensor of the default float dtype (float32), on the
    CPU unless `device` is given, counted in that dtype."""
    device = CPU if device is None else device
    return _wrap(device.xp.full((), value, _dtype.get_default_dtype().np), device)
