"""Two ranks, one emulated device each: rank 1 joins an NCCL all_reduce 6 s late, rank 0 times out after 1 s
and closes the group, which must return at once (the communicator aborted, not destroyed). Prints what it saw."""
import datetime
import sys
import time

from mpi4py import MPI

import dtrain as torch
import dtrain.distributed as dist

dist.init_process_group("mpi")
rank = dist.get_rank()
torch.cuda.set_device(rank)
g = dist.new_group(backend="nccl", timeout=datetime.timedelta(seconds=1))
x = torch.ones(4, device=f"cuda:{rank}")
dist.all_reduce(x, group=g)  # both communicators exist and work
assert x.tolist() == [2.0] * 4, x
if rank == 0:
    try:
        dist.all_reduce(x, group=g)
        sys.exit("rank 0: the all_reduce did not time out")
    except dist.DistBackendError as e:
        print(f"rank 0 timed out: {e}", flush=True)
    start = time.monotonic()
    dist.destroy_process_group(g)
    took = time.monotonic() - start
    print(f"rank 0 closed in {took:.2f} s", flush=True)
    if took > 3:
        sys.exit(f"rank 0: closing the timed-out NCCL group took {took:.1f} s: it waited for the hung operation")
else:
    time.sleep(6)
    dist.all_reduce(x, group=g)  # completes what rank 0 left in flight
    dist.destroy_process_group(g)
    print("rank 1 done", flush=True)
MPI.COMM_WORLD.Barrier()
dist.destroy_process_group()
