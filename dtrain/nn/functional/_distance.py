"""Normalization and distances between vectors, composed from the core ops."""
from ...amp._dispatch import autocast_op
from ...autograd import graph as _graph

__all__ = ["normalize", "cosine_similarity", "pairwise_distance", "pdist"]


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None):
    """input / max(||input||_p, eps) along `dim`."""
    return input / input.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(input)


@autocast_op("cosine_similarity")
def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    """Cosine of the angle between x1 and x2 along `dim` (each normalised first, norms floored at eps)."""
    n1 = x1.norm(2, dim, keepdim=True).clamp_min(eps)
    n2 = x2.norm(2, dim, keepdim=True).clamp_min(eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    return _graph.renamed((x1 - x2 + eps).norm(p, -1, keepdim), "NormBackward1")  # torch's norm(p, dim)


@autocast_op("pdist")
def pdist(input, p: float = 2):
    """p-norm distances between the rows of an (N, M) input: the N (N - 1) / 2 pairs i < j, row-major."""
    from ... import triu_indices
    if input.dim() != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.dim()}D")
    if p < 0:
        raise RuntimeError("pdist only supports non-negative p values")
    i, j = triu_indices(input.shape[0], input.shape[0], 1, device=input.device)
    return (input[i] - input[j]).norm(p, 1)
