"""SLURM helpers without a SLURM: node lists, tasks per node, rank variables, batch scripts, the CLI."""
import os
import subprocess
import sys

import pytest

from dtrain_launcher import slurm
from dtrain_launcher.api import LaunchConfig, srun_command

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


@pytest.mark.parametrize("nodelist, hosts", [
    ("node1", ["node1"]),
    ("gpu[01-04,07]", ["gpu01", "gpu02", "gpu03", "gpu04", "gpu07"]),
    ("a[1-2],b3,c[08-10]", ["a1", "a2", "b3", "c08", "c09", "c10"]),
    ("x[9-11]", ["x9", "x10", "x11"]),
    ("n[098-101]", ["n098", "n099", "n100", "n101"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("rack1-[3,5]", ["rack1-3", "rack1-5"]),
    (" h1, h2 ", ["h1", "h2"]),
])
def test_expand_nodelist(nodelist, hosts):
    assert slurm.expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("bad", ["gpu[01-04", "gpu01]", "gpu[4-1]", "gpu[a-b]"])
def test_expand_nodelist_errors(bad):
    with pytest.raises(ValueError, match="node list"):
        slurm.expand_nodelist(bad)


@pytest.mark.parametrize("spec, counts", [
    ("4", [4]), ("2(x3),1", [2, 2, 2, 1]), ("1,2,3", [1, 2, 3]), ("8(x2)", [8, 8])])
def test_parse_tasks_per_node(spec, counts):
    assert slurm.parse_tasks_per_node(spec) == counts


def test_parse_tasks_per_node_error():
    with pytest.raises(ValueError, match="2x3"):
        slurm.parse_tasks_per_node("2x3")


def test_rank_env_from_slurm_variables():
    # rank 5 of 7 = third task on the second node of "2(x3),1" over gpu[01-03],gpu07
    env = {"SLURM_PROCID": "5", "SLURM_LOCALID": "2", "SLURM_NODEID": "1", "SLURM_NTASKS": "7",
           "SLURM_STEP_NUM_TASKS": "7", "SLURM_STEP_TASKS_PER_NODE": "3(x2),1",
           "SLURM_STEP_NODELIST": "gpu[01-02],gpu07"}
    assert slurm.rank_env(env) == {"RANK": 5, "LOCAL_RANK": 2, "WORLD_SIZE": 7, "LOCAL_WORLD_SIZE": 3,
                                   "NODE_RANK": 1, "MASTER_ADDR": "gpu01"}
    # a batch-level view: no step variables, the job's own
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_TASKS_PER_NODE": "2", "SLURM_JOB_NODELIST": "a[3-4]"}
    assert slurm.rank_env(env) == {"RANK": 0, "LOCAL_RANK": 0, "WORLD_SIZE": 2, "LOCAL_WORLD_SIZE": 2,
                                   "NODE_RANK": 0, "MASTER_ADDR": "a3"}
    with pytest.raises(RuntimeError, match="SLURM_PROCID"):
        slurm.rank_env({})


def test_restart_count():
    assert slurm.restart_count({}) == 0
    assert slurm.restart_count({"SLURM_RESTART_COUNT": "2"}) == 2


def test_render_batch_script():
    with open(os.path.join(REPO, "slurm", "one_node.sbatch")) as f:
        template = f.read()
    options = slurm.SlurmOptions(nodes=1, ntasks_per_node=2, gpus_per_node=0, time="00:05:00",
                                 partition="debug", job_name="t", output="/tmp/x-%j.out")
    text = slurm.render_batch_script(options, template)
    directives = [line for line in text.splitlines() if line.startswith(("#SBATCH", "##SBATCH"))]
    assert "#SBATCH --ntasks-per-node=2" in directives
    assert "#SBATCH --time=00:05:00" in directives
    assert "#SBATCH --partition=debug" in directives  # the commented line, now set
    assert "#SBATCH --output=/tmp/x-%j.out" in directives
    assert not any("gpus-per-node" in line for line in directives)  # 0 removes it
    assert "##SBATCH --account=myproject" in directives  # not asked for: untouched
    assert "#SBATCH --signal=USR1@90" in directives
    # everything else of the template is kept, in order
    rest = [line for line in text.splitlines() if "SBATCH" not in line]
    assert rest == [line for line in template.splitlines() if "SBATCH" not in line]
    # an option the template lacks goes after its last #SBATCH line
    text = slurm.render_batch_script(slurm.SlurmOptions(account="proj"), "#!/bin/bash\n#SBATCH --nodes=1\necho hi\n")
    assert text == "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --account=proj\necho hi\n"


def test_exit_status():
    assert slurm.exit_status({"JobState": "COMPLETED", "ExitCode": "0:0"}) == 0
    assert slurm.exit_status({"JobState": "FAILED", "ExitCode": "3:0"}) == 3
    assert slurm.exit_status({"JobState": "CANCELLED", "ExitCode": "0:15"}) == 128 + 15
    assert slurm.exit_status({"JobState": "TIMEOUT", "ExitCode": "0:0"}) == 1


def test_srun_command_mpi_plugin():
    cmd = srun_command(LaunchConfig(nproc=4), ["train.py"])
    assert cmd[:4] == ["srun", "--mpi=pmi2", "--kill-on-bad-exit=1", "--ntasks=4"]
    assert srun_command(LaunchConfig(nproc=2, srun_mpi="pmix"), ["t.py"])[1] == "--mpi=pmix"


def _cli(*args, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "dtrain_launcher", *args], capture_output=True, text=True,
                          env=full, timeout=60)


def test_cli_slurm_option_errors():
    r = _cli("--nodes", "2", "train.py")
    assert r.returncode == 2 and "--nodes needs --slurm" in r.stderr
    r = _cli("--slurm", "-n", "3", "--nodes", "2", "--ntasks-per-node", "2", "train.py")
    assert r.returncode == 2 and "-n 3 disagrees with --nodes 2 x --ntasks-per-node 2" in r.stderr
    r = _cli("--slurm", "--hosts", "a:1", "train.py")
    assert r.returncode == 2 and "--hosts/--hostfile do not apply to --slurm" in r.stderr


def test_cli_default_nproc_and_mpi_plugin_in_allocation(monkeypatch):
    from dtrain_launcher import cli
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_NTASKS", "6")
    monkeypatch.setenv("DTRAIN_SRUN_MPI", "pmix")
    parser = cli.get_args_parser()
    config = cli.config_from_args(parser.parse_args(["train.py"]), parser)
    assert (config.nproc, config.srun_mpi) == (6, "pmix")
    config = cli.config_from_args(parser.parse_args(["--srun-mpi", "pmi2", "-n", "2", "train.py"]), parser)
    assert (config.nproc, config.srun_mpi) == (2, "pmi2")


def test_launcher_stays_stdlib_only():
    code = ("import sys; import dtrain_launcher.slurm, dtrain_launcher.cli; "
            "bad = [m for m in ('numpy', 'dtrain', 'cupy', 'mpi4py') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _batch(*argv):
    from dtrain_launcher import cli
    parser = cli.get_args_parser()
    script, inner = cli.batch_job(parser.parse_args(["--slurm", *argv]), parser)
    return [line for line in script.splitlines() if line.startswith("#SBATCH")], inner


@pytest.mark.parametrize("argv, nodes, per_node, n", [
    (["-n", "8"], 1, 8, 8),                                  # -n alone: one machine, as sbatch -n 8
    (["--nodes", "1", "-n", "8"], 1, 8, 8),
    (["--nodes", "2", "-n", "8"], 2, 4, 8),                  # divided as sbatch -N 2 -n 8
    (["--nodes", "2", "--ntasks-per-node", "3", "-n", "6"], 2, 3, 6),
    (["--gpus-per-node", "4"], 1, 4, 4),                     # one rank per GPU
    ([], 1, 1, 1),
])
def test_slurm_task_counts(argv, nodes, per_node, n):
    directives, inner = _batch(*argv, "train.py")
    assert f"#SBATCH --nodes={nodes}" in directives and f"#SBATCH --ntasks-per-node={per_node}" in directives
    assert inner[:2] == ["-n", str(n)] and inner[-1] == "train.py"


def test_slurm_uneven_task_count_is_refused():
    r = _cli("--slurm", "--nodes", "3", "-n", "8", "train.py")
    assert r.returncode == 2 and "-n 8 does not divide evenly over --nodes 3" in r.stderr


def test_template_keeps_its_task_lines_unless_asked_and_every_resource_can_be_set():
    template = os.path.join(REPO, "slurm", "multi_node.sbatch")
    directives, inner = _batch("--template", template, "train.py", "--lr", "1")
    assert {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
            "#SBATCH --cpus-per-task=8", "#SBATCH --exclusive"} <= set(directives)
    assert inner == ["--srun-mpi", "pmi2", "train.py", "--lr", "1"]  # -n from the allocation
    directives, inner = _batch("--template", template, "-n", "2", "--gpus-per-node", "0", "--cpus-per-task", "1",
                               "--mem", "4G", "--no-exclusive", "--time", "00:05:00", "--sbatch", "constraint=cpu",
                               "--sbatch", "requeue=", "--log-dir", "logs", "train.py")
    assert {"#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=2", "#SBATCH --cpus-per-task=1", "#SBATCH --mem=4G",
            "#SBATCH --time=00:05:00", "#SBATCH --constraint=cpu"} <= set(directives)
    assert not any(key in line for line in directives for key in ("gpus-per-node", "exclusive", "requeue"))
    assert inner[:2] == ["-n", "2"] and inner[inner.index("--log-dir") + 1] == os.path.abspath("logs")
    r = _cli("--exclusive", "train.py")
    assert r.returncode == 2 and "--exclusive needs --slurm" in r.stderr
    r = _cli("--slurm", "--sbatch", "constraint", "train.py")
    assert r.returncode == 2 and "--sbatch expects KEY=VALUE" in r.stderr


def test_templates_run_dtrain_run_with_the_arguments_and_survive_a_batch_usr1():
    for name in ("one_node.sbatch", "multi_node.sbatch"):
        with open(os.path.join(REPO, "slurm", name)) as f:
            lines = [line.strip() for line in f if not line.lstrip().startswith("#")]
        assert '${DTRAIN_RUN:-dtrain-run} "$@"' in lines, name
        assert "trap : USR1" in lines, name
    assert "trap : USR1" in slurm.DEFAULT_TEMPLATE


def test_make_output_dirs(tmp_path):
    script = "#!/bin/bash\n#SBATCH --output=logs/a/%j.out\n#SBATCH --error=e/%x/err-%j\necho\n"
    assert slurm.make_output_dirs(script, cwd=str(tmp_path)) == [str(tmp_path / "logs" / "a"), str(tmp_path / "e")]
    assert (tmp_path / "logs" / "a").is_dir() and not any("%" in str(p) for p in tmp_path.rglob("*"))
    assert slurm.make_output_dirs(script, cwd=str(tmp_path)) == []  # there already
    script = f"#SBATCH --chdir={tmp_path / 'work'}\n#SBATCH -o out/x.log\n"
    assert slurm.make_output_dirs(script) == [str(tmp_path / "work" / "out")]


def test_stale_shared_memory_files_are_found_and_removed(tmp_path):
    from dtrain_launcher import _shm
    stale, held = tmp_path / "mpich_shm_dead_0", tmp_path / "mpich_shm_live_0"
    other = tmp_path / "someone_else"
    for path in (stale, held, other):
        path.write_bytes(b"\0" * 4096)
    # a live process that maps one of them, as a running rank maps its segment
    code = ("import mmap, sys, time; f = open(sys.argv[1], 'r+b'); m = mmap.mmap(f.fileno(), 4096); f.close(); "
            "print('mapped', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(held)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "mapped"
        assert _shm.stale_segments(str(tmp_path)) == [str(stale)]
        assert _shm.remove_stale_segments(str(tmp_path)) == [str(stale)]
        assert not stale.exists() and held.exists() and other.exists()
    finally:
        proc.kill()
        proc.wait()
    assert _shm.remove_stale_segments(str(tmp_path)) == [str(held)]  # its user is gone
