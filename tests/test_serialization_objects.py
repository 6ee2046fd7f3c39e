"""Whole objects in saved files (torch.save(model), an optimizer, a dict of both) cross between torch and dtrain in
both directions; allowlists take torch's names; protocol-2 sets; torch.load's environment switches."""
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import dtrain

HERE = os.path.dirname(os.path.abspath(__file__))
LIBS = {"torch": torch, "dtrain": dtrain}
DIRECTIONS = [("torch", "dtrain"), ("dtrain", "torch")]


def _linear(nn):
    return nn.Linear(3, 2)


def _conv_bn(nn):
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 4))


def _embed_transformer_lstm(nn):
    return nn.Sequential(nn.Embedding(10, 8), nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
                         nn.LSTM(8, 5, batch_first=True))


MODELS = {"linear": (_linear, lambda: np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)),
          "conv_bn": (_conv_bn, lambda: np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)),
          "embed_transformer_lstm": (_embed_transformer_lstm, lambda: np.arange(12).reshape(2, 6) % 10)}


def _np(t):
    return t.detach().cpu().numpy()


def _pair(kind):
    """The same model in torch and in dtrain (torch's initial weights copied over), after one training-mode
    forward so BatchNorm's running statistics and num_batches_tracked are not their defaults."""
    build, data = MODELS[kind]
    torch.manual_seed(0)
    tm = build(torch.nn)
    dm = build(dtrain.nn)
    dm.load_state_dict({k: dtrain.tensor(_np(v)) for k, v in tm.state_dict().items()})
    x = data()
    for lib, m in (("torch", tm), ("dtrain", dm)):
        with LIBS[lib].no_grad():
            m(LIBS[lib].tensor(x))
        m.eval()
    return {"torch": tm, "dtrain": dm}, x


def _first(y):
    return y[0] if isinstance(y, tuple) else y


@pytest.mark.parametrize("src,dst", DIRECTIONS)
@pytest.mark.parametrize("kind", list(MODELS))
def test_whole_model_file_loads_in_the_other_framework(kind, src, dst, tmp_path):
    models, x = _pair(kind)
    path = tmp_path / "model.pt"
    LIBS[src].save(models[src], path)
    loaded = LIBS[dst].load(path, weights_only=False)
    # the other framework's own classes, with the same modules, state and mode
    assert type(loaded) is type(models[dst])
    assert [type(m) for m in loaded.modules()] == [type(m) for m in models[dst].modules()]
    assert loaded.training is False
    want = models[src].state_dict()
    got = loaded.state_dict()
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(_np(got[k]), _np(want[k]), err_msg=k)
    assert all(isinstance(p, LIBS[dst].nn.Parameter) for p in loaded.parameters())
    with LIBS[dst].no_grad():
        out = _first(loaded(LIBS[dst].tensor(x)))
    with LIBS[src].no_grad():
        ref = _first(models[src](LIBS[src].tensor(x)))
    np.testing.assert_allclose(_np(out), _np(ref), rtol=1e-5, atol=1e-6)
    # and it trains there: a backward through the loaded module reaches every parameter
    loaded.train()
    _first(loaded(LIBS[dst].tensor(x))).float().sum().backward()
    assert all(p.grad is not None for p in loaded.parameters())


def _fit_setup(lib, opt_name):
    m = lib.nn.Linear(3, 2)
    with lib.no_grad():
        m.weight.copy_(lib.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) / 10))
        m.bias.copy_(lib.tensor(np.array([0.1, -0.2], np.float32)))
    if opt_name == "sgd_momentum":
        opt = lib.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    else:
        opt = lib.optim.Adam(m.parameters(), lr=0.01, weight_decay=0.1)
    return m, opt


def _fit_step(lib, m, opt):
    x = lib.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
    opt.zero_grad()
    m(x).pow(2).sum().backward()
    opt.step()


@pytest.mark.parametrize("src,dst", DIRECTIONS)
@pytest.mark.parametrize("opt_name", ["sgd_momentum", "adam"])
def test_model_and_optimizer_in_one_dict_cross_and_keep_training(opt_name, src, dst, tmp_path):
    m, opt = _fit_setup(LIBS[src], opt_name)
    sched = LIBS[src].optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    _fit_step(LIBS[src], m, opt)
    sched.step()
    path = tmp_path / "ckpt.pt"
    LIBS[src].save({"model": m, "optimizer": opt, "scheduler": sched, "epoch": 3}, path)
    ck = LIBS[dst].load(path, weights_only=False)
    m2, opt2, sched2 = ck["model"], ck["optimizer"], ck["scheduler"]
    assert ck["epoch"] == 3
    assert sched2.optimizer is opt2 and sched2.get_last_lr() == sched.get_last_lr()
    assert type(opt2) is getattr(LIBS[dst].optim, type(opt).__name__)
    # one object graph: the optimizer's parameters are the model's, and its state is keyed by them
    assert [id(p) for p in opt2.param_groups[0]["params"]] == [id(p) for p in m2.parameters()]
    assert set(map(id, opt2.state)) == set(map(id, m2.parameters()))
    for k, v in opt.param_groups[0].items():
        if k != "params" and k in opt2.param_groups[0]:
            assert opt2.param_groups[0][k] == v, k
    want, got = opt.state_dict()["state"], opt2.state_dict()["state"]
    for i in want:
        assert set(got[i]) == set(want[i])
        for k in want[i]:
            np.testing.assert_array_equal(_np(got[i][k]), _np(want[i][k]), err_msg=f"state[{i}][{k}]")
    # the next step on either side agrees
    _fit_step(LIBS[src], m, opt)
    _fit_step(LIBS[dst], m2, opt2)
    sched.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for p, q in zip(m.parameters(), m2.parameters()):
        np.testing.assert_allclose(_np(q), _np(p), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("opt_name", ["sgd_momentum", "adam"])
def test_optimizer_alone_crosses(opt_name, tmp_path):
    m, opt = _fit_setup(dtrain, opt_name)
    _fit_step(dtrain, m, opt)
    dtrain.save(opt, tmp_path / "opt.pt")
    topt = torch.load(tmp_path / "opt.pt", weights_only=False)
    assert type(topt).__module__.startswith("torch.optim.")
    torch.save(topt, tmp_path / "back.pt")
    opt2 = dtrain.load(tmp_path / "back.pt", weights_only=False)
    assert type(opt2) is type(opt)
    for a, b in zip(opt.param_groups[0]["params"], opt2.param_groups[0]["params"]):
        np.testing.assert_array_equal(_np(a), _np(b))


@pytest.mark.parametrize("src,dst", DIRECTIONS)
def test_user_model_class_keeps_its_path_across_frameworks(src, dst, tmp_path):
    """A user's nn.Module subclass (custom_model.TinyNet) with Adam: saved by one framework, loaded by the other;
    the file names the user's class, and what each side computes next agrees."""
    script = os.path.join(HERE, "programs", "whole_model_file.py")
    runner = os.path.join(HERE, "programs", "as_dtrain.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

    def run(lib, mode):
        cmd = [sys.executable] + ([runner] if lib == "dtrain" else []) + [script, mode, str(tmp_path / "m.pt")]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
        return dict(line.split(" ", 1) for line in p.stdout.splitlines())

    saved = run(src, "save")
    loaded = run(dst, "load")
    assert loaded["CLASS"] == "custom_model TinyNet Adam 2.0"
    np.testing.assert_allclose([float(v) for v in loaded["OUT"].split()], [float(v) for v in saved["OUT"].split()],
                               rtol=1e-5, atol=1e-6)
    assert abs(float(loaded["LOSS"]) - float(saved["LOSS"])) < 1e-5


def test_saved_module_names_torch_classes(tmp_path):
    dtrain.save(dtrain.nn.Sequential(dtrain.nn.Linear(2, 2), dtrain.nn.GELU()), tmp_path / "m.pt")
    import zipfile
    data = zipfile.ZipFile(tmp_path / "m.pt").read("archive/data.pkl")
    assert b"dtrain" not in data
    assert b"torch.nn.modules.container\nSequential" in data and b"torch.nn.modules.linear\nLinear" in data


def test_every_public_class_is_written_under_a_torch_name_torch_resolves():
    import importlib
    import inspect
    from dtrain.serialization import _dtrain_object, _torch_global_name
    checked = 0
    for sub in ["nn", "nn.modules", "optim", "optim.lr_scheduler", "nn.parameter", "utils.data", "optim.swa_utils"]:
        dmod, tmod = importlib.import_module("dtrain." + sub), importlib.import_module("torch." + sub)
        for name in dir(dmod):
            obj, tobj = getattr(dmod, name), getattr(tmod, name, None)
            if name.startswith("_") or not inspect.isclass(obj) or tobj is None \
                    or not obj.__module__.startswith("dtrain."):
                continue
            module, qualname = _torch_global_name(obj)
            found = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
            assert found is tobj, f"dtrain.{sub}.{name} is written as {module}.{qualname}"
            # and torch's own name of it comes back to dtrain's class
            assert _dtrain_object(tobj.__module__, tobj.__qualname__) is obj, f"{tobj.__module__}.{name}"
            checked += 1
    assert checked > 150


# ------------------------------------------------------------------------------------ allowlists, sets, switches

def test_weights_only_allowlist_takes_torch_names(tmp_path):
    before = dtrain.serialization.get_safe_globals()
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(3, 2), tmp_path / "t.pt")
    with pytest.raises(pickle.UnpicklingError, match=r"torch\.nn\.modules\.linear\.Linear"):
        dtrain.load(tmp_path / "t.pt", weights_only=True)
    with dtrain.serialization.safe_globals([dtrain.nn.Linear]):
        m = dtrain.load(tmp_path / "t.pt", weights_only=True)
    assert type(m) is dtrain.nn.Linear
    with dtrain.serialization.safe_globals([(dtrain.nn.Linear, "torch.nn.modules.linear.Linear")]):
        assert type(dtrain.load(tmp_path / "t.pt", weights_only=True)) is dtrain.nn.Linear
    # and torch's allowlist accepts what dtrain writes
    dtrain.save(m, tmp_path / "d.pt")
    with torch.serialization.safe_globals([torch.nn.Linear]):
        tm = torch.load(tmp_path / "d.pt", weights_only=True)
    assert type(tm) is torch.nn.Linear
    np.testing.assert_array_equal(_np(tm.weight), _np(m.weight))
    assert dtrain.serialization.get_safe_globals() == before  # the context managers restored the allowlist


def test_protocol_2_set_loads_weights_only(tmp_path):
    torch.save({"ids": {3, 1, 2}, "w": torch.ones(2)}, tmp_path / "s.pt", pickle_protocol=2)
    ref = torch.load(tmp_path / "s.pt", weights_only=True)
    got = dtrain.load(tmp_path / "s.pt", weights_only=True)
    assert got["ids"] == ref["ids"] == {1, 2, 3}
    np.testing.assert_array_equal(_np(got["w"]), _np(ref["w"]))


def _outcome(lib, path, env, monkeypatch, **kwargs):
    for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            result = type(lib.load(path, **kwargs)).__name__
        except (pickle.UnpicklingError, RuntimeError) as e:
            result = type(e).__name__ + ": " + str(e).split("\n")[0][:60]
    return result, sorted(str(x.message) for x in w if "TORCH_FORCE" in str(x.message) or "pickle_" in str(x.message))


@pytest.mark.parametrize("env", [{}, {"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"}, {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
                                 {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "yes"}, {"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "0"},
                                 {"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "true", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}])
@pytest.mark.parametrize("kwargs", [{}, {"weights_only": True}, {"weights_only": False}, {"pickle_module": pickle},
                                    {"weights_only": True, "pickle_module": pickle}, {"encoding": "latin1"}])
def test_load_environment_switches_act_as_torchs(env, kwargs, tmp_path, monkeypatch):
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "m.pt")  # a class outside the default allowlist
    want = _outcome(torch, tmp_path / "m.pt", env, monkeypatch, **kwargs)
    got = _outcome(dtrain, tmp_path / "m.pt", env, monkeypatch, **kwargs)
    assert got[1] == want[1]
    assert got[0].split(":")[0] == want[0].split(":")[0]
    if want[0] in ("Linear",) or want[0].startswith("RuntimeError"):
        assert got[0] == want[0]


def test_layouts_cross_as_torch_writes_them(tmp_path):
    torch.save({"a": torch.strided, "b": torch.sparse_coo}, tmp_path / "t.pt")
    got = dtrain.load(tmp_path / "t.pt")
    assert got["a"] is dtrain.strided and got["b"] is dtrain.sparse_coo
    dtrain.save({"a": dtrain.strided, "b": dtrain.sparse_coo}, tmp_path / "d.pt")
    assert torch.load(tmp_path / "d.pt") == {"a": torch.strided, "b": torch.sparse_coo}  # weights_only=True


def test_transformer_encoder_keeps_torchs_fast_path_flag(tmp_path):
    for batch_first in (True, False):
        tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(4, 2, 8, batch_first=batch_first), 2,
                                         enable_nested_tensor=batch_first)
        dm = dtrain.nn.TransformerEncoder(dtrain.nn.TransformerEncoderLayer(4, 2, 8, batch_first=batch_first), 2,
                                          enable_nested_tensor=batch_first)
        dtrain.save(dm, tmp_path / "e.pt")
        loaded = torch.load(tmp_path / "e.pt", weights_only=False)
        assert loaded.use_nested_tensor == tm.use_nested_tensor
        assert loaded.layers[0].activation_relu_or_gelu == tm.layers[0].activation_relu_or_gelu


def test_a_torch_global_dtrain_lacks_is_named(tmp_path):
    import zipfile
    torch.save({"m": torch.nn.Linear(2, 2)}, tmp_path / "t.pt")
    # the same file naming a torch class that dtrain has no counterpart of (same length, so offsets hold)
    src = zipfile.ZipFile(tmp_path / "t.pt")
    with zipfile.ZipFile(tmp_path / "x.pt", "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"torch.nn.modules.linear\nLinear", b"torch.nn.modules.linear\nLinxar")
            dst.writestr(info, data)
    with pytest.raises(AttributeError, match=r"torch\.nn\.modules\.linear\.Linxar, which dtrain does not have"):
        dtrain.load(tmp_path / "x.pt", weights_only=False)


def test_torchs_optimizer_modules_import_under_dtrain():
    """`from torch.optim.adamw import AdamW` (and the pickled name torch.optim.adamw.AdamW) finds dtrain's class."""
    import importlib
    import pkgutil
    import torch.optim
    checked = 0
    for m in pkgutil.iter_modules(torch.optim.__path__):
        if m.name.startswith("_") or m.name == "sparse_adam" or not m.name.islower():
            continue
        tmod = importlib.import_module(f"torch.optim.{m.name}")
        dmod = importlib.import_module(f"dtrain.optim.{m.name}")
        for name in getattr(tmod, "__all__", []):
            if name[0].isupper() and hasattr(dtrain.optim, name):
                assert getattr(dmod, name) is getattr(dtrain.optim, name), f"torch.optim.{m.name}.{name}"
                checked += 1
    assert checked >= 13


def _user_net(lib):
    class Net(lib.nn.Module):  # a user's model, as written against either framework
        def __init__(self):
            super().__init__()
            self.body = lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.Tanh())
            self.head = lib.nn.Linear(8, 2)
            self.register_buffer("shift", lib.tensor([0.5, -0.5]))
            self.scale = 3.0

        def forward(self, x):
            return self.head(self.body(x)) * self.scale + self.shift
    return Net


Net = _user_net(dtrain)  # the test module's own class, under its own path
Net.__qualname__ = "Net"
TorchNet = _user_net(torch)  # the same code against torch, which the other side maps that path to
TorchNet.__qualname__ = "TorchNet"


def _mapping_pickle_module(lib, path, cls):
    """A pickle module whose Unpickler finds the user's class `path` as `cls` (the other framework's twin)."""
    import types
    base = pickle.Unpickler

    class Unpickler(base):
        def find_class(self, module, name):
            return cls if f"{module}.{name}" == path else super().find_class(module, name)
    return types.SimpleNamespace(Unpickler=Unpickler, load=pickle.load, __name__="mapping_pickle")


def test_user_class_defined_in_the_test_module_keeps_its_path(tmp_path):
    import zipfile
    dm = Net()
    dtrain.save(dm, tmp_path / "d.pt")
    data = zipfile.ZipFile(tmp_path / "d.pt").read("archive/data.pkl")
    assert f"{Net.__module__}\nNet".encode() in data  # the user's class path, not a torch name
    tm = torch.load(tmp_path / "d.pt", weights_only=False,
                    pickle_module=_mapping_pickle_module(torch, f"{Net.__module__}.Net", TorchNet))
    assert type(tm) is TorchNet and tm.scale == 3.0 and type(tm.body[0]) is torch.nn.Linear
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    with torch.no_grad():
        want = _np(tm(torch.tensor(x)))
    np.testing.assert_allclose(_np(dm(dtrain.tensor(x))), want, rtol=1e-6)
    # and back: torch's file of its twin loads into the test module's class
    torch.save(tm, tmp_path / "t.pt")
    back = dtrain.load(tmp_path / "t.pt", weights_only=False,
                       pickle_module=_mapping_pickle_module(dtrain, f"{TorchNet.__module__}.TorchNet", Net))
    assert type(back) is Net and type(back.body[1]) is dtrain.nn.Tanh
    np.testing.assert_allclose(_np(back(dtrain.tensor(x))), want, rtol=1e-6)
