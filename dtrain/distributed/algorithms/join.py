"""The join context manager (torch.distributed.algorithms.join): training with uneven inputs across ranks.

A rank that runs out of inputs leaves its loop and enters `Join.__exit__`, where it keeps *shadowing* the
collectives the ranks still training issue in each iteration (each joinable's `JoinHook.main_hook`), so
that nobody waits on it. Every iteration starts with one all-reduce that counts the ranks still training:
they contribute 1 (`notify_join_context`, called by the first joinable before its own collectives), joined
ranks 0. When the count is 0 everybody has joined and every rank runs the post-hooks (DDP: the model of a
rank that trained to the end is broadcast to all)."""
import warnings
from typing import NamedTuple

__all__ = ["JoinHook", "Joinable", "Join"]


class JoinHook:
    """What a joined rank runs: `main_hook()` once per iteration of the ranks still training, `post_hook(
    is_last_joiner)` once all have joined. Before each main_hook, `_active` is set to the number of ranks
    still training in that iteration."""
    _active = None

    def main_hook(self) -> None:
        pass

    def post_hook(self, is_last_joiner: bool) -> None:
        pass


class _JoinConfig(NamedTuple):
    enable: bool
    throw_on_early_termination: bool
    is_first_joinable: bool

    @staticmethod
    def construct_disabled_join_config():
        return _JoinConfig(enable=False, throw_on_early_termination=False, is_first_joinable=False)


class Joinable:
    """A class that can take part in a join context: it provides `join_hook(**kwargs)`, `join_device` and
    `join_process_group`, and calls `Join.notify_join_context(self)` before its per-iteration collectives."""

    def __init__(self):
        super().__init__()
        self._join_config = _JoinConfig.construct_disabled_join_config()

    def join_hook(self, **kwargs) -> JoinHook:
        raise NotImplementedError

    @property
    def join_device(self):
        raise NotImplementedError

    @property
    def join_process_group(self):
        raise NotImplementedError


class Join:
    """Context manager around a training loop whose ranks may have different numbers of inputs:
    `with Join([model, ...]): for batch in my_batches: ...`. With throw_on_early_termination every rank
    raises as soon as one has run out, instead of shadowing."""

    _WARN_AFTER = 1000  # shadowed iterations after which the skew is worth a warning, as in torch

    def __init__(self, joinables, enable: bool = True, throw_on_early_termination: bool = False, **kwargs):
        if len(joinables) == 0:
            raise ValueError("The join context manager requires at least one joinable")
        self._joinables = list(joinables)
        self._join_hooks = [j.join_hook(**kwargs) for j in self._joinables]
        self._enable = enable
        self._throw_on_early_termination = throw_on_early_termination
        for i, j in enumerate(self._joinables):
            j._join_config = _JoinConfig(enable, throw_on_early_termination, i == 0)
        group = device = None
        for j in self._joinables:
            if group is None:
                group = j.join_process_group
            elif group is not j.join_process_group:
                raise ValueError("Using join context manager with multiple process groups")
            device = device if device is not None else j.join_device
        from ... import distributed as dist
        self._process_group, self._device = group, device
        self._rank = dist.get_rank(group)

    def __enter__(self):
        pass

    def __exit__(self, type, value, traceback):
        try:
            if not self._enable or type is not None:
                return  # an exception in the loop propagates as it is
            is_last_joiner, shadowed = True, 0
            while True:
                active = self._count(0)
                if not active:
                    break
                if self._throw_on_early_termination:
                    self._count(1)  # the ranks still training read this as "one has run out"
                    raise RuntimeError(f"Rank {self._rank} exhausted all inputs.")
                if shadowed == self._WARN_AFTER:
                    warnings.warn(f"Detected uneven input skew of greater than {self._WARN_AFTER}. This means that "
                                  f"rank {self._rank} has at least {self._WARN_AFTER} fewer inputs than other "
                                  "currently-active ranks. This level of skew could lead to performance "
                                  "degradation during training.", stacklevel=2)
                for hook in self._join_hooks:
                    hook._active = int(active)  # for hooks that rescale by the ranks still training
                    hook.main_hook()
                is_last_joiner = False
                shadowed += 1
            for hook in self._join_hooks:
                hook.post_hook(is_last_joiner)
        finally:
            for j in self._joinables:
                j._join_config = _JoinConfig.construct_disabled_join_config()

    def _count(self, mine):
        return _all_reduce_scalar(mine, self._device, self._process_group)

    @staticmethod
    def notify_join_context(joinable):
        """Called by a joinable before its per-iteration collectives: says this rank has not joined, and
        returns how many ranks have not (None where this joinable is not the first, or join is off). With
        throw_on_early_termination, raises once some rank has run out of inputs."""
        if not hasattr(joinable, "_join_config"):
            raise AssertionError(f"Check that the {type(joinable)} constructor calls the ``Joinable`` constructor")
        config = joinable._join_config
        if not config.is_first_joinable or not config.enable:
            return None
        device, group = joinable.join_device, joinable.join_process_group
        active = _all_reduce_scalar(1, device, group)
        if config.throw_on_early_termination and _all_reduce_scalar(0, device, group):
            raise RuntimeError("Detected at least one rank that exhausted inputs. Throwing across all ranks.")
        return active


def _all_reduce_scalar(value, device, group, op=None):
    """The group's reduction (a sum by default) of one number per rank."""
    from ... import distributed as dist, tensor
    t = tensor([value], dtype=None if isinstance(value, float) else _int64(), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op is None else op, group=group)
    return t.item()


def _int64():
    from ... import int64
    return int64
