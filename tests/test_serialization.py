"""dtrain.save / dtrain.load against torch in both directions, safety of weights-only loads, atomic saves."""
import collections
import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
import torch

import dtrain

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64", "complex64"]
if dtrain.bfloat16.np is not None:
    DTYPES.append("bfloat16")


def _np(t):
    return t.detach().float().numpy() if t.dtype == torch.bfloat16 else t.detach().numpy()


def _same(a, b, layout=True):
    """dtrain tensor `a` equals torch tensor `b` in dtype, shape, values (and strides, offset, requires_grad)."""
    assert a.dtype.name == str(b.dtype).replace("torch.", "")
    assert tuple(a.shape) == tuple(b.shape)
    if layout:
        assert a.stride() == b.stride() and a.storage_offset() == b.storage_offset()
        assert a.requires_grad == b.requires_grad
    np.testing.assert_array_equal(np.asarray(a.detach().float() if a.dtype is dtrain.bfloat16 else a.detach()), _np(b))


def _sample(m):
    """The same nested checkpoint built in dtrain or torch (m), with views, shared storage and every dtype."""
    g = np.random.default_rng(0)
    base = m.tensor(g.standard_normal((4, 6)), dtype=m.float32)
    out = {"dtypes": {}}
    for name in DTYPES:
        a = g.integers(0, 2, 7) if name == "bool" else g.integers(-50, 50, 7) if "int" in name else \
            g.standard_normal(7)
        out["dtypes"][name] = m.tensor(a.astype(bool) if name == "bool" else a).to(getattr(m, name))
    out.update({
        "base": base, "row": base[2], "col": base[:, 3], "t": base.t(), "slice": base[1:3, ::2],
        "scalar": m.tensor(2.5, dtype=m.float64), "empty": m.zeros(0, 3), "param": m.nn.Parameter(m.ones(3, 2)),
        "frozen": m.nn.Parameter(m.arange(4.0), requires_grad=False),
        "meta": [1, 2.5, None, True, False, "x", (1, (2, 3)), b"\x00\xffbytes", {"k": [m.tensor([7])]}],
        "size": m.Size([2, 3]), "dtype": m.float16, "device": m.device("cpu"),
        "od": collections.OrderedDict([("z", m.tensor([1.0])), ("a", 3)]),
    })
    return out


def _compare(d, t):
    if isinstance(t, torch.Tensor):
        _same(d, t)
        assert isinstance(d, dtrain.nn.Parameter) == isinstance(t, torch.nn.Parameter)
    elif isinstance(t, dict):
        assert type(d) is type(t) and list(d) == list(t)
        for k in t:
            _compare(d[k], t[k])
    elif isinstance(t, (list, tuple)) and not isinstance(t, torch.Size):
        assert type(d) is type(t) and len(d) == len(t)
        for a, b in zip(d, t):
            _compare(a, b)
    elif isinstance(t, torch.dtype):
        assert d is getattr(dtrain, str(t)[6:])
    elif isinstance(t, torch.device):
        assert str(d) == str(t)
    else:
        assert type(d).__name__ == type(t).__name__ and d == t


def test_torch_loads_dtrain_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    dtrain.save(_sample(dtrain), path)
    got = torch.load(path, weights_only=True)
    _compare(_sample(dtrain), got)
    # views of one base share one storage, as when torch saves them
    ptr = got["base"].untyped_storage().data_ptr()
    assert all(got[k].untyped_storage().data_ptr() == ptr for k in ("row", "col", "t", "slice"))
    with zipfile.ZipFile(path) as z:
        assert z.read("archive/byteorder") == b"little" and z.read("archive/version") == b"3\n"
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        data = [i for i in z.infolist() if "/data/" in i.filename]
        assert len(data) == len(DTYPES) + 7  # one record per storage: base and its views share one
    raw = path.read_bytes()
    for i in data:
        n, m = np.frombuffer(raw[i.header_offset + 26:i.header_offset + 30], "<u2")
        assert (i.header_offset + 30 + n + m) % 64 == 0


def test_dtrain_loads_torch_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save(_sample(torch), path)
    got = dtrain.load(path)
    _compare(got, _sample(torch))
    # shared storage survives the load: writing through a view shows in the base
    got["row"][0] = 100.0
    assert got["base"][2, 0].item() == 100.0 and got["t"][0, 2].item() == 100.0


def test_file_objects_and_round_trip():
    buf = io.BytesIO()
    dtrain.save(_sample(dtrain), buf)
    buf.seek(0)
    got = dtrain.load(buf)
    buf.seek(0)
    _compare(got, torch.load(buf, weights_only=True))


def test_module_and_optimizer_state(tmp_path):
    dtrain.manual_seed(0)
    model = dtrain.nn.Sequential(dtrain.nn.Linear(4, 3), dtrain.nn.ReLU(), dtrain.nn.Linear(3, 2))
    opt = dtrain.optim.Adam(model.parameters(), lr=0.01)
    model(dtrain.randn(5, 4)).sum().backward()
    opt.step()
    dtrain.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}, tmp_path / "a.pt")
    ck = torch.load(tmp_path / "a.pt", weights_only=True)
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    tmodel.load_state_dict(ck["model"])
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.01)
    topt.load_state_dict(ck["optim"])
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(tmodel(torch.from_numpy(x)).detach().numpy(),
                               model(dtrain.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    for k, v in model.state_dict().items():
        _same(v, tmodel.state_dict()[k], layout=False)  # dtrain's parameters may sit in one flat buffer
    # and back: torch's checkpoint restores a dtrain model and optimizer
    torch.save({"model": tmodel.state_dict(), "optim": topt.state_dict()}, tmp_path / "b.pt")
    ck2 = dtrain.load(tmp_path / "b.pt")
    model2 = dtrain.nn.Sequential(dtrain.nn.Linear(4, 3), dtrain.nn.ReLU(), dtrain.nn.Linear(3, 2))
    model2.load_state_dict(ck2["model"])
    opt2 = dtrain.optim.Adam(model2.parameters(), lr=0.01)
    opt2.load_state_dict(ck2["optim"])
    assert opt2.state_dict()["param_groups"] == topt.state_dict()["param_groups"]
    for k, v in opt2.state_dict()["state"][0].items():
        _same(v, topt.state_dict()["state"][0][k])


def test_map_location_and_mmap(tmp_path):
    path = tmp_path / "m.pt"
    base = torch.arange(10.0)
    torch.save({"a": base.reshape(2, 5), "v": base[3:]}, path)
    want = torch.load(path, weights_only=True)
    for ml in ("cpu", dtrain.device("cpu"), {"cpu": "cpu"}, lambda storage, loc: storage, None):
        _compare(dtrain.load(path, map_location=ml), want)
    seen = []
    dtrain.load(path, map_location=lambda storage, loc: seen.append(loc))
    assert seen == ["cpu"]  # one storage
    got = dtrain.load(path, mmap=True)
    _compare(got, want)
    chain, o = [], got["a"]._data  # the tensor's memory is the mapped file's (through the record's storage)
    while o is not None and len(chain) < 6:
        chain.append(type(o))
        o = getattr(o, "base", None) if not hasattr(o, "_memory") else o._memory
    assert np.memmap in chain
    got["a"][0, 0] = 5.0  # copy-on-write: the file keeps its values
    assert torch.load(path, weights_only=True)["a"][0, 0].item() == 0.0
    with pytest.raises(ValueError, match="mmap"):
        dtrain.load(io.BytesIO(path.read_bytes()), mmap=True)
    with pytest.raises(RuntimeError, match="CUDA"):
        if dtrain.cuda.is_available():
            raise RuntimeError("CUDA present")
        dtrain.load(path, map_location="cuda:0")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_weights_only_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "x": _Evil(marker)}, path)
    with pytest.raises(pickle.UnpicklingError, match=r"(?s)Weights only load failed.*Unsupported global: GLOBAL "
                                                     r"(posix|os)\.system"):
        dtrain.load(path)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):
        dtrain.load(path, weights_only=None)
    assert not marker.exists()
    dtrain.load(path, weights_only=False)  # trusted: runs, as torch would
    assert marker.exists()


def test_whole_module_needs_weights_only_false(tmp_path):
    dtrain.manual_seed(0)
    model = dtrain.nn.Sequential(dtrain.nn.Linear(3, 2), dtrain.nn.Tanh())
    model.act = lambda x: x * 2  # not importable by name: pickled by value
    dtrain.save(model, tmp_path / "m.pt")
    with pytest.raises(pickle.UnpicklingError, match="Unsupported global"):
        dtrain.load(tmp_path / "m.pt")
    got = dtrain.load(tmp_path / "m.pt", weights_only=False)
    x = dtrain.randn(4, 3)
    assert type(got) is dtrain.nn.Sequential and got.act(3) == 6
    np.testing.assert_array_equal(got(x).detach().numpy(), model(x).detach().numpy())
    with dtrain.serialization.safe_globals([dtrain.nn.Sequential]):
        with pytest.raises(pickle.UnpicklingError, match="Unsupported global"):
            dtrain.load(tmp_path / "m.pt")  # its Linear is still not allowed


def test_corrupt_and_truncated_files(tmp_path):
    path = tmp_path / "c.pt"
    dtrain.save({"w": dtrain.randn(1000)}, path)
    raw = path.read_bytes()
    for bad in (raw[: len(raw) // 2], raw[:-30], b"not a checkpoint at all", b""):
        (tmp_path / "bad.pt").write_bytes(bad)
        with pytest.raises(RuntimeError, match=r"PytorchStreamReader failed.*bad\.pt"):
            dtrain.load(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        dtrain.load(tmp_path / "missing.pt")


class _Boom:
    def __reduce__(self):
        raise RuntimeError("boom while pickling")


def test_failed_save_keeps_previous_file(tmp_path):
    path = tmp_path / "ck.pt"
    dtrain.save({"w": dtrain.ones(3)}, path)
    with pytest.raises(RuntimeError, match="boom"):
        dtrain.save({"w": dtrain.zeros(3), "x": _Boom()}, path)
    assert os.listdir(tmp_path) == ["ck.pt"]  # no temporary file left behind
    assert dtrain.load(path)["w"].tolist() == [1.0, 1.0, 1.0]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_killed_save_keeps_previous_file(tmp_path):
    path = tmp_path / "ck.pt"
    dtrain.save({"w": dtrain.ones(3)}, path)
    script = textwrap.dedent(f"""
        import numpy as np, dtrain
        sd = {{f"w{{i}}": dtrain.tensor(np.ones(4 << 20, np.float32)) for i in range(16)}}  # 256 MB
        print("ready", flush=True)
        dtrain.save(sd, {str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 60
    while time.time() < deadline:  # kill once the temporary file holds part of the new save
        tmps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        if tmps and tmps[0].stat().st_size > (1 << 20):
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # it died mid-save, before the rename
    assert dtrain.load(path)["w"].tolist() == [1.0, 1.0, 1.0]
    assert torch.load(path, weights_only=True)["w"].tolist() == [1.0, 1.0, 1.0]


def _save_with_view(path, offset, stride, size=None):
    """A dtrain.save file whose one tensor claims `offset`, `stride` (and `size`) on a storage of 10 floats, as a
    corrupt or crafted file would."""
    from dtrain import serialization
    real = serialization._StorageTable.tensor_args

    def crafted(self, t):
        ref, _, _ = real(self, t)
        return ref, offset, stride
    t = dtrain.arange(10.0) if size is None else dtrain.arange(10.0)[:size[0]]
    serialization._StorageTable.tensor_args = crafted
    try:
        dtrain.save({"w": t}, path)
    finally:
        serialization._StorageTable.tensor_args = real


@pytest.mark.parametrize("offset,stride,size", [(5, (1,), None), (0, (2,), None), (9, (1,), (2,))])
def test_views_past_their_storage_are_refused_like_torch(tmp_path, offset, stride, size):
    path = tmp_path / "bad.pt"
    _save_with_view(path, offset, stride, size)
    with pytest.raises(RuntimeError, match="Trying to resize storage that is not resizable"):
        torch.load(path)  # torch refuses it too, in words of its own
    with pytest.raises(RuntimeError, match=r"out of bounds for storage archive/data/0 of size 40 "):
        dtrain.load(path)
    with pytest.raises(RuntimeError, match=r"out of bounds for storage archive/data/0 "):
        dtrain.load(path, mmap=True)


def test_negative_strides_are_refused(tmp_path):
    path = tmp_path / "neg.pt"
    _save_with_view(path, 9, (-1,))
    with pytest.raises(RuntimeError):
        torch.load(path)
    with pytest.raises(RuntimeError, match=r"storage archive/data/0 has negative strides \[-1\]"):
        dtrain.load(path)


def test_a_view_that_ends_at_its_storage_end_loads(tmp_path):
    path = tmp_path / "ok.pt"
    _save_with_view(path, 4, (3,), (2,))  # elements 4 and 7 of 10
    got, want = dtrain.load(path)["w"], torch.load(path)["w"]
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert got.stride() == want.stride() == (3,)


@pytest.mark.parametrize("src,dst", [("SGD", "Adam"), ("SGD", "AdamW"), ("SGD", "RMSprop"), ("Adam", "SGD"),
                                     ("Adam", "Adagrad")])
def test_optimizer_rejects_another_optimizers_state_at_load_as_torch_does(src, dst):
    results = []
    for lib in (torch, dtrain):
        lib.manual_seed(0)
        m = lib.nn.Linear(3, 2)
        kw = {"momentum": 0.9} if src == "SGD" else {}
        a = getattr(lib.optim, src)(m.parameters(), lr=0.1, **kw)
        m(lib.ones(1, 3)).sum().backward()
        a.step()
        b = getattr(lib.optim, dst)(m.parameters(), lr=0.1, **({"momentum": 0.9} if dst == "SGD" else {}))
        try:
            b.load_state_dict(a.state_dict())
            results.append("loaded")
        except Exception as e:
            results.append((type(e), str(e)))
    assert results[0] == results[1]


@pytest.mark.parametrize("to_path", [True, False])
def test_legacy_non_zip_files_written_by_torch_load_as_torch_loads_them(tmp_path, to_path):
    want = _sample(torch)
    target = tmp_path / "legacy.pt" if to_path else io.BytesIO()
    torch.save(want, target, _use_new_zipfile_serialization=False)
    if not to_path:
        target.seek(0)
    assert (target.read_bytes() if to_path else target.getvalue())[:2] == b"\x80\x02"  # a pickle, not a zip
    got = dtrain.load(target)
    _compare(got, want)
    assert np.shares_memory(got["row"].numpy(), got["base"].numpy())  # views of one storage stay views


def test_legacy_files_are_weights_only_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch PAYLOAD_RAN",))
    torch.save({"w": torch.ones(2), "evil": Payload()}, tmp_path / "evil.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(pickle.UnpicklingError, match="GLOBAL posix.system"):
        torch.load(tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError, match="Unsupported global: GLOBAL posix.system"):
        dtrain.load(tmp_path / "evil.pt")
    assert not (tmp_path / "PAYLOAD_RAN").exists()


def test_legacy_files_truncated_or_mapped_are_refused_by_name(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.arange(100.0)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(RuntimeError, match="mmap can only be used with files saved with"):
        torch.load(path, mmap=True)
    with pytest.raises(RuntimeError, match="mmap can only be used with files saved with"):
        dtrain.load(path, mmap=True)
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:-40])
    with pytest.raises(RuntimeError):
        torch.load(tmp_path / "cut.pt")
    with pytest.raises(RuntimeError, match=r"cut.pt: legacy torch.save file ends inside storage .*: it is truncated"):
        dtrain.load(tmp_path / "cut.pt")


def test_the_next_save_removes_what_an_interrupted_save_left(tmp_path):
    path = tmp_path / "model.pt"
    # a save killed while writing: its temporary file stays behind
    crash = textwrap.dedent(f"""
        import os, dtrain
        from dtrain import serialization
        real = serialization._zip_put
        def put(zf, name, data):
            real(zf, name, data)
            if name.startswith("archive/data/"):
                os._exit(9)
        serialization._zip_put = put
        dtrain.save({{"w": dtrain.ones(1000)}}, {str(path)!r})
    """)
    assert subprocess.run([sys.executable, "-c", crash]).returncode == 9
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".model.pt.") and not path.exists()
    from dtrain import serialization
    host = serialization._HOST
    live = [f".model.pt.{host}-1.abcdefgh.tmp",  # pid 1 runs
            f".model.pt.{host}-{os.getpid()}.abcdefgh.tmp",  # this process: maybe writing right now
            f".model.pt.elsewhere-99999999.abcdefgh.tmp",  # another host: cannot tell
            f".model.pt.x.{host}-99999999.abcdefgh.tmp",  # another target's (model.pt.x)
            "model.pt.backup"]
    for n in live:
        (tmp_path / n).write_bytes(b"x")
    dtrain.save({"w": dtrain.zeros(3)}, path)
    assert sorted(os.listdir(tmp_path)) == sorted(live + ["model.pt"])
    assert dtrain.load(path)["w"].tolist() == [0.0, 0.0, 0.0]
