"""The local SLURM that .ci/slurm-up started: skip without it, except in CI, where it is an error."""
import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SLURM_DIR = os.environ.get("DTRAIN_SLURM_DIR", "/tmp/dtrain-slurm")  # as .ci/slurm-up


def _our_conf():
    try:
        with open("/etc/slurm/slurm.conf") as f:
            return "written by dtrain .ci/slurm-up" in f.read()
    except OSError:
        return False


def _slurm_problem():
    if shutil.which("sinfo") is None:
        return "SLURM is not installed (no sinfo); run .ci/slurm-up"
    if _our_conf() and not os.path.exists(os.path.join(_SLURM_DIR, "slurmctld.pid")):
        return "the test SLURM is stopped (no slurmctld pid file); run .ci/slurm-up"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 10 s: slurmctld is not up; run .ci/slurm-up"
    states = out.stdout.split()
    if out.returncode != 0 or not states:
        return f"the SLURM daemons are not up ({out.stderr.strip()[:200]}); run .ci/slurm-up"
    if not any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in states):
        return f"no usable SLURM node (states: {' '.join(states)}); run .ci/slurm-up"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    problem = _slurm_problem()
    if problem:
        if os.environ.get("DTRAIN_CI"):
            pytest.fail(f"CI needs SLURM: {problem}", pytrace=False)
        pytest.skip(problem)
    yield
    # in CI the test setup that started the daemons also stops them; a developer's stay up
    if os.environ.get("DTRAIN_CI"):
        subprocess.run(["bash", os.path.join(REPO, ".ci", "slurm-down")], timeout=30)
