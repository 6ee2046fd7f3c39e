"""Process groups and collectives with torch.distributed's API, over MPI (mpi4py) and NCCL (CuPy).

Validation, timeouts and debug checks live here, once for every backend; a backend only starts
operations on raw contiguous arrays (see _backend.py).

Timeouts: every blocking call polls its operation against the group's timeout (`timeout=` of
init_process_group / new_group, else env DTRAIN_DIST_TIMEOUT in seconds, else 10 minutes) and raises
DistBackendError (a RuntimeError) naming the operation, the tensor's shape, this rank and the ranks that
never reached the collective. The group is unusable afterwards.

Mismatched collectives: every collective of a group of two or more ranks all-gathers a 24-byte fingerprint
(operation, reduce op, root, dtype, element count) on a side communicator, started right before the data
and compared when both are in, or as soon as the fingerprints are in while the data still waits (a count
that differs would otherwise hang until the timeout). A rank whose part of a rooted collective is done before its
peers arrive (the root of a broadcast, the non-roots of a reduce) waits up to a second for their fingerprints,
then leaves the comparison to the group's next collective. When ranks disagree every rank raises
DistBackendError naming the ranks that differ and what differs; the group is unusable afterwards.

Debug mode: with env DTRAIN_DISTRIBUTED_DEBUG=DETAIL every collective first all-gathers a longer
fingerprint (operation, shapes, dtypes, root, sequence number) and waits for it, so a mismatch raises
before the collective runs and the group stays usable.
"""
import datetime
import functools
import time

import numpy as np

from .. import _backend
from .._tensor import Tensor
from . import _env, _work
from ._backend import (ANY_COUNT, Backend as _BackendBase, LocalBackend, ReduceOp, RedOpType, describe_fingerprint,
                       differences, fingerprint as _fingerprint)
from ._work import DistBackendError, DistError, Work, wait as _wait

__all__ = ["Backend", "ReduceOp", "ProcessGroup", "GroupMember", "group", "Work", "DistError", "DistBackendError",
           "is_available", "init_process_group", "is_initialized", "destroy_process_group", "get_rank",
           "get_world_size", "get_backend", "new_group", "get_group_rank", "get_global_rank",
           "get_process_group_ranks", "barrier", "all_reduce", "broadcast", "reduce", "all_gather",
           "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "gather", "scatter", "all_to_all",
           "all_to_all_single", "send", "recv", "isend", "irecv", "P2POp", "batch_isend_irecv"]


class Backend(str):
    """torch.distributed.Backend: the lower-case backend name; 'gloo' runs on the MPI backend."""
    UNDEFINED, GLOO, NCCL, MPI = "undefined", "gloo", "nccl", "mpi"

    def __new__(cls, name):
        if not isinstance(name, str):
            raise ValueError(f"Backend constructor parameter must be string-ish, but got: {type(name)}")
        value = name.lower()
        if value not in ("gloo", "nccl", "mpi", "undefined") and not ("nccl" in value or "gloo" in value):
            raise ValueError(f"Invalid backend: '{name}'")
        return str.__new__(cls, value)


class ProcessGroup:
    """A set of ranks with its own communicator(s) and timeout."""

    def __init__(self, mpi_backend, ranks, timeout, backend_name, name):
        self._mpi = mpi_backend
        self._nccl = None  # made on first CUDA collective (NCCL binds to the device current at creation)
        self._ranks = ranks  # global ranks, by group rank
        self._timeout = timeout
        self._backend_name = backend_name
        self._has_nccl = "nccl" in backend_name
        self._name = name
        self._broken = None
        self._debug = _env.debug_detail() and self.size() > 1  # read per group, so tests can switch it
        # fingerprint exchanges of rooted collectives that finished before the peers' fingerprints came in:
        # compared at the group's next collective
        self._unchecked = []
        self._abandoned = []  # requests given up on after an error, kept so MPI never writes into freed memory
        self._plain = _is_plain(self)
        if not isinstance(mpi_backend, LocalBackend):
            mpi_backend.errors = (_all_reduce_deadline, _all_reduce_timed_out, _all_reduce_mismatch)

    def _checks(self):
        """Whether collectives exchange fingerprints (DETAIL mode checks its own, before the collective)."""
        return not self._debug and not isinstance(self._mpi, LocalBackend)

    def rank(self):
        return self._mpi.rank

    def size(self):
        return self._mpi.size

    def group_name(self):
        return self._name

    def name(self):
        return self._backend_name

    def __repr__(self):
        return f"ProcessGroup(backend={self._backend_name!r}, ranks={self._ranks}, rank={self.rank()})"

    def _backend_for(self, tensor):
        if self._has_nccl:
            dev = tensor._device.type
            if dev == "cuda":
                if self._nccl is None:
                    from ._nccl import NCCLBackend
                    self._nccl = NCCLBackend(self._mpi, tensor._device.index)
                return self._nccl
            if "gloo" not in self._backend_name and "mpi" not in self._backend_name and not _world.host_ok:
                raise RuntimeError(f"No backend type associated with device type {dev}: the group's backend is "
                                   f"'{self._backend_name}', which takes CUDA tensors only")
        return self._mpi


def _is_plain(pg):
    """all_reduce's fast path: host arrays through MPI, no DETAIL exchange, no unchecked fingerprints, no failure."""
    return (not pg._has_nccl and not pg._debug and not isinstance(pg._mpi, LocalBackend) and pg._broken is None
            and not pg._unchecked)


class GroupMember:
    WORLD = None
    NON_GROUP_MEMBER = -100


class group:
    WORLD = None


class _World:
    default = None
    host_ok = False  # object collectives send host bytes over MPI whatever the group's backend
    groups = []
    counter = 0


_world = _World()


def _default():
    pg = _world.default
    if pg is None:
        raise ValueError("Default process group has not been initialized, "
                         "please make sure to call init_process_group.")
    return pg


def _pg(group):
    """The ProcessGroup for `group` (None: the default); None when this rank is not a member."""
    if group is None or group is GroupMember.WORLD:
        return _default()
    if isinstance(group, int) and group == GroupMember.NON_GROUP_MEMBER:
        _default()
        return None
    if not isinstance(group, ProcessGroup):
        raise ValueError("Invalid process group specified")
    if group._mpi is None:
        raise ValueError("Invalid process group specified or has been destroyed.")
    return group


def _timeout_s(timeout):
    if timeout is None:
        return _env.default_timeout()
    return timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)


# ---------------------------------------------------------------- process groups
def is_available() -> bool:
    """Always True: without MPI, a script is a world of one."""
    return True


def is_mpi_available() -> bool:
    return _env.mpi() is not None


def is_gloo_available() -> bool:
    return True


def is_nccl_available() -> bool:
    try:
        from .._backend import nccl
        return bool(nccl().available)
    except Exception:
        return False


def is_initialized() -> bool:
    return _world.default is not None


def is_torchelastic_launched() -> bool:
    return False


def _resolve_backend(backend):
    if backend is None:
        from .. import cuda
        return "nccl" if cuda.is_available() and is_nccl_available() else "mpi"
    return str(Backend(backend))


def init_process_group(backend: str | None = None, init_method: str | None = None, timeout=None,
                       world_size: int = -1, rank: int = -1, store=None, group_name: str = "", pg_options=None,
                       device_id=None) -> None:
    """Join this process to the world MPI started it in.

    Rank and world size come from MPI (dtrain-run, mpiexec, srun --mpi=pmi2); a script started with plain
    `python` is rank 0 of a world of 1. `init_method` and `store` are accepted and unused. The default
    backend is 'nccl' where CUDA is usable, else 'mpi'; 'gloo' is the MPI backend under torch's name.
    """
    if _world.default is not None:
        raise ValueError("trying to initialize the default process group twice!")
    name = _resolve_backend(backend)
    r, n, comm = _env.world(rank, world_size)
    if comm is not None:
        from ._mpi import MPIBackend
        mpi_backend = MPIBackend(comm.Dup())  # our own context: user mpi4py traffic never matches ours
        _work.oversubscribed = _env.oversubscribed(comm)
    else:
        mpi_backend = LocalBackend()
    from .. import cuda
    if "nccl" in name or (cuda.is_available() and comm is not None):
        # one GPU per rank: LOCAL_RANK % device_count, unless device_id names one
        idx = device_id.index if device_id is not None and getattr(device_id, "index", None) is not None else \
            _env.local_rank(comm) % max(cuda.device_count(), 1)
        cuda.set_device(idx)
    pg = ProcessGroup(mpi_backend, list(range(n)), _timeout_s(timeout), name, group_name or "0")
    _world.default = pg
    _world.groups = [pg]
    group.WORLD = GroupMember.WORLD = pg


def destroy_process_group(group=None) -> None:
    """Free a group's communicators (None: every group, and the default group is gone)."""
    if group is None or group is GroupMember.WORLD:
        for pg in _world.groups:
            _close(pg)
        _world.default, _world.groups = None, []
        globals()["group"].WORLD = GroupMember.WORLD = None
        return
    if isinstance(group, ProcessGroup):
        _close(group)
        _world.groups = [g for g in _world.groups if g is not group]


def _close(pg):
    if pg._mpi is None:
        return
    if pg._nccl is not None:
        pg._nccl.close()
    if pg._broken is None:  # a communicator with an operation still pending after a timeout is left alone
        pg._mpi.close()
    pg._mpi = pg._nccl = None


def get_rank(group=None) -> int:
    if group is not None and not isinstance(group, ProcessGroup) and group == GroupMember.NON_GROUP_MEMBER:
        return -1
    return _pg(group).rank()


def get_world_size(group=None) -> int:
    if group is not None and not isinstance(group, ProcessGroup) and group == GroupMember.NON_GROUP_MEMBER:
        return -1
    return _pg(group).size()


def get_backend(group=None) -> str:
    pg = _pg(group)
    if pg is None:
        raise ValueError("Invalid process group specified")
    return Backend(pg._backend_name)


def get_process_group_ranks(group) -> list:
    pg = _pg(group)
    return list(pg._ranks)


def get_group_rank(group, global_rank: int) -> int:
    pg = _pg(group)
    if global_rank not in pg._ranks:
        raise ValueError(f"Global rank {global_rank} is not part of group {pg}")
    return pg._ranks.index(global_rank)


def get_global_rank(group, group_rank: int) -> int:
    pg = _pg(group)
    if not 0 <= group_rank < len(pg._ranks):
        raise ValueError(f"Group rank {group_rank} is not part of group {pg}")
    return pg._ranks[group_rank]


def new_group(ranks=None, timeout=None, backend=None, pg_options=None, use_local_synchronization=False,
              group_desc=None):
    """A group of `ranks` (global ranks; None: all). Every rank must call it; others get NON_GROUP_MEMBER."""
    world = _default()
    n = world.size()
    ranks = sorted(set(range(n) if ranks is None else ranks))
    bad = [r for r in ranks if not 0 <= r < n]
    if bad:
        raise ValueError(f"The new group's rank should be within the world_size set by init_process_group "
                         f"(world of {n}), got ranks {bad}")
    _world.counter += 1
    me = world.rank()
    name = _resolve_backend(backend) if backend is not None else world._backend_name
    timeout_s = _timeout_s(timeout) if timeout is not None else world._timeout
    if isinstance(world._mpi, LocalBackend):
        mpi_backend = LocalBackend()
    else:
        from ._mpi import MPIBackend
        MPI = _env.mpi()
        sub = world._mpi.comm.Split(0 if me in ranks else MPI.UNDEFINED, me)
        if sub == MPI.COMM_NULL:
            return GroupMember.NON_GROUP_MEMBER
        mpi_backend = MPIBackend(sub)
    pg = ProcessGroup(mpi_backend, ranks, timeout_s, name, str(_world.counter))
    _world.groups.append(pg)
    return pg


# ---------------------------------------------------------------- the one path every collective takes
class _Then:
    """A request followed by a copy-out (list outputs, non-contiguous tensors), on the tensors' device."""
    __slots__ = ("req", "fn", "done", "device")

    def __init__(self, req, fn, device):
        self.req, self.fn, self.done, self.device = req, fn, False, device

    def test(self):
        if self.done:
            return True
        if not self.req.test():
            return False
        self.done = True
        if self.device is None or self.device._gpu is None:
            self.fn()
        else:
            with _backend.on_device(self.device):  # Work.wait() may come from a thread on another device
                self.fn()
        return True

    @property
    def source(self):
        return getattr(self.req, "source", None)


def _describe(name, tensor):
    if tensor is None:
        return name
    return f"{name} on a tensor of shape [{', '.join(map(str, tensor.shape))}] and dtype {tensor.dtype}"


def _timeout_error(pg, name, tensor, peer=None):
    seq = pg._mpi.seq  # which collective this is, counted on this rank

    def make():
        what = _describe(name, tensor)
        me = get_rank()
        if peer is not None:
            late = f"waiting for rank {peer}"
        else:
            missing = pg._mpi.missing(seq)
            if missing is None:
                late = "the ranks that did not arrive are unknown"
            elif missing:
                late = f"ranks {[pg._ranks[m] for m in missing]} did not arrive"
            else:
                late = "every rank arrived but the operation did not complete"
        err = DistBackendError(f"{what} timed out after {pg._timeout:g} s on rank {me}: {late} "
                               f"(group ranks {pg._ranks})")
        pg._broken = err
        pg._plain = False  # so all_reduce's fast path, which skips the check, reports it too
        return err
    return make


def _check_same(pg, fingerprint):
    req, decode = pg._mpi.check_same(f"{fingerprint} #{pg._mpi.seq + 1}")
    _wait(req, pg._timeout, _timeout_error(pg, f"debug fingerprint exchange before {fingerprint}", None))
    prints = decode()
    if len(set(prints)) > 1:
        differ = [pg._ranks[i] for i, p in enumerate(prints) if p != prints[0]]
        detail = "; ".join(f"rank {pg._ranks[i]} is running {p}" for i, p in enumerate(prints))
        raise RuntimeError(f"Detected mismatch between collectives on ranks: ranks {differ} differ from rank "
                           f"{pg._ranks[0]}. {detail}")


def _mismatch_error(prints, pg, name, tensor, seq=None):
    """The error every rank raises when the ranks' fingerprints of one collective differ; breaks the group."""
    by_print = {}
    for i, p in enumerate(prints):
        by_print.setdefault(p, []).append(pg._ranks[i])
    # the fingerprint most ranks hold is the reference (the lowest rank's on a tie); the others differ
    ref = max(by_print, key=lambda p: (len(by_print[p]), -by_print[p][0]))
    differ = sorted(r for p, rs in by_print.items() if p != ref for r in rs)
    what = sorted({d for p in by_print if p != ref for d in differences(ref, p)})

    def ranks(rs):
        return f"rank {rs[0]}" if len(rs) == 1 else f"ranks {rs}"
    running = "; ".join(f"{ranks(rs)} {'is' if len(rs) == 1 else 'are'} running {describe_fingerprint(p)}"
                        for p, rs in sorted(by_print.items(), key=lambda kv: kv[1][0]))
    seq = pg._mpi.seq if seq is None else seq
    err = DistBackendError(
        f"Detected mismatch between collectives on ranks: {ranks(differ)} differ{'s' if len(differ) == 1 else ''} "
        f"from {ranks(by_print[ref])} in the {', '.join(what)} of collective #{seq} of the group of ranks "
        f"{pg._ranks} (seen on rank {get_rank()} in {_describe(name, tensor)}): {running}")
    pg._broken = err
    pg._plain = False
    return err


_ROOTED = frozenset({"broadcast", "reduce", "gather", "scatter"})
# A rank may finish a rooted collective before its peers arrive (the root of a broadcast or scatter, the non-roots
# of a reduce or gather). It then waits this long for their fingerprints, so that a mismatch (a root, dtype or
# count that differs) raises on every rank within about a second; when the peers come later still, the comparison
# waits for the group's next collective. Ranks that arrive together pay nothing: the fingerprints are in as soon
# as the data is.
_ROOTED_WAIT_S = 1.0


class _Checked:
    """A collective's request together with its fingerprint exchange: complete once the data is in and the
    fingerprints agree; raises the mismatch as soon as the fingerprints are in and disagree."""
    __slots__ = ("req", "fps", "pg", "name", "tensor", "seq", "done", "data_at")

    def __init__(self, req, fps, pg, name, tensor):
        self.req, self.fps, self.pg, self.name, self.tensor = req, fps, pg, name, tensor
        self.seq, self.done, self.data_at = pg._mpi.seq, False, None

    def _check(self):
        prints = self.fps.differing()
        if prints is not None:
            self.pg._abandoned.append(self)
            raise _mismatch_error(prints, self.pg, self.name, self.tensor, self.seq)

    def test(self):
        if self.done:
            return True
        fps = self.fps
        if not fps.checked and fps.req.Test():
            self._check()
        if self.pg._unchecked:
            # a peer that found an earlier collective mismatched raised instead of joining this one
            _check_unchecked(self.pg)
        if self.data_at is None:
            try:
                if not self.req.test():
                    return False
            except Exception:  # MPI saw the mismatch first (a message longer than the buffer): name it if so
                if not fps.checked:
                    from ._mpi import _settles
                    if _settles(fps):
                        self._check()
                raise
            self.data_at = time.monotonic()
        if not fps.checked:
            if self.name in _ROOTED:
                # this rank may have finished before its peers started: wait for their fingerprints a while (the
                # caller's loop polls again), then leave them for the group's next collective
                if time.monotonic() - self.data_at < min(_ROOTED_WAIT_S, self.pg._timeout / 2):
                    return False
                self.pg._unchecked.append(self)
                self.pg._plain = False
            else:  # every rank has started this collective, so every fingerprint is on its way
                _wait(fps, self.pg._timeout, _timeout_error(self.pg, self.name, self.tensor))
                self._check()
        self.done = True
        if self.pg._unchecked and self.name not in _ROOTED:
            # every rank has started this collective, so every rank's fingerprints of the earlier ones are out too
            _check_unchecked(self.pg, wait=True)
        return True

    @property
    def source(self):
        return getattr(self.req, "source", None)

    @property
    def device_event(self):
        # Work.wait lets the stream wait for the data; the fingerprints are compared by whoever tests this
        return getattr(self.req, "device_event", None)


def _check_unchecked(pg, wait=False):
    """Compare the fingerprints of earlier rooted collectives that have come in since (`wait`: all of them)."""
    pending = pg._unchecked
    pg._unchecked = []
    for i, c in enumerate(pending):
        if wait:
            _wait(c.fps, pg._timeout, _timeout_error(pg, c.name, c.tensor))
        if c.fps.test():
            if not c.fps.checked:
                try:
                    c._check()
                except DistBackendError:
                    pg._unchecked += [d for d in pending[i + 1:] if not d.fps.checked]
                    raise
        else:
            pg._unchecked.append(c)
    pg._plain = _is_plain(pg)


def _run(pg, name, tensor, start, async_op, fingerprint="", finish=None, result=(), peer=None, check=None):
    """Start a collective (or p2p op with `peer`) on `pg`, then wait for it or return its Work.

    `check`: (numpy dtype, element count, reduce op, root) that every rank must agree on (None: unused)."""
    if pg._broken is not None:
        raise DistBackendError(f"{name}: the process group is unusable after an earlier failure: {pg._broken}")
    if pg._unchecked:
        _check_unchecked(pg)
    backend = pg._backend_for(tensor) if tensor is not None else pg._mpi
    if peer is None and pg._debug:
        _check_same(pg, f"{name}({fingerprint() if callable(fingerprint) else fingerprint})")
    # the fingerprints go out first, so that once a collective's data is in, the peers' fingerprints are too
    fps = pg._mpi.fingerprints(_fingerprint(name, *check)) if peer is None and pg._checks() else None
    req = start(backend)
    if peer is None:
        pg._mpi.arrive(name)  # after the start, so telling the peers never delays the data itself
        if fps is not None:
            req = _Checked(req, fps, pg, name, tensor)
    if finish is not None:
        req = _Then(req, finish, tensor._device if tensor is not None else None)
    on_timeout = _timeout_error(pg, name, tensor, peer)
    if async_op:
        return Work(req, pg._timeout, on_timeout, result=result)
    try:
        _wait(req, pg._timeout, on_timeout)
    except BaseException:
        pg._abandoned.append(req)  # MPI may still write into its buffers: keep them alive
        raise
    return req


def _check_tensor(t, param):
    if not isinstance(t, Tensor):
        raise TypeError(f"Invalid function argument. Expected parameter `{param}` of type torch.Tensor\n"
                        f"             but got {type(t)} instead.")


def _check_list(ts, param):
    if not isinstance(ts, list):
        raise TypeError(f"Invalid function argument. Expected parameter `{param}` of type List[torch.Tensor]\n"
                        f"             but got {type(ts)} instead.")
    if not all(isinstance(t, Tensor) for t in ts):
        raise TypeError(f"Invalid function argument. Expected parameter `{param}` of type List[torch.Tensor]\n"
                        f"             but got {type(ts)} with elements of type {[type(t) for t in ts]}.")


def _inout(t):
    """(contiguous array, write-back or None): the tensor's own array when it is contiguous."""
    a = t._data
    if a.flags.c_contiguous:
        return a, None
    with _backend.on_device(t._device):  # CuPy copies onto the current device
        buf = a.copy()  # C order
    return buf, lambda: a.__setitem__(Ellipsis, buf)


def _check_op(op, t):
    if op.__class__ is not RedOpType:
        raise TypeError(f"Unsupported reduce op {op!r}")
    if op is RedOpType.SUM:
        return
    if op is RedOpType.AVG and t._data.dtype.kind in "biu":
        raise RuntimeError(f"Cannot use ReduceOp.AVG with integer inputs: result type Float can't be cast to the "
                           f"desired output type {_TORCH_NAMES.get(t.dtype.name, t.dtype.name)}")
    if op is RedOpType.PREMUL_SUM:
        raise ValueError("ReduceOp.PREMUL_SUM is not supported")


_TORCH_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


def _group_rank(pg, global_rank, what):
    try:
        return pg._ranks.index(global_rank)
    except ValueError:
        raise ValueError(f"{what} rank {global_rank} is not part of group {pg}") from None


def _flat_list(ts, dtype, numel, what, size):
    if len(ts) != size:
        raise RuntimeError(f"{what}: expected a list of {size} tensors (one per rank of the group), got {len(ts)}")
    for i, t in enumerate(ts):
        if t.numel() != numel or t._data.dtype != dtype:
            raise RuntimeError(f"{what}: tensor {i} of the list has shape [{t._shape_str()}] and dtype {t.dtype}; "
                               f"every tensor must have {numel} elements of the input's dtype")


def _same_device(tensors, what):
    devs = {t._device for t in tensors}
    if len(devs) > 1:
        raise RuntimeError(f"{what}: tensors must all be on one device, got {sorted(map(str, devs))}")


# ---------------------------------------------------------------- collectives
def _on_tensors_device(fn):
    """Run a collective with its tensors' CUDA device current: the staging buffers it makes (contiguous
    copies, concatenations, receive buffers) and its copy-outs land on that device, not on the calling
    thread's current one. (all_reduce, the hot one, does its few array operations on the device inline.)"""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        dev = None
        for a in (*args, *kwargs.values()):
            if isinstance(a, Tensor):
                dev = a._device
                break
            if isinstance(a, list) and a and isinstance(a[0], Tensor):
                dev = a[0]._device
                break
        if dev is None or dev._gpu is None:
            return fn(*args, **kwargs)
        with _backend.on_device(dev):
            return fn(*args, **kwargs)
    return run


def _all_reduce_deadline(pg, tensor):
    return pg._timeout


def _all_reduce_timed_out(pg, tensor):
    return _timeout_error(pg, "all_reduce", tensor)()


def _all_reduce_mismatch(prints, pg, tensor):
    return _mismatch_error(prints, pg, "all_reduce", tensor)


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce `tensor` across the group, in place on every rank."""
    # the checks are spelled out cheaply here: a training loop makes this call thousands of times, and on a
    # megabyte tensor every object it touches has just been pushed out of the caches by the reduction
    if not isinstance(tensor, Tensor):
        _check_tensor(tensor, "tensor")
    pg = _world.default if group is None else None
    if pg is None:
        pg = _pg(group)
        if pg is None:
            return None
    if op is not RedOpType.SUM:
        _check_op(op, tensor)
    arr = tensor._data
    if (not async_op and pg._plain and arr.__class__ is np.ndarray and arr.flags.c_contiguous
            and pg._mpi.all_reduce_now(arr, op, (pg, tensor))):
        return None  # MPI took the tensor's own array as it is: the blocking fast path
    arr, back = _inout(tensor)
    req = _run(pg, "all_reduce", tensor, lambda b: b.all_reduce(arr, op), async_op,
               lambda: f"shape={list(tensor.shape)}, dtype={tensor.dtype}, op={op.name}", back, [tensor],
               check=(arr.dtype, arr.size, op, None))
    return req if async_op else None


@_on_tensors_device
def broadcast(tensor, src=None, group=None, async_op=False, group_src=None):
    """Copy `tensor` of global rank `src` into `tensor` of every rank of the group."""
    _check_tensor(tensor, "tensor")
    pg = _pg(group)
    if pg is None:
        return None
    root = group_src if group_src is not None else _group_rank(pg, 0 if src is None else src, "Global")
    arr, back = _inout(tensor)
    req = _run(pg, "broadcast", tensor, lambda b: b.broadcast(arr, root), async_op,
               lambda: f"shape={list(tensor.shape)}, dtype={tensor.dtype}, src={root}", back, [tensor],
               check=(arr.dtype, arr.size, None, root))
    return req if async_op else None


@_on_tensors_device
def reduce(tensor, dst=None, op=ReduceOp.SUM, group=None, async_op=False, group_dst=None):
    """Reduce `tensor` of every rank into `tensor` of global rank `dst`."""
    _check_tensor(tensor, "tensor")
    pg = _pg(group)
    if pg is None:
        return None
    _check_op(op, tensor)
    root = group_dst if group_dst is not None else _group_rank(pg, 0 if dst is None else dst, "Global")
    arr, back = _inout(tensor)
    req = _run(pg, "reduce", tensor, lambda b: b.reduce(arr, root, op), async_op,
               f"shape={list(tensor.shape)}, dtype={tensor.dtype}, op={op.name}, dst={root}",
               back if pg.rank() == root else None, [tensor], check=(arr.dtype, arr.size, op, root))
    return req if async_op else None


@_on_tensors_device
def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """Gather every rank's `input_tensor` into `output_tensor`, concatenated along dim 0 (or stacked)."""
    _check_tensor(output_tensor, "output_tensor")
    _check_tensor(input_tensor, "input_tensor")
    pg = _pg(group)
    if pg is None:
        return None
    n = pg.size()
    if output_tensor.numel() != n * input_tensor.numel() or output_tensor.dtype != input_tensor.dtype:
        raise RuntimeError(f"all_gather_into_tensor: output tensor of shape [{output_tensor._shape_str()}] and dtype "
                         f"{output_tensor.dtype} must hold {n} x the input of shape [{input_tensor._shape_str()}] "
                         f"and dtype {input_tensor.dtype} (world size {n})")
    _same_device([output_tensor, input_tensor], "all_gather_into_tensor")
    out, back = _inout(output_tensor)
    src = _contig(input_tensor._data)
    req = _run(pg, "all_gather_into_tensor", input_tensor, lambda b: b.all_gather(out.reshape(-1), src.reshape(-1)),
               async_op, f"shape={list(input_tensor.shape)}, dtype={input_tensor.dtype}", back, [output_tensor],
               check=(src.dtype, src.size, None, None))
    return req if async_op else None


def _contig(a):
    return a if a.flags.c_contiguous else a.copy()


@_on_tensors_device
def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Gather every rank's `tensor` into `tensor_list` (one tensor per rank)."""
    _check_list(tensor_list, "tensor_list")
    _check_tensor(tensor, "tensor")
    pg = _pg(group)
    if pg is None:
        return None
    _flat_list(tensor_list, tensor._data.dtype, tensor.numel(), "all_gather", pg.size())
    _same_device(tensor_list + [tensor], "all_gather")
    src = _contig(tensor._data)
    out = tensor._device.xp.empty(pg.size() * tensor.numel(), src.dtype)

    def scatter_out():
        for i, t in enumerate(tensor_list):
            t._data[...] = out[i * src.size:(i + 1) * src.size].reshape(t._data.shape)
    req = _run(pg, "all_gather", tensor, lambda b: b.all_gather(out, src.reshape(-1)), async_op,
               f"shape={list(tensor.shape)}, dtype={tensor.dtype}", scatter_out, tensor_list,
               check=(src.dtype, src.size, None, None))
    return req if async_op else None


@_on_tensors_device
def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce `input` (the group's blocks, concatenated along dim 0) and keep this rank's block in `output`."""
    _check_tensor(output, "output")
    _check_tensor(input, "input")
    pg = _pg(group)
    if pg is None:
        return None
    _check_op(op, input)
    n = pg.size()
    if input.numel() != n * output.numel() or output.dtype != input.dtype:
        raise RuntimeError(f"reduce_scatter_tensor: input tensor of shape [{input._shape_str()}] and dtype {input.dtype} "
                         f"must hold {n} x the output of shape [{output._shape_str()}] and dtype {output.dtype} "
                         f"(world size {n})")
    _same_device([output, input], "reduce_scatter_tensor")
    out, back = _inout(output)
    src = _contig(input._data)
    req = _run(pg, "reduce_scatter_tensor", input,
               lambda b: b.reduce_scatter(out.reshape(-1), src.reshape(-1), op), async_op,
               f"shape={list(input.shape)}, dtype={input.dtype}, op={op.name}", back, [output],
               check=(out.dtype, out.size, op, None))
    return req if async_op else None


@_on_tensors_device
def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce the i-th tensor of every rank's `input_list` into `output` of group rank i."""
    _check_tensor(output, "output")
    _check_list(input_list, "input_list")
    pg = _pg(group)
    if pg is None:
        return None
    _check_op(op, output)
    _flat_list(input_list, output._data.dtype, output.numel(), "reduce_scatter", pg.size())
    _same_device(input_list + [output], "reduce_scatter")
    xp = output._device.xp
    src = xp.concatenate([t._data.reshape(-1) for t in input_list]) if input_list else xp.empty(0, output._data.dtype)
    out, back = _inout(output)
    req = _run(pg, "reduce_scatter", output, lambda b: b.reduce_scatter(out.reshape(-1), src, op), async_op,
               f"shape={list(output.shape)}, dtype={output.dtype}, op={op.name}", back, [output],
               check=(out.dtype, out.size, op, None))
    return req if async_op else None


@_on_tensors_device
def gather(tensor, gather_list=None, dst=None, group=None, async_op=False, group_dst=None):
    """Gather every rank's `tensor` into `gather_list` on global rank `dst` (None elsewhere)."""
    _check_tensor(tensor, "tensor")
    pg = _pg(group)
    if pg is None:
        return None
    root = group_dst if group_dst is not None else _group_rank(pg, 0 if dst is None else dst, "Global")
    src = _contig(tensor._data)
    if pg.rank() == root:
        if gather_list is None:
            raise ValueError("Argument ``gather_list`` must be specified on destination rank.")
        _check_list(gather_list, "gather_list")
        _flat_list(gather_list, src.dtype, src.size, "gather", pg.size())
        out = tensor._device.xp.empty(pg.size() * src.size, src.dtype)

        def finish():
            for i, t in enumerate(gather_list):
                t._data[...] = out[i * src.size:(i + 1) * src.size].reshape(t._data.shape)
    else:
        if gather_list:
            raise ValueError("Argument ``gather_list`` must NOT be specified on non-destination ranks.")
        out, finish = None, None
    req = _run(pg, "gather", tensor, lambda b: b.gather(out, src.reshape(-1), root), async_op,
               f"shape={list(tensor.shape)}, dtype={tensor.dtype}, dst={root}", finish, gather_list or [],
               check=(src.dtype, src.size, None, root))
    return req if async_op else None


@_on_tensors_device
def scatter(tensor, scatter_list=None, src=None, group=None, async_op=False, group_src=None):
    """Send the i-th tensor of `scatter_list` on global rank `src` into `tensor` of group rank i."""
    _check_tensor(tensor, "tensor")
    pg = _pg(group)
    if pg is None:
        return None
    root = group_src if group_src is not None else _group_rank(pg, 0 if src is None else src, "Global")
    if pg.rank() == root:
        if not scatter_list:
            raise ValueError("Argument ``scatter_list`` must be specified on source rank.")
        _check_list(scatter_list, "scatter_list")
        _flat_list(scatter_list, tensor._data.dtype, tensor.numel(), "scatter", pg.size())
        send_buf = tensor._device.xp.concatenate([t._data.reshape(-1) for t in scatter_list])
    else:
        if scatter_list:
            raise ValueError("Argument ``scatter_list`` must NOT be specified on non-source ranks.")
        send_buf = None
    out, back = _inout(tensor)
    req = _run(pg, "scatter", tensor, lambda b: b.scatter(out.reshape(-1), send_buf, root), async_op,
               f"shape={list(tensor.shape)}, dtype={tensor.dtype}, src={root}", back, [tensor],
               check=(out.dtype, out.size, None, root))
    return req if async_op else None


@_on_tensors_device
def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op=False):
    """Send the i-th input tensor to group rank i; receive rank i's tensor into the i-th output."""
    _check_list(output_tensor_list, "output_tensor_list")
    _check_list(input_tensor_list, "input_tensor_list")
    pg = _pg(group)
    if pg is None:
        return None
    n = pg.size()
    if len(output_tensor_list) != n or len(input_tensor_list) != n:
        raise RuntimeError(f"all_to_all: expected {n} input and {n} output tensors (one per rank), got "
                           f"{len(input_tensor_list)} inputs and {len(output_tensor_list)} outputs")
    _same_device(output_tensor_list + input_tensor_list, "all_to_all")
    dtype = input_tensor_list[0]._data.dtype
    if any(t._data.dtype != dtype for t in output_tensor_list + input_tensor_list):
        raise RuntimeError("all_to_all: every input and output tensor must have the same dtype")
    xp = input_tensor_list[0]._device.xp
    send = xp.concatenate([t._data.reshape(-1) for t in input_tensor_list])
    in_counts = [t.numel() for t in input_tensor_list]
    out_counts = [t.numel() for t in output_tensor_list]
    out = xp.empty(sum(out_counts), dtype)

    def finish():
        o = 0
        for t, c in zip(output_tensor_list, out_counts):
            t._data[...] = out[o:o + c].reshape(t._data.shape)
            o += c
    req = _run(pg, "all_to_all", input_tensor_list[0], lambda b: b.all_to_all(out, out_counts, send, in_counts),
               async_op, f"in={[list(t.shape) for t in input_tensor_list]}, dtype={input_tensor_list[0].dtype}",
               finish, output_tensor_list, check=(dtype, ANY_COUNT, None, None))
    return req if async_op else None


@_on_tensors_device
def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None, group=None, async_op=False):
    """all_to_all on dim-0 slices of `input` and `output` (equal slices unless split sizes are given)."""
    _check_tensor(output, "output")
    _check_tensor(input, "input")
    pg = _pg(group)
    if pg is None:
        return None
    n = pg.size()
    _same_device([output, input], "all_to_all_single")

    def counts(t, splits, what):
        rows = t.shape[0] if t.ndim else 1
        row = t.numel() // rows if rows else 0
        if splits is None or len(splits) == 0:
            if rows % n:
                raise ValueError(f"all_to_all_single: dim 0 of the {what} ({rows}) must be divisible by the "
                                 f"world size {n} when no split sizes are given")
            return [rows // n * row] * n
        if len(splits) != n or sum(splits) != rows:
            raise ValueError(f"all_to_all_single: {what} split sizes {list(splits)} must have {n} entries "
                             f"summing to dim 0 of the {what} ({rows})")
        return [int(s) * row for s in splits]
    in_counts = counts(input, input_split_sizes, "input")
    out_counts = counts(output, output_split_sizes, "output")
    out, back = _inout(output)
    src = _contig(input._data)
    req = _run(pg, "all_to_all_single", input,
               lambda b: b.all_to_all(out.reshape(-1), out_counts, src.reshape(-1), in_counts), async_op,
               f"dtype={input.dtype}", back, [output], check=(src.dtype, ANY_COUNT, None, None))
    return req if async_op else None


def barrier(group=None, async_op=False, device_ids=None):
    """Wait until every rank of the group has reached the barrier."""
    pg = _pg(group)
    if pg is None:
        return None
    req = _run(pg, "barrier", None, lambda b: b.barrier(), async_op, check=(None, ANY_COUNT, None, None))
    return req if async_op else None


from ._p2p import P2POp, batch_isend_irecv, irecv, isend, recv, send  # noqa: E402,F401  (torch's namespace)
