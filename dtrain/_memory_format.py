"""torch.memory_format: the layouts a dense tensor can be asked for.

    x.contiguous(memory_format=torch.channels_last)    # (N, C, H, W) laid out as N, H, W, C
    torch.empty(2, 3, 4, 5, memory_format=torch.channels_last).stride()   # (60, 1, 15, 3)

contiguous_format is C order; channels_last (4-D) and channels_last_3d (5-D) put the channels innermost;
preserve_format keeps a source tensor's order of dims (clone, *_like, to). The stride and contiguity rules are
torch's (c10/core/MemoryFormat.h, TensorImpl's compute_channels_last_contiguous_2d/3d and
is_channels_last_strides_2d/3d), size-1 and size-0 dims included, since they decide what `.view()` allows."""


class memory_format:
    """One of torch's four memory formats; compared by identity, pickled by name."""
    __slots__ = ("_name",)

    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return f"torch.{self._name}"

    def __reduce__(self):
        return self._name  # the module-level singleton of that name


contiguous_format = memory_format("contiguous_format")
preserve_format = memory_format("preserve_format")
channels_last = memory_format("channels_last")
channels_last_3d = memory_format("channels_last_3d")

# the order of dims, innermost first, that each channels-last format lays out
_ORDER = {channels_last: (1, 3, 2, 0), channels_last_3d: (1, 4, 3, 2, 0)}
_RANK = {channels_last: 4, channels_last_3d: 5}


def check(fmt, op, default):
    """`fmt` as given to `op` (None meaning `default`); anything but a memory_format is torch's TypeError."""
    if fmt is None:
        return default
    if type(fmt) is not memory_format:
        raise TypeError(f"{op}(): argument 'memory_format' must be torch.memory_format, not {type(fmt).__name__}")
    return fmt


def strides(fmt, shape):
    """The strides, in elements, of a new tensor of `shape` in `fmt` (contiguous_format or channels_last*)."""
    if fmt is contiguous_format:
        out, acc = [], 1
        for n in reversed(shape):
            out.append(acc)
            acc *= max(n, 1)
        return tuple(reversed(out))
    rank = _RANK.get(fmt)
    if rank is None:
        raise RuntimeError(f"unsupported memory format {_name_of(fmt)}")
    if len(shape) != rank:
        raise RuntimeError(f"required rank {rank} tensor to use {fmt._name} format")
    out, acc = [0] * rank, 1
    for d in _ORDER[fmt]:  # torch's get_channels_last_strides_*: the running product, size-0 dims included
        out[d] = acc
        acc *= shape[d]
    return tuple(out)


def _name_of(fmt):
    return {preserve_format: "Preserve", contiguous_format: "Contiguous", channels_last: "ChannelsLast",
            channels_last_3d: "ChannelsLast3d"}[fmt]


def is_contiguous(fmt, shape, strides_):
    """torch's is_contiguous(memory_format=fmt) for a channels-last format (the default's is NumPy's flag)."""
    if len(shape) != _RANK[fmt]:
        return False
    expected = 1
    for d in _ORDER[fmt]:
        if shape[d] != 1:
            if strides_[d] != expected:
                return False
            expected *= shape[d]
    return True


def _strides_like(fmt, shape, strides_):
    """torch's is_channels_last_strides_2d/3d: the strides order the dims as `fmt` does (ambiguous cases, such
    as N111 tensors, count as contiguous_format)."""
    if len(shape) != _RANK[fmt] or strides_[1] == 0:
        return False
    least = 0
    for d in _ORDER[fmt]:
        if shape[d] == 0 or strides_[d] < least:
            return False
        if d == 0 and least == strides_[1]:
            return False
        least = strides_[d] * (shape[d] if shape[d] > 1 else 1)
    return True


def suggest(shape, strides_):
    """torch's suggest_memory_format: the format a tensor's strides are laid out like."""
    if len(shape) == 4 and _strides_like(channels_last, shape, strides_):
        return channels_last
    if len(shape) == 5 and _strides_like(channels_last_3d, shape, strides_):
        return channels_last_3d
    return contiguous_format
