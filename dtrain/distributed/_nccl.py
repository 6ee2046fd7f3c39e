"""The NCCL backend: cupy.cuda.nccl on a communication stream of its own, for CUDA tensors.

Ordering with the caller's work uses CUDA events: the communication stream first waits for an event
recorded on the current stream (so inputs produced there are ready), and each operation records a
`done` event. The request exposes it as `device_event`: `Work.wait()` makes the caller's current stream
wait for it and returns at once, as torch's does, while the progress thread polls it from the host to keep
the timeout contract of the public layer (a rank that never launches its part is reported, not waited on
forever). Everything here runs with the communicator's device current: NCCL binds a communicator to one
device, and the ops of a rank whose current device is another would hit CuPy's device check.
"""
import numpy as np

from .._backend import cupy, nccl as _nccl, on_device
from .._device import device as _device
from ._backend import Backend, RedOpType


class _Event:
    """The request of one NCCL operation: done when its `done` event is (polled from any thread)."""
    __slots__ = ("event", "source", "device")

    def __init__(self, event, device):
        self.event, self.source, self.device = event, None, device

    def test(self):
        return self.event.done

    @property
    def device_event(self):
        """(CUDA event, dtrain device): the point on the device after which the operation's results are there."""
        return self.event, self.device


class NCCLBackend(Backend):
    name = "nccl"

    def __init__(self, mpi_backend, device_index=None):
        cp, nccl = cupy(), _nccl()
        self.rank, self.size = mpi_backend.rank, mpi_backend.size
        index = device_index if device_index is not None else cp.cuda.runtime.getDevice()
        self.device = _device("cuda", index)
        self._last = None  # the event of the latest operation: NCCL completes a communicator's work in order
        # NCCL binds a communicator to the device current at its creation, so it is made here, on first
        # use by a CUDA tensor (that tensor's device), with that device current only meanwhile: the caller's
        # current device is left as it was, as torch's device guard does
        uid = nccl.get_unique_id() if self.rank == 0 else None
        comm = getattr(mpi_backend, "comm", None)
        if comm is not None:
            uid = comm.bcast(uid, root=0)  # the id is a few hundred bytes, once per group
        with on_device(self.device):
            self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)
            self.stream = cp.cuda.Stream(non_blocking=True)
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
                       np.dtype(np.float16): nccl.NCCL_FLOAT16, np.dtype(np.int32): nccl.NCCL_INT32,
                       np.dtype(np.int64): nccl.NCCL_INT64, np.dtype(np.int8): nccl.NCCL_INT8,
                       np.dtype(np.uint8): nccl.NCCL_UINT8}
        self._ops = {RedOpType.SUM: nccl.NCCL_SUM, RedOpType.PRODUCT: nccl.NCCL_PROD, RedOpType.MIN: nccl.NCCL_MIN,
                     RedOpType.MAX: nccl.NCCL_MAX, RedOpType.AVG: getattr(nccl, "NCCL_AVG", 4)}

    # ---------------------------------------------------------------- plumbing
    def _type(self, a):
        if a.dtype.kind == "b":
            return self._types[np.dtype(np.uint8)]
        if a.dtype.kind == "V" and a.itemsize == 2:  # bfloat16 (ml_dtypes)
            return _nccl().NCCL_BFLOAT16
        try:
            return self._types[a.dtype]
        except KeyError:
            raise RuntimeError(f"NCCL does not support dtype {a.dtype}") from None

    def _op(self, a, op):
        if a.dtype.kind == "b":  # bool as uint8: `or` is MAX, `and` is MIN
            op = {RedOpType.SUM: RedOpType.MAX, RedOpType.PRODUCT: RedOpType.MIN}.get(op, op)
        if op not in self._ops:
            raise RuntimeError(f"NCCL does not support ReduceOp {op.name}")
        return self._ops[op]

    def _launch(self, fn):
        """Run `fn(stream_ptr)` on the communication stream after the current stream's pending work."""
        cp = cupy()
        with on_device(self.device):
            ready = cp.cuda.Event(disable_timing=True)
            ready.record(cp.cuda.get_current_stream())
            self.stream.wait_event(ready)
            fn(self.stream.ptr)
            done = cp.cuda.Event(disable_timing=True)
            done.record(self.stream)
        self._last = done
        return _Event(done, self.device)

    def _grouped(self, calls):
        nccl = _nccl()

        def run(s):
            nccl.groupStart()
            try:
                for call in calls:
                    call(s)
            finally:
                nccl.groupEnd()
        return self._launch(run)

    # ---------------------------------------------------------------- collectives
    def all_reduce(self, array, op):
        ptr = array.data.ptr
        return self._launch(lambda s: self.comm.allReduce(ptr, ptr, array.size, self._type(array),
                                                          self._op(array, op), s))

    def broadcast(self, array, src):
        ptr = array.data.ptr
        return self._launch(lambda s: self.comm.broadcast(ptr, ptr, array.size, self._type(array), src, s))

    def reduce(self, array, dst, op):
        ptr = array.data.ptr
        return self._launch(lambda s: self.comm.reduce(ptr, ptr, array.size, self._type(array),
                                                       self._op(array, op), dst, s))

    def all_gather(self, out, array):
        return self._launch(lambda s: self.comm.allGather(array.data.ptr, out.data.ptr, array.size,
                                                          self._type(array), s))

    def reduce_scatter(self, out, array, op):
        return self._launch(lambda s: self.comm.reduceScatter(array.data.ptr, out.data.ptr, out.size,
                                                              self._type(array), self._op(array, op), s))

    def gather(self, out, array, dst):
        t, n = self._type(array), array.size
        calls = [lambda s: self.comm.send(array.data.ptr, n, t, dst, s)] if self.rank != dst else []
        if self.rank == dst:
            for r in range(self.size):
                if r == self.rank:
                    calls.append(lambda s, r=r: _copy(out[r * n:(r + 1) * n], array, s))
                else:
                    calls.append(lambda s, r=r: self.comm.recv(out[r * n:(r + 1) * n].data.ptr, n, t, r, s))
        return self._grouped(calls)

    def scatter(self, out, array, src):
        t, n = self._type(out), out.size
        if self.rank != src:
            return self._grouped([lambda s: self.comm.recv(out.data.ptr, n, t, src, s)])
        calls = []
        for r in range(self.size):
            block = array[r * n:(r + 1) * n]
            if r == self.rank:
                calls.append(lambda s, b=block: _copy(out, b, s))
            else:
                calls.append(lambda s, b=block, r=r: self.comm.send(b.data.ptr, n, t, r, s))
        return self._grouped(calls)

    def all_to_all(self, out, out_counts, array, in_counts):
        t = self._type(array)
        so, ro = np.cumsum([0] + list(in_counts)), np.cumsum([0] + list(out_counts))
        calls = []
        for r in range(self.size):
            send, recv = array[so[r]:so[r + 1]], out[ro[r]:ro[r + 1]]
            if r == self.rank:
                calls.append(lambda s, a=recv, b=send: _copy(a, b, s))
                continue
            if send.size:
                calls.append(lambda s, b=send, r=r: self.comm.send(b.data.ptr, b.size, t, r, s))
            if recv.size:
                calls.append(lambda s, a=recv, r=r: self.comm.recv(a.data.ptr, a.size, t, r, s))
        return self._grouped(calls)

    def send(self, array, dst, tag):
        return self._grouped([lambda s: self.comm.send(array.data.ptr, array.size, self._type(array), dst, s)])

    def recv(self, array, src, tag):
        if src is None:
            raise RuntimeError("recv from any source is not supported by NCCL: pass src")
        req = self._grouped([lambda s: self.comm.recv(array.data.ptr, array.size, self._type(array), src, s)])
        req.source = src
        return req

    def barrier(self):
        with on_device(self.device):
            one = cupy().ones(1, np.float32)
        return self.all_reduce(one, RedOpType.SUM)

    def close(self):
        # ncclCommDestroy waits for the communicator's work to finish: after a timeout that is the very
        # operation that hung, so a communicator with work still in flight is aborted instead (as torch's
        # watchdog does); one with nothing pending is destroyed cleanly
        with on_device(self.device):
            if self._last is not None and not self._last.done:
                self.comm.abort()
            else:
                self.comm.destroy()


def _copy(dst, src, stream_ptr):
    cp = cupy()
    cp.cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, src.nbytes, cp.cuda.runtime.memcpyDeviceToDevice,
                                stream_ptr)
