"""Attention against torch: scaled_dot_product_attention, MultiheadAttention, TransformerEncoder(Layer)."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises
from test_conv import module_check

import dtrain

_rng = np.random.default_rng(7)
MASK_BOOL = _rng.random((5, 6)) > 0.4
MASK_BOOL[1] = False  # a fully masked row gives zeros, not NaN
MASK_FLOAT = _rng.standard_normal((3, 5, 6))


@pytest.mark.parametrize("kw", [{}, {"scale": 0.3}, {"is_causal": True}, {"attn_mask": "bool"},
                                {"attn_mask": "float"}])
def test_sdpa(device, kw):
    kw = dict(kw)
    mask = {"bool": MASK_BOOL, "float": MASK_FLOAT}.get(kw.pop("attn_mask", None))
    extra = [mask] if mask is not None else []
    check(lambda m, q, k, v, *mk: m.nn.functional.scaled_dot_product_attention(q, k, v, *mk, **kw),
          (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7), *extra, device=device, atol=1e-10, rtol=1e-10)


def test_sdpa_float32_3d(device):
    check(lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
          (4, 6, 8), (4, 6, 8), (4, 6, 8), device=device, dtype=np.float32, atol=1e-5, rtol=1e-5)


def test_sdpa_dropout_all(device):
    # dropout_p=1 drops every weight: the output is exactly zero in both
    check(lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=1.0),
          (2, 5, 4), (2, 6, 4), (2, 6, 4), device=device)


def test_sdpa_errors():
    check_raises(lambda m, q, mk: m.nn.functional.scaled_dot_product_attention(q, q, q, mk, is_causal=True),
                 (2, 3, 4), np.ones((3, 3), dtype=bool), match="Explicit attn_mask should not be set when "
                                                               "is_causal=True")


def _mha(**kw):
    torch.manual_seed(0)
    return torch.nn.MultiheadAttention(8, 2, **kw).double(), dtrain.nn.MultiheadAttention(8, 2, **kw).double()


class _Apply(torch.nn.Module):
    """Calls a MultiheadAttention with (q, k, v) inputs and fixed keyword arguments."""

    def __init__(self, m, **kw):
        super().__init__()
        self.m, self.kw = m, kw

    def forward(self, q, k, v):
        return self.m(q, k, v, **self.kw)


class _DApply(dtrain.nn.Module):
    def __init__(self, m, **kw):
        super().__init__()
        self.m, self.kw = m, kw

    def forward(self, q, k, v):
        return self.m(q, k, v, **self.kw)


KPM = _rng.random((3, 6)) > 0.7
KPM[:, 0] = False


@pytest.mark.parametrize("ctor,call", [
    ({}, {}), ({}, {"need_weights": False}), ({}, {"average_attn_weights": False}),
    ({"kdim": 5, "vdim": 3}, {}), ({"add_bias_kv": True}, {}), ({"add_zero_attn": True}, {}),
    ({"bias": False}, {"need_weights": False}), ({"batch_first": True}, {}),
    ({}, {"key_padding_mask": KPM}), ({}, {"key_padding_mask": np.where(KPM, -1.5, 0.0)}),
    ({}, {"attn_mask": np.triu(np.ones((5, 6), dtype=bool), 1)}),
    ({}, {"attn_mask": _rng.standard_normal((6, 5, 6)), "key_padding_mask": KPM, "need_weights": False}),
    ({"add_bias_kv": True, "add_zero_attn": True}, {"key_padding_mask": KPM, "attn_mask": np.zeros((5, 6))}),
])
def test_multihead_attention(device, ctor, call):
    t, d = _mha(**ctor)
    assert [n for n, _ in d.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert repr(d) == repr(t)
    tk = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in call.items()}
    dk = {k: dtrain.tensor(v, device=device) if isinstance(v, np.ndarray) else v for k, v in call.items()}
    kdim, vdim = ctor.get("kdim", 8), ctor.get("vdim", 8)
    seq = (lambda n, e: (3, n, e)) if ctor.get("batch_first") else (lambda n, e: (n, 3, e))
    module_check(_Apply(t, **tk), _DApply(d, **dk), seq(5, 8), seq(6, kdim), seq(6, vdim), device=device)


def test_multihead_self_attention_unbatched(device):
    t, d = _mha()
    x = np.random.randn(5, 8)
    module_check(_Apply(t), _DApply(d), x, x, x, device=device)


def test_multihead_eval_ignores_dropout(device):
    t, d = _mha(dropout=0.5)
    module_check(_Apply(t), _DApply(d), (5, 3, 8), (6, 3, 8), (6, 3, 8), device=device, train=False)


@pytest.mark.parametrize("kw", [{}, {"norm_first": True}, {"activation": "gelu"}, {"batch_first": True},
                                {"bias": False, "norm_first": True, "activation": "gelu"}])
def test_encoder_layer(device, kw):
    torch.manual_seed(0)
    t = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, **kw).double()
    d = dtrain.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, **kw).double()
    assert [n for n, _ in d.named_parameters()] == [n for n, _ in t.named_parameters()]
    shape = (3, 5, 8) if kw.get("batch_first") else (5, 3, 8)
    kpm = np.zeros((3, 5), dtype=bool)
    kpm[0, -2:] = True
    module_check(t, d, shape, device=device, kwargs={"src_key_padding_mask": kpm})
    causal = np.triu(np.full((5, 5), -np.inf), 1)
    module_check(t, d, shape, device=device, kwargs={"src_mask": causal})


def test_encoder_layer_eval_with_dropout(device):
    t = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3).double()
    d = dtrain.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3).double()
    with torch.no_grad():  # no padding mask: torch's nested-tensor inference path is not taken
        module_check(t, d, (5, 3, 8), device=device, train=False)


def test_encoder(device):
    torch.manual_seed(0)
    t = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 3,
                                    norm=torch.nn.LayerNorm(8), enable_nested_tensor=False).double()
    d = dtrain.nn.TransformerEncoder(dtrain.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 3,
                                     norm=dtrain.nn.LayerNorm(8)).double()
    assert list(d.state_dict()) == list(t.state_dict())
    # the layers are independent copies
    assert d.layers[0].linear1.weight is not d.layers[1].linear1.weight
    module_check(t, d, (2, 6, 8), device=device, kwargs={"mask": np.triu(np.full((6, 6), -np.inf), 1)})


def test_sdpa_gqa(device):
    check(lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True),
          (2, 4, 5, 3), (2, 2, 6, 3), (2, 2, 6, 3), device=device, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_decoder_layer_matches_torch(norm_first, batch_first):
    import torch
    from test_conv import module_check
    torch.manual_seed(0)
    kw = dict(dim_feedforward=16, dropout=0.0, batch_first=batch_first, norm_first=norm_first, dtype=torch.float64)
    tmod = torch.nn.TransformerDecoderLayer(8, 2, **kw)
    dmod = dtrain.nn.TransformerDecoderLayer(8, 2, **{**kw, "dtype": dtrain.float64})
    assert [n for n, _ in dmod.named_parameters()] == [n for n, _ in tmod.named_parameters()]
    tgt, mem = ((2, 5, 8), (2, 7, 8)) if batch_first else ((5, 2, 8), (7, 2, 8))
    module_check(tmod, dmod, tgt, mem, atol=1e-9, rtol=1e-9,
                 kwargs=dict(tgt_mask=np.triu(np.full((5, 5), -np.inf), 1)))


def test_transformer_matches_torch():
    import torch
    from test_conv import module_check
    torch.manual_seed(0)
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=16, dropout=0.0,
              batch_first=True)
    tmod = torch.nn.Transformer(**kw, dtype=torch.float64)
    dmod = dtrain.nn.Transformer(**kw, dtype=dtrain.float64)
    assert list(dmod.state_dict()) == list(tmod.state_dict())
    mask = dtrain.nn.Transformer.generate_square_subsequent_mask(4)
    assert mask.tolist() == torch.nn.Transformer.generate_square_subsequent_mask(4).tolist()
    module_check(tmod, dmod, (2, 6, 8), (2, 4, 8), atol=1e-9, rtol=1e-9,
                 kwargs=dict(tgt_mask=mask.numpy().astype(np.float64)))
