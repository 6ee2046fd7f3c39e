"""cupy.cuda of the emulated backend: devices, the per-thread current device and stream, events, memory pools.

Work runs eagerly on the host, so streams and events order nothing; they are tracked instead, so that a read
of an array on a stream that never waited for the stream that produced it can be reported (`strict_streams`).
"""
import itertools
import threading
import time
import weakref

import numpy as np

DEVICE_NAME = "dtrain emulated CUDA device"
TOTAL_MEMORY = 16 << 30  # what memGetInfo/getDeviceProperties report per emulated device
COMPUTE_CAPABILITY = (9, 0)  # a recent GPU: bfloat16, TF32 and friends are "supported"

_count = 0  # set by install(): the number of emulated devices
_local = threading.local()
_ptrs = itertools.count(0x7E0000000)  # fake stream/event handles (0 is the null stream)


class CUDARuntimeError(RuntimeError):
    """cupy.cuda.runtime.CUDARuntimeError: a failed runtime call, with CUDA's status code."""

    def __init__(self, status, name, text):
        self.status = status
        super().__init__(f"{name}: {text}")


def _invalid_device(i):
    return CUDARuntimeError(101, "cudaErrorInvalidDevice", f"invalid device ordinal (device {i} of "
                                                           f"{_count} emulated devices)")


def check_device(i):
    if not isinstance(i, (int, np.integer)) or not 0 <= i < _count:
        raise _invalid_device(i)
    return int(i)


def current():
    return getattr(_local, "device", 0)


# ---------------------------------------------------------------- cupy.cuda.runtime
class runtime:
    """The functions of cupy.cuda.runtime that make sense for host-backed devices (a namespace)."""
    CUDARuntimeError = CUDARuntimeError
    memcpyHostToHost, memcpyHostToDevice, memcpyDeviceToHost, memcpyDeviceToDevice, memcpyDefault = 0, 1, 2, 3, 4
    is_hip = False

    @staticmethod
    def getDeviceCount():
        return _count

    @staticmethod
    def getDevice():
        return current()

    @staticmethod
    def setDevice(device):
        _local.device = check_device(device)

    @staticmethod
    def deviceSynchronize():
        pool_sync(current())

    @staticmethod
    def getDeviceProperties(device):
        check_device(device)
        return {"name": DEVICE_NAME.encode(), "totalGlobalMem": TOTAL_MEMORY, "major": COMPUTE_CAPABILITY[0],
                "minor": COMPUTE_CAPABILITY[1], "multiProcessorCount": 1, "warpSize": 32,
                "maxThreadsPerBlock": 1024, "pciBusID": device, "pciDeviceID": 0, "pciDomainID": 0,
                "uuid": b"dtrain-emulated-%d" % device, "integrated": 0, "canMapHostMemory": 1}

    @staticmethod
    def memGetInfo():
        used = _pools[current()]._used
        return TOTAL_MEMORY - used, TOTAL_MEMORY

    @staticmethod
    def runtimeGetVersion():
        return 12040

    @staticmethod
    def driverGetVersion():
        return 12040

    @staticmethod
    def deviceCanAccessPeer(device, peer_device):
        # no peer access: an array is only usable on its own device, CuPy's strictest configuration
        check_device(device), check_device(peer_device)
        return 0

    @staticmethod
    def memcpyAsync(dst, src, size, kind, stream):
        from ._array import _buffer_at, written
        d, s = _buffer_at(dst, size), _buffer_at(src, size)
        d[...] = s
        if _StreamCheck.enabled:
            written(d, stream_at(stream))

    memcpy = staticmethod(lambda dst, src, size, kind: runtime.memcpyAsync(dst, src, size, kind, 0))


def pool_sync(device):
    """A host synchronisation with `device`: every stream's work so far is complete."""
    for s in list(_streams_of(device)):
        s.synchronize()


def wait_all_pending():
    for s in list(_all_streams):
        s._wait_pending()


# ---------------------------------------------------------------- devices
class Device:
    """cupy.cuda.Device: a device id; `with Device(i):` or `.use()` makes it current for this thread."""

    def __init__(self, device=None):
        self.id = current() if device is None else int(device)
        self._prev = []

    def use(self):
        runtime.setDevice(self.id)

    def __enter__(self):
        self._prev.append(current())
        self.use()
        return self

    def __exit__(self, *exc):
        _local.device = self._prev.pop()
        return False

    def synchronize(self):
        pool_sync(check_device(self.id))

    @property
    def compute_capability(self):
        check_device(self.id)
        return "%d%d" % COMPUTE_CAPABILITY

    @property
    def mem_info(self):
        with Device(self.id):
            return runtime.memGetInfo()

    @property
    def pci_bus_id(self):
        return "0000:%02x:00.0" % check_device(self.id)

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __int__(self):
        return self.id

    def __repr__(self):
        return f"<CUDA Device {self.id} (dtrain emulated)>"


# ---------------------------------------------------------------- streams and events
_all_streams = weakref.WeakSet()
_by_ptr = weakref.WeakValueDictionary()


def stream_at(ptr):
    """The stream of a handle (`Stream.ptr`, 0 for the current device's null stream)."""
    if not ptr:
        return _null(current())
    try:
        return _by_ptr[ptr]
    except KeyError:
        raise CUDARuntimeError(400, "cudaErrorInvalidResourceHandle", f"invalid resource handle (stream "
                                                                      f"{ptr:#x})") from None


def _streams_of(device):
    return [s for s in _all_streams if s.device_id == device]


class _StreamCheck:
    enabled = False


class Stream:
    """cupy.cuda.Stream. Work is eager; a stream counts what was issued on it (`_pos`), what of each other
    stream it has waited for, and what the host has synchronised, for `strict_streams` checking."""

    def __init__(self, null=False, non_blocking=False, ptr=0, priority=None):
        self.device_id = current()
        self.ptr = 0 if null else next(_ptrs)
        self._pos = 0        # operations issued on this stream
        self._synced = 0     # of those, how many the host has waited for
        self._waited = {}    # other stream -> position of it this stream waited for
        self._pending = []   # communication in flight on this stream (emulated NCCL's MPI requests)
        self._prev = []
        _all_streams.add(self)
        if self.ptr:
            _by_ptr[self.ptr] = self

    def use(self):
        _current_streams()[self.device_id] = self
        return self

    def __enter__(self):
        self._prev.append(get_current_stream(self.device_id))
        return self.use()

    def __exit__(self, *exc):
        self._prev.pop().use()
        return False

    def synchronize(self):
        self._wait_pending()
        self._synced = self._pos

    def _wait_pending(self):
        pending, self._pending = self._pending, []
        for p in pending:
            p.wait()

    def _take_pending(self):
        """What is in flight now (for an event recorded here); finished entries are dropped."""
        self._pending = [p for p in self._pending if not p.test()]
        return list(self._pending)

    @property
    def done(self):
        if self._take_pending():
            return False
        self._synced = self._pos
        return True

    def record(self, event=None):
        event = event if event is not None else Event()
        event.record(self)
        return event

    def wait_event(self, event):
        # the host waits for the event's communication (the one simplification of eager streams: a device
        # wait becomes a host wait), so what this stream reads afterwards is complete
        for p in event._pending:
            p.wait()
        if event._stream is not None and event._stream is not self:
            prev = self._waited.get(event._stream, 0)
            self._waited[event._stream] = max(prev, event._pos)

    def _sees(self, stream, pos):
        """Whether work at `pos` on `stream` is ordered before what is issued on this stream now."""
        return stream is self or stream._synced >= pos or self._waited.get(stream, 0) >= pos

    def __eq__(self, other):
        return isinstance(other, Stream) and other.ptr == self.ptr and other.device_id == self.device_id

    def __hash__(self):
        return hash((self.ptr, self.device_id))

    def __repr__(self):
        return f"<Stream {self.ptr:#x} (device {self.device_id}, dtrain emulated)>"


class _NullStreams:
    """Stream.null: the null stream of the current device (CuPy's is one object; here one per device)."""

    def __get__(self, obj, cls):
        return _null(current())


def _null(device):
    nulls = _null.streams
    s = nulls.get(device)
    if s is None:
        with Device(device):
            s = nulls[device] = Stream(null=True)
    return s


_null.streams = {}
Stream.null = _NullStreams()


def _current_streams():
    d = getattr(_local, "streams", None)
    if d is None:
        d = _local.streams = {}
    return d


def get_current_stream(device_id=None):
    device_id = current() if device_id is None else device_id
    s = _current_streams().get(device_id)
    return s if s is not None else _null(device_id)


class Event:
    """cupy.cuda.Event: remembers the stream and position it was recorded at, and when (for elapsed time)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.ptr = next(_ptrs)
        self._stream, self._pos, self._time, self._pending = None, 0, None, []
        self._timing = not disable_timing

    def record(self, stream=None):
        stream = stream if stream is not None else get_current_stream()
        self._stream, self._pos, self._time = stream, stream._pos, time.perf_counter()
        self._pending = stream._take_pending()

    @property
    def done(self):
        self._pending = [p for p in self._pending if not p.test()]
        if not self._pending and self._stream is not None:
            # the host saw the work complete: whatever it issues next is ordered after it
            self._stream._synced = max(self._stream._synced, self._pos)
        return not self._pending

    def synchronize(self):
        for p in self._pending:
            p.wait()
        self._pending = []
        if self._stream is not None:
            self._stream._synced = max(self._stream._synced, self._pos)


def get_elapsed_time(start_event, end_event):
    for e in (start_event, end_event):
        if not e._timing:
            raise CUDARuntimeError(6, "cudaErrorInvalidResourceHandle", "invalid resource handle (an event made "
                                                                        "with disable_timing=True)")
        if e._time is None:
            raise CUDARuntimeError(600, "cudaErrorNotReady", "device not ready (the event was never recorded)")
    return (end_event._time - start_event._time) * 1000.0


# ---------------------------------------------------------------- memory
class OutOfMemoryError(MemoryError):
    """cupy.cuda.memory.OutOfMemoryError."""

    def __init__(self, size, total, limit=0, message=None):
        super().__init__(f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes"
                         + (f", limit set to: {limit:,} bytes" if limit else "") + ")."
                         if message is None else f"Out of memory on an emulated device (allocated so far: "
                                                 f"{total:,} bytes): {message}")


class _DevicePool:
    """What a device's memory pool holds: bytes of live arrays, the peak of that, bytes freed but kept."""
    __slots__ = ("_used", "_peak", "_cached", "_limit")

    def __init__(self):
        self._used = self._peak = self._cached = self._limit = 0

    def alloc(self, n):
        used = self._used + n
        if self._limit and used > self._limit:
            raise OutOfMemoryError(n, self._used, self._limit)
        self._used = used
        self._cached = max(0, self._cached - n)  # a freed block of the pool is reused first
        if used > self._peak:
            self._peak = used

    def free(self, n):
        self._used -= n
        self._cached += n


class _Pools(dict):
    def __missing__(self, device):
        p = self[device] = _DevicePool()
        return p


_pools = _Pools()


class MemoryPool:
    """cupy.cuda.MemoryPool: statistics of the current device's pool (as CuPy's default pool answers)."""

    def __init__(self, allocator=None):
        pass

    def malloc(self, size):
        """Counts `size` bytes as allocated on the current device (the memory itself is the NumPy buffer's)."""
        from ._array import MemoryPointer
        _pools[current()].alloc(size)
        return MemoryPointer(0, current())

    def used_bytes(self):
        return _pools[current()]._used

    def free_bytes(self):
        return _pools[current()]._cached

    def total_bytes(self):
        p = _pools[current()]
        return p._used + p._cached

    def free_all_blocks(self, stream=None):
        _pools[current()]._cached = 0

    def n_free_blocks(self):
        return 1 if _pools[current()]._cached else 0

    def set_limit(self, size=None, fraction=None):
        if fraction is not None:
            size = int(TOTAL_MEMORY * fraction)
        _pools[current()]._limit = int(size or 0)

    def get_limit(self):
        return _pools[current()]._limit


class PinnedMemoryPool:
    """cupy.cuda.PinnedMemoryPool: host memory is all there is, so it holds nothing."""

    def __init__(self, allocator=None):
        pass

    def free_all_blocks(self):
        pass

    def n_free_blocks(self):
        return 0


_default_pool = MemoryPool()
_allocator = None  # set by cupy.cuda.set_allocator; None: the default pool's malloc


def set_allocator(allocator=None):
    """cupy.cuda.set_allocator: `allocator(size)` is called for every array allocated from then on."""
    global _allocator
    _allocator = allocator


def allocate(device, n):
    """An array's allocation of `n` bytes on `device`, through the allocator in use as in CuPy."""
    if _allocator is None:
        _pools[device].alloc(n)
    else:
        with Device(device):
            _allocator(n)
_default_pinned_pool = PinnedMemoryPool()


def get_default_memory_pool():
    return _default_pool


def get_default_pinned_memory_pool():
    return _default_pinned_pool


def memory_stats(device):
    """Bytes of live arrays on `device`, their peak, and what the pool keeps: dtrain's view of the pool."""
    p = _pools[check_device(device)]
    return {"used": p._used, "peak": p._peak, "cached": p._cached}


def reset_peak(device):
    p = _pools[check_device(device)]
    p._peak = p._used
