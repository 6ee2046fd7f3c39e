"""The small interface every collective backend implements, on raw contiguous arrays.

A backend call *starts* an operation and returns a request: an object with `test() -> bool` (True once
the operation is complete and its output written). The public layer decides whether to wait on it
(blocking calls, polled against the group's deadline) or to hand it to the progress thread (async_op).
Ranks given to a backend are ranks in its own group.
"""
import enum
import struct


class RedOpType(enum.IntEnum):
    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7
    PREMUL_SUM = 8

    def __str__(self):
        return f"RedOpType.{self.name}"


class ReduceOp:
    """torch.distributed.ReduceOp: `ReduceOp.SUM` prints as `RedOpType.SUM`, like torch's."""
    RedOpType = RedOpType
    SUM, AVG, PRODUCT, MIN, MAX = RedOpType.SUM, RedOpType.AVG, RedOpType.PRODUCT, RedOpType.MIN, RedOpType.MAX
    BAND, BOR, BXOR, PREMUL_SUM = RedOpType.BAND, RedOpType.BOR, RedOpType.BXOR, RedOpType.PREMUL_SUM


# ---------------------------------------------------------------- collective fingerprints
# Every collective of a group of two or more ranks all-gathers a 24-byte fingerprint of itself (which collective,
# reduce op, root, dtype, element count) on a communicator of its own, started just before the operation and
# compared once it is in, or as soon as the fingerprints are in while the operation still waits: a peer
# running another operation (that would hang or corrupt data) makes every rank raise, naming it.
FINGERPRINT = struct.Struct("<3q")
KINDS = ("all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
         "reduce_scatter_tensor", "gather", "scatter", "all_to_all", "all_to_all_single", "barrier")
KIND_CODES = {k: i for i, k in enumerate(KINDS)}
ANY_COUNT = -1  # all_to_all: each rank's counts are its own


_DTYPES = None  # ({numpy dtype: code}, [dtrain dtype name by code]), made on first use


def _dtypes():
    global _DTYPES
    if _DTYPES is None:
        from .. import _dtype
        _DTYPES = ({d.np: i for i, d in enumerate(_dtype._ALL) if d.np is not None}, [str(d) for d in _dtype._ALL])
    return _DTYPES


def dtype_code(np_dtype):
    code = (_DTYPES or _dtypes())[0].get(np_dtype)
    return code if code is not None else 1000 + np_dtype.num


def _dtype_name(code):
    names = _dtypes()[1]
    if code < len(names):
        return names[code]
    return f"numpy type number {code - 1000}"


def fingerprint(kind, np_dtype, count, op=None, root=None):
    """The bytes a collective is compared by: kind, reduce op and root in one word, then dtype and count."""
    head = KIND_CODES[kind] | (0 if op is None else int(op) + 1) << 8 | (0 if root is None else root + 1) << 16
    return FINGERPRINT.pack(head, -1 if np_dtype is None else dtype_code(np_dtype), count)


def describe_fingerprint(raw):
    """A fingerprint in words: `all_reduce(count=1000, dtype=torch.float32, op=SUM)`."""
    head, dt, count = FINGERPRINT.unpack(raw)
    kind, op, root = head & 0xFF, (head >> 8 & 0xFF) - 1, (head >> 16) - 1
    parts = []
    if count != ANY_COUNT:
        parts.append(f"count={count}")
    if dt >= 0:
        parts.append(f"dtype={_dtype_name(dt)}")
    if op >= 0:
        parts.append(f"op={RedOpType(op).name}")
    if root >= 0:
        parts.append(f"root={root}")
    return f"{KINDS[kind] if kind < len(KINDS) else f'collective {kind}'}({', '.join(parts)})"


def differences(a, b):
    """The fields in which fingerprints `a` and `b` differ, by name."""
    (ha, da, ca), (hb, db, cb) = FINGERPRINT.unpack(a), FINGERPRINT.unpack(b)
    if ha & 0xFF != hb & 0xFF:
        return ["collective"]  # its other fields mean different things
    names = [("collective", ha & 0xFF, hb & 0xFF), ("reduce op", ha >> 8 & 0xFF, hb >> 8 & 0xFF),
             ("root", ha >> 16, hb >> 16), ("dtype", da, db), ("element count", ca, cb)]
    return [n for n, x, y in names if x != y]


class Done:
    """A request that is already complete (world of one, empty tensors)."""
    __slots__ = ("source",)

    def __init__(self, source=None):
        self.source = source

    def test(self):
        return True


DONE = Done()


class Backend:
    """One communicator of `size` ranks; this process is `rank` in it.

    Buffers are contiguous arrays of the backend's array module. all_gather / reduce_scatter /
    gather / scatter use one flat buffer holding the per-rank blocks one after another.
    """
    name = "?"
    rank = 0
    size = 1
    seq = 0  # collectives entered so far

    def arrive(self, name):
        """Called by the public layer as this rank enters collective `name` (after starting it)."""
        self.seq += 1

    def all_reduce(self, array, op): raise NotImplementedError
    def broadcast(self, array, src): raise NotImplementedError
    def reduce(self, array, dst, op): raise NotImplementedError
    def all_gather(self, out, array): raise NotImplementedError
    def reduce_scatter(self, out, array, op): raise NotImplementedError
    def gather(self, out, array, dst): raise NotImplementedError  # out is None off the root
    def scatter(self, out, array, src): raise NotImplementedError  # array is None off the root
    def all_to_all(self, out, out_counts, array, in_counts): raise NotImplementedError
    def send(self, array, dst, tag): raise NotImplementedError
    def recv(self, array, src, tag): raise NotImplementedError  # src None: any; request.source = sender
    def barrier(self): raise NotImplementedError

    def missing(self, seq=None):
        """Ranks (of this group) not seen at collective #`seq` (the latest by default); None when unknown."""
        return None

    def check_same(self, fingerprint):
        """Debug mode: (request, decode) where decode() lists every rank's fingerprint string, by rank."""
        return DONE, lambda: [fingerprint]

    def close(self):
        pass


class LocalBackend(Backend):
    """A world of one without MPI: every collective is the identity, in place."""
    name = "mpi"

    def all_reduce(self, array, op):
        return DONE

    broadcast = reduce = lambda self, array, *args: DONE

    def all_gather(self, out, array):
        out[...] = array.reshape(out.shape)
        return DONE

    def reduce_scatter(self, out, array, op):
        out[...] = array.reshape(out.shape)
        return DONE

    def gather(self, out, array, dst):
        out[...] = array.reshape(out.shape)
        return DONE

    def scatter(self, out, array, src):
        out[...] = array.reshape(out.shape)
        return DONE

    def all_to_all(self, out, out_counts, array, in_counts):
        out[...] = array.reshape(out.shape)
        return DONE

    def send(self, array, dst, tag):
        raise RuntimeError("send/recv need at least two ranks; this is a world of one")

    recv = send

    def barrier(self):
        return DONE
