"""Runs one mismatched collective per case, each on a fresh group, with rank 1 the odd one out; writes what every
rank saw (error type, message, seconds until it raised) to OUT_DIR/rank<R>.json, then leaves without MPI's
finalisation (the mismatched operations are still pending in MPI, as after any failure)."""
import json
import os
import sys
import time

import dtrain
import dtrain.distributed as dist

out_dir = sys.argv[1]
dist.init_process_group("gloo")
me, n = dist.get_rank(), dist.get_world_size()
odd = me == 1
SUM, MAX = dist.ReduceOp.SUM, dist.ReduceOp.MAX


def all_reduce_count(g):
    dist.all_reduce(dtrain.ones(500 if odd else 1000), group=g)  # the blocking fast path


def all_reduce_count_async(g):
    dist.all_reduce(dtrain.ones(500 if odd else 1000), group=g, async_op=True).wait()


def all_reduce_dtype(g):
    dist.all_reduce(dtrain.ones(1000, dtype=dtrain.float64 if odd else dtrain.float32), group=g)


def all_reduce_op(g):
    dist.all_reduce(dtrain.ones(1000), op=MAX if odd else SUM, group=g)


def different_collectives(g):
    if odd:
        dist.broadcast(dtrain.ones(1000), src=0, group=g)
    else:
        dist.all_reduce(dtrain.ones(1000), group=g)


def all_gather_count(g):
    x = dtrain.ones(3 if odd else 4)
    dist.all_gather_into_tensor(dtrain.empty(n * x.numel()), x, group=g)


def broadcast_root(g):
    dist.broadcast(dtrain.ones(64), src=1 if odd else 0, group=g)


def broadcast_dtype(g):
    dist.broadcast(dtrain.ones(64, dtype=dtrain.float64 if odd else dtrain.float32), src=0, group=g)


def broadcast_count(g):
    dist.broadcast(dtrain.ones(32 if odd else 64), src=0, group=g)


def broadcast_count_async(g):
    dist.broadcast(dtrain.ones(32 if odd else 64), src=0, group=g, async_op=True).wait()


def broadcast_root_from_the_odd_rank(g):
    dist.broadcast(dtrain.ones(64), src=0 if odd else 1, group=g)


def reduce_dst(g):
    dist.reduce(dtrain.ones(64), dst=1 if odd else 0, group=g)


def reduce_op(g):
    dist.reduce(dtrain.ones(64), dst=0, op=MAX if odd else SUM, group=g)


def gather_count(g):
    x = dtrain.ones(3 if odd else 4)
    dist.gather(x, [dtrain.empty(4) for _ in range(n)] if me == 0 else None, dst=0, group=g)


def scatter_dtype(g):
    dt = dtrain.float64 if odd else dtrain.float32
    dist.scatter(dtrain.empty(4, dtype=dt), [dtrain.ones(4, dtype=dt) for _ in range(n)] if me == 0 else None,
                 src=0, group=g)


def reduce_scatter_dtype(g):
    dt = dtrain.int64 if odd else dtrain.float32
    dist.reduce_scatter_tensor(dtrain.empty(4, dtype=dt), dtrain.ones(4 * n, dtype=dt), group=g)


def barrier_against_all_reduce(g):
    if odd:
        dist.barrier(group=g)
    else:
        dist.all_reduce(dtrain.ones(8), group=g)


CASES = [all_reduce_count, all_reduce_count_async, all_reduce_dtype, all_reduce_op, different_collectives,
         all_gather_count, broadcast_root, broadcast_dtype, broadcast_count, broadcast_count_async,
         broadcast_root_from_the_odd_rank, reduce_dst, reduce_op, gather_count, scatter_dtype, reduce_scatter_dtype,
         barrier_against_all_reduce]
report = {}
for case in CASES:
    g = dist.new_group(timeout=30)  # a hang would take 30 s: far beyond the bound the test checks
    dist.all_reduce(dtrain.ones(4), group=g)  # the group works before the mismatch
    dist.barrier()
    t0 = time.monotonic()
    seen = {"error": None}
    try:
        case(g)
        # every rank must raise in the mismatched call itself; one that returned from it is caught here, so the
        # report says so rather than leaving the job hanging
        seen["first_call_passed"] = True
        dist.barrier(group=g)
    except Exception as e:
        seen.update(error=type(e).__name__, message=str(e), runtime_error=isinstance(e, RuntimeError))
    seen["seconds"] = time.monotonic() - t0
    report[case.__name__] = seen
    dist.barrier()  # the world's group is untouched by the mismatch
with open(os.path.join(out_dir, f"rank{me}.json"), "w") as f:
    json.dump(report, f)
# every report on disk before any rank leaves: hydra kills the others as soon as one exits without finalizing
dist.barrier()
sys.stdout.flush()
os._exit(0)
