"""The DataLoader worker process: seeding, get_worker_info(), the fetch loop, and errors sent back as text."""
import os
import queue
import random
import sys
import traceback
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler

import numpy as np

from . import WORKER_WATCHDOG_INTERVAL
from .fetch import _DatasetKind

_worker_info = None


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker knows about itself: id, num_workers, seed, and its own copy of the dataset."""
    id: int
    num_workers: int
    seed: int
    dataset: object


def get_worker_info():
    """The WorkerInfo of the current DataLoader worker process, or None in the main process."""
    return _worker_info


@dataclass(frozen=True)
class _IterableDatasetStopIteration:
    worker_id: int


@dataclass(frozen=True)
class _ResumeIteration:
    """Sent to persistent workers at the start of a new epoch; echoed back once everything before it is done."""


class KeyErrorMessage(str):
    """A str whose repr is itself, so a KeyError built from a traceback prints readably."""

    def __repr__(self):
        return self


class ExceptionWrapper:
    """An exception's type and formatted traceback, picklable, so a worker's error can be re-raised in the parent."""

    def __init__(self, exc_info=None, where="in background"):
        # keep text only: the traceback objects (and the frames they pin) never leave the worker
        exc_info = exc_info or sys.exc_info()
        self.exc_type = exc_info[0]
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        self.where = where

    def reraise(self):
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:
            msg = KeyErrorMessage(msg)  # KeyError repr()s its argument, which would escape the newlines
        elif getattr(self.exc_type, "message", None):
            raise self.exc_type(message=msg)
        try:
            exception = self.exc_type(msg)
        except Exception:
            # an exception type that can't be built from one message string
            raise RuntimeError(msg) from None
        raise exception


class _ManagerWatchdog:
    """Notices that the parent died (the worker is re-parented), so an orphaned worker exits instead of idling."""

    def __init__(self):
        self.manager_pid = os.getppid()
        self.manager_dead = False

    def is_alive(self):
        if not self.manager_dead:
            self.manager_dead = os.getppid() != self.manager_pid
        return not self.manager_dead


def _generate_state(base_seed, worker_id):
    """NumPy's global seed for a worker: torch's SeedSequence-style hash of (base_seed, worker_id)."""
    INIT_A, MULT_A, INIT_B, MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
    MIX_MULT_L, MIX_MULT_R, XSHIFT, MASK32 = 0xCA01F9DD, 0x4973F715, 16, 0xFFFFFFFF
    entropy = [worker_id, base_seed & MASK32, base_seed >> 32, 0]
    pool = [0] * 4
    hash_const_A = INIT_A

    def hash(value):
        nonlocal hash_const_A
        value = (value ^ hash_const_A) & MASK32
        hash_const_A = (hash_const_A * MULT_A) & MASK32
        value = (value * hash_const_A) & MASK32
        return (value ^ (value >> XSHIFT)) & MASK32

    def mix(x, y):
        result = (((MIX_MULT_L * x) & MASK32) - ((MIX_MULT_R * y) & MASK32)) & MASK32
        return (result ^ (result >> XSHIFT)) & MASK32

    for i in range(4):
        pool[i] = hash(entropy[i])
    for i_src in range(4):
        for i_dst in range(4):
            if i_src != i_dst:
                pool[i_dst] = mix(pool[i_dst], hash(pool[i_src]))
    hash_const_B = INIT_B
    state = []
    for i_dst in range(4):
        data_val = (pool[i_dst] ^ hash_const_B) & MASK32
        hash_const_B = (hash_const_B * MULT_B) & MASK32
        data_val = (data_val * hash_const_B) & MASK32
        state.append((data_val ^ (data_val >> XSHIFT)) & MASK32)
    return state


def _rebuild_cpu_tensor(array):
    from dtrain._device import CPU
    from dtrain._tensor import _wrap
    return _wrap(array, CPU)


def _reduce_tensor(t):
    # Batches cross the process boundary as bare NumPy arrays, wrapped again in the parent; tensors that need
    # more (a device, requires_grad, attributes) keep their own pickling.
    if t._device.type == "cpu" and not t._requires_grad and not t.__dict__:
        return _rebuild_cpu_tensor, (t._data,)
    return t.__reduce_ex__(2)


def _worker_loop(dataset_kind, dataset, index_queue, data_queue, done_event, auto_collation, collate_fn,
                 drop_last, base_seed, init_fn, worker_id, num_workers):
    global _worker_info
    try:
        import dtrain
        ForkingPickler.register(dtrain.Tensor, _reduce_tensor)  # in this process only: it is the worker's
        seed = base_seed + worker_id
        random.seed(seed)
        dtrain.manual_seed(seed)
        np.random.seed(_generate_state(base_seed, worker_id))
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)

        # an error here is reported with the first batch, so the parent sees it in order
        init_exception = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation, collate_fn, drop_last)
        except Exception:
            init_exception = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")

        iteration_end = False
        watchdog = _ManagerWatchdog()
        while watchdog.is_alive():
            try:
                r = index_queue.get(timeout=WORKER_WATCHDOG_INTERVAL)
            except queue.Empty:
                continue
            if isinstance(r, _ResumeIteration):
                data_queue.put((r, None))
                iteration_end = False
                try:
                    fetcher = _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation, collate_fn,
                                                          drop_last)
                except Exception:
                    init_exception = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")
                continue
            if r is None:  # shutdown
                break
            if done_event.is_set() or iteration_end:
                continue  # drain what was sent before the shutdown or the end of an iterable dataset
            idx, index = r
            if init_exception is not None:
                data, init_exception = init_exception, None
            else:
                try:
                    data = fetcher.fetch(index)
                except Exception as e:
                    if isinstance(e, StopIteration) and dataset_kind == _DatasetKind.Iterable:
                        data = _IterableDatasetStopIteration(worker_id)
                        iteration_end = True
                    else:
                        data = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")
            data_queue.put((idx, data))
            del data, idx, index, r  # don't hold the last batch while waiting for the next index
    except KeyboardInterrupt:
        pass  # the parent gets the same Ctrl-C and shuts us down
    if done_event.is_set():
        # nobody reads any more: don't block at exit flushing results into a full pipe
        data_queue.cancel_join_thread()
        data_queue.close()
