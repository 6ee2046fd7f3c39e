"""Local response normalization across channels, composed from the core ops."""
__all__ = ["local_response_norm"]


def local_response_norm(input, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """input / (k + alpha * mean of input^2 over `size` neighbouring channels)^beta.

    The window over channel c is [c - size // 2, c + (size - 1) // 2], zero-padded at the ends."""
    from ... import cat, zeros
    dim = input.dim()
    if dim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality                          input (got {dim} dimensions)")
    if input.numel() == 0:
        return input
    sq = input * input
    c = input.shape[1]
    lead, tail = size // 2, (size - 1) // 2

    def pad(n):
        return zeros((input.shape[0], n) + tuple(input.shape[2:]), dtype=input.dtype, device=input.device)

    padded = cat([pad(lead), sq, pad(tail)], 1)
    window = padded.narrow(1, 0, c)
    for off in range(1, size):  # `size` shifted slices: a loop over the window, not over elements
        window = window + padded.narrow(1, off, c)
    return input / (window * (alpha / size) + k) ** beta
