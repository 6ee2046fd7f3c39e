"""weight_norm and spectral_norm (the parametrizations and the old hook-based forms) against torch."""
import numpy as np
import pytest
import torch

import dtrain
from tests.helpers import assert_close


def _copy_state(md, mt):
    """Give the dtrain module torch's values for every tensor in the state_dict (u/v included)."""
    md.load_state_dict({k: dtrain.tensor(v.detach().numpy().copy()) for k, v in mt.state_dict().items()})


_MODULES = {
    "linear": (lambda lib: lib.nn.Linear(5, 4), (3, 5)),
    "conv2d": (lambda lib: lib.nn.Conv2d(2, 3, 3), (2, 2, 6, 6)),
    "convt2d": (lambda lib: lib.nn.ConvTranspose2d(3, 2, 3), (2, 3, 4, 4)),
}


def _pair(kind, seed=0):
    make, xshape = _MODULES[kind]
    torch.manual_seed(seed)
    mt = make(torch).double()
    md = make(dtrain).double()
    _copy_state(md, mt)
    x = np.random.default_rng(seed).standard_normal(xshape)
    return md, mt, x


def _compare_forward_backward(md, mt, x):
    yd, yt = md(dtrain.tensor(x)), mt(torch.from_numpy(x))
    assert_close(yd, yt)
    (yd ** 2).sum().backward()
    (yt ** 2).sum().backward()
    pd, pt = dict(md.named_parameters()), dict(mt.named_parameters())
    assert list(pd) == list(pt)
    for k in pt:
        assert_close(pd[k].grad, pt[k].grad, what=f"grad of {k}")


# ---------------------------------------------------------------- parametrizations.weight_norm
@pytest.mark.parametrize("kind", ["linear", "conv2d", "convt2d"])
@pytest.mark.parametrize("dim", [0, 1, None])
def test_weight_norm_parametrization_matches_torch(kind, dim):
    md, mt, x = _pair(kind)
    dtrain.nn.utils.parametrizations.weight_norm(md, dim=dim)
    torch.nn.utils.parametrizations.weight_norm(mt, dim=dim)
    assert repr(md) == repr(mt)
    assert list(md.state_dict()) == list(mt.state_dict())
    for k, v in mt.state_dict().items():
        assert_close(md.state_dict()[k], v, what=k)
    assert_close(md.weight, mt.weight)
    _compare_forward_backward(md, mt, x)


def test_weight_norm_parametrization_loads_old_checkpoint_keys():
    md, mt, x = _pair("linear")
    old = torch.nn.utils.weight_norm(torch.nn.Linear(5, 4).double())
    with torch.no_grad():
        old.weight_g.mul_(3.0)
    dtrain.nn.utils.parametrizations.weight_norm(md)
    torch.nn.utils.parametrizations.weight_norm(mt)
    sd = old.state_dict()
    mt.load_state_dict(sd)
    md.load_state_dict({k: dtrain.tensor(v.numpy().copy()) for k, v in sd.items()})
    assert_close(md.weight, mt.weight)
    assert_close(md.parametrizations.weight.original0, old.weight_g)


def test_weight_norm_parametrization_remove():
    md, mt, _ = _pair("linear")
    dtrain.nn.utils.parametrizations.weight_norm(md)
    torch.nn.utils.parametrizations.weight_norm(mt)
    with torch.no_grad():
        mt.parametrizations.weight.original0.mul_(2.0)
    _copy_state(md, mt)
    dtrain.nn.utils.parametrize.remove_parametrizations(md, "weight")
    torch.nn.utils.parametrize.remove_parametrizations(mt, "weight")
    assert list(md.state_dict()) == list(mt.state_dict())
    assert isinstance(md.weight, dtrain.nn.Parameter)
    assert_close(md.weight, mt.weight)


# ---------------------------------------------------------------- parametrizations.spectral_norm
@pytest.mark.parametrize("kind", ["linear", "conv2d", "convt2d"])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("n_power_iterations", [1, 3])
def test_spectral_norm_parametrization_matches_torch(kind, training, n_power_iterations):
    md, mt, x = _pair(kind)
    dtrain.nn.utils.parametrizations.spectral_norm(md, n_power_iterations=n_power_iterations)
    torch.nn.utils.parametrizations.spectral_norm(mt, n_power_iterations=n_power_iterations)
    assert repr(md) == repr(mt)
    assert list(md.state_dict()) == list(mt.state_dict())
    u_buf = md.parametrizations.weight[0]._u
    _copy_state(md, mt)  # the same starting u and v: power iteration is then deterministic
    md.train(training), mt.train(training)
    _compare_forward_backward(md, mt, x)
    u = md.parametrizations.weight[0]._u
    assert u is u_buf  # updated in place
    assert_close(u, mt.parametrizations.weight[0]._u, what="_u")
    assert_close(md.parametrizations.weight[0]._v, mt.parametrizations.weight[0]._v, what="_v")


def test_spectral_norm_parametrization_estimates_the_top_singular_value():
    md, _, _ = _pair("linear")
    dtrain.nn.utils.parametrizations.spectral_norm(md)
    w = md.parametrizations.weight.original.detach().numpy()
    np.testing.assert_allclose(np.linalg.norm(md.weight.detach().numpy(), 2), 1.0, rtol=1e-4)
    assert np.linalg.norm(w, 2) > 0


def test_spectral_norm_parametrization_dim_and_1d():
    md, mt, x = _pair("linear")
    dtrain.nn.utils.parametrizations.spectral_norm(md, name="bias")
    torch.nn.utils.parametrizations.spectral_norm(mt, name="bias")
    assert list(md.state_dict()) == list(mt.state_dict())  # 1-d: no u/v buffers
    _compare_forward_backward(md, mt, x)


def _spectral_err(lib, case):
    m = lib.nn.Linear(3, 4)
    if case == "iterations":
        lib.nn.utils.parametrizations.spectral_norm(m, n_power_iterations=0)
    elif case == "dim":
        lib.nn.utils.parametrizations.spectral_norm(m, dim=2)
    elif case == "name":
        lib.nn.utils.parametrizations.spectral_norm(m, name="nope")
    elif case == "old_twice":
        lib.nn.utils.spectral_norm(m)
        lib.nn.utils.spectral_norm(m)
    elif case == "old_weight_norm_twice":
        lib.nn.utils.weight_norm(m)
        lib.nn.utils.weight_norm(m)
    elif case == "old_remove_missing":
        lib.nn.utils.remove_weight_norm(m)
    elif case == "old_remove_spectral_missing":
        lib.nn.utils.remove_spectral_norm(m)


@pytest.mark.parametrize("case", ["iterations", "dim", "name"])
def test_spectral_norm_parametrization_errors_match_torch(case):
    with pytest.raises(Exception) as te:
        _spectral_err(torch, case)
    with pytest.raises(te.type):
        _spectral_err(dtrain, case)


@pytest.mark.parametrize("case", ["old_twice", "old_weight_norm_twice", "old_remove_missing",
                                  "old_remove_spectral_missing"])
def test_old_style_errors_match_torch(case):
    with pytest.raises(Exception) as te:
        _spectral_err(torch, case)
    with pytest.raises(te.type) as de:
        _spectral_err(dtrain, case)
    assert str(te.value).split(" ")[:3] == str(de.value).split(" ")[:3]


# ---------------------------------------------------------------- the old hook-based weight_norm
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("kind", ["linear", "conv2d", "convt2d"])
@pytest.mark.parametrize("dim", [0, 1, None])
def test_old_weight_norm_matches_torch(kind, dim):
    md, mt, x = _pair(kind)
    dtrain.nn.utils.weight_norm(md, dim=dim)
    torch.nn.utils.weight_norm(mt, dim=dim)
    assert repr(md) == repr(mt)
    assert list(md.state_dict()) == list(mt.state_dict())
    for k, v in mt.state_dict().items():
        assert_close(md.state_dict()[k], v, what=k)
    with torch.no_grad():
        mt.weight_g.mul_(1.5)
    _copy_state(md, mt)
    _compare_forward_backward(md, mt, x)
    assert_close(md.weight, mt.weight)
    dtrain.nn.utils.remove_weight_norm(md)
    torch.nn.utils.remove_weight_norm(mt)
    assert list(md.state_dict()) == list(mt.state_dict())
    assert isinstance(md.weight, dtrain.nn.Parameter) and not md._forward_pre_hooks
    assert_close(md.weight, mt.weight)


def test_old_weight_norm_warns_future_warning():
    with pytest.warns(FutureWarning, match="parametrizations.weight_norm"):
        dtrain.nn.utils.weight_norm(dtrain.nn.Linear(2, 2))


# ---------------------------------------------------------------- the old hook-based spectral_norm
@pytest.mark.parametrize("kind", ["linear", "conv2d", "convt2d"])
@pytest.mark.parametrize("training", [False, True])
def test_old_spectral_norm_matches_torch(kind, training):
    md, mt, x = _pair(kind)
    dtrain.nn.utils.spectral_norm(md, n_power_iterations=2)
    torch.nn.utils.spectral_norm(mt, n_power_iterations=2)
    assert list(md.state_dict()) == list(mt.state_dict())
    assert md.state_dict()._metadata[""] == mt.state_dict()._metadata[""]
    _copy_state(md, mt)
    md.train(training), mt.train(training)
    _compare_forward_backward(md, mt, x)
    assert_close(md.weight, mt.weight)
    assert_close(md.weight_u, mt.weight_u, what="weight_u")
    assert_close(md.weight_v, mt.weight_v, what="weight_v")
    dtrain.nn.utils.remove_spectral_norm(md)
    torch.nn.utils.remove_spectral_norm(mt)
    assert list(md.state_dict()) == list(mt.state_dict())
    assert isinstance(md.weight, dtrain.nn.Parameter)
    assert not md._forward_pre_hooks and not md._state_dict_hooks and not md._load_state_dict_pre_hooks
    assert_close(md.weight, mt.weight)


# ---------------------------------------------------------------- skip_init
def test_skip_init():
    m = dtrain.nn.utils.skip_init(dtrain.nn.Linear, 3, 4, bias=False)
    assert type(m) is dtrain.nn.Linear and m.bias is None
    assert tuple(m.weight.shape) == (4, 3) and str(m.weight.device) == "cpu"
    assert isinstance(m.weight, dtrain.nn.Parameter)


@pytest.mark.parametrize("case", ["not_module", "no_device"])
def test_skip_init_errors_match_torch(case):
    def run(lib):
        if case == "not_module":
            lib.nn.utils.skip_init(int)
        else:
            lib.nn.utils.skip_init(lib.nn.ReLU)
    with pytest.raises(Exception) as te:
        run(torch)
    with pytest.raises(te.type, match=str(te.value)[:20]):
        run(dtrain)


# ---------------------------------------------------------------- fusion
def _bn_pair(lib_bn, n, seed):
    rng = np.random.default_rng(seed)
    bt = lib_bn(torch)(n).double()
    with torch.no_grad():
        bt.running_mean.copy_(torch.from_numpy(rng.standard_normal(n)))
        bt.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, n)))
        bt.weight.copy_(torch.from_numpy(rng.standard_normal(n)))
        bt.bias.copy_(torch.from_numpy(rng.standard_normal(n)))
    bd = lib_bn(dtrain)(n).double()
    _copy_state(bd, bt)
    return bd.eval(), bt.eval()


@pytest.mark.parametrize("kind, bn, transpose", [("conv2d", lambda lib: lib.nn.BatchNorm2d, False),
                                                 ("convt2d", lambda lib: lib.nn.BatchNorm2d, True),
                                                 ("linear", lambda lib: lib.nn.BatchNorm1d, False)])
def test_fusion_matches_torch_and_the_unfused_pair(kind, bn, transpose):
    md, mt, x = _pair(kind)
    md.eval(), mt.eval()
    n = 4 if kind == "linear" else (3 if kind == "conv2d" else 2)
    bd, bt = _bn_pair(bn, n, 1)
    if kind == "linear":
        fd = dtrain.nn.utils.fuse_linear_bn_eval(md, bd)
        ft = torch.nn.utils.fuse_linear_bn_eval(mt, bt)
    else:
        fd = dtrain.nn.utils.fuse_conv_bn_eval(md, bd, transpose=transpose)
        ft = torch.nn.utils.fuse_conv_bn_eval(mt, bt, transpose=transpose)
    assert type(fd) is type(md) and fd is not md
    assert isinstance(fd.weight, dtrain.nn.Parameter) and fd.weight.grad_fn is None
    assert_close(fd.weight, ft.weight, what="weight")
    assert_close(fd.bias, ft.bias, what="bias")
    xd = dtrain.tensor(x)
    assert_close(fd(xd), bd(md(xd)), atol=1e-10)


def test_fuse_weights_without_bias_and_affine():
    rng = np.random.default_rng(3)
    w, rm, rv = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    d = dtrain.nn.utils.fuse_conv_bn_weights(dtrain.tensor(w), None, dtrain.tensor(rm), dtrain.tensor(rv), 1e-5,
                                             None, None)
    t = torch.nn.utils.fuse_conv_bn_weights(torch.from_numpy(w), None, torch.from_numpy(rm), torch.from_numpy(rv),
                                            1e-5, None, None)
    for a, e in zip(d, t):
        assert_close(a, e)
    lw, lb = rng.standard_normal((4, 5)), rng.standard_normal(4)
    bw, bb = rng.standard_normal(4), rng.standard_normal(4)
    d = dtrain.nn.utils.fuse_linear_bn_weights(*(dtrain.tensor(a) for a in (lw, lb, rm, rv)), 1e-3,
                                               dtrain.tensor(bw), dtrain.tensor(bb))
    t = torch.nn.utils.fuse_linear_bn_weights(*(torch.from_numpy(a) for a in (lw, lb, rm, rv)), 1e-3,
                                              torch.from_numpy(bw), torch.from_numpy(bb))
    for a, e in zip(d, t):
        assert_close(a, e)


@pytest.mark.parametrize("case", ["training", "features"])
def test_fusion_errors_match_torch(case):
    def run(lib):
        lin, bn = lib.nn.Linear(3, 4), lib.nn.BatchNorm1d(4 if case == "training" else 5)
        if case == "features":
            lin.eval(), bn.eval()
        lib.nn.utils.fuse_linear_bn_eval(lin, bn)
    with pytest.raises(Exception) as te:
        run(torch)
    with pytest.raises(te.type, match=str(te.value)[:20]):
        run(dtrain)
