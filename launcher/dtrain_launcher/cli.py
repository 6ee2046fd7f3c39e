"""dtrain-run: start a dtrain job, N ranks of one script forming one MPI world (like torchrun).

    dtrain-run -n 4 train.py --lr 0.1
    dtrain-run -n 8 --hosts node1:4,node2:4 -m mypkg.train
"""
import argparse
import os
import sys

from .api import LaunchConfig, in_slurm_allocation, launch


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtrain-run", allow_abbrev=False,
        description="Start N ranks of a training script as one MPI world, stop them all at the first failure.")
    parser.add_argument("-n", "--nproc", type=int, default=None,
                        help="total number of ranks (default: SLURM_NTASKS inside a SLURM allocation, else 1)")
    parser.add_argument("--hosts", help="machines and ranks per machine, e.g. h1:4,h2:4 (passed to mpiexec)")
    parser.add_argument("--hostfile", help="file listing the machines (passed to mpiexec)")
    parser.add_argument("--log-dir", help="also write each rank's output to DIR/rank<N>.log")
    parser.add_argument("--tee", action="store_true",
                        help="with --log-dir: write to the log files and the console (the default; as torchrun's --tee)")
    parser.add_argument("--ranks-filter", help="ranks whose output goes to the console, e.g. 0 or 0,3 (default: all)")
    parser.add_argument("--max-restarts", type=int, default=0, help="restart the whole job up to K times after a failure")
    parser.add_argument("--timeout", type=float, default=None, help="wall-clock limit of the whole job in seconds")
    parser.add_argument("--master-addr", help="MASTER_ADDR for torch-style rendezvous (default: the first host)")
    parser.add_argument("--master-port", type=int, help="MASTER_PORT (default: a free port)")
    parser.add_argument("-m", "--module", action="store_true",
                        help="run training_script as a module, like python -m")
    parser.add_argument("training_script", help="the script (or with -m, the module) each rank runs")
    parser.add_argument("training_script_args", nargs=argparse.REMAINDER)
    return parser


def _parse_ranks(text, nproc, parser):
    try:
        ranks = sorted({int(r) for r in text.split(",") if r.strip()})
    except ValueError:
        parser.error(f"--ranks-filter expects comma-separated ranks, got {text!r}")
    bad = [r for r in ranks if not 0 <= r < nproc]
    if bad or not ranks:
        parser.error(f"--ranks-filter {text!r}: ranks must lie in 0..{nproc - 1}")
    return ranks


def config_from_args(args, parser) -> LaunchConfig:
    nproc = args.nproc
    if nproc is None:
        nproc = int(os.environ.get("SLURM_NTASKS", "1")) if in_slurm_allocation() else 1
    if nproc < 1:
        parser.error(f"-n must be at least 1, got {nproc}")
    if args.hosts and args.hostfile:
        parser.error("--hosts and --hostfile exclude each other")
    if args.tee and not args.log_dir:
        parser.error("--tee needs --log-dir")
    if args.max_restarts < 0:
        parser.error(f"--max-restarts must be >= 0, got {args.max_restarts}")
    if args.timeout is not None and args.timeout <= 0:
        parser.error(f"--timeout must be > 0, got {args.timeout}")
    return LaunchConfig(
        nproc=nproc, hosts=args.hosts, hostfile=args.hostfile, log_dir=args.log_dir, tee=args.tee,
        ranks_filter=_parse_ranks(args.ranks_filter, nproc, parser) if args.ranks_filter else None,
        max_restarts=args.max_restarts, timeout=args.timeout,
        master_addr=args.master_addr, master_port=args.master_port)


def main(argv=None):
    parser = get_args_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    entrypoint = (["-m"] if args.module else []) + [args.training_script, *args.training_script_args]
    try:
        code = launch(config, entrypoint)
    except (RuntimeError, ValueError, OSError) as e:
        print(f"dtrain-run: error: {e}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
