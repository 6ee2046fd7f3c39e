"""Scaled dot-product attention and the multi-head attention forward, composed from matmul and a masked softmax."""
import math

import numpy as np

from ... import _cpu_kernels
from ..._ops._util import on_input_device, unbroadcast
from ..._tensor import Tensor
from ...autograd.graph import Function
from ...amp._dispatch import autocast_op
from ..._ops._lowp import widened

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]


class _Attention(Function):
    """out = dropout(softmax(q @ k^T * scale + bias)) @ v over the last two dims (leading dims broadcast).

    `bias` is an additive float array (0 / -inf for boolean masks); `causal` masks the keys after each query
    (top-left aligned, as torch's is_causal); `keep` a dropout mask already scaled by 1/(1-p). A row that is
    entirely -inf (fully masked) gives zeros, not NaN, as torch's attention does.
    # NOTE: one op instead of ~7 composed ones: the scores and probabilities are the largest arrays of a
    # transformer step, and the fused backward touches each of them twice instead of once per composed node.
    # With the compiled CPU kernels (`_cpu_kernels.masked_softmax`) what lies between the products is one pass
    # each way; the NumPy path beside it is the reference and serves every other case."""
    _grad_fn_name = "ScaledDotProductFlashAttentionForCpuBackward0"  # torch's CPU kernel

    @widened
    def forward(ctx, q, k, v, *mask, scale=1.0, bias=None, causal=False, keep=None):
        xp = ctx.xp
        s = xp.matmul(q, k.swapaxes(-1, -2))
        L, S = s.shape[-2:]
        kern = None if mask or not s.size else _cpu_kernels.get(s)
        bias3 = _bias_slabs(bias, s.shape) if kern is not None else False
        if bias3 is not False:  # scale, mask and softmax in one compiled pass over the scores, in place
            kern.masked_softmax(s.reshape(-1, L, S), scale, bias3, causal)
        else:
            kern = None
            if causal:
                bias = xp.triu(xp.full((L, S), -xp.inf, dtype=s.dtype), 1)
            s *= scale
            for add in ((bias,) if bias is not None else ()) + mask:
                if np.broadcast_shapes(s.shape, add.shape) == s.shape:
                    s += add
                else:
                    s = s + add
            m = s.max(axis=-1, keepdims=True)
            m[xp.isneginf(m)] = 0
            s -= m
            xp.exp(s, out=s)
            tot = s.sum(axis=-1, keepdims=True)
            tot[tot == 0] = 1
            s /= tot
        p = s
        pd = p * keep if keep is not None else p
        ctx.save_for_backward(q, k, v, p)
        ctx.scale, ctx.keep, ctx.has_mask, ctx.kern = scale, keep, bool(mask), kern
        ctx.mask_shape = mask[0].shape if mask else None
        return xp.matmul(pd, v)

    @widened
    def backward(ctx, g):
        q, k, v, p = ctx.saved
        xp = ctx.xp
        keep = ctx.keep
        pd = p * keep if keep is not None else p
        nig = ctx.needs_input_grad
        gv = unbroadcast(xp.matmul(pd.swapaxes(-1, -2), g), v.shape) if nig[2] else None
        dp = xp.matmul(g, v.swapaxes(-1, -2))
        gmask = None
        if ctx.kern is not None and dp.shape == p.shape:  # dropout's mask, softmax's backward, scale: one pass
            ds = ctx.kern.masked_softmax_backward(dp, p, keep, ctx.scale)
        else:
            if keep is not None:
                dp *= keep
            ds = dp
            ds -= (dp * p).sum(axis=-1, keepdims=True)
            ds *= p  # softmax backward: p * (dp - sum(dp * p))
            gmask = unbroadcast(ds, ctx.mask_shape) if ctx.has_mask and nig[3] else None
            ds *= ctx.scale
        gq = unbroadcast(xp.matmul(ds, k), q.shape) if nig[0] else None
        gk = unbroadcast(xp.matmul(ds.swapaxes(-1, -2), q), k.shape) if nig[1] else None
        return (gq, gk, gv, gmask) if ctx.has_mask else (gq, gk, gv)


def _bias_slabs(bias, shape):
    """The additive mask as (1 or N, L, S) for the compiled softmax over scores of `shape` (N slabs of (L, S)):
    None for no mask, False when it would not broadcast to the scores without enlarging them (then the NumPy
    path decides, and raises what it raises)."""
    if bias is None:
        return None
    if bias.ndim > len(shape) or np.broadcast_shapes(bias.shape, shape) != tuple(shape):
        return False
    L, S = shape[-2:]
    if int(np.prod(bias.shape[:-2])) <= 1:  # one mask for every slab
        return np.broadcast_to(bias.reshape(bias.shape[-2:]) if bias.ndim >= 2 else bias, (L, S))[None]
    return np.broadcast_to(bias, shape).reshape(-1, L, S)


@autocast_op("scaled_dot_product_attention")
@on_input_device
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(q @ k^T * scale + mask) @ v over the last two dims. A boolean attn_mask marks with True the
    positions that take part; a float mask is added to the scores. Fully masked rows give zeros."""
    if attn_mask is not None and is_causal:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if query.dtype != key.dtype or query.dtype != value.dtype:
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got query.dtype: "
                           f"{query.dtype} key.dtype: {key.dtype} and value.dtype: {value.dtype} instead.")
    L, S, E = query.shape[-2], key.shape[-2], query.shape[-1]
    scale = 1.0 / math.sqrt(E) if scale is None else scale
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key = key.unsqueeze(-3).expand(*key.shape[:-2], rep, S, E).reshape(*key.shape[:-3], -1, S, E)
        value = value.unsqueeze(-3).expand(*value.shape[:-2], rep, S, value.shape[-1]).reshape(
            *value.shape[:-3], -1, S, value.shape[-1])
    xp = query._device.xp
    dt = query._data.dtype
    bias, masks = None, ()
    if attn_mask is not None:
        if attn_mask.dtype == _bool():
            bias = xp.where(attn_mask._data, dt.type(0), dt.type(-xp.inf))
        elif attn_mask.requires_grad:
            masks = (attn_mask,)
        else:
            bias = attn_mask._data.astype(dt, copy=False)
    keep = None
    if dropout_p > 0.0:
        from ...random import default_generator_for
        shape = tuple(np.broadcast_shapes(query.shape[:-1], key.shape[:-2] + (1,))) + (S,)
        u = default_generator_for(query._device).uniform(shape, dt, query._device, 0.0, 1.0)
        keep = (u >= dropout_p).astype(dt) * dt.type(1.0 / (1.0 - dropout_p) if dropout_p < 1 else 0.0)
    return _Attention.apply(query, key, value, *masks, scale=scale, bias=bias, causal=bool(is_causal), keep=keep)


def _bool():
    from ... import bool as b
    return b


def _in_projection(query, key, value, w, b, separate):
    from ._linear import linear
    if separate is not None:
        wq, wk, wv = separate
        bq, bk, bv = b.chunk(3) if b is not None else (None, None, None)
        return linear(query, wq, bq), linear(key, wk, bk), linear(value, wv, bv)
    e = w.shape[1]
    if query is key and key is value:  # self-attention: one product for q, k and v
        return linear(query, w, b).chunk(3, dim=-1)
    wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
    bq, bk, bv = (b[:e], b[e:2 * e], b[2 * e:]) if b is not None else (None, None, None)
    return linear(query, wq, bq), linear(key, wk, bk), linear(value, wv, bv)


def _to_float_mask(mask, dtype, name):
    if mask is None:
        return None
    if mask.dtype == _bool():
        from ... import zeros
        return zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    if not mask.is_floating_point():
        raise AssertionError(f"only bool and floating types of {name} are supported")
    return mask.to(dtype)


def multi_head_attention_forward(query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int, num_heads: int,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn: bool,
                                 dropout_p: float, out_proj_weight, out_proj_bias, training: bool = True,
                                 key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                                 use_separate_proj_weight: bool = False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights: bool = True,
                                 is_causal: bool = False):
    """torch's multi-head attention over sequence-first (L, N, E) or unbatched (L, E) inputs.

    In attn_mask and key_padding_mask a boolean True marks a position that must NOT be attended (the opposite
    of scaled_dot_product_attention's convention, as in torch)."""
    from ... import cat, zeros
    from ._dropout import dropout
    from ._linear import linear
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    q, k, v = _in_projection(query, key, value, in_proj_weight, in_proj_bias,
                             (q_proj_weight, k_proj_weight, v_proj_weight) if use_separate_proj_weight else None)
    attn_mask = _to_float_mask(attn_mask, q.dtype, "attn_mask")
    key_padding_mask = _to_float_mask(key_padding_mask, q.dtype, "key_padding_mask")
    if attn_mask is not None:
        if attn_mask.ndim == 2:
            if tuple(attn_mask.shape) != (tgt_len, key.shape[0]):
                raise RuntimeError(f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but should be "
                                   f"{(tgt_len, key.shape[0])}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.ndim == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, key.shape[0]):
                raise RuntimeError(f"The shape of the 3D attn_mask is {tuple(attn_mask.shape)}, but should be "
                                   f"{(bsz * num_heads, tgt_len, key.shape[0])}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported")
    if bias_k is not None and bias_v is not None:
        k = cat([k, bias_k.repeat(1, bsz, 1)])
        v = cat([v, bias_v.repeat(1, bsz, 1)])
        if attn_mask is not None:
            attn_mask = cat([attn_mask, zeros(attn_mask.shape[:-1] + (1,), dtype=attn_mask.dtype,
                                              device=attn_mask.device)], -1)
        if key_padding_mask is not None:
            key_padding_mask = cat([key_padding_mask, zeros((bsz, 1), dtype=key_padding_mask.dtype,
                                                            device=key_padding_mask.device)], -1)
    # (L, N, E) -> (N*H, L, hd)
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = (static_k if static_k is not None else k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1))
    v = (static_v if static_v is not None else v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1))
    if add_zero_attn:
        k = cat([k, zeros((bsz * num_heads, 1, head_dim), dtype=k.dtype, device=k.device)], 1)
        v = cat([v, zeros((bsz * num_heads, 1, head_dim), dtype=v.dtype, device=v.device)], 1)
        if attn_mask is not None:
            attn_mask = cat([attn_mask, zeros(attn_mask.shape[:-1] + (1,), dtype=attn_mask.dtype,
                                              device=attn_mask.device)], -1)
        if key_padding_mask is not None:
            key_padding_mask = cat([key_padding_mask, zeros((bsz, 1), dtype=key_padding_mask.dtype,
                                                            device=key_padding_mask.device)], -1)
    src_len = k.shape[1]
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise AssertionError(f"expecting key_padding_mask shape of {(bsz, src_len)}, but got "
                                 f"{tuple(key_padding_mask.shape)}")
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len) \
            .reshape(bsz * num_heads, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0
    if need_weights:
        scores = (q * (1.0 / math.sqrt(head_dim))) @ k.transpose(-2, -1)
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = scores.softmax(-1)
        if dropout_p > 0.0:
            weights = dropout(weights, dropout_p)
        out = weights @ v
    else:
        if attn_mask is not None and attn_mask.shape[0] == 1:
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask is not None:
            attn_mask = attn_mask.reshape(bsz, num_heads, -1, src_len)
        out = scaled_dot_product_attention(q.reshape(bsz, num_heads, tgt_len, head_dim),
                                           k.reshape(bsz, num_heads, src_len, head_dim),
                                           v.reshape(bsz, num_heads, src_len, head_dim), attn_mask, dropout_p)
        out = out.reshape(bsz * num_heads, tgt_len, head_dim)
        weights = None
    out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
    if weights is not None:
        weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(1)
        if unbatched:
            weights = weights.squeeze(0)
    if unbatched:
        out = out.squeeze(1)
    return out, weights
