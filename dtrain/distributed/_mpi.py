"""The MPI backend: mpi4py's upper-case (buffer) calls on NumPy arrays, CuPy arrays staged through the host.

Every operation is started with MPI's non-blocking call (Iallreduce, Ibcast, ...) and returns a request;
the caller polls it against a deadline, so a rank that never arrives turns into an error, not a hang.

Who arrived: every rank counts the collectives it enters on each communicator; nothing is sent for it on
the fast path. When a wait on collective #k times out, the rank asks every peer for its count over a
duplicate of the communicator, and a peer whose count is below k, or that does not answer within a
second, did not reach the collective. Ranks answer from every wait loop (and from the progress thread),
a few milliseconds into the wait, so a rank that has reached any collective answers at once.

A rank that has *finished* #k no longer waits there, which is harmless for the symmetric collectives
(finishing them needs every rank's part), but the root of a broadcast or scatter, and the non-roots of a
reduce or gather, can finish before their peers arrive and then compute for a long time. Those
collectives keep a 16-byte note (k and the operation's code), sent to every peer after the operation
has started; the asking rank drains the notes along with the answers.

Fingerprints (see _backend.py) go through a ring of 32 persistent all-gathers (MPI_Allgather_init) on a
third communicator, made at the group's creation; the k-th collective of the group uses slot k mod 32 on
every rank, so fast and general paths, blocking and async calls all match alike.
"""
import os
import threading
import time

import numpy as np

from .. import _backend
from .._device import device_of
from . import _env
from ._backend import Backend, DONE, FINGERPRINT, KIND_CODES, RedOpType, dtype_code
from . import _work
from ._work import ANSWERING, answer_all, wait_test

# where some ranks may finish before the others arrive: these tell the peers at once that they arrived
_ROOTED = frozenset({"broadcast", "reduce", "gather", "scatter"})
# codes sent with arrival notes, so a timeout can say where a late peer is
_OPCODES = {"broadcast": 3, "reduce": 4, "gather": 9, "scatter": 10}
_ARRIVED, _ASK, _ANSWER = 1, 2, 3
_ANSWER_WITHIN_S = 1.0
_DRAIN_EVERY = 256
_FP_BYTES = 512
_RING = 4096
# polls all_reduce_now makes in its own loop before the general one (deadline, answers) takes over
_QUICK_POLLS = range(1024)
# a blocking all_reduce larger than this goes in pieces of _PIECE_BYTES (see MPIBackend._pieces)
_PIECES_ABOVE, _PIECE_BYTES = 8 << 20, 4 << 20
_ALL_REDUCE = KIND_CODES["all_reduce"]
_SLOTS = 32  # fingerprint exchanges that may be in flight at once on a group (async collectives)
_SLOT_MASK = _SLOTS - 1
_pack = FINGERPRINT.pack
_BF16_KIND = "V"  # ml_dtypes.bfloat16 reports kind 'V'; MPI has no bfloat16, so it is staged as float32


def _mpi_ops(MPI):
    return {RedOpType.SUM: MPI.SUM, RedOpType.AVG: MPI.SUM, RedOpType.PRODUCT: MPI.PROD, RedOpType.MIN: MPI.MIN,
            RedOpType.MAX: MPI.MAX, RedOpType.BAND: MPI.BAND, RedOpType.BOR: MPI.BOR, RedOpType.BXOR: MPI.BXOR}


# bool travels as uint8, where MAX is `or` and MIN is `and` (torch's meaning of SUM and PRODUCT on bool)
_BOOL_OPS = {RedOpType.SUM: RedOpType.MAX, RedOpType.PRODUCT: RedOpType.MIN}


def _cuda_aware(MPI):
    """Whether MPI reads and writes CUDA device memory itself: DTRAIN_CUDA_AWARE_MPI=1 or 0 decides, else MPI is
    asked (MPIX_Query_cuda_support, which Open MPI and MPICH export; mpi4py has no query of its own)."""
    said = os.environ.get("DTRAIN_CUDA_AWARE_MPI", "").strip()
    if said in ("0", "1"):
        return said == "1"
    try:
        import ctypes
        return bool(ctypes.CDLL(MPI.__file__).MPIX_Query_cuda_support())  # resolved through mpi4py's libmpi
    except (OSError, AttributeError, TypeError):  # another MPI, or no shared library to ask
        return False


def _quick(test):
    """Poll `test` a short while (the blocking fast path's own loop); whether it completed. As wait_test does,
    yield the core between polls where ranks outnumber cores: the peer holding the data may be waiting for it.
    Otherwise the loop calls nothing else: after a megabyte has streamed through the caches each extra call
    per poll is a miss, and a 1 MB reduction polls hundreds of times."""
    if _work.oversubscribed:
        for _ in _QUICK_POLLS:
            if test():
                return True
            os.sched_yield()
        return False
    for _ in _QUICK_POLLS:
        if test():
            return True
    return False


def _device_ready(a):
    """Wait for the kernels writing CuPy array `a`: MPI reads device memory outside any CUDA stream."""
    with _backend.on_device(device_of(a)):  # the stream that wrote `a` is its device's, not the current one's
        _backend.cupy().cuda.get_current_stream().synchronize()


def _on_device_of(a, fn):
    """`fn` (a request's finishing step, or None), made to run with device array `a`'s device current.

    A request finishes on whichever thread tests it last, often the progress thread, whose current device is
    0: dividing or writing back a device-1 array there would hit CuPy's device check."""
    if fn is None or type(a) is np.ndarray:
        return fn
    dev = device_of(a)

    def run():
        with _backend.on_device(dev):
            return fn()
    return run


class _Request:
    """An MPI request plus what to do once it completes (write a staged buffer back, divide for AVG)."""
    __slots__ = ("req", "finish", "source", "status", "done")

    def __init__(self, req, finish=None, status=None):
        self.req, self.finish, self.status, self.source, self.done = req, finish, status, None, False

    def test(self):
        if self.done:
            return True
        if not (self.req.Test(self.status) if self.status is not None else self.req.Test()):
            return False
        self.done = True
        if self.status is not None:
            self.source = self.status.Get_source()
        if self.finish is not None:
            self.finish()
        return True


class _Slot:
    """One persistent all-gather of fingerprints (MPI_Allgather_init) with its own buffers, the exchange that
    last used it (general path), and the fingerprint its send buffer holds (`sent`: a loop repeating one
    all_reduce finds it there already)."""
    __slots__ = ("req", "send", "recv", "owner", "sent")

    def __init__(self, comm, size):
        self.send, self.recv = bytearray(FINGERPRINT.size), bytearray(FINGERPRINT.size * size)
        self.req, self.owner, self.sent = comm.Allgather_init(self.send, self.recv), None, None


class _Complete:
    @staticmethod
    def Test():
        return True


_COMPLETE = _Complete()


class Fingerprints:
    """Every rank's fingerprint of one collective, all-gathered through a ring slot (see MPIBackend.fingerprints)."""
    __slots__ = ("slot", "req", "mine", "out", "size", "checked")

    def __init__(self, slot, mine, size):
        self.slot, self.req, self.mine, self.size, self.checked = slot, slot.req, mine, size, False
        self.out = slot.recv

    def test(self):
        return self.checked or self.req.Test()

    def keep(self):
        """Copy the gathered fingerprints out of the slot, which a later collective is about to reuse."""
        self.out, self.req = bytes(self.out), _COMPLETE

    def differing(self):
        """None when every rank ran the same collective, else every rank's fingerprint (call once test() is True)."""
        self.checked = True
        out = self.out
        if out == self.mine * self.size:
            return None
        k = len(self.mine)
        return [bytes(out[i * k:(i + 1) * k]) for i in range(self.size)]


class MPIBackend(Backend):
    name = "mpi"

    def __init__(self, comm):
        MPI = _env.mpi()
        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._ops = _mpi_ops(MPI)
        # arrival notes, questions and debug fingerprints get their own communicator: they can never match
        # user traffic
        self.side = comm.Dup()
        self.seq = 0
        self._seen = [(0, 0)] * self.size
        self._peers = [p for p in range(self.size) if p != self.rank]
        self._ring, self._said = np.zeros((_RING, 2), np.int64), np.zeros((_RING, 2), np.int64)
        self._sent = 0
        self._lock = threading.Lock()
        self._host_staging = not _cuda_aware(MPI)
        self._iallreduce, self._in_place = comm.Iallreduce, MPI.IN_PLACE
        # Fingerprints travel through a ring of persistent all-gathers on a communicator of their own, made here
        # in the same order on every rank; the k-th collective of the group uses slot k % _SLOTS on every rank.
        # Starting a persistent request costs half of issuing an Iallgather, and on a 1 MB all_reduce the whole
        # check then costs 1-3 us instead of 5-12 (see BENCHMARKS.md).
        self._fp_last = (-1, None, None, None, None, None)  # see all_reduce_now
        # how all_reduce_now's errors are made, from its `why` (set by the process group): (seconds to wait for,
        # the error past them, the error when the ranks' fingerprints `prints` differ)
        self.errors = (lambda *why: 600.0, None, None)
        self.fp_comm = comm.Dup()
        self._fp_slots = [_Slot(self.fp_comm, self.size) for _ in range(_SLOTS)]
        self._fp_next = 0
        if self._peers:
            ANSWERING.add(self)

    # ---------------------------------------------------------------- who arrived
    def arrive(self, name):
        self.seq += 1
        if name in _ROOTED and self._peers:
            # sends are freed at once (a persistent send waits on the peer in MPICH); each message keeps its
            # own slot of a ring until long after its 16 bytes went out
            note = self._ring[self.seq % _RING]
            note[0], note[1] = self.seq, _OPCODES[name]
            isend = self.side.Isend
            for p in self._peers:
                isend(note, p, _ARRIVED).Free()
            if self.seq % _DRAIN_EVERY == 0:
                self._drain()

    def _slot(self):
        """A ring slot holding this rank's count, for a question or an answer (called under the lock)."""
        self._sent += 1
        slot = self._said[self._sent % _RING]
        slot[0] = self.seq
        return slot

    def _drain(self):
        MPI = self.MPI
        with self._lock:
            status, buf = MPI.Status(), np.zeros(2, np.int64)
            for tag in (_ARRIVED, _ANSWER):
                while self.side.Iprobe(MPI.ANY_SOURCE, tag, status):
                    src = status.Get_source()
                    self.side.Recv(buf, src, tag)
                    if buf[0] > self._seen[src][0]:
                        self._seen[src] = (int(buf[0]), int(buf[1]))

    def answer(self):
        """Tell every peer that asked how many collectives this rank has entered."""
        if not self._lock.acquire(blocking=False):
            return  # another thread of this rank is at it
        try:
            MPI = self.MPI
            status, buf = MPI.Status(), np.zeros(2, np.int64)
            while self.side.Iprobe(MPI.ANY_SOURCE, _ASK, status):
                src = status.Get_source()
                self.side.Recv(buf, src, _ASK)
                self.side.Isend(self._slot(), src, _ANSWER).Free()
        finally:
            self._lock.release()

    def missing(self, seq=None):
        """The peers that have not entered this rank's collective #`seq` (its latest by default)."""
        seq = self.seq if seq is None else seq
        self._drain()
        late = [p for p in self._peers if self._seen[p][0] < seq]
        with self._lock:
            for p in late:
                self.side.Isend(self._slot(), p, _ASK).Free()
        until = time.monotonic() + _ANSWER_WITHIN_S
        while late and time.monotonic() < until:
            answer_all()  # peers that timed out too are asking this rank meanwhile
            time.sleep(1e-3)
            self._drain()
            late = [p for p in late if self._seen[p][0] < seq]
        return late

    def _fp_slot(self, mine):
        """The next ring slot, started with this rank's fingerprint `mine` of the collective about to start."""
        slot = self._fp_slots[self._fp_next & _SLOT_MASK]
        self._fp_next += 1
        if slot.owner is not None or slot.sent is not mine:
            self._fp_load(slot, mine)
        slot.req.Start()
        return slot

    def _fp_load(self, slot, mine):
        """Make `slot` ready to send `mine`: the exchange of the general path that used it _SLOTS collectives ago
        is complete and its fingerprints kept."""
        if slot.owner is not None:
            owner, slot.owner = slot.owner, None
            if not owner.checked:
                if not owner.req.Test():  # every rank started it long ago: it completes
                    wait_test(owner.req.Test, 600.0, lambda: RuntimeError("a fingerprint exchange never completed"))
                owner.keep()
        slot.send[:] = mine
        slot.sent = mine

    def fingerprints(self, mine):
        """Start all-gathering `mine`, this rank's fingerprint of the collective it is about to start."""
        slot = self._fp_slot(mine)
        fps = slot.owner = Fingerprints(slot, mine, self.size)
        return fps

    def check_same(self, fingerprint):
        raw = np.frombuffer(fingerprint.encode()[:_FP_BYTES].ljust(_FP_BYTES, b"\0"), np.uint8)
        out = np.empty(_FP_BYTES * self.size, np.uint8)
        req = _Request(self.side.Iallgather(raw, out))
        return req, lambda: [out[i * _FP_BYTES:(i + 1) * _FP_BYTES].tobytes().rstrip(b"\0").decode(errors="replace")
                             for i in range(self.size)]

    # ---------------------------------------------------------------- buffers MPI can take
    def _in(self, a):
        """A buffer MPI can read for input `a` (the array itself for NumPy of an MPI dtype)."""
        if type(a) is not np.ndarray:
            if self._host_staging:
                a = a.get()
            else:
                _device_ready(a)
        kind = a.dtype.kind
        if kind == "b":
            return a.view(np.uint8)
        return a.astype(np.float32) if kind == _BF16_KIND else a

    def _out(self, a):
        """(buffer MPI writes, write-back or None) for output `a`; no copy for NumPy of an MPI dtype."""
        staged = a
        if type(a) is not np.ndarray:
            if self._host_staging:
                staged = a.get()
            else:
                _device_ready(a)
        kind = staged.dtype.kind
        if kind == _BF16_KIND:
            staged = staged.astype(np.float32)
        elif kind == "b":
            staged = staged.view(np.uint8)
        if staged.base is a or staged is a:
            return staged, None
        return staged, _on_device_of(a, lambda: _back(a, staged))

    def _op(self, array, op):
        if array.dtype.kind == "b":
            op = _BOOL_OPS.get(op, op)
        return self._ops[op]

    def _finish(self, back, array=None, avg=False):
        if avg:
            n = self.size
            if back is None:
                return _on_device_of(array, lambda: array.__itruediv__(n))
            return lambda: (_on_device_of(array, lambda: array.__itruediv__(n))(), back())
        return back

    # ---------------------------------------------------------------- collectives
    def all_reduce_now(self, array, op, why):
        """Blocking all_reduce of a C-contiguous NumPy array, in place (the training loop's call); False, having
        started nothing, when MPI cannot take the array's dtype as it is (bool, bfloat16: the general path stages
        them).

        The same operation as `all_reduce` + `wait`, with as little Python around MPI's own calls as possible:
        right after a megabyte has streamed through the caches every object touched is a cache miss, and a few
        microseconds of wrapping are 5-10 % of a 1 MB reduction. Above 8 MB it goes in pieces. The fingerprint
        all-gather goes out right before the data and is compared before the data is polled (measured, an
        exchange left in flight beside a 1 MB reduction slows it by 3-5 %); when the data does not come, the
        general loop watches both. `self.errors` (set by the process group) makes the errors from `why`: a
        timeout past its deadline, the mismatch when the ranks disagree."""
        # the fingerprint of the last (count, dtype, op), with what the gathered ones read when every rank
        # agrees: a loop repeating one reduction builds nothing here, and touches one tuple
        fp = self._fp_last
        if array.size != fp[0] or array.dtype is not fp[1] or op is not fp[2]:
            if array.dtype.kind in "bV":
                return False
            mine = _pack(_ALL_REDUCE | (op + 1) << 8, dtype_code(array.dtype), array.size)
            fp = self._fp_last = (array.size, array.dtype, op, mine, mine * self.size, self._ops[op])
        slot = self._fp_slots[self._fp_next & _SLOT_MASK]
        self._fp_next += 1
        if slot.sent is not fp[3] or slot.owner is not None:
            self._fp_load(slot, fp[3])
        fp_test = slot.req.Test
        slot.req.Start()
        if array.nbytes > _PIECES_ABOVE:
            test = self._pieces(array.reshape(-1), fp[5])
        else:
            test = self._iallreduce(self._in_place, array, op=fp[5]).Test
        self.seq += 1  # arrive(): all_reduce is symmetric, so nothing is sent
        if not _quick(fp_test):
            self._all_reduce_slow(fp_test, Fingerprints(slot, fp[3], self.size), why)
        if slot.recv != fp[4]:
            raise self.errors[2](Fingerprints(slot, fp[3], self.size).differing(), *why)
        if not _quick(test):
            self._all_reduce_slow(test, None, why)
        if op is RedOpType.AVG:
            array /= self.size
        return True

    def _all_reduce_slow(self, test, fps, why):
        """all_reduce_now's wait past its quick polls: the general loop keeps the deadline, answers peers and
        watches the fingerprints, so a mismatch that would hang the data raises as soon as they are in."""
        deadline_s, on_timeout, on_mismatch = self.errors
        deadline_s = deadline_s(*why)
        def data_or_mismatch():
            if fps is not None and not fps.checked and fps.req.Test():
                prints = fps.differing()
                if prints is not None:
                    raise on_mismatch(prints, *why)
            return test()
        try:
            wait_test(data_or_mismatch, deadline_s, lambda: on_timeout(*why))
        except self.MPI.Exception:  # MPI saw the mismatch first (a message longer than the buffer)
            if fps is not None and (fps.test() or _settles(fps)):
                prints = fps.differing()
                if prints is not None:
                    raise on_mismatch(prints, *why) from None
            raise

    def _pieces(self, flat, mpi_op):
        """Start an all-reduce of `flat` as consecutive pieces, two in flight; returns its test().

        MPICH reduces tens of megabytes at half the bandwidth it reaches on the same data in 4 MB pieces: a
        piece and its scratch space stay in cache through the reduce-scatter and the all-gather. Pieces
        are issued strictly in order from the one calling thread, so every rank matches them alike."""
        step = _PIECE_BYTES // flat.itemsize
        todo = [flat[i:i + step] for i in range(0, flat.size, step)][::-1]  # pop() takes the first
        start = self._iallreduce
        flying = [start(self._in_place, todo.pop(), op=mpi_op) for _ in range(min(2, len(todo)))]

        def test():
            while flying and flying[0].Test():
                flying.pop(0)
                if todo:
                    flying.append(start(self._in_place, todo.pop(), op=mpi_op))
            return not flying
        return test

    def all_reduce(self, array, op):
        buf, back = self._out(array)
        req = self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self._op(array, op))
        return _Request(req, self._finish(back, buf, op is RedOpType.AVG))

    def broadcast(self, array, src):
        buf, back = self._out(array) if self.rank != src else (self._in(array), None)
        return _Request(self.comm.Ibcast(buf, root=src), back)

    def reduce(self, array, dst, op):
        MPI = self.MPI
        if self.rank == dst:
            buf, back = self._out(array)
            req = self.comm.Ireduce(MPI.IN_PLACE, buf, op=self._op(array, op), root=dst)
            return _Request(req, self._finish(back, buf, op is RedOpType.AVG))
        return _Request(self.comm.Ireduce(self._in(array), None, op=self._op(array, op), root=dst))

    def all_gather(self, out, array):
        buf, back = self._out(out)
        return _Request(self.comm.Iallgather(self._in(array), buf), back)

    def reduce_scatter(self, out, array, op):
        buf, back = self._out(out)
        req = self.comm.Ireduce_scatter_block(self._in(array), buf, op=self._op(array, op))
        return _Request(req, self._finish(back, buf, op is RedOpType.AVG))

    def gather(self, out, array, dst):
        if self.rank != dst:
            return _Request(self.comm.Igather(self._in(array), None, root=dst))
        buf, back = self._out(out)
        return _Request(self.comm.Igather(self._in(array), buf, root=dst), back)

    def scatter(self, out, array, src):
        buf, back = self._out(out)
        send = self._in(array) if self.rank == src else None
        return _Request(self.comm.Iscatter(send, buf, root=src), back)

    def all_to_all(self, out, out_counts, array, in_counts):
        buf, back = self._out(out)
        send = self._in(array)
        sdispl, rdispl = np.cumsum([0] + list(in_counts[:-1])), np.cumsum([0] + list(out_counts[:-1]))
        req = self.comm.Ialltoallv([send, (list(in_counts), sdispl.tolist())],
                                   [buf, (list(out_counts), rdispl.tolist())])
        return _Request(req, back)

    def send(self, array, dst, tag):
        return _Request(self.comm.Isend(self._in(array), dst, tag))

    def recv(self, array, src, tag):
        MPI = self.MPI
        buf, back = self._out(array)
        req = self.comm.Irecv(buf, MPI.ANY_SOURCE if src is None else src, tag)
        return _Request(req, back, MPI.Status())

    def barrier(self):
        if self.size == 1:
            return DONE
        return _Request(self.comm.Ibarrier())

    def close(self):
        ANSWERING.discard(self)
        # MPI reuses a freed communicator's context for the next one made: an arrival note still queued here
        # would be read by a later group as its own (a peer "arrived" at a collective it never reached)
        self._drain()
        status, buf = self.MPI.Status(), np.zeros(2, np.int64)
        while self.side.Iprobe(self.MPI.ANY_SOURCE, _ASK, status):  # questions nobody waits for any more
            self.side.Recv(buf, status.Get_source(), _ASK)
        self.side.Free()
        for slot in self._fp_slots:
            if slot.req.Test():  # complete (or never started): otherwise MPI may still write into its buffers
                slot.req.Free()
        self.fp_comm.Free()
        if self.comm != self.MPI.COMM_WORLD:
            self.comm.Free()


def _settles(fps, within_s=_ANSWER_WITHIN_S):
    """Whether the fingerprint exchange completes within a second (it does whenever every rank has started)."""
    until = time.monotonic() + within_s
    while time.monotonic() < until:
        if fps.req.Test():
            return True
        time.sleep(1e-4)
    return False


def _back(a, staged):
    """Write a staged buffer back into the caller's array (bool/bfloat16 view or cast, device upload)."""
    if staged.dtype != a.dtype:
        staged = staged.view(a.dtype) if a.dtype.kind == "b" else staged.astype(a.dtype)
    if type(a) is np.ndarray:
        if staged is not a and not np.shares_memory(staged, a):
            a[...] = staged
    elif type(staged) is np.ndarray:
        a.set(staged)  # CuPy output buffers handed to a backend are always contiguous
    elif staged.data.ptr != a.data.ptr:  # CUDA-aware MPI wrote a device buffer of another dtype
        a[...] = staged
