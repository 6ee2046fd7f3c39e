"""Recurrent layers against torch with copied weights: outputs, final states, input/state/parameter gradients."""
import numpy as np
import pytest
import torch
from helpers import check_raises, to_numpy
from test_conv import module_check

import dtrain


def _pair(cls, *args, **kw):
    torch.manual_seed(0)
    return getattr(torch.nn, cls)(*args, **kw).double(), getattr(dtrain.nn, cls)(*args, **kw).double()


SEQ = [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu", "num_layers": 2}), ("RNN", {"bidirectional": True}),
    ("LSTM", {}), ("LSTM", {"num_layers": 2, "bidirectional": True}), ("LSTM", {"batch_first": True, "bias": False}),
    ("GRU", {}), ("GRU", {"num_layers": 3, "batch_first": True, "bidirectional": True}),
    ("LSTM", {"proj_size": 3}), ("LSTM", {"proj_size": 2, "num_layers": 2, "bidirectional": True, "batch_first": True}),
    ("LSTM", {"proj_size": 3, "bias": False}),
]


@pytest.mark.parametrize("cls,kw", SEQ)
def test_sequence_layers(device, cls, kw):
    t, d = _pair(cls, 4, 5, **kw)
    assert repr(d) == repr(t)
    assert list(d.state_dict()) == list(t.state_dict())
    shape = (3, 6, 4) if kw.get("batch_first") else (6, 3, 4)
    module_check(t, d, shape, device=device)
    module_check(t, d, (6, 4), device=device)  # unbatched


@pytest.mark.parametrize("cls,kw", SEQ)
def test_initial_state(device, cls, kw):
    t, d = _pair(cls, 4, 5, **kw)
    layers = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    if cls == "LSTM":
        h = np.random.randn(layers, 3, kw.get("proj_size") or 5)
        c = np.random.randn(layers, 3, 5)
        shape = (3, 6, 4) if kw.get("batch_first") else (6, 3, 4)

        class Wrap(torch.nn.Module):  # (x, h0, c0) -> lstm(x, (h0, c0)), so module_check can feed both states
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x, h0, c0):
                return self.m(x, (h0, c0))

        class DWrap(dtrain.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x, h0, c0):
                return self.m(x, (h0, c0))

        module_check(Wrap(t), DWrap(d), shape, h, c, device=device)
    else:
        shape = (3, 6, 4) if kw.get("batch_first") else (6, 3, 4)
        module_check(t, d, shape, (layers, 3, 5), device=device)


def test_dropout_between_layers(device):
    # p=1 zeroes every layer's output but the last: deterministic, so torch is an exact oracle
    t, d = _pair("LSTM", 4, 5, num_layers=2, dropout=1.0)
    module_check(t, d, (6, 3, 4), device=device)
    t, d = _pair("GRU", 4, 5, num_layers=2, dropout=0.5)
    module_check(t, d, (6, 3, 4), device=device, train=False)  # no dropout in eval mode


@pytest.mark.parametrize("cls,kw", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu", "bias": False}),
                                    ("LSTMCell", {}), ("GRUCell", {}), ("GRUCell", {"bias": False})])
def test_cells(device, cls, kw):
    t, d = _pair(cls, 4, 5, **kw)
    assert repr(d) == repr(t)
    module_check(t, d, (3, 4), device=device)
    module_check(t, d, (4,), device=device)
    if cls == "LSTMCell":
        ht = (torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64))
        x = np.random.randn(3, 4)
        out_t = t(torch.from_numpy(x), ht)
        out_d = d(dtrain.tensor(x, device=device), tuple(dtrain.tensor(to_numpy(h), device=device) for h in ht))
        for a, e in zip(out_d, out_t):
            np.testing.assert_allclose(to_numpy(a), to_numpy(e), atol=1e-12)
    else:
        module_check(t, d, (3, 4), (3, 5), device=device)


def test_float32(device):
    t, d = torch.nn.LSTM(8, 16, 2), dtrain.nn.LSTM(8, 16, 2)
    module_check(t, d, np.random.randn(7, 4, 8).astype(np.float32), device=device, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls,kw", [("GRU", {}), ("LSTM", {"proj_size": 2}), ("LSTM", {"proj_size": 2, "bias": False})])
def test_parameter_names(cls, kw):
    t, d = _pair(cls, 3, 4, num_layers=2, bidirectional=True, **kw)
    assert [n for n, _ in d.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert "weight_hh_l1_reverse" in dict(d.named_parameters())
    assert [[tuple(p.shape) for p in layer] for layer in d.all_weights] == \
        [[tuple(p.shape) for p in layer] for layer in t.all_weights]


def test_errors():
    check_raises(lambda m, x: m.nn.LSTM(3, 4).double()(x), (5, 2, 4),
                 match="input.size(-1) must be equal to input_size. Expected 3, got 4")
    check_raises(lambda m, x, h: m.nn.GRU(3, 4).double()(x, h), (5, 2, 3), (2, 2, 4),
                 match="Expected hidden size (1, 2, 4), got [2, 2, 4]")
    check_raises(lambda m, x, h: m.nn.RNN(3, 4).double()(x, h), (5, 3), (1, 2, 4))
    with pytest.raises(ValueError):
        dtrain.nn.RNN(3, 4, nonlinearity="sigmoid")
    check_raises(lambda m, x, h, c: m.nn.LSTM(3, 4, proj_size=2).double()(x, (h, c)), (5, 2, 3), (1, 2, 4), (1, 2, 4),
                 match="Expected hidden[0] size (1, 2, 2), got [1, 2, 4]")
    check_raises(lambda m, x, h, c: m.nn.LSTM(3, 4, proj_size=2).double()(x, (h, c)), (5, 2, 3), (1, 2, 2), (1, 2, 2),
                 match="Expected hidden[1] size (1, 2, 4), got [1, 2, 2]")
    for kw, msg in [({"proj_size": -1}, "proj_size should be a positive integer or zero to disable projections"),
                    ({"proj_size": 4}, "proj_size has to be smaller than hidden_size")]:
        check_raises(lambda m: m.nn.LSTM(3, 4, **kw), match=msg)
    for cls in ("RNN", "GRU"):
        check_raises(lambda m: getattr(m.nn, cls)(3, 4, proj_size=0),
                     match="proj_size argument is only supported for LSTM, not RNN or GRU")
