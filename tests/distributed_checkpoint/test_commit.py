"""A checkpoint commit that crashes at any step leaves a complete checkpoint under the name a reader asks for (the
old or the new one); the next save cleans up after it; rotation never deletes the only complete copy; loads are
safe by default."""
import errno
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import dtrain
import dtrain.distributed.checkpoint as dcp
from dtrain.distributed.checkpoint import _fs

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "scripts", "crash_commit.py")

# (stage, how the commit switches directories, which checkpoint a reader must find after the crash)
STAGES = [("item", "swap", 1), ("metadata", "swap", 1), ("exchanged", "swap", 2),
          ("item", "renames", 1), ("metadata", "renames", 1), ("moved_old", "renames", 1), ("renamed", "renames", 2)]


def _crash(tmp_path, stage, how):
    proc = subprocess.run([sys.executable, SCRIPT, str(tmp_path), stage, how], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 17, proc.stdout + proc.stderr
    assert "not reached" not in proc.stdout


def _read(target):
    got = {"w": dtrain.zeros(100, 700), "tag": None}
    dcp.load(got, checkpoint_id=target)
    return got


@pytest.mark.parametrize("stage,how,found", STAGES)
def test_a_crash_at_any_step_of_the_commit_leaves_a_complete_checkpoint(tmp_path, stage, how, found):
    _crash(tmp_path, stage, how)
    target = tmp_path / "ckpt"
    got = _read(target)
    np.testing.assert_array_equal(got["w"].numpy(), np.full((100, 700), float(found), np.float32))
    assert got["tag"] == {1: "one", 2: "two"}[found]
    assert any(_fs.is_temporary(n) for n in os.listdir(tmp_path))  # the crash left its temporaries
    # the next save to the same place removes what the crashed writer left, and commits
    dcp.save({"w": dtrain.full((100, 700), 3.0), "tag": "three"}, checkpoint_id=target)
    assert os.listdir(tmp_path) == ["ckpt"]
    assert _read(target)["tag"] == "three"


@pytest.mark.parametrize("stage", ["latest", "rotate"])
def test_a_crash_between_training_state_steps_leaves_latest_complete(tmp_path, stage):
    _crash(tmp_path, stage, "swap")
    model = dtrain.nn.Linear(50, 40, bias=False)
    assert dcp.TrainingState(model=model).load_latest(tmp_path) == (1 if stage == "latest" else 2)
    assert (model.weight.detach().numpy() == (1 if stage == "latest" else 2)).all()


def test_rotation_keeps_a_copy_renamed_aside_by_an_interrupted_commit(tmp_path, monkeypatch):
    # the two-rename commit interrupted between its renames: `step_2` is missing, its complete previous
    # version is renamed aside, and the new one sits complete under its temporary name
    model = dtrain.nn.Linear(3, 2)
    ts = dcp.TrainingState(model=model)
    ts.save(tmp_path, 1)
    ts.save(tmp_path, 2)
    monkeypatch.setattr(_fs, "_exchange", lambda a, b: (_ for _ in ()).throw(OSError(errno.EINVAL, "no swap")))

    def die(step):
        raise SystemExit("crash")
    monkeypatch.setattr(_fs, "_fault", die)
    with pytest.raises(SystemExit):
        ts.save(tmp_path, 2)
    monkeypatch.setattr(_fs, "_fault", None)
    step2 = tmp_path / "step_00000002"
    assert not step2.exists()
    # what a reader finds meanwhile: the copy renamed aside, under the name it asked for
    assert dcp.TrainingState(model=dtrain.nn.Linear(3, 2)).load_latest(tmp_path) == 2
    # the leftovers are this (live) process's, so rotation leaves them; pretend its writer is gone
    monkeypatch.setattr(_fs, "_writer_gone", lambda host, pid: True)
    _fs.rotate(str(tmp_path), keep_last=1)
    assert sorted(os.listdir(tmp_path)) == ["latest", "step_00000002"]
    assert dcp.TrainingState(model=dtrain.nn.Linear(3, 2)).load_latest(tmp_path) == 2


def test_rotation_never_deletes_the_last_complete_copy(tmp_path):
    ts = dcp.TrainingState(model=dtrain.nn.Linear(3, 2))
    ts.save(tmp_path, 1)
    os.makedirs(tmp_path / "step_00000005")  # a directory without metadata is no checkpoint
    _fs.rotate(str(tmp_path), keep_last=1)
    assert (tmp_path / "step_00000001" / ".metadata").exists()
    _fs.rotate(str(tmp_path), keep_last=0)  # 0 keeps everything, as before
    assert (tmp_path / "step_00000001").exists()


def test_live_writers_temporaries_are_left_alone(tmp_path):
    target = tmp_path / "ckpt"
    mine = f"{target}{_fs.temp_suffix()}"  # this process: live
    init = f"{target}.tmp-{_fs._HOST}-1-0123abcd"  # pid 1 is always alive
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    dead = f"{target}.tmp-{_fs._HOST}-{gone}-0123abcd"
    other_host = f"{target}.tmp-elsewhere-{gone}-0123abcd"
    other_target = f"{target}x.tmp-{_fs._HOST}-{gone}-0123abcd"
    for p in (mine, init, dead, other_host, other_target):
        os.makedirs(p)
    dcp.save({"a": dtrain.ones(2)}, checkpoint_id=target)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in
                                                  (str(target), mine, init, other_host, other_target))


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PAYLOAD_RAN",))


def test_load_is_weights_only_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dcp.save({"w": dtrain.ones(3), "evil": _Payload(), "ok": {"lr": 0.1, "betas": (0.9, 0.99)}},
             checkpoint_id=tmp_path / "c")
    got = {"w": dtrain.zeros(3), "evil": None}
    with pytest.raises(pickle.UnpicklingError, match=r"(?s)key 'evil' of checkpoint .*Weights only load failed.*"
                                                     r"Unsupported global: GLOBAL posix.system"):
        dcp.load(got, checkpoint_id=tmp_path / "c")
    assert not (tmp_path / "PAYLOAD_RAN").exists()
    from dtrain.distributed.checkpoint.state_dict_loader import load_all
    with pytest.raises(pickle.UnpicklingError):
        load_all(tmp_path / "c")
    assert not (tmp_path / "PAYLOAD_RAN").exists()
    plain = {"w": dtrain.zeros(3), "ok": {"lr": None, "betas": None}}
    dcp.load(plain, checkpoint_id=tmp_path / "c")  # plain values and tensors load by default
    assert plain["ok"] == {"lr": 0.1, "betas": (0.9, 0.99)} and plain["w"].tolist() == [1.0, 1.0, 1.0]
    dcp.load(got, checkpoint_id=tmp_path / "c", weights_only=False)  # the caller's explicit opt-out
    assert (tmp_path / "PAYLOAD_RAN").exists()
