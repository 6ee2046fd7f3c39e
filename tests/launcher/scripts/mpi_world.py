"""Reports this rank's view of MPI.COMM_WORLD to OUT_DIR/rank<RANK>.json."""
import json
import os
import sys

from mpi4py import MPI

comm = MPI.COMM_WORLD
info = {"size": comm.Get_size(), "rank": comm.Get_rank(), "sum": comm.allreduce(comm.Get_rank())}
with open(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.json"), "w") as f:
    json.dump(info, f)
