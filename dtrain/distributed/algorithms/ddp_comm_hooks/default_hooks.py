"""The built-in DDP communication hooks: plain all-reduce, and all-reduce of a float16 copy (half the bytes)."""
import numpy as np

from .... import distributed as dist
from ....futures import Future
from ...._tensor import _wrap


def _allreduce_fut(process_group, tensor):
    """Average `tensor` across the group; a Future holding it (reduced in place)."""
    group = process_group if process_group is not None else dist.group.WORLD
    fut = Future()
    world = dist.get_world_size(group)
    tensor._data *= 1.0 / world
    work = dist.all_reduce(tensor, group=group, async_op=True)

    def finish():
        work.wait()
        return tensor
    return _LazyFuture(finish)


class _LazyFuture(Future):
    """A Future completed by waiting on a work handle when someone asks for the value."""

    def __init__(self, finish):
        super().__init__()
        self._finish = finish

    def wait(self):
        if not self.done():
            self.set_result(self._finish())
        return super().wait()

    def value(self):
        return self.wait()


def allreduce_hook(process_group, bucket):
    """Average the bucket's gradients across ranks (what DDP does without a hook)."""
    return _allreduce_fut(process_group, bucket.buffer())


def fp16_compress_hook(process_group, bucket):
    """Send the bucket as float16, average, and decompress into the bucket's dtype."""
    buf = bucket.buffer()
    compressed = _wrap(buf._data.astype(np.float16), buf._device)
    inner = _allreduce_fut(process_group, compressed)

    def decompress():
        c = inner.wait()
        buf._data[...] = c._data
        return buf
    return _LazyFuture(decompress)


def bf16_compress_hook(process_group, bucket):
    return fp16_compress_hook(process_group, bucket)
