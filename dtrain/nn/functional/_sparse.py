"""F.embedding, F.embedding_bag and F.one_hot."""
from ... import _cpu_kernels
from ..._ops.index import _scatter_add_at
from ...autograd.graph import Function
from ..._ops._util import on_input_device

__all__ = ["embedding", "embedding_bag", "one_hot"]


def _padding_index(padding_idx, num_embeddings, what="Padding_idx"):
    """torch's check of padding_idx against the table size, a negative one counted from the end."""
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise AssertionError(f"{what} must be within num_embeddings")
    return padding_idx + num_embeddings if padding_idx < 0 else padding_idx


class Embedding(Function):
    """Rows of `weight` picked by integer indices; backward scatter-adds into the rows (padding row gets none)."""

    def forward(ctx, weight, idx, padding_idx):
        ctx.idx, ctx.num, ctx.padding_idx = idx, weight.shape[0], padding_idx
        return weight[idx]

    def backward(ctx, g):
        xp = ctx.xp
        fused = _cpu_kernels.get(g)
        if fused is not None:
            # each thread sums a band of columns over every index: np.add.at's order, ~4x faster on 2 cores
            gw = fused.embedding_backward(ctx.idx, g, ctx.num)
        else:
            idx = ctx.idx.reshape(-1)
            g2 = g.reshape(idx.shape[0], -1)
            gw = xp.zeros((ctx.num, g2.shape[1]), dtype=g.dtype)
            _scatter_add_at(xp, gw, idx, g2)
        if ctx.padding_idx is not None:
            gw[ctx.padding_idx] = 0
        return gw


@on_input_device
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Look up rows of `weight`. max_norm and scale_grad_by_freq are not supported (NotImplementedError)."""
    if max_norm is not None or scale_grad_by_freq:
        raise NotImplementedError("embedding: max_norm and scale_grad_by_freq are not supported")
    if input._data.dtype.kind not in "iu":
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {input.type()} instead (while checking arguments for embedding)")
    padding_idx = _padding_index(padding_idx, weight.size(0))
    n = weight.shape[0]
    data = input._data
    if data.size and (int(data.max()) >= n or int(data.min()) < -n):
        raise IndexError("index out of range in self")
    return Embedding.apply(weight, idx=data, padding_idx=padding_idx)


def _bag_bounds(xp, input, offsets, include_last_offset):
    """Start and length of every bag, from torch's (1-D indices, offsets) or (2-D fixed-length bags) forms."""
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch of "
                             f"fixed length sequences. However, found offsets of type {type(offsets)}")
        b, n = input.shape
        return xp.arange(b) * n, xp.full(b, n), input._data.reshape(-1)
    if input.ndim != 1:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {input.ndim}")
    if offsets is None:
        raise ValueError("offsets has to be a 1D Tensor but got None")
    if offsets.ndim != 1:
        raise ValueError("offsets has to be a 1D Tensor")
    off = offsets._data.astype(xp.int64)
    if off.size and int(off[0]) != 0:
        raise RuntimeError(f"offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from "
                           f"position 0. However, got {int(off[0])}")
    total = input.shape[0]
    if include_last_offset:
        starts, ends = off[:-1], off[1:]
    else:
        starts, ends = off, xp.concatenate([off[1:], xp.asarray([total], dtype=xp.int64)])
    return starts, xp.clip(ends, starts, total) - starts, input._data


@on_input_device
def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False,
                  mode: str = "mean", sparse=False, per_sample_weights=None, include_last_offset=False,
                  padding_idx=None):
    """Sum, mean or max of the embedding rows of each bag; entries equal to padding_idx are left out, and an empty
    bag gives zeros. max_norm and scale_grad_by_freq are not supported (NotImplementedError).

    # NOTE: bags are laid out as a (bags, longest bag) index grid, so every mode is one gather and one reduction
    # whose gradients come from the primitives; memory grows with the longest bag, not with the total."""
    from ... import where, zeros
    from ..._tensor import _wrap
    if per_sample_weights is not None and input.shape != per_sample_weights.shape:
        raise ValueError(f"embedding_bag: If per_sample_weights ({per_sample_weights.shape}) is not None, then it "
                         f"must have the same shape as the input ({input.shape})")
    if weight.dim() != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {weight.dim()}")
    xp = weight._device.xp
    starts, lengths, flat = _bag_bounds(xp, input, offsets, include_last_offset)
    if mode not in ("sum", "mean", "max"):
        raise ValueError("mode has to be one of sum, mean or max")
    if mode == "max" and scale_grad_by_freq:
        raise ValueError("max mode does not support scaling the gradient by the frequency")
    if mode == "max" and sparse:
        raise ValueError("max mode does not support sparse weights")
    if max_norm is not None or scale_grad_by_freq:
        raise NotImplementedError("embedding_bag: max_norm and scale_grad_by_freq are not supported")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError("embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                  f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on "
                                  "GitHub.")
    if flat.dtype.kind not in "iu":
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {input.type()} instead (while checking arguments for embedding_bag)")
    num = weight.shape[0]
    if flat.size and (int(flat.max()) >= num or int(flat.min()) < 0):
        bad = int(flat.max()) if int(flat.max()) >= num else int(flat.min())
        raise IndexError(f"embedding_bag: index {bad} is out of range for {num} embeddings")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += num
    nbags, dim = starts.shape[0], weight.shape[1]
    longest = int(lengths.max()) if nbags else 0
    if longest == 0:
        return zeros((nbags, dim), dtype=weight.dtype, device=weight.device)
    step = xp.arange(longest)
    valid = step[None, :] < lengths[:, None]
    pos = xp.where(valid, starts[:, None] + step[None, :], 0)  # (bags, longest) positions into the flat input
    idx = flat[pos]
    if padding_idx is not None:
        valid &= idx != padding_idx
    rows = Embedding.apply(weight, idx=idx, padding_idx=None)  # (bags, longest, dim)
    mask = _wrap(valid[:, :, None], weight._device)
    if mode == "max":
        out = where(mask, rows, float("-inf")).max(1)[0]
        return where(_wrap(valid.any(1)[:, None], weight._device), out, 0.0)
    scale = _wrap(valid.astype(weight._data.dtype), weight._device)
    if per_sample_weights is not None:
        scale = scale * per_sample_weights.reshape(-1)[_wrap(pos, weight._device)]
    if mode == "mean":
        count = xp.maximum(valid.sum(1, keepdims=True), 1).astype(weight._data.dtype)
        scale = scale / _wrap(count, weight._device)
    return (rows * scale.unsqueeze(2)).sum(1)


@on_input_device
def one_hot(tensor, num_classes=-1):
    from ..._tensor import _wrap
    data = tensor._data
    if data.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    xp = tensor._device.xp
    if num_classes == -1:
        num_classes = int(data.max()) + 1 if data.size else 0
    if data.size and (int(data.min()) < 0):
        raise RuntimeError("Class values must be non-negative.")
    if data.size and int(data.max()) >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = (data[..., None] == xp.arange(num_classes)).astype(xp.int64)
    return _wrap(out, tensor._device)
