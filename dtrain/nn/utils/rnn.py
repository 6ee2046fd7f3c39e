"""Packed and padded batches of variable-length sequences, as torch.nn.utils.rnn.

Every conversion here is one gather: the host works out, from the (CPU) lengths, which row of the source
feeds each row of the result, and a single advanced index moves the data, so autograd sees one indexing op
(plus a `cat` with a constant padding row where padding is produced)."""
from typing import NamedTuple, Optional

import numpy as np

from ... import _dtype as _dt, argsort, as_tensor, cat, full, int64, sort, tensor
from ..._tensor import Tensor

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "unpad_sequence", "pack_sequence", "unpack_sequence"]


class PackedSequence_(NamedTuple):
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Optional[Tensor]
    unsorted_indices: Optional[Tensor]


class PackedSequence(PackedSequence_):
    """The time-major concatenation of a batch of sequences sorted by decreasing length: `data` holds step 0 of
    every sequence, then step 1 of those still running, ...; `batch_sizes` (int64, always on the CPU) counts the
    sequences at each step; `sorted_indices` / `unsorted_indices` map between the caller's batch order and the
    sorted one (None when the batch came sorted). Made by pack_padded_sequence and pack_sequence."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise AssertionError("Expected data to be a list or tuple of length 2")
            data, batch_sizes = data
        if batch_sizes.device.type != "cpu":
            raise ValueError("batch_sizes should always be on CPU. Instances of PackedSequence should never be "
                             "created manually. They should be instantiated by functions like pack_sequence and "
                             "pack_padded_sequences in nn.utils.rnn. "
                             "https://pytorch.org/docs/stable/nn.html#torch.nn.utils.rnn.pack_sequence")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs) -> "PackedSequence":
        """Convert `data` as Tensor.to does; the indices follow it to its device (batch_sizes stays on the CPU).
        Returns self when nothing changes."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        move = (lambda t: None if t is None else t.to(data.device))
        return type(self)(data, self.batch_sizes, move(self.sorted_indices), move(self.unsorted_indices))

    def cuda(self, device=None) -> "PackedSequence":
        return self.to(f"cuda:{device}" if isinstance(device, int) else (device or "cuda"))

    def cpu(self) -> "PackedSequence":
        return self.to("cpu")

    def double(self):
        return self.to(dtype=_dt.float64)

    def float(self):
        return self.to(dtype=_dt.float32)

    def half(self):
        return self.to(dtype=_dt.float16)

    def long(self):
        return self.to(dtype=_dt.int64)

    def int(self):
        return self.to(dtype=_dt.int32)

    def short(self):
        return self.to(dtype=_dt.int16)

    def char(self):
        return self.to(dtype=_dt.int8)

    def byte(self):
        return self.to(dtype=_dt.uint8)

    @property
    def is_cuda(self) -> bool:
        """Whether `data` is on a GPU."""
        return self.data.is_cuda


def invert_permutation(permutation: Optional[Tensor]) -> Optional[Tensor]:
    """The inverse of a 1-D permutation (None stays None)."""
    if permutation is None:
        return None
    return argsort(permutation)  # position i holds the index where i sits in `permutation`


def _host(t) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy()) if isinstance(t, Tensor) else np.asarray(t)


def _gather(source, rows, shape, padding_value=None):
    """source[rows].reshape(shape), where a row index of -1 reads `padding_value` instead."""
    if padding_value is not None:
        pad = full((1,) + tuple(source.shape[1:]), padding_value, dtype=source.dtype, device=source.device)
        source = cat([source, pad])
        rows = np.where(rows < 0, source.shape[0] - 1, rows)
    picked = source[tensor(np.ascontiguousarray(rows, dtype=np.int64), device=source.device)]
    return picked.reshape(tuple(shape) + tuple(source.shape[1:]))


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded (T, B, *) batch (B, T, * with batch_first) whose sequence b is lengths[b] steps long.
    With enforce_sorted=False the batch is sorted by decreasing length first (a stable sort, as torch's).
    dtrain raises a RuntimeError for a length beyond T, where torch reads past the input."""
    if not isinstance(lengths, Tensor):
        lengths = as_tensor(np.asarray(lengths).astype(np.int64), device="cpu")
    else:
        lengths = lengths.to(dtype=int64)
    sorted_indices = None
    if not enforce_sorted:
        lengths, sorted_indices = sort(lengths, descending=True)
        sorted_indices = sorted_indices.to(input.device)
        input = input.index_select(0 if batch_first else 1, sorted_indices)
    if input.dim() < 2:
        raise IndexError(f"Dimension out of range (expected to be in range of [-{max(input.dim(), 1)}, "
                         f"{max(input.dim(), 1) - 1}], but got 1)")
    if lengths.dim() != 1 or lengths.device.type != "cpu":
        raise RuntimeError(f"'lengths' argument should be a 1D CPU int64 tensor, but got {lengths.dim()}D "
                           f"{lengths.device} Long tensor")
    steps, batch = (input.shape[1], input.shape[0]) if batch_first else (input.shape[0], input.shape[1])
    if input.numel() == 0:
        raise RuntimeError("Cannot pack empty tensors.")
    lens = _host(lengths)
    if lens.shape[0] != batch:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {lens.shape[0]} "
                           f"(batch_size={batch})")
    if lens[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if (np.diff(lens) > 0).any():
        raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You "
                           "can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to "
                           "sidestep this requirement if you do not need ONNX exportability.")
    if lens[0] > steps:
        raise RuntimeError(f"a sequence length ({int(lens[0])}) exceeds the padded length ({steps})")
    t, b = np.nonzero(np.arange(lens[0])[:, None] < lens[None, :])  # time-major: step by step, batch inside
    rows = b * steps + t if batch_first else t * batch + b
    data = _gather(input.reshape((batch * steps,) + tuple(input.shape[2:])), rows, (rows.shape[0],))
    # on the CPU whatever the default device (torch makes it there too)
    batch_sizes = tensor((lens[None, :] > np.arange(lens[0])[:, None]).sum(1).astype(np.int64), device="cpu")
    return PackedSequence(data, batch_sizes, sorted_indices, None)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: Optional[int] = None):
    """Undo pack_padded_sequence: returns the padded (T, B, *) batch (B, T, * with batch_first) in the caller's
    original batch order, and the int64 lengths."""
    sizes = _host(sequence.batch_sizes)
    max_len = sizes.shape[0]
    if total_length is not None:
        if total_length < max_len:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {max_len}")
        max_len = total_length
    batch = int(sizes[0]) if sizes.shape[0] else 0
    # slot s of the sorted batch holds the caller's sequence unsorted_indices^-1[s]; fold the reorder in
    order = np.arange(batch) if sequence.unsorted_indices is None else _host(sequence.unsorted_indices)
    extra = np.zeros(max_len - sizes.shape[0], np.int64)  # steps past the longest sequence: all padding
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1], extra]).astype(np.int64)[:, None]
    sizes_t = np.concatenate([sizes, extra])[:, None]
    rows = np.where(order[None, :] < sizes_t, offsets + order[None, :], -1)  # (T, B)
    if batch_first:
        rows = rows.T
    out = _gather(sequence.data, rows.reshape(-1), rows.shape, padding_value)
    lens_sorted = (sizes[None, :] > np.arange(batch)[:, None]).sum(1).astype(np.int64)
    return out, tensor(lens_sorted[order], device="cpu")


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack L_i x * tensors into a (T, B, *) batch (B, T, * with batch_first), padded to the longest with
    padding_value on padding_side ("right" or "left")."""
    try:
        sequences = tuple(sequences)
    except TypeError:
        raise RuntimeError("pad_sequence: Expected iterable for input sequences, but got arg of type: "
                           f"{type(sequences)}") from None
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    trailing = tuple(sequences[0].shape[1:])
    for seq in sequences:
        for dim, (a, b) in enumerate(zip(trailing, seq.shape[1:])):
            if a != b:
                raise RuntimeError(f"The size of tensor a ({a}) must match the size of tensor b ({b}) at "
                                   f"non-singleton dimension {dim + 1}")
    lens = np.array([seq.shape[0] for seq in sequences], dtype=np.int64)
    steps = int(lens.max())
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    t = np.arange(steps)[:, None]
    shift = (steps - lens)[None, :] if padding_side == "left" else 0  # where each sequence begins in time
    rows = np.where((t >= shift) & (t < shift + lens[None, :]), starts[None, :] + t - shift, -1)  # (T, B)
    if batch_first:
        rows = rows.T
    return _gather(cat(list(sequences)), rows.reshape(-1), rows.shape, padding_value)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list:
    """Split a padded batch back into its sequences, sequence b cut to lengths[b] steps.
    Unlike torch, the input is left as it is (torch transposes it in place when batch_first=False)."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [seq[:int(n)] for seq, n in zip(x, _host(lengths), strict=True)]


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """pack_padded_sequence(pad_sequence(sequences), lengths): pack a list of L_i x * tensors."""
    lengths = as_tensor(np.array([seq.shape[0] for seq in sequences], dtype=np.int64), device="cpu")
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of sequences (in the caller's original order) held by a PackedSequence."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
