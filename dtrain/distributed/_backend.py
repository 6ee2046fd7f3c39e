"""The small interface every collective backend implements, on raw contiguous arrays.

A backend call *starts* an operation and returns a request: an object with `test() -> bool` (True once
the operation is complete and its output written). The public layer decides whether to wait on it
(blocking calls, polled against the group's deadline) or to hand it to the progress thread (async_op).
Ranks given to a backend are ranks in its own group.
"""
import enum


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
