"""all_reduce latency and bus bandwidth: dtrain vs raw mpi4py vs torch.distributed (gloo), one table.

    python bench/collectives.py --nproc 2          # and --nproc 4
    python bench/collectives.py --nproc 2 --max-bytes 4M --trials 1   # quick check

Bus bandwidth is nccl-tests' definition, 2(n-1)/n * bytes / time: what each rank's links carry in a ring
all-reduce, comparable across world sizes. Every framework runs the same float32 sizes; each size is
timed as `reps` back-to-back calls (after warm-up), best of `trials`. dtrain and mpi4py start through
mpiexec, torch through torchrun (python -m torch.distributed.run).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))


def _parse_bytes(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def sizes(max_bytes):
    out, s = [], 4 << 10
    while s <= max_bytes:
        out.append(s)
        s *= 4
    return out


def _reps(nbytes):
    return max(5, min(200, (128 << 20) // nbytes))


# ---------------------------------------------------------------- one rank of one framework
def _time_sizes(run_one, barrier, max_bytes, trials, make):
    results = []
    for nbytes in sizes(max_bytes):
        buf = make(nbytes // 4)
        reps = _reps(nbytes)
        for _ in range(2):
            run_one(buf)
        best = float("inf")
        for _ in range(trials):
            barrier()
            t = time.perf_counter()
            for _ in range(reps):
                run_one(buf)
            best = min(best, (time.perf_counter() - t) / reps)
        results.append((nbytes, best))
    return results


def worker(framework, max_bytes, trials):
    if framework == "torch":
        import torch
        import torch.distributed as dist
        dist.init_process_group("gloo")
        rank, n = dist.get_rank(), dist.get_world_size()
        res = _time_sizes(lambda t: dist.all_reduce(t), dist.barrier, max_bytes, trials,
                          lambda k: torch.ones(k, dtype=torch.float32))
        dist.destroy_process_group()
    elif framework == "dtrain":
        sys.path.insert(0, ROOT)
        import dtrain
        import dtrain.distributed as dist
        dist.init_process_group("mpi")
        rank, n = dist.get_rank(), dist.get_world_size()
        res = _time_sizes(lambda t: dist.all_reduce(t), dist.barrier, max_bytes, trials,
                          lambda k: dtrain.ones(k, dtype=dtrain.float32))
    else:
        import numpy as np
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        rank, n = comm.Get_rank(), comm.Get_size()
        res = _time_sizes(lambda a: comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM), comm.Barrier, max_bytes, trials,
                          lambda k: np.ones(k, np.float32))
    if rank == 0:
        print("RESULT " + json.dumps({"framework": framework, "n": n, "times": res}), flush=True)


# ---------------------------------------------------------------- the driver
def _run(framework, nproc, max_bytes, trials):
    env = dict(os.environ)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # these slow current NumPy down
        env.pop(var, None)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    args = [HERE, "--worker", framework, "--max-bytes", str(max_bytes), "--trials", str(trials)]
    if framework == "torch":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), *args]
    else:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(nproc), sys.executable, *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return {b: t for b, t in json.loads(line[7:])["times"]}
    raise RuntimeError(f"{framework} run failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def _fmt_bytes(b):
    return f"{b >> 20} MB" if b >= 1 << 20 else f"{b >> 10} KB"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, nargs="+", default=[2])
    p.add_argument("--max-bytes", default="64M")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--frameworks", default="dtrain,mpi4py,torch")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args()
    max_bytes = _parse_bytes(a.max_bytes)
    if a.worker:
        return worker(a.worker, max_bytes, a.trials)
    frameworks = a.frameworks.split(",")
    for n in a.nproc:
        times = {f: _run(f, n, max_bytes, a.trials) for f in frameworks}
        busbw = lambda b, t: 2 * (n - 1) / n * b / t / 1e9  # noqa: E731  GB/s
        print(f"\nall_reduce, float32, {n} ranks: latency (us) and bus bandwidth (GB/s)")
        head = f"{'size':>8}" + "".join(f"{f + ' us':>13}{f + ' GB/s':>14}" for f in frameworks)
        if "dtrain" in frameworks and "mpi4py" in frameworks:
            head += f"{'dtrain/mpi4py':>15}"
        if "dtrain" in frameworks and "torch" in frameworks:
            head += f"{'dtrain/gloo':>13}"
        print(head)
        for b in sizes(max_bytes):
            row = f"{_fmt_bytes(b):>8}"
            for f in frameworks:
                t = times[f][b]
                row += f"{t * 1e6:>13.1f}{busbw(b, t) if n > 1 else 0:>14.3f}"
            if "dtrain" in frameworks and "mpi4py" in frameworks:
                row += f"{times['mpi4py'][b] / times['dtrain'][b]:>15.2f}"
            if "dtrain" in frameworks and "torch" in frameworks:
                row += f"{times['torch'][b] / times['dtrain'][b]:>13.2f}"
            print(row)


if __name__ == "__main__":
    main()
