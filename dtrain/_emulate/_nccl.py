"""cupy.cuda.nccl of the emulated backend: NCCL communicators between the ranks of a job, over MPI.

The ranks of an emulated job are real processes started by mpiexec or dtrain-run. A communicator is an MPI
communicator of the ranks that made one with the same unique id: `get_unique_id()` is random bytes that the
caller shares (dtrain bootstraps it over MPI, as for real NCCL), and `NcclCommunicator(ndev, uid, rank)` splits
COMM_WORLD by it (a collective over the whole world, as the bootstrap already is). Buffers arrive as device
pointers (`data.ptr`), mapped back to the live arrays' host memory. Each operation is a nonblocking MPI call
in flight on its stream until an event recorded after it is waited for or found done; between groupStart
and groupEnd operations are queued and all started at groupEnd, so send/recv pairs in a group cannot
deadlock.
"""
import os
import threading
import time
import zlib

import numpy as np

from . import _array, _runtime as rt

NCCL_INT8 = NCCL_CHAR = 0
NCCL_UINT8 = 1
NCCL_INT32 = NCCL_INT = 2
NCCL_UINT32 = 3
NCCL_INT64 = 4
NCCL_UINT64 = 5
NCCL_FLOAT16 = NCCL_HALF = 6
NCCL_FLOAT32 = NCCL_FLOAT = 7
NCCL_FLOAT64 = NCCL_DOUBLE = 8
NCCL_BFLOAT16 = 9
NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN, NCCL_AVG = 0, 1, 2, 3, 4
available = True

_DTYPES = {0: np.int8, 1: np.uint8, 2: np.int32, 3: np.uint32, 4: np.int64, 5: np.uint64, 6: np.float16,
           7: np.float32, 8: np.float64}
_UNIQUE_ID_BYTES = 128  # NCCL_UNIQUE_ID_BYTES


class NcclError(RuntimeError):
    """cupy.cuda.nccl.NcclError."""

    def __init__(self, status, text):
        self.status = status
        super().__init__(f"NCCL_ERROR: {text}")


def _dtype(datatype):
    if datatype == NCCL_BFLOAT16:
        from ml_dtypes import bfloat16
        return np.dtype(bfloat16)
    try:
        return np.dtype(_DTYPES[datatype])
    except KeyError:
        raise NcclError(5, f"invalid data type {datatype}") from None


def get_unique_id():
    return os.urandom(_UNIQUE_ID_BYTES)


def get_version():
    return 22005


get_build_version = get_version

_requests_lock = threading.Lock()
_group = None  # operations queued between groupStart and groupEnd (per process: NCCL's group is per thread)


class _Pending:
    """MPI requests in flight on an emulated stream, with what to do once they complete (AVG's division) and
    the temporaries they read from."""
    __slots__ = ("reqs", "after", "keep", "complete")

    def __init__(self, reqs, after=(), keep=()):
        self.reqs, self.after, self.keep, self.complete = reqs, list(after), keep, False

    def _finish(self):
        self.complete = True
        for fn in self.after:
            fn()
        self.after = self.keep = None

    def test(self):
        # one thread at a time: dtrain polls events from a watchdog thread while the main one records more,
        # and MPI does not allow two threads to test the same request
        with _requests_lock:
            if not self.complete:
                from mpi4py import MPI
                if MPI.Request.Testall(self.reqs):
                    self._finish()
            return self.complete

    def wait(self):
        while not self.test():
            time.sleep(0.0002)


def groupStart():
    global _group
    if _group is None:
        _group = []
    else:
        _group.append(None)  # nested groups: only the outermost end runs them


def groupEnd():
    global _group
    if _group is None:
        raise NcclError(5, "groupEnd without groupStart")
    if _group and _group[-1] is None:
        _group.pop()
        return
    ops, _group = _group, None
    by_stream = {}
    for stream, op in ops:
        by_stream.setdefault(stream, []).append(op())
    for stream, parts in by_stream.items():
        rt.stream_at(stream)._pending.append(_Pending([r for p in parts for r in p.reqs],
                                                      [f for p in parts for f in p.after],
                                                      [k for p in parts for k in p.keep]))


def _reduce(op, dtype):
    from mpi4py import MPI
    ops = {NCCL_SUM: MPI.SUM, NCCL_PROD: MPI.PROD, NCCL_MAX: MPI.MAX, NCCL_MIN: MPI.MIN, NCCL_AVG: MPI.SUM}
    try:
        return ops[op]
    except KeyError:
        raise NcclError(5, f"invalid reduction op {op}") from None


class NcclCommunicator:
    """cupy.cuda.nccl.NcclCommunicator(ndev, commId, rank) over an MPI communicator of the job's ranks.
    Each operation is a nonblocking MPI call left in flight on the given stream, as NCCL's kernels are: an
    event recorded after it is done when it completes, and waiting for one blocks the host until then."""

    def __init__(self, ndev, commId, rank, config=None):
        from mpi4py import MPI
        if not isinstance(commId, (bytes, tuple)) or len(commId) != _UNIQUE_ID_BYTES:
            raise TypeError(f"commId must be the {_UNIQUE_ID_BYTES} bytes of get_unique_id()")
        if not 0 <= rank < ndev:
            raise NcclError(4, f"invalid rank {rank} of {ndev}")
        key = zlib.crc32(bytes(commId)) & 0x7FFFFFFF
        self._comm = MPI.COMM_WORLD.Split(key, rank)
        if self._comm.Get_size() != ndev:
            raise NcclError(5, f"{self._comm.Get_size()} ranks made a communicator with this id, expected {ndev}")
        self._rank, self._ndev, self._device = rank, ndev, rt.current()
        self._closed = False

    # ------------------------------------------------ plumbing
    def _buf(self, ptr, count, datatype, written_on=None):
        """The host memory at `ptr`; `written_on`: the stream ptr of an operation that writes it."""
        dt = _dtype(datatype)
        a = _array._buffer_at(ptr, count * dt.itemsize, dt)
        if written_on is not None and rt._StreamCheck.enabled:
            _array.written(a, rt.stream_at(written_on))
        return a

    def _issue(self, stream, op):
        if self._closed:
            raise NcclError(5, "communicator was destroyed or aborted")
        if _group is not None:
            _group.append((stream, op))
        else:
            rt.stream_at(stream)._pending.append(op())

    @staticmethod
    def _mpi_buf(a):
        from mpi4py import MPI
        if a.dtype.kind == "V":  # bfloat16: moved as raw 2-byte words (reductions are refused)
            return [a.view(np.uint16), MPI.UINT16_T]
        return a

    def _avg(self, r, op):
        if op != NCCL_AVG:
            return ()
        n = self._ndev
        return (lambda: r.__itruediv__(n),) if r.dtype.kind == "f" else (lambda: np.floor_divide(r, n, out=r),)

    # ------------------------------------------------ queries
    def rank_id(self):
        return self._rank

    def size(self):
        return self._ndev

    def device_id(self):
        return self._device

    def check_async_error(self):
        pass

    # ------------------------------------------------ collectives
    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        def run():
            from mpi4py import MPI
            s, r = self._buf(sendbuf, count, datatype), self._buf(recvbuf, count, datatype, stream)
            self._no_bf16_math(s)
            req = self._comm.Iallreduce(MPI.IN_PLACE if sendbuf == recvbuf else s, r, op=_reduce(op, s.dtype))
            return _Pending([req], self._avg(r, op), (s, r))
        self._issue(stream, run)

    def reduce(self, sendbuf, recvbuf, count, datatype, op, root, stream):
        def run():
            from mpi4py import MPI
            s, r = self._buf(sendbuf, count, datatype), self._buf(recvbuf, count, datatype, stream)
            self._no_bf16_math(s)
            inplace = sendbuf == recvbuf and self._rank == root
            req = self._comm.Ireduce(MPI.IN_PLACE if inplace else s, r, op=_reduce(op, s.dtype), root=root)
            return _Pending([req], self._avg(r, op) if self._rank == root else (), (s, r))
        self._issue(stream, run)

    def broadcast(self, sendbuff, recvbuff, count, datatype, root, stream):
        def run():
            r = self._buf(recvbuff, count, datatype, stream)
            if self._rank == root and sendbuff != recvbuff:
                r[...] = self._buf(sendbuff, count, datatype)
            return _Pending([self._comm.Ibcast(self._mpi_buf(r), root=root)], (), (r,))
        self._issue(stream, run)

    def bcast(self, buff, count, datatype, root, stream):
        self.broadcast(buff, buff, count, datatype, root, stream)

    def allGather(self, sendbuf, recvbuf, count, datatype, stream):
        def run():
            s = self._buf(sendbuf, count, datatype).copy()
            r = self._buf(recvbuf, count * self._ndev, datatype, stream)
            return _Pending([self._comm.Iallgather(self._mpi_buf(s), self._mpi_buf(r))], (), (s, r))
        self._issue(stream, run)

    def reduceScatter(self, sendbuf, recvbuf, recvcount, datatype, op, stream):
        def run():
            s = self._buf(sendbuf, recvcount * self._ndev, datatype).copy()
            r = self._buf(recvbuf, recvcount, datatype, stream)
            self._no_bf16_math(s)
            req = self._comm.Ireduce_scatter_block(s, r, op=_reduce(op, s.dtype))
            return _Pending([req], self._avg(r, op), (s, r))
        self._issue(stream, run)

    def send(self, sendbuf, count, datatype, peer, stream):
        def run():
            s = self._buf(sendbuf, count, datatype)
            return _Pending([self._comm.Isend(self._mpi_buf(s), dest=peer, tag=7)], (), (s,))
        self._issue(stream, run)

    def recv(self, recvbuf, count, datatype, peer, stream):
        def run():
            r = self._buf(recvbuf, count, datatype, stream)
            return _Pending([self._comm.Irecv(self._mpi_buf(r), source=peer, tag=7)], (), (r,))
        self._issue(stream, run)

    @staticmethod
    def _no_bf16_math(a):
        if a.dtype.kind == "V":
            raise NcclError(5, "reductions of bfloat16 are not available on emulated CUDA devices")

    # ------------------------------------------------ teardown
    def destroy(self):
        # as ncclCommDestroy: waits for what is in flight on the communicator (the streams it used)
        if not self._closed:
            self._closed = True
            rt.wait_all_pending()
            self._comm.Free()

    def abort(self):
        # NCCL's abort returns at once even with an operation in flight; MPI's Free would wait for it, so the
        # communicator is only marked closed (its MPI resources go with the process)
        self._closed = True

    def commSplit(self, color, key):
        raise NotImplementedError("cupy.cuda.nccl.NcclCommunicator.commSplit is not available on emulated CUDA "
                                  "devices")

    @classmethod
    def initAll(cls, devices):
        raise NotImplementedError("cupy.cuda.nccl.NcclCommunicator.initAll (one process driving several GPUs) "
                                  "is not available on emulated CUDA devices")
