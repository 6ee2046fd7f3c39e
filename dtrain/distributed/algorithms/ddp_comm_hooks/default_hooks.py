"""The built-in DDP communication hooks: plain all-reduce, all-reduce of a float16 or bfloat16 copy (half the
bytes), and wrappers that run any hook on such a copy.

bfloat16 in dtrain needs ml_dtypes. Without it the bf16 hooks keep torch's arithmetic exactly (every value
rounded to the nearest bfloat16, ties to even, where torch rounds) but carry those values in float32, so they
save no bandwidth; MPI has no bfloat16 and stages it through float32 anyway."""
from collections.abc import Callable
from typing import Any

import numpy as np

from .... import distributed as dist
from ...._dtype import _bf16, bfloat16, float16
from ...._tensor import _wrap
from ....futures import Future
from ....nn.parallel.distributed import GradBucket

__all__ = ["allreduce_hook", "fp16_compress_hook", "bf16_compress_hook", "fp16_compress_wrapper",
           "bf16_compress_wrapper"]


class _LazyFuture(Future):
    """A Future completed by `finish()` when someone first asks for its value.

    Why lazy: dtrain's work handles have no completion callbacks, and MPI moves a message only while some
    thread tests it. DDP waits for the buckets' futures in bucket order on every rank, so the collectives a
    hook issues inside `finish` (PowerSGD's second and third all-reduce) come in the same order everywhere."""

    def __init__(self, finish):
        super().__init__()
        self._finish = finish

    def wait(self):
        if not self.done():
            self.set_result(self._finish())
        return super().wait()

    def value(self):
        return self.wait()

    def then(self, callback):
        def run():
            self.wait()
            return callback(self)
        return _LazyFuture(run)


def _allreduce_fut(process_group, tensor):
    """Average `tensor` across the group; a Future holding it (reduced in place)."""
    group = process_group if process_group is not None else dist.group.WORLD
    tensor._data /= dist.get_world_size(group)  # before the sum, as torch: no overflow in float16
    work = dist.all_reduce(tensor, group=group, async_op=True)

    def finish():
        if work is not None:
            work.wait()
        return tensor
    return _LazyFuture(finish)


def allreduce_hook(process_group: dist.ProcessGroup, bucket: dist.GradBucket) -> Future:
    """Average the bucket's gradients across ranks (what DDP does without a hook)."""
    return _allreduce_fut(process_group, bucket.buffer())


def _round_bf16(a, xp):
    """`a` rounded to the nearest bfloat16 (ties to even, as torch converts), as a new float32 array."""
    f = a.astype(np.float32)
    u = f.view(np.uint32)
    nan = xp.isnan(f)
    u += np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))
    u &= np.uint32(0xFFFF0000)
    f[nan] = np.nan  # the carry above may have turned a NaN's payload into infinity
    return f


def _emulated(dtype):
    """Whether `dtype` is bfloat16 held as float32 (no ml_dtypes)."""
    return dtype is bfloat16 and _bf16 is None


def _compress(tensor, dtype):
    """A copy of `tensor` in `dtype` (float16, or bfloat16 values in float32 where ml_dtypes is absent)."""
    if not _emulated(dtype):
        return tensor.to(dtype)
    return _wrap(_round_bf16(tensor._data, tensor._device.xp), tensor._device)


def _decompress_into(buffer, value, dtype):
    """Copy a hook's result into `buffer`, through `dtype` as torch's compressed buffer would hold it."""
    v = value._data.reshape(buffer._data.shape)
    if _emulated(dtype):
        v = _round_bf16(v, buffer._device.xp)
    buffer._data[...] = v
    return buffer


def _compress_hook(dtype, process_group, bucket):
    group = process_group if process_group is not None else dist.group.WORLD
    world = dist.get_world_size(group)
    buffer = bucket[0] if isinstance(bucket, tuple) else bucket.buffer()
    compressed = _compress(buffer, dtype)
    compressed._data /= world
    if _emulated(dtype):
        compressed._data = _round_bf16(compressed._data, buffer._device.xp)
    work = dist.all_reduce(compressed, group=group, async_op=True)

    def decompress():
        if work is not None:
            work.wait()
        return _decompress_into(buffer, compressed, dtype)
    return _LazyFuture(decompress)


def fp16_compress_hook(process_group: dist.ProcessGroup, bucket: dist.GradBucket) -> Future:
    """Send the bucket as float16 divided by the world size, sum, and decompress into the bucket's dtype."""
    return _compress_hook(float16, process_group, bucket)


def bf16_compress_hook(process_group: dist.ProcessGroup, bucket: dist.GradBucket) -> Future:
    """Send the bucket as bfloat16 divided by the world size, sum, and decompress into the bucket's dtype.

    Over MPI the ranks' values are added in float32 and the sum is rounded to bfloat16 once."""
    return _compress_hook(bfloat16, process_group, bucket)


class _CastBucket(GradBucket):
    """The bucket a compress wrapper hands its hook: the same index and parameters, the buffer a compressed
    copy. torch's wrappers swap the bucket's buffer with `set_buffer`; dtrain's GradBucket.set_buffer copies
    into the buffer DDP reduces (its dtype cannot change), so the wrapped hook gets this instead."""

    def __init__(self, bucket, buffer):
        super().__init__(bucket.index(), buffer, bucket.parameters(), bucket.is_last())

    def set_buffer(self, buffer):
        self._buffer = buffer


def _compress_wrapper(dtype, hook):
    def wrapper_hook(hook_state, bucket):
        buffer = bucket.buffer()
        inner = _CastBucket(bucket, _compress(buffer, dtype))
        fut = hook(hook_state, inner)
        return fut.then(lambda f: _decompress_into(buffer, f.value(), dtype))
    return wrapper_hook


def fp16_compress_wrapper(hook: Callable[[Any, dist.GradBucket], Future]) -> Callable[[Any, dist.GradBucket], Future]:
    """Run `hook` on a float16 copy of the bucket and cast its result back to the bucket's dtype;
    ``fp16_compress_wrapper(allreduce_hook)`` is ``fp16_compress_hook``."""
    return _compress_wrapper(float16, hook)


def bf16_compress_wrapper(hook: Callable[[Any, dist.GradBucket], Future]) -> Callable[[Any, dist.GradBucket], Future]:
    """Run `hook` on a bfloat16 copy of the bucket and cast its result back to the bucket's dtype;
    ``bf16_compress_wrapper(allreduce_hook)`` is ``bf16_compress_hook``.

    Without ml_dtypes the hook gets bfloat16 values in a float32 buffer and computes in float32; its result
    is rounded to bfloat16 on the way back, as torch's would be."""
    return _compress_wrapper(bfloat16, hook)
