"""torch.multiprocessing: Python's multiprocessing, plus `spawn`/`start_processes` that start MPI ranks.

Everything of :mod:`multiprocessing` is here under its own name, as in torch. `spawn(fn, args, nprocs)` runs
``fn(i, *args)`` in `nprocs` fresh processes that are the ranks of one MPI job, started and watched by the same
machinery as ``dtrain-run``: each may call ``dist.init_process_group(backend, rank=i, world_size=nprocs)``,
and the first one to fail stops the others and raises in the caller with its traceback, as torch's spawn does.

Tensors sent through a Queue are pickled (copied); torch moves them to shared memory instead. The sharing
strategy is kept for torch code that sets or reads it and changes nothing.
"""
import multiprocessing
import sys
from multiprocessing import *  # noqa: F401,F403

from .spawn import (ProcessContext, ProcessExitedException, ProcessRaisedException,  # noqa: F401
                    SpawnContext, spawn, start_processes)

__all__ = ["set_sharing_strategy", "get_sharing_strategy", "get_all_sharing_strategies"]
__all__ += multiprocessing.__all__

if sys.platform in ("darwin", "win32"):
    _sharing_strategy = "file_system"
    _all_sharing_strategies = {"file_system"}
else:
    _sharing_strategy = "file_descriptor"
    _all_sharing_strategies = {"file_descriptor", "file_system"}


def set_sharing_strategy(new_strategy):
    """Set the strategy for sharing CPU tensors ('file_descriptor' or 'file_system')."""
    global _sharing_strategy
    assert new_strategy in _all_sharing_strategies
    _sharing_strategy = new_strategy


def get_sharing_strategy():
    """The current strategy for sharing CPU tensors."""
    return _sharing_strategy


def get_all_sharing_strategies():
    """The strategies this system supports."""
    return _all_sharing_strategies
