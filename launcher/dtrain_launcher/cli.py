"""dtrain-run: start a dtrain job, N ranks of one script forming one MPI world (like torchrun).

    dtrain-run -n 4 train.py --lr 0.1
    dtrain-run -n 8 --hosts node1:4,node2:4 -m mypkg.train
    dtrain-run --slurm --nodes 2 --ntasks-per-node 4 --gpus-per-node 4 --wait train.py
"""
import argparse
import os
import sys
import tempfile

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
    parser.add_argument("--srun-mpi", default=os.environ.get("DTRAIN_SRUN_MPI", "pmi2"),
                        help="srun's --mpi plugin inside a SLURM allocation (default: pmi2, or DTRAIN_SRUN_MPI)")
    slurm = parser.add_argument_group("SLURM submission (--slurm)")
    slurm.add_argument("--slurm", action="store_true", help="submit the job with sbatch instead of running it here")
    slurm.add_argument("--nodes", type=int, help="machines (default: 1)")
    slurm.add_argument("--ntasks-per-node", type=int, help="ranks per machine (default: --gpus-per-node, else 1)")
    slurm.add_argument("--gpus-per-node", type=int, help="GPUs per machine (0 removes the template's line)")
    slurm.add_argument("--cpus-per-task", type=int, help="CPU cores per rank (0 removes the template's line)")
    slurm.add_argument("--mem", help="memory per machine as sbatch takes it, e.g. 64G")
    slurm.add_argument("--exclusive", action=argparse.BooleanOptionalAction, default=None,
                       help="whole machines for the job (--no-exclusive removes the template's line)")
    slurm.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                       help="set any other #SBATCH line of the batch script, e.g. --sbatch constraint=a100 "
                       "(KEY= removes it; repeatable)")
    slurm.add_argument("--time", help="time limit, e.g. 01:00:00")
    slurm.add_argument("--partition", help="partition (default: the site's default)")
    slurm.add_argument("--account", help="account to charge")
    slurm.add_argument("--job-name", help="job name (default: dtrain)")
    slurm.add_argument("--output", help="output file (default: dtrain-%%j.out; %%j is the job id)")
    slurm.add_argument("--template", help="batch script to use instead of the built-in one; its #SBATCH lines "
                       "are set from the options above, and it must run `dtrain-run \"$@\"` (or srun ... \"$@\")")
    slurm.add_argument("--wait", action="store_true",
                       help="follow the job, print its output as it grows, exit with its exit status")
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
        master_addr=args.master_addr, master_port=args.master_port, srun_mpi=args.srun_mpi)


_SLURM_ONLY = ("nodes", "ntasks_per_node", "gpus_per_node", "cpus_per_task", "mem", "exclusive", "sbatch", "time",
               "partition", "account", "job_name", "output", "template", "wait")


def _tasks(args, parser):
    """(nodes, ranks per node) as sbatch reads -N, -n and --ntasks-per-node: -n alone is that many on one node.

    None keeps a --template's own line (without a template, 1).
    """
    per_node = args.ntasks_per_node or args.gpus_per_node
    if args.nproc is None:
        if args.template:
            return args.nodes, per_node
        return args.nodes or 1, per_node or 1
    nodes = args.nodes or 1
    if args.nproc < 1:
        parser.error(f"-n must be at least 1, got {args.nproc}")
    if args.ntasks_per_node is not None:
        if args.nproc != nodes * args.ntasks_per_node:
            parser.error(f"-n {args.nproc} disagrees with --nodes {nodes} x --ntasks-per-node {args.ntasks_per_node}")
        return nodes, args.ntasks_per_node
    if args.nproc % nodes:
        # sbatch would place them unevenly; dtrain-run's ranks-per-node layout needs them even
        parser.error(f"-n {args.nproc} does not divide evenly over --nodes {nodes}; give -n as a multiple of "
                     f"{nodes} or --ntasks-per-node")
    return nodes, args.nproc // nodes


def _extra_directives(items, parser):
    extra = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not eq or not key:
            parser.error(f"--sbatch expects KEY=VALUE, got {item!r}")
        extra[key] = value.strip()
    return extra


def batch_job(args, parser) -> tuple:
    """--slurm: (batch script text, the arguments for dtrain-run inside the job)."""
    from . import slurm

    if args.hosts or args.hostfile:
        parser.error("--hosts/--hostfile do not apply to --slurm: SLURM chooses the machines")
    if args.master_addr or args.master_port:
        parser.error("--master-addr/--master-port do not apply to --slurm: the job sets them on its first node")
    nodes, per_node = _tasks(args, parser)
    options = slurm.SlurmOptions(nodes=nodes, ntasks_per_node=per_node, gpus_per_node=args.gpus_per_node,
                                 cpus_per_task=args.cpus_per_task, mem=args.mem, exclusive=args.exclusive,
                                 time=args.time, partition=args.partition, account=args.account,
                                 job_name=args.job_name, output=args.output,
                                 extra=_extra_directives(args.sbatch, parser))
    template = slurm.DEFAULT_TEMPLATE
    if args.template:
        with open(args.template) as f:
            template = f.read()
    script = slurm.render_batch_script(options, template)
    # dtrain-run inside the job: same options, minus the submission ones
    # without a count here, dtrain-run in the job takes the allocation's SLURM_NTASKS
    inner = ["-n", str(nodes * per_node)] if nodes and per_node else []
    inner += ["--srun-mpi", args.srun_mpi]
    inner += ["--log-dir", os.path.abspath(args.log_dir)] if args.log_dir else []
    inner += ["--tee"] if args.tee else []
    inner += ["--ranks-filter", args.ranks_filter] if args.ranks_filter else []
    inner += ["--max-restarts", str(args.max_restarts)] if args.max_restarts else []
    inner += ["--timeout", str(args.timeout)] if args.timeout else []
    inner += ["-m"] if args.module else []
    inner += [args.training_script, *args.training_script_args]
    return script, inner


def _submit(args, parser) -> int:
    """--slurm: render the batch script, sbatch it with dtrain-run's arguments, print the job id."""
    from . import slurm

    script, inner = batch_job(args, parser)
    # sbatch does not create the output file's folder: the job would fail at once with "exit code 0:53"
    slurm.make_output_dirs(script)
    # the job runs this very dtrain-run, also where it is not on the nodes' PATH
    env = dict(os.environ, DTRAIN_RUN=f"{sys.executable} -m dtrain_launcher")
    with tempfile.NamedTemporaryFile("w", prefix="dtrain-", suffix=".sbatch", delete=False) as f:
        f.write(script)
    try:
        job_id = slurm.submit(f.name, inner, env=env)  # sbatch keeps its own copy of the script
    finally:
        os.unlink(f.name)
    print(f"Submitted batch job {job_id}", flush=True)
    return slurm.wait(job_id) if args.wait else 0


def main(argv=None):
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.slurm:
        try:
            code = _submit(args, parser)
        except (RuntimeError, OSError) as e:
            print(f"dtrain-run: error: {e}", file=sys.stderr)
            code = 1
        sys.exit(code)
    given = [name for name in _SLURM_ONLY
             if getattr(args, name) not in (None, False, []) or (name == "exclusive" and args.exclusive is False)]
    if given:
        parser.error(f"--{given[0].replace('_', '-')} needs --slurm")
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
