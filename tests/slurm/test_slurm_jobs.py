"""Real jobs on the one-node SLURM of .ci/slurm-up: submission, rank placement, failures, preemption."""
import os
import subprocess
import sys
import time

import pytest

from dtrain_launcher import slurm

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPTS = os.path.join(HERE, "scripts")
BIN = os.path.dirname(sys.executable)


def _env():
    # jobs inherit the submitting environment (sbatch --export=ALL): give them this venv, no stale ranks
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "DTRAIN_", "PMI_", "MPI_LOCAL", "OMPI_"))
           and k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


def _dtrain_run(*args, cwd, timeout=120):
    return subprocess.run([sys.executable, "-m", "dtrain_launcher", *args], capture_output=True, text=True,
                          env=_env(), cwd=cwd, timeout=timeout)


def _rank_lines(text, needle):
    return sorted(line for line in text.splitlines() if needle in line)


def _render(template, tmp_path, **options):
    with open(os.path.join(REPO, "slurm", template)) as f:
        text = slurm.render_batch_script(slurm.SlurmOptions(**options), f.read())
    path = tmp_path / template
    path.write_text(text)
    return str(path)


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_dtrain_run_slurm_wait_all_reduce(tmp_path):
    r = _dtrain_run("--slurm", "--ntasks-per-node", "2", "--time", "00:05:00", "--job-name", "t-allreduce",
                    "--output", str(tmp_path / "job-%j.out"), "--wait", os.path.join(SCRIPTS, "allreduce.py"),
                    cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    job_id = r.stdout.split("Submitted batch job ")[1].split()[0]
    # every rank got its place from srun, and the sum of ranks 0 + 1
    assert _rank_lines(r.stdout, "sum=") == [
        "[0] rank=0 world=2 local_rank=0 torch_local_rank=0 sum=1",
        "[1] rank=1 world=2 local_rank=1 torch_local_rank=1 sum=1"]
    assert slurm.job_info(job_id)["JobState"] == "COMPLETED"
    # what --wait streamed is the job's output file
    assert (tmp_path / f"job-{job_id}.out").read_text() == r.stdout.split("\n", 1)[1]


def test_sbatch_one_node_template_ddp_four_ranks(tmp_path):
    script = _render("one_node.sbatch", tmp_path, ntasks_per_node=4, gpus_per_node=0, cpus_per_task=1,
                     time="00:05:00", output=str(tmp_path / "ddp-%j.out"))
    job_id = slurm.submit(script, [os.path.join(SCRIPTS, "ddp.py")], env=_env())
    with open(os.devnull, "wb") as sink:
        assert slurm.wait(job_id, poll=0.5, out=sink) == 0
    out = (tmp_path / f"ddp-{job_id}.out").read_text()
    lines = _rank_lines(out, "in_sync")
    assert [line.split()[0] for line in lines] == ["[0]", "[1]", "[2]", "[3]"], out
    assert all("world=4 in_sync spread=0.0" in line for line in lines)


def test_sbatch_multi_node_template(tmp_path):
    # the arguments are the script's: the template hands them to dtrain-run, which places the ranks
    script = _render("multi_node.sbatch", tmp_path, nodes=1, ntasks_per_node=4, gpus_per_node=0,
                     cpus_per_task=1, exclusive=False, time="00:05:00", output=str(tmp_path / "mn-%j.out"))
    job_id = slurm.submit(script, [os.path.join(SCRIPTS, "allreduce.py")], env=_env())
    with open(os.devnull, "wb") as sink:
        assert slurm.wait(job_id, poll=0.5, out=sink) == 0
    out = (tmp_path / f"mn-{job_id}.out").read_text()
    assert _rank_lines(out, "sum=") == [
        f"[{r}] rank={r} world=4 local_rank={r} torch_local_rank={r} sum=6" for r in range(4)], out


def test_dtrain_run_multi_node_template_with_overrides_and_a_missing_output_folder(tmp_path):
    # the template's 8 CPUs per task, 4 GPUs and whole nodes would not fit this node: overridden here
    r = _dtrain_run("--slurm", "--template", os.path.join(REPO, "slurm", "multi_node.sbatch"),
                    "--nodes", "1", "--ntasks-per-node", "2", "--gpus-per-node", "0", "--cpus-per-task", "1",
                    "--no-exclusive",
                    "--time", "00:05:00", "--output", "logs/day1/mn-%j.out", "--wait",
                    os.path.join(SCRIPTS, "allreduce.py"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    job_id = r.stdout.split("Submitted batch job ")[1].split()[0]
    assert _rank_lines(r.stdout, "sum=") == [
        f"[{k}] rank={k} world=2 local_rank={k} torch_local_rank={k} sum=1" for k in range(2)]
    assert (tmp_path / "logs" / "day1" / f"mn-{job_id}.out").read_text().count("sum=") == 2
    assert slurm.job_info(job_id)["JobState"] == "COMPLETED"
    # a folder named after the job id cannot be made before there is one: the failure names it
    r = _dtrain_run("--slurm", "--output", "out/%j/x.out", "--wait", os.path.join(SCRIPTS, "allreduce.py"),
                    cwd=tmp_path)
    job_id = r.stdout.split("Submitted batch job ")[1].split()[0]
    assert r.returncode != 0
    assert f"the job's output folder does not exist: {tmp_path / 'out' / job_id}" in r.stderr, r.stderr


def test_dtrain_run_slurm_n_means_ranks_on_one_node(tmp_path):
    r = _dtrain_run("--slurm", "-n", "3", "--time", "00:05:00", "--output", str(tmp_path / "out" / "n-%j.out"),
                    "--wait", os.path.join(SCRIPTS, "allreduce.py"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _rank_lines(r.stdout, "sum=") == [
        f"[{k}] rank={k} world=3 local_rank={k} torch_local_rank={k} sum=3" for k in range(3)]


def test_example_started_by_plain_srun_trains_as_one_ddp_job(tmp_path):
    # no dtrain-run: `import dtrain` gives the script RANK & co. from SLURM's PMI, so DDP turns on
    r = subprocess.run(["srun", "--mpi=pmi2", "-n", "2", "--time", "5", sys.executable,
                        os.path.join(REPO, "examples", "ddp_digits.py"), "--epochs", "1",
                        "--out", str(tmp_path / "digits.pt")],
                       capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = [line for line in r.stdout.splitlines() if line.startswith("ranks=")]
    assert len(summary) == 1 and summary[0].startswith("ranks=2 epochs=1"), r.stdout  # one job, rank 0 reports
    assert float(summary[0].split("test_acc=")[1].split()[0]) > 0.5  # it learned (chance: 0.1)


def test_requeue_in_the_middle_of_training_restarts_cleanly_and_logs_keep_every_run(tmp_path):
    # `scontrol requeue` kills the running ranks; the requeued run has the same job and step ids, so it
    # would attach to the MPI shared memory the killed ranks left behind, unless dtrain-run removes it
    logs = tmp_path / "logs"
    r = _dtrain_run("--slurm", "--ntasks-per-node", "2", "--log-dir", str(logs), "--output",
                    str(tmp_path / "rq-%j.out"), os.path.join(SCRIPTS, "steps.py"), "25", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.split("Submitted batch job ")[1].split()[0]
    out_file = tmp_path / f"rq-{job_id}.out"
    read = lambda: out_file.read_text() if out_file.exists() else ""  # noqa: E731
    for run in range(2):  # two requeues: the second shows the first's cleanup left nothing behind either
        _wait_for(lambda: f"rank=0 run={run} attempt=0 step 3" in read() and
                  f"rank=1 run={run} attempt=0 step 3" in read(), 90, f"step 3 of run {run}")
        subprocess.run(["scontrol", "requeue", job_id], check=True)
        _wait_for(lambda: slurm.job_info(job_id).get("Restarts") == str(run + 1), 30, f"requeue {run + 1}")
    with open(os.devnull, "wb") as sink:
        assert slurm.wait(job_id, poll=0.5, out=sink) == 0, read()
    out = read()
    # every run started cleanly at its first attempt: no failure report, no restart by dtrain-run
    assert "attempt=1" not in out and "Root Cause" not in out and "restarting the job" not in out, out
    assert _rank_lines(out, "done") == ["[0] rank=0 run=2 done", "[1] rank=1 run=2 done"]
    for rank in (0, 1):  # the rank logs were appended to, run after run
        log = (logs / f"rank{rank}.log").read_text()
        assert all(f"rank={rank} run={run} attempt=0 step 3" in log for run in range(3)), log
        assert log.index("run=0 ") < log.index("run=1 ") < log.index("run=2 ")


def test_batch_shell_survives_usr1_sent_to_it(tmp_path):
    r = _dtrain_run("--slurm", "--ntasks-per-node", "2", "--output", str(tmp_path / "b-%j.out"),
                    os.path.join(SCRIPTS, "steps.py"), "15", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.split("Submitted batch job ")[1].split()[0]
    out_file = tmp_path / f"b-{job_id}.out"
    _wait_for(lambda: out_file.exists() and "step 2" in out_file.read_text(), 60, "step 2")
    subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], check=True)
    with open(os.devnull, "wb") as sink:
        assert slurm.wait(job_id, poll=0.5, out=sink) == 0, out_file.read_text()
    assert _rank_lines(out_file.read_text(), "done") == ["[0] rank=0 run=0 done", "[1] rank=1 run=0 done"]


def test_failing_rank_fails_the_job_with_its_traceback(tmp_path):
    start = time.monotonic()
    r = _dtrain_run("--slurm", "--ntasks-per-node", "2", "--output", str(tmp_path / "fail-%j.out"), "--wait",
                    os.path.join(SCRIPTS, "fail.py"), cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert time.monotonic() - start < 25  # rank 0 sleeps 30 s: it was stopped, not waited for
    job_id = r.stdout.split("Submitted batch job ")[1].split()[0]
    assert slurm.job_info(job_id)["JobState"] == "FAILED"
    out = (tmp_path / f"fail-{job_id}.out").read_text()
    assert 'raise ValueError("rank 1 fails on purpose")' in out
    assert "Root Cause" in out and "rank      : 1" in out
    assert f"job {job_id} ended FAILED" in r.stderr


def test_impossible_request_is_refused_at_submission(tmp_path):
    r = _dtrain_run("--slurm", "--nodes", "3", os.path.join(SCRIPTS, "allreduce.py"), cwd=tmp_path, timeout=30)
    assert r.returncode == 1
    assert "dtrain-run: error: sbatch refused the job:" in r.stderr
    assert "node" in r.stderr.lower() and "Submitted" not in r.stdout


def test_srun_without_pmi_is_a_clear_error(tmp_path):
    # MpiDefault=none: two tasks, two MPI worlds of one; init_process_group must say what to do
    r = subprocess.run(["srun", "-n", "2", sys.executable, "-c",
                        "import dtrain.distributed as d; d.init_process_group()"],
                       capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=60)
    assert r.returncode != 0
    assert r.stderr.count("SLURM started 2 tasks but MPI sees a world of 1") == 2, r.stderr
    assert "srun --mpi=pmi2" in r.stderr


def test_preempted_job_checkpoints_requeues_and_resumes(tmp_path):
    ckpt, steps = tmp_path / "ckpt.pt", 15
    r = _dtrain_run("--slurm", "--ntasks-per-node", "2", "--output", str(tmp_path / "pre-%j.out"),
                    os.path.join(SCRIPTS, "preempt.py"), str(ckpt), str(steps), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.split("Submitted batch job ")[1].split()[0]
    out_file = tmp_path / f"pre-{job_id}.out"
    read = lambda: out_file.read_text() if out_file.exists() else ""  # noqa: E731
    _wait_for(lambda: "rank=1 step 3" in read() and "rank=0 step 3" in read(), 60, "step 3 of both ranks")
    # what --signal=USR1@90 does at the time limit: USR1 to every task of every step
    subprocess.run(["scancel", "--signal=USR1", job_id], check=True)
    _wait_for(lambda: (lambda i: i.get("Restarts") == "1" and i.get("JobState") == "PENDING")(slurm.job_info(job_id)),
              30, "the job to be requeued")
    assert ckpt.exists()
    # SLURM holds a requeued job until its revoked credential expires (cred_expire, 10 s in .ci/slurm-up):
    # forcing an earlier start races slurmd, which refuses to relaunch a job it has just killed
    with open(os.devnull, "wb") as sink:
        assert slurm.wait(job_id, poll=0.5, out=sink) == 0
    out = read()
    saved = int(out.split("rank=0 checkpoint at step ")[1].split()[0])
    assert 3 <= saved < steps
    assert "dtrain: job %s on" % job_id in out and ", run 1" in out
    assert _rank_lines(out, "resumed at step") == [f"[0] rank=0 resumed at step {saved}",
                                                   f"[1] rank=1 resumed at step {saved}"]
    # each step adds (1 + 2) / 2 to w: the resumed run continued the saved state, not a fresh one
    assert _rank_lines(out, "done steps=") == [f"[0] rank=0 done steps={steps} w=22.5",
                                               f"[1] rank=1 done steps={steps} w=22.5"]
    assert slurm.job_info(job_id)["JobState"] == "COMPLETED"


@pytest.mark.parametrize("mode", ["sys_exit", "sigkill"])
def test_rank_death_inside_an_allocation_is_diagnosed(mode, tmp_path):
    # dtrain-run inside salloc starts the ranks with srun; rank 1 dies after init_process_group while
    # the others wait in all_reduce: the report still names it, within seconds
    fault = os.path.join(REPO, "tests", "launcher", "scripts", "fault.py")
    proc = subprocess.Popen(["salloc", "-n", "4", sys.executable, "-m", "dtrain_launcher", "-n", "4", fault,
                             "loop" if mode == "sigkill" else mode, str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    try:
        if mode == "sigkill":
            _wait_for(lambda: all((tmp_path / f"pid{r}").exists() for r in range(4)), 60, "the ranks")
            died_at = time.time()
            os.kill(int((tmp_path / "pid1").read_text()), 9)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.terminate()  # salloc gives the allocation back on SIGTERM, not on SIGKILL
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    ended = time.time()
    if mode == "sys_exit":
        died_at = float((tmp_path / "failed_at").read_text())
    assert proc.returncode == 1, err
    assert ended - died_at < 8.0  # salloc's own start and end included
    report = err[err.index("Root Cause"):]
    assert "rank      : 1 (local_rank: 1)" in report
    expected = "error     : SystemExit: 3" if mode == "sys_exit" else "exitcode  : -9 (signal 9: SIGKILL)"
    assert expected in report, report


def test_char_gpt_is_preemption_ready_under_slurm(tmp_path):
    # no option asks for it: inside a SLURM job the example stops on USR1, saves, requeues and resumes
    ckpt, steps = tmp_path / "gpt.pt", 120
    r = _dtrain_run("--slurm", "--ntasks-per-node", "2", "--output", str(tmp_path / "gpt-%j.out"),
                    os.path.join(REPO, "examples", "char_gpt.py"), "--steps", str(steps), "--ckpt", str(ckpt),
                    "--ckpt-every", "1000", "--layers", "1", "--width", "32", "--block", "16", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.split("Submitted batch job ")[1].split()[0]
    out_file = tmp_path / f"gpt-{job_id}.out"
    read = lambda: out_file.read_text() if out_file.exists() else ""  # noqa: E731
    _wait_for(lambda: "/120 [" in read() and not read().rstrip().endswith("0/120"), 120, "training steps")
    subprocess.run(["scancel", "--signal=USR1", job_id], check=True)
    _wait_for(lambda: slurm.job_info(job_id).get("Restarts") == "1", 60, "the job to be requeued")
    with open(os.devnull, "wb") as sink:
        assert slurm.wait(job_id, poll=0.5, out=sink) == 0, read()
    out = read()
    saved = int(out.split("preempted: checkpoint at step ")[1].split(",")[0])
    assert 0 < saved < steps, out
    assert f"resumed from {ckpt} at step {saved}" in out
    assert f"ranks=2 amp=None steps={steps} " in out and "Root Cause" not in out
    assert slurm.job_info(job_id)["JobState"] == "COMPLETED"
