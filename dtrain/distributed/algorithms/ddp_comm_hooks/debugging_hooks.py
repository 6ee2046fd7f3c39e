"""Hooks for measuring DDP rather than training with it."""
from typing import Any

from .... import distributed as dist
from ....futures import Future

__all__ = ["noop_hook"]


def noop_hook(_: Any, bucket: dist.GradBucket) -> Future:
    """Return the bucket as it is, with no communication: for headroom analysis only (how much faster would
    training be if the all-reduce cost nothing?). Gradients are then not synchronised."""
    fut = Future()
    fut.set_result(bucket.buffer())
    return fut
