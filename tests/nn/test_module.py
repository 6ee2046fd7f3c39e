"""nn.Module against torch.nn.Module: registration, traversal, state dicts, strict loading, hooks, reprs, moves."""
import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

import dtrain


def _build(m, kind="mlp"):
    """The same small model in dtrain (m=dtrain) or torch (m=torch)."""
    nn = m.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.act = nn.ReLU()
            self.block = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Dropout(0.1))
            self.heads = nn.ModuleList([nn.Linear(8, 3), nn.Linear(8, 3, bias=False)])
            self.scale = nn.Parameter(m.ones(3))
            self.register_buffer("running", m.zeros(3))
            self.register_buffer("tmp", m.zeros(2), persistent=False)

        def forward(self, x):
            h = self.block(self.act(self.fc1(x)))
            return (self.heads[0](h) + self.heads[1](h)) * self.scale + self.running

    return Net()


def _to_torch_sd(sd):
    return OrderedDict((k, torch.from_numpy(np.array(v.numpy()))) for k, v in sd.items())


def _to_dtrain_sd(sd):
    return OrderedDict((k, dtrain.tensor(v.detach().numpy().copy())) for k, v in sd.items())


def _pair():
    d, t = _build(dtrain), _build(torch)
    d.load_state_dict(_to_dtrain_sd(t.state_dict()))
    return d, t


def test_names_and_traversal_match_torch():
    d, t = _pair()
    assert [n for n, _ in d.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in d.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in d.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in d.named_children()] == [n for n, _ in t.named_children()]
    assert list(d.state_dict()) == list(t.state_dict())
    assert [n for n, _ in d.named_parameters(prefix="model", recurse=False)] == \
        [n for n, _ in t.named_parameters(prefix="model", recurse=False)]
    assert d.get_submodule("block.0") is d.block[0]
    assert d.get_parameter("heads.1.weight") is d.heads[1].weight
    assert d.get_buffer("running") is d.running
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        d.get_submodule("block.nope")
    with pytest.raises(AttributeError):
        t.get_submodule("block.nope")


def test_forward_and_grads_match_torch():
    d, t = _pair()
    d.eval(), t.eval()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    yd, yt = d(dtrain.tensor(x)), t(torch.from_numpy(x))
    np.testing.assert_allclose(yd.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    yd.sum().backward(), yt.sum().backward()
    tp = dict(t.named_parameters())
    for n, p in d.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=n)


def test_duplicates_and_shared_params():
    for m in (dtrain, torch):
        lin = m.nn.Linear(2, 2)
        seq = m.nn.Sequential(lin, lin)
        assert len(list(seq.parameters())) == 2
        assert len(list(seq.named_parameters(remove_duplicate=False))) == 4
        assert len(list(seq.modules())) == 2
        assert len(list(seq.named_modules(remove_duplicate=False))) == 3


def test_setattr_delattr_rules():
    m = dtrain.nn.Module()
    m.w = dtrain.nn.Parameter(dtrain.ones(2))
    assert "w" in m._parameters and "w" not in m.__dict__
    with pytest.raises(TypeError, match="cannot assign 'dtrain.Tensor'|cannot assign 'Tensor'"):
        m.w = dtrain.ones(2)
    m.w = None
    assert m.w is None and "w" in m._parameters
    m.b = dtrain.nn.Buffer(dtrain.zeros(1))
    assert "b" in m._buffers
    m.b = dtrain.ones(1)  # a plain tensor assigned to a buffer name stays a buffer
    assert m._buffers["b"].item() == 1
    m.sub = dtrain.nn.Linear(1, 1)
    del m.sub
    assert "sub" not in m._modules
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'sub'"):
        m.sub
    with pytest.raises(KeyError, match="attribute 'w' already exists"):
        m.register_buffer("w", dtrain.ones(1))
    tm = torch.nn.Module()
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'sub'"):
        tm.sub
    with pytest.raises(AttributeError, match="cannot assign parameters before Module.__init__"):
        class Bad(dtrain.nn.Module):
            def __init__(self):
                self.p = dtrain.nn.Parameter(dtrain.ones(1))
        Bad()
    assert "w" in dir(m) and "b" in dir(m)


def test_state_dict_shares_storage_and_is_detached():
    lin = dtrain.nn.Linear(3, 2)
    sd = lin.state_dict()
    assert isinstance(sd, OrderedDict)
    assert not sd["weight"].requires_grad and type(sd["weight"]) is dtrain.Tensor
    sd["weight"].zero_()
    assert lin.weight.abs().sum().item() == 0
    kv = lin.state_dict(keep_vars=True)
    assert kv["weight"] is lin.weight
    assert list(lin.state_dict(prefix="x.")) == ["x.weight", "x.bias"]
    assert torch.nn.Linear(3, 2).state_dict()._metadata.keys() == sd._metadata.keys()


def test_state_dict_round_trip_and_pickle():
    a, b = _build(dtrain), _build(dtrain)
    r = b.load_state_dict(a.state_dict())
    assert r.missing_keys == [] and r.unexpected_keys == [] and repr(r) == "<All keys matched successfully>"
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)
    c = pickle.loads(pickle.dumps(dtrain.nn.Sequential(a.fc1, a.block)))
    np.testing.assert_array_equal(c[0].weight.detach().numpy(), a.fc1.weight.detach().numpy())
    assert isinstance(c[0].weight, dtrain.nn.Parameter) and c[0].weight.requires_grad
    e = copy.deepcopy(a)
    assert e.fc1.weight is not a.fc1.weight
    np.testing.assert_array_equal(e.fc1.weight.detach().numpy(), a.fc1.weight.detach().numpy())


def _load_errors(m, sd_fn, **kw):
    td, dd = torch.nn.Linear(4, 3), dtrain.nn.Linear(4, 3)
    with pytest.raises(RuntimeError) as te:
        td.load_state_dict(sd_fn(torch, td.state_dict()), **kw)
    with pytest.raises(RuntimeError) as de:
        dd.load_state_dict(sd_fn(dtrain, dd.state_dict()), **kw)
    assert str(de.value) == str(te.value)


def test_strict_load_error_messages_match_torch():
    def missing(m, sd):
        sd.pop("bias")
        return sd

    def unexpected(m, sd):
        sd["extra"] = m.zeros(1)
        sd["more.x"] = m.zeros(1)
        return sd

    def both(m, sd):
        sd.pop("weight")
        sd["extra"] = m.zeros(1)
        return sd

    def size(m, sd):
        sd["weight"] = m.zeros(4, 4)
        return sd

    def size_and_missing(m, sd):
        sd["weight"] = m.zeros(4, 4)
        sd.pop("bias")
        return sd
    for f in (missing, unexpected, both, size, size_and_missing):
        _load_errors(None, f)


def test_non_strict_load_reports_keys_like_torch():
    for m in (dtrain, torch):
        lin = m.nn.Linear(4, 3)
        sd = lin.state_dict()
        sd.pop("bias")
        sd["extra"] = m.zeros(1)
        r = lin.load_state_dict(sd, strict=False)
        assert r.missing_keys == ["bias"] and r.unexpected_keys == ["extra"]
    seq = dtrain.nn.Sequential(dtrain.nn.Linear(2, 2))
    r = seq.load_state_dict({"0.weight": dtrain.zeros(2, 2)}, strict=False)
    assert r.missing_keys == ["0.bias"]


def test_load_hooks_allow_custom_keys():
    class WithCounter(dtrain.nn.Linear):
        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
            state_dict.pop(prefix + "legacy", None)  # an old checkpoint key, dropped like BatchNorm's version fix
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    m = WithCounter(2, 2)
    sd = m.state_dict()
    sd["legacy"] = dtrain.zeros(1)
    assert m.load_state_dict(sd).unexpected_keys == []
    seen = []
    m.register_load_state_dict_post_hook(lambda mod, keys: seen.append(list(keys.missing_keys)))
    m.load_state_dict(m.state_dict())
    assert seen == [[]]


def test_train_eval_requires_grad_zero_grad():
    d = _build(dtrain)
    d.eval()
    assert all(not mm.training for mm in d.modules())
    d.train()
    assert all(mm.training for mm in d.modules())
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        d.train(1)
    d.requires_grad_(False)
    assert not any(p.requires_grad for p in d.parameters())
    d.requires_grad_(True)
    d(dtrain.randn(2, 4)).sum().backward()
    d.zero_grad(set_to_none=False)
    assert all(p.grad is not None and p.grad.abs().sum().item() == 0 for p in d.parameters())
    d.zero_grad()
    assert all(p.grad is None for p in d.parameters())


def test_to_double_float_keeps_parameter_identity():
    d = _build(dtrain)
    w = d.fc1.weight
    d.double()
    assert d.fc1.weight is w and w.dtype == dtrain.float64 and d.running.dtype == dtrain.float64
    d.to(dtrain.float32)
    assert w.dtype == dtrain.float32
    d.to("cpu")
    assert w.device.type == "cpu"
    d.half().float()
    assert w.dtype == dtrain.float32
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point"):
        d.to(dtrain.int64)
    out = d.apply(lambda mm: setattr(mm, "tag", 1))
    assert out is d and all(getattr(mm, "tag", 0) == 1 for mm in d.modules())


def test_forward_hooks_order_and_effects():
    for m in (dtrain, torch):
        log = []
        lin = m.nn.Linear(2, 2)
        h1 = lin.register_forward_pre_hook(lambda mod, args: log.append("pre1"))
        lin.register_forward_pre_hook(lambda mod, args: log.append("pre0"), prepend=True)
        lin.register_forward_pre_hook(lambda mod, args, kw: (log.append("prekw"), ((args[0] * 0,), kw))[1],
                                      with_kwargs=True)
        lin.register_forward_hook(lambda mod, args, out: (log.append("fwd"), out + 1)[1])
        lin.register_forward_hook(lambda mod, args, kw, out: log.append("fwdkw"), with_kwargs=True)
        y = lin(m.ones(1, 2))
        assert log == ["pre0", "pre1", "prekw", "fwd", "fwdkw"]
        np.testing.assert_allclose(y.detach().numpy(), (lin.bias + 1).detach().numpy()[None])
        h1.remove()
        log.clear()
        lin(m.ones(1, 2))
        assert log == ["pre0", "prekw", "fwd", "fwdkw"]


def test_hooks_removed_restores_fast_path():
    lin = dtrain.nn.Linear(2, 2)
    h = lin.register_forward_hook(lambda *a: None)
    assert lin._has_hooks
    h.remove()
    assert not lin._has_hooks


def test_full_backward_hooks_match_torch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    results = {}
    for m in (dtrain, torch):
        lin = m.nn.Linear(4, 2)
        with m.no_grad():
            lin.weight.copy_(m.tensor(np.arange(8, dtype=np.float32).reshape(2, 4) / 10))
        log = []
        lin.register_full_backward_pre_hook(lambda mod, go: (log.append("pre"), (go[0] * 2,))[1])
        lin.register_full_backward_hook(
            lambda mod, gi, go: log.append(("bw", gi[0].numpy().copy(), go[0].numpy().copy())))
        xt = m.tensor(x, requires_grad=True)
        lin(xt).sum().backward()
        results[m.__name__] = (log, xt.grad.numpy(), lin.weight.grad.numpy())
    (dl, dg, dw), (tl, tg, tw) = results["dtrain"], results["torch"]
    assert [e if isinstance(e, str) else e[0] for e in dl] == ["pre", "bw"]
    np.testing.assert_allclose(dl[1][1], tl[1][1], rtol=1e-6)
    np.testing.assert_allclose(dl[1][2], tl[1][2], rtol=1e-6)
    np.testing.assert_allclose(dg, tg, rtol=1e-6)
    np.testing.assert_allclose(dw, tw, rtol=1e-6)


def test_global_forward_hook():
    from dtrain.nn.modules.module import register_module_forward_hook
    seen = []
    h = register_module_forward_hook(lambda mod, args, out: seen.append(type(mod).__name__))
    try:
        dtrain.nn.Sequential(dtrain.nn.Linear(2, 2), dtrain.nn.ReLU())(dtrain.ones(1, 2))
    finally:
        h.remove()
    assert seen == ["Linear", "ReLU", "Sequential"]


def test_repr_matches_torch():
    assert repr(_build(dtrain)) == repr(_build(torch))
    for m in (dtrain, torch):
        assert repr(m.nn.Module()) == "Module()"
    mods = [lambda m: m.nn.Linear(3, 4, bias=False), lambda m: m.nn.Bilinear(2, 3, 4),
            lambda m: m.nn.Embedding(10, 3, padding_idx=0), lambda m: m.nn.Identity(),
            lambda m: m.nn.Flatten(0, 2), lambda m: m.nn.Unflatten(1, (2, 3)),
            lambda m: m.nn.Sequential(m.nn.Linear(2, 2), m.nn.Sequential(m.nn.ReLU(inplace=True), m.nn.Tanh())),
            lambda m: m.nn.ModuleList([m.nn.Linear(2, 2) for _ in range(3)] + [m.nn.ReLU()]),
            lambda m: m.nn.ModuleDict({"a": m.nn.ReLU(), "b": m.nn.ELU(alpha=0.5)}),
            lambda m: m.nn.CrossEntropyLoss(label_smoothing=0.1), lambda m: m.nn.DataParallel(m.nn.Linear(1, 1))]
    for f in mods:
        assert repr(f(dtrain)) == repr(f(torch))


def test_call_impl_and_missing_forward():
    lin = dtrain.nn.Linear(2, 2)
    x = dtrain.ones(1, 2)
    np.testing.assert_array_equal(lin._call_impl(x).detach().numpy(), lin(x).detach().numpy())
    with pytest.raises(NotImplementedError, match='missing the required "forward" function'):
        dtrain.nn.Module()(x)


def test_data_parallel_on_cpu():
    inner = dtrain.nn.Linear(3, 2)
    dp = dtrain.nn.DataParallel(inner)
    assert dp.module is inner
    assert list(dp.state_dict()) == list(torch.nn.DataParallel(torch.nn.Linear(3, 2)).state_dict())
    x = dtrain.randn(4, 3)
    np.testing.assert_array_equal(dp(x).detach().numpy(), inner(x).detach().numpy())
