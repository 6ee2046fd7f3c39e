"""SLURM: node lists, rank variables, batch scripts, submission, and help for preemptible jobs.

Stdlib only, like the rest of the launcher. A training script that wants to survive preemption:

    from dtrain_launcher import slurm

    stop = slurm.PreemptionFlag()          # first thing: a signal before the handler kills the rank
    start = load_checkpoint() if slurm.restart_count() > 0 else 0
    for step in range(start, steps):
        ...
        if stop.agreed(dist):              # every rank stops at the same step
            save_checkpoint(step + 1)      # rank 0 writes; everyone waits for it
            if dist.get_rank() == 0:
                slurm.requeue()            # the batch script requeues the job once all ranks exited
            break

The batch templates ask SLURM for ``--signal=USR1@90``: USR1 goes to every task of every job step
90 s before the time limit (``scancel --signal=USR1 JOBID`` does the same by hand).
"""
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def expand_nodelist(nodelist: str) -> list:
    """Host names of a SLURM node list: ``"gpu[01-04,07]"`` -> gpu01..gpu04, gpu07; ``"a[1-2],b3"`` -> a1, a2, b3.

    Zero padding follows the range's first bound, as SLURM does; several bracket groups
    (``"r[1-2]n[1-2]"``) expand to their product, left to right.
    """
    hosts = []
    for item in _split_top_level(nodelist.strip()):
        hosts += _expand_host(item)
    return hosts


def _split_top_level(text):
    # commas inside brackets separate ranges, not hosts
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in node list {text!r}")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unbalanced '[' in node list {text!r}")
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


def _expand_host(item):
    open_at = item.find("[")
    if open_at < 0:
        return [item]
    close_at = item.index("]", open_at)
    prefix, body, rest = item[:open_at], item[open_at + 1:close_at], item[close_at + 1:]
    suffixes = _expand_host(rest) if rest else [""]
    names = []
    for part in body.split(","):
        m = _RANGE.match(part.strip())
        if m is None:
            raise ValueError(f"bad range {part!r} in node list entry {item!r}")
        lo, hi = m.group(1), m.group(2) or m.group(1)
        if int(hi) < int(lo):
            raise ValueError(f"descending range {part!r} in node list entry {item!r}")
        width = len(lo)
        names += [f"{prefix}{n:0{width}d}" for n in range(int(lo), int(hi) + 1)]
    return [name + suffix for name in names for suffix in suffixes]


def parse_tasks_per_node(spec: str) -> list:
    """Tasks on each node from ``SLURM_TASKS_PER_NODE``-style text: ``"2(x3),1"`` -> [2, 2, 2, 1]."""
    counts = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if m is None:
            raise ValueError(f"bad tasks-per-node entry {part!r} in {spec!r}")
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts


def rank_env(environ=None) -> dict:
    """Torch-style RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, NODE_RANK, MASTER_ADDR of a task srun started.

    For scripts started by ``srun --mpi=pmi2 python train.py`` that read the torch variables;
    dtrain.distributed itself takes rank and size from MPI. Under mpiexec inside an allocation
    every rank sees ``SLURM_PROCID=0``: there, use MPI's (or dtrain-run's) values instead.
    """
    env = os.environ if environ is None else environ
    if "SLURM_PROCID" not in env:
        raise RuntimeError("not a task started by srun: SLURM_PROCID is not set")
    node = int(env.get("SLURM_NODEID", "0"))
    world = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or 1)
    per_node = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
    counts = parse_tasks_per_node(per_node) if per_node else [world]
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    return {
        "RANK": int(env["SLURM_PROCID"]),
        "LOCAL_RANK": int(env.get("SLURM_LOCALID", "0")),
        "WORLD_SIZE": world,
        "LOCAL_WORLD_SIZE": counts[node] if node < len(counts) else counts[-1],
        "NODE_RANK": node,
        "MASTER_ADDR": expand_nodelist(nodes)[0] if nodes else "127.0.0.1",
    }


# ------------------------------------------------------------------------------ preemption
def restart_count(environ=None) -> int:
    """How often SLURM has requeued this job (0 on its first run)."""
    env = os.environ if environ is None else environ
    return int(env.get("SLURM_RESTART_COUNT") or 0)


class PreemptionFlag:
    """Set when SLURM's warning signal (USR1 by default) arrives; check it at step boundaries.

    The handler only sets a flag: checkpointing from inside a signal handler could interrupt a
    collective halfway. Create it before the long imports so an early signal is not fatal.
    """

    def __init__(self, signum=signal.SIGUSR1):
        self.signum = signum
        self.set = False
        signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        self.set = True

    def agreed(self, dist) -> bool:
        """Whether any rank got the signal: an all-reduce (MAX) so that every rank stops at the same step."""
        if not dist.is_initialized() or dist.get_world_size() == 1:
            return self.set
        import dtrain
        flag = dtrain.tensor([1 if self.set else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def requeue(job_id=None):
    """Have SLURM end this job and queue it again; call it on rank 0 once the checkpoint is on disk.

    Under the batch templates (``DTRAIN_REQUEUE_FILE`` set) this only leaves a note: the batch
    script runs ``scontrol requeue`` after every rank has exited. Requeueing while the ranks still
    run kills them, and a killed MPICH rank leaves its shared-memory segment behind under a name
    made from the job and step ids, which the requeued run reuses: its MPI_Init then fails.
    Without the note file, ``scontrol requeue`` runs at once. SLURM keeps a requeued job pending
    for about two minutes (its begin time) before it starts again.
    """
    note = os.environ.get("DTRAIN_REQUEUE_FILE")
    if note and job_id is None:
        with open(note, "w") as f:
            f.write(os.environ.get("SLURM_JOB_ID", ""))
        return
    job_id = job_id or os.environ.get("SLURM_JOB_ID")
    if not job_id:
        raise RuntimeError("requeue() needs SLURM_JOB_ID: not inside a SLURM job")
    subprocess.run(["scontrol", "requeue", str(job_id)], check=True)


# ------------------------------------------------------------------------------ batch scripts
# The batch script `dtrain-run --slurm` submits when no --template is given. sbatch passes the
# arguments after the script name on to it: "$@" is dtrain-run's own options, then the script.
DEFAULT_TEMPLATE = """\
#!/bin/bash
#SBATCH --job-name=dtrain
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --output=dtrain-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=USR1@90
#SBATCH --requeue
# USR1 goes to every rank of the job step 90 s before the time limit; the ranks save a checkpoint,
# rank 0 leaves a requeue note (dtrain_launcher.slurm.requeue), they exit 0, and this script
# requeues the job. --open-mode=append keeps the output of every run in one file.
trap : USR1  # `scancel --signal=USR1 --batch` would kill this shell
export DTRAIN_REQUEUE_FILE="${SLURM_SUBMIT_DIR:-.}/.dtrain-requeue-$SLURM_JOB_ID"
rm -f "$DTRAIN_REQUEUE_FILE"
echo "dtrain: job $SLURM_JOB_ID on $SLURM_JOB_NODELIST, run ${SLURM_RESTART_COUNT:-0}"
${DTRAIN_RUN:-dtrain-run} "$@"
status=$?
if [ -e "$DTRAIN_REQUEUE_FILE" ]; then
    rm -f "$DTRAIN_REQUEUE_FILE"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit $status
"""


@dataclass
class SlurmOptions:
    """sbatch options of a job; None keeps the template's line, "", 0 or False removes it.

    `exclusive` is a flag: True writes ``#SBATCH --exclusive``. `extra` sets any other directive by
    its long name ({"constraint": "a100", "qos": ""}), so every line of a template can be overridden.
    """

    nodes: int | None = None
    ntasks_per_node: int | None = None
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    exclusive: bool | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    job_name: str | None = None
    output: str | None = None
    extra: dict | None = None

    def directives(self) -> dict:
        return {"nodes": self.nodes, "ntasks-per-node": self.ntasks_per_node,
                "gpus-per-node": self.gpus_per_node, "cpus-per-task": self.cpus_per_task, "mem": self.mem,
                "exclusive": self.exclusive, "time": self.time, "partition": self.partition,
                "account": self.account, "job-name": self.job_name, "output": self.output, **(self.extra or {})}


def render_batch_script(options: SlurmOptions, template: str = DEFAULT_TEMPLATE) -> str:
    """The template with its ``#SBATCH --key=value`` lines set from `options`.

    A line is replaced where the template has it (also a commented ``##SBATCH`` one), added after
    the last ``#SBATCH`` line where it has not, and removed for "", 0 or False (e.g. no GPUs).
    """
    lines = template.splitlines()
    for key, value in options.directives().items():
        if value is None:
            continue
        pattern = re.compile(rf"^#{{1,2}}SBATCH\s+--{re.escape(key)}(=|\s|$)")
        at = [i for i, line in enumerate(lines) if pattern.match(line)]
        if value is True:
            new = f"#SBATCH --{key}"
        else:
            new = f"#SBATCH --{key}={value}" if value not in ("", 0, False) else None
        if at:
            lines[at[0]] = new
            for i in at[1:]:
                lines[i] = None
        elif new is not None:
            last = max((i for i, line in enumerate(lines) if line is not None and line.startswith("#SBATCH")),
                       default=0)
            lines.insert(last + 1, new)
        lines = [line for line in lines if line is not None]
    return "\n".join(lines) + "\n"


def _directive(script, *keys):
    for line in script.splitlines():
        m = re.match(r"^#SBATCH\s+(--[\w-]+|-\w)(?:[=\s]\s*(\S+))?", line)
        if m and m.group(1) in keys:
            return m.group(2)
    return None


def make_output_dirs(script: str, cwd: str | None = None) -> list:
    """Create the folders of the batch script's ``--output``/``--error`` files, as sbatch does not.

    Without them the job fails as it starts (``exit code 0:53``) and writes nowhere why. Of a folder with
    SLURM's ``%`` patterns in it (``logs/%j/``), only the part before the first pattern is made: the
    rest exists once the job id does (`wait` names a folder that is still missing). Returns the folders made.
    """
    base = _directive(script, "--chdir", "-D") or cwd or os.getcwd()
    made = []
    for key in (("--output", "-o"), ("--error", "-e")):
        path = _directive(script, *key)
        folder = os.path.dirname(path) if path else ""
        if "%" in folder:
            folder = folder[:folder.index("%")].rpartition("/")[0]
        if not folder:
            continue
        folder = os.path.join(base, folder)
        if not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)
            made.append(folder)
    return made


def submit(script_path: str, args: list, env=None) -> str:
    """``sbatch --parsable script args``; returns the job id. A refusal raises RuntimeError with sbatch's message."""
    proc = subprocess.run(["sbatch", "--parsable", script_path, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"sbatch refused the job: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip().split(";")[0]  # "jobid;cluster" on federated sites


# ------------------------------------------------------------------------------ following a job
def job_info(job_id: str) -> dict:
    """``scontrol show job -o`` as a dict (JobState, ExitCode, StdOut, Restarts...); {} once SLURM forgot the job."""
    proc = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {}
    info = {}
    for token in proc.stdout.split():
        key, eq, value = token.partition("=")
        if eq and key not in info:
            info[key] = value
    return info


def _in_queue(job_id):
    proc = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def exit_status(info: dict) -> int:
    """The job's exit status for a shell: its exit code, 128 + signal when killed, 1 for a job that never ran well."""
    code, _, sig = info.get("ExitCode", "1:0").partition(":")
    code, sig = int(code or 0), int(sig or 0)
    if info.get("JobState") == "COMPLETED":
        return 0
    if sig:
        return 128 + sig
    return code or 1


class _Tail:
    """Copies what is appended to a file; starts over when the file is truncated (a requeue without append)."""

    def __init__(self, path, out):
        self.path, self.out, self.pos = path, out, 0

    def pump(self):
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.pos:
                    self.pos = 0
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return
        if data:
            self.pos += len(data)
            self.out.write(data)
            self.out.flush()


def wait(job_id: str, poll: float = 1.0, out=None) -> int:
    """Follow a job until it leaves the queue, streaming its output file; returns its exit status.

    A requeued job goes back to PENDING and is followed through its next run.
    """
    out = out or sys.stdout.buffer
    tail = None
    while True:
        queued = _in_queue(job_id)
        info = job_info(job_id)
        if tail is None and info.get("StdOut"):
            tail = _Tail(info["StdOut"], out)
        if tail is not None:
            tail.pump()
        if not queued and info.get("JobState") not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING",
                                                        "REQUEUED", "SUSPENDED"):
            break
        time.sleep(poll)
    if tail is not None:
        time.sleep(0.2)  # the node may flush the last lines just after the job ends
        tail.pump()
    if not info:
        print(f"dtrain-run: SLURM no longer knows job {job_id}; its exit status is lost", file=sys.stderr)
        return 1
    state = info.get("JobState")
    if state != "COMPLETED":
        print(f"dtrain-run: job {job_id} ended {state}, exit code {info.get('ExitCode')}", file=sys.stderr)
        missing = [p for p in {info.get("StdOut"), info.get("StdErr")} if p and not os.path.isdir(os.path.dirname(p))]
        if missing:  # slurmstepd could not open them: the job ran nothing ("exit code 0:53")
            print(f"dtrain-run: the job's output folder does not exist: {os.path.dirname(missing[0])} "
                  "(SLURM does not create it)", file=sys.stderr)
    return exit_status(info)
