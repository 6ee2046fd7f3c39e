"""F.linear / F.bilinear / F.identity."""
from ... import einsum
from ..._ops.linalg import linear
from ...amp._dispatch import autocast_op

__all__ = ["linear", "bilinear"]


@autocast_op("bilinear")
def bilinear(input1, input2, weight, bias=None):
    """y = x1^T A x2 + b over the last dim, with weight (out, in1, in2)."""
    if input1.shape[:-1] != input2.shape[:-1]:
        raise RuntimeError(f"bilinear(): input batch dimensions do not match: got {list(input1.shape[:-1])} and "
                           f"{list(input2.shape[:-1])}")
    if input1.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"bilinear(): input1 size does not match weight size: got {input1.shape[-1]} but "
                           f"expected {weight.shape[1]}")
    if input2.shape[-1] != weight.shape[2]:
        raise RuntimeError(f"bilinear(): input2 size does not match weight size: got {input2.shape[-1]} but "
                           f"expected {weight.shape[2]}")
    lead = input1.shape[:-1]
    x1 = input1.reshape(-1, input1.shape[-1])
    x2 = input2.reshape(-1, input2.shape[-1])
    y = einsum("bi,oij,bj->bo", x1, weight, x2).reshape(tuple(lead) + (weight.shape[0],))
    return y + bias if bias is not None else y
