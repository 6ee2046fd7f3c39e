"""F.embedding and F.one_hot."""
from ..._ops.index import _scatter_add_at
from ...autograd.graph import Function

__all__ = ["embedding", "one_hot"]


class Embedding(Function):
    """Rows of `weight` picked by integer indices; backward scatter-adds into the rows (padding row gets none)."""

    def forward(ctx, weight, idx, padding_idx):
        ctx.idx, ctx.num, ctx.padding_idx = idx, weight.shape[0], padding_idx
        return weight[idx]

    def backward(ctx, g):
        xp = ctx.xp
        idx = ctx.idx.reshape(-1)
        g2 = g.reshape(idx.shape[0], -1)
        gw = xp.zeros((ctx.num, g2.shape[1]), dtype=g.dtype)
        _scatter_add_at(xp, gw, idx, g2)
        if ctx.padding_idx is not None:
            gw[ctx.padding_idx] = 0
        return gw


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Look up rows of `weight`. max_norm and scale_grad_by_freq are not supported (NotImplementedError)."""
    if max_norm is not None or scale_grad_by_freq:
        raise NotImplementedError("embedding: max_norm and scale_grad_by_freq are not supported")
    if input._data.dtype.kind not in "iu":
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {input.type()} instead (while checking arguments for embedding)")
    if padding_idx is not None:
        if padding_idx > 0:
            if padding_idx >= weight.size(0):
                raise AssertionError("Padding_idx must be within num_embeddings")
        elif padding_idx < 0:
            if padding_idx < -weight.size(0):
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx = weight.size(0) + padding_idx
    n = weight.shape[0]
    data = input._data
    if data.size and (int(data.max()) >= n or int(data.min()) < -n):
        raise IndexError("index out of range in self")
    return Embedding.apply(weight, idx=data, padding_idx=padding_idx)


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
