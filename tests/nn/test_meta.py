"""The meta device: build a model with shapes and no storage, then make it real with load_state_dict(assign=True)."""
import numpy as np
import pytest
import torch

import dtrain


def _model(m):
    return m.nn.Sequential(m.nn.Linear(4, 8), m.nn.ReLU(), m.nn.Embedding(3, 8), m.nn.Linear(8, 2, bias=False))


def test_meta_context_builds_shapes_without_storage():
    with dtrain.device("meta"):
        m = _model(dtrain)
    ref = _model(torch)
    for (n, p), (tn, tp) in zip(m.named_parameters(), ref.named_parameters()):
        assert n == tn and p.shape == tp.shape and p.dtype == dtrain.float32
        assert p.is_meta and p.device.type == "meta" and isinstance(p, dtrain.nn.Parameter)
        assert p.requires_grad
    assert dtrain.empty(2).device.type == "cpu"  # the context is gone after the block
    with torch.device("meta"):
        tm = _model(torch)
    assert repr(m) == repr(tm)


def test_assign_load_makes_model_real():
    with dtrain.device("meta"):
        m = _model(dtrain)
    ref = _model(torch)
    sd = {k: dtrain.tensor(v.detach().numpy().copy()) for k, v in ref.state_dict().items()}
    r = m.load_state_dict(sd, assign=True)
    assert r.missing_keys == [] and r.unexpected_keys == []
    for p in m.parameters():
        assert p.device.type == "cpu" and isinstance(p, dtrain.nn.Parameter) and p.requires_grad
    # the loaded tensors are used as they are (no copy): assign semantics
    assert m[0].weight.data_ptr() == sd["0.weight"].data_ptr()
    m = m[:2]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(m(dtrain.tensor(x)).detach().numpy(), ref[:2](torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-6)


def test_copy_load_into_meta_stays_meta_and_shapes_checked():
    with dtrain.device("meta"):
        lin = dtrain.nn.Linear(2, 3)
    lin.load_state_dict(dtrain.nn.Linear(2, 3).state_dict())  # copying into no storage is a no-op, like torch
    assert lin.weight.is_meta
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with shape "
                                           r"torch.Size\(\[3, 3\]\) from checkpoint"):
        lin.load_state_dict({"weight": dtrain.zeros(3, 3), "bias": dtrain.zeros(3)}, assign=True)


def test_to_empty_materialises():
    with dtrain.device("meta"):
        lin = dtrain.nn.Linear(2, 3)
    lin.to_empty(device="cpu")
    assert lin.weight.device.type == "cpu" and tuple(lin.weight.shape) == (3, 2)
    lin.reset_parameters()
    assert np.abs(lin.weight.detach().numpy()).max() <= 1 / np.sqrt(2)


def test_device_context_for_cpu_and_nesting():
    with dtrain.device("meta"):
        with dtrain.device("cpu"):
            a = dtrain.zeros(2)
            lin = dtrain.nn.Linear(1, 1)
        b = dtrain.ones(2)
    assert a.device.type == "cpu" and lin.weight.device.type == "cpu" and b.is_meta


def test_meta_forward_propagates_shapes():
    with dtrain.device("meta"):
        lin = dtrain.nn.Linear(4, 5)
        y = lin(dtrain.empty(3, 4))
    assert tuple(y.shape) == (3, 5)
