"""nn.utils.rnn (pack/pad of variable-length sequences) and packed input to RNN/LSTM/GRU, against torch."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises, to_numpy
from test_conv import module_check

import dtrain


def _rnn(m):
    return m.nn.utils.rnn


def _packed_fields(p):
    return [p.data, p.batch_sizes, p.sorted_indices, p.unsorted_indices]


LENGTHS = [([5, 3, 3, 1], True), ([2, 5, 1, 3], False), ([3, 3, 5, 3], False), ([4, 4, 4, 4], True)]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths,enforce_sorted", LENGTHS)
def test_pack_padded_sequence(device, batch_first, lengths, enforce_sorted):
    shape = (4, 5, 2) if batch_first else (5, 4, 2)
    check(lambda m, x: _packed_fields(_rnn(m).pack_padded_sequence(x, lengths, batch_first, enforce_sorted)),
          shape, device=device)
    # lengths as a tensor, and with no trailing feature dims
    check(lambda m, x: _packed_fields(_rnn(m).pack_padded_sequence(x, m.tensor(lengths, device="cpu"), batch_first,
                                                                    enforce_sorted)), shape[:2], device=device)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("total_length", [None, 7])
@pytest.mark.parametrize("lengths,enforce_sorted", LENGTHS)
def test_pad_packed_sequence_roundtrip(device, batch_first, total_length, lengths, enforce_sorted):
    def fn(m, x):
        packed = _rnn(m).pack_padded_sequence(x * 2, lengths, batch_first, enforce_sorted)
        return _rnn(m).pad_packed_sequence(packed, batch_first, -1.5, total_length)
    check(fn, (4, 5, 3) if batch_first else (5, 4, 3), device=device)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence(device, batch_first, padding_side):
    check(lambda m, a, b, c: _rnn(m).pad_sequence([a, b, c], batch_first, 0.5, padding_side),
          (3, 2, 2), (5, 2, 2), (1, 2, 2), device=device)
    check(lambda m, a, b: _rnn(m).pad_sequence((a, b), batch_first=batch_first, padding_side=padding_side),
          (2,), (4,), device=device)


def test_pad_sequence_integer_and_empty():
    a, b = np.array([1, 2, 3]), np.array([], dtype=np.int64)
    check(lambda m, a, b: _rnn(m).pad_sequence([a, b], padding_value=-1), a, b)


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_pack_unpack_sequence(device, enforce_sorted):
    lens = (5, 3, 2) if enforce_sorted else (2, 5, 3)

    def fn(m, a, b, c):
        packed = _rnn(m).pack_sequence([a, b, c], enforce_sorted)
        return _packed_fields(packed) + _rnn(m).unpack_sequence(packed)
    check(fn, *[(n, 3) for n in lens], device=device)


@pytest.mark.parametrize("batch_first", [False, True])
def test_unpad_sequence(device, batch_first):
    def fn(m, x):
        parts = _rnn(m).unpad_sequence(x.clone(), m.tensor([3, 5, 1]), batch_first)
        return [p * 3 for p in parts]
    check(fn, (3, 5, 2) if batch_first else (5, 3, 2), device=device)


def test_packed_sequence_class(device):
    x = dtrain.tensor(np.random.randn(4, 3, 2), device=device)
    p = dtrain.nn.utils.rnn.pack_padded_sequence(x, [2, 4, 1], enforce_sorted=False)
    assert isinstance(p, tuple) and p._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    assert p.batch_sizes.device.type == "cpu" and p.batch_sizes.dtype == dtrain.int64
    assert p.sorted_indices.dtype == dtrain.int64 and p.sorted_indices.device == x.device
    assert p.is_cuda == device.startswith("cuda")
    assert p.to(x.device) is p
    f = p.float()
    assert f.data.dtype == dtrain.float32 and f.batch_sizes is p.batch_sizes
    np.testing.assert_array_equal(to_numpy(f.unsorted_indices), to_numpy(p.unsorted_indices))
    assert p.double().data.dtype == dtrain.float64 and p.long().data.dtype == dtrain.int64
    c = p.cpu()
    assert not c.is_cuda and c.sorted_indices.device.type == "cpu"
    q = dtrain.nn.utils.rnn.PackedSequence(p.data, p.batch_sizes, p.sorted_indices)  # unsorted filled in
    np.testing.assert_array_equal(to_numpy(q.unsorted_indices), [1, 0, 2])  # sorted_indices is [1, 0, 2]
    assert repr(dtrain.nn.utils.rnn.pack_sequence([dtrain.tensor([1, 2, 3]), dtrain.tensor([4])])) == \
        repr(torch.nn.utils.rnn.pack_sequence([torch.tensor([1, 2, 3]), torch.tensor([4])]))
    perm = dtrain.tensor([2, 0, 3, 1])
    np.testing.assert_array_equal(to_numpy(dtrain.nn.utils.rnn.invert_permutation(perm)),
                                  to_numpy(torch.nn.utils.rnn.invert_permutation(torch.tensor([2, 0, 3, 1]))))
    assert dtrain.nn.utils.rnn.invert_permutation(None) is None


def test_errors():
    pack = (lambda lengths, **kw: lambda m, x: _rnn(m).pack_padded_sequence(x, lengths, **kw))
    check_raises(pack([2, 3, 1]), (4, 3, 2), match="`lengths` array must be sorted in decreasing order")
    check_raises(pack([3, 2, 0]), (4, 3, 2), match="Length of all samples has to be greater than 0")
    check_raises(pack([0, 3, 2], enforce_sorted=False), (4, 3, 2),
                 match="Length of all samples has to be greater than 0")
    check_raises(pack([3, 2]), (4, 3, 2), match="Expected `len(lengths)` to be equal to batch_size, but got 2 "
                                                "(batch_size=3)")
    check_raises(pack([3, 2], batch_first=True), (3, 4), match="but got 2 (batch_size=3)")
    check_raises(pack([3]), (3,))
    check_raises(lambda m, x: _rnn(m).pack_padded_sequence(x, m.tensor([[3, 2, 1]])), (4, 3, 2),
                 match="'lengths' argument should be a 1D CPU int64 tensor, but got 2D")
    check_raises(lambda m, a, b: _rnn(m).pad_sequence([a, b], padding_side="middle"), (2, 3), (3, 3),
                 match="Expected padding_side to be one of left or right, but got middle.")
    check_raises(lambda m: _rnn(m).pad_sequence([]), match="received an empty list of sequences")
    check_raises(lambda m: _rnn(m).pad_sequence(5), match="pad_sequence: Expected iterable for input sequences")
    check_raises(lambda m, a, b: _rnn(m).pad_sequence([a, b]), (2, 3), (3, 4),
                 match="The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1")
    check_raises(lambda m, a, b: _rnn(m).pack_sequence([a, b]), (2,), (3,),
                 match="`lengths` array must be sorted in decreasing order")
    check_raises(lambda m, a, b: _rnn(m).pad_packed_sequence(_rnn(m).pack_sequence([a, b]), total_length=2),
                 (3,), (2,), match="Expected total_length to be at least the length of the longest sequence in "
                                   "input, but got total_length=2 and max sequence length being 3")


@pytest.mark.cuda
def test_lengths_on_gpu():
    if not dtrain.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x = dtrain.randn(4, 3, 2)
    with pytest.raises(RuntimeError, match="'lengths' argument should be a 1D CPU int64 tensor, but got 1D cuda"):
        dtrain.nn.utils.rnn.pack_padded_sequence(x, dtrain.tensor([3, 2, 1], device="cuda"))


# --- RNN / LSTM / GRU on a PackedSequence ---------------------------------------------------------------------

def _packed_wrapper(m, rnn, lengths, enforce_sorted, with_state):
    """padded x (T, N, I) [, h0 [, c0]] -> pack, run `rnn`, pad the output back; returns (output, h_n[, c_n])."""
    base = m.nn.Module

    class Packed(base):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, x, *state):
            packed = m.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
            hx = None if not state else (tuple(state) if len(state) == 2 else state[0])
            out, h = self.rnn(packed, hx)
            assert isinstance(out, m.nn.utils.rnn.PackedSequence)
            padded, _ = m.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])
            return (padded,) + (tuple(h) if isinstance(h, tuple) else (h,))

    return Packed()


PACKED = [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True}),
    ("LSTM", {}), ("LSTM", {"num_layers": 2, "bidirectional": True}), ("LSTM", {"batch_first": True}),
    ("LSTM", {"proj_size": 3, "bidirectional": True}),
    ("GRU", {}), ("GRU", {"num_layers": 2, "bidirectional": True, "batch_first": True}),
]


@pytest.mark.parametrize("lengths,enforce_sorted", [([6, 4, 4, 1], True), ([2, 6, 1, 5], False)])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("cls,kw", PACKED)
def test_rnn_packed_input(device, cls, kw, lengths, enforce_sorted, with_state):
    torch.manual_seed(0)
    t, d = getattr(torch.nn, cls)(3, 5, **kw).double(), getattr(dtrain.nn, cls)(3, 5, **kw).double()
    layers = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    states = []
    if with_state:
        states = [(layers, 4, kw.get("proj_size") or 5)] + ([(layers, 4, 5)] if cls == "LSTM" else [])
    # packed data is time-major whatever batch_first says, so the padded input is (T, N, I) throughout
    module_check(_packed_wrapper(torch, t, lengths, enforce_sorted, with_state),
                 _packed_wrapper(dtrain, d, lengths, enforce_sorted, with_state), (6, 4, 3), *states, device=device)


def test_rnn_packed_errors():
    def run(m, a, b, h=None):
        return m.nn.GRU(3, 4).double()(_rnn(m).pack_sequence([a, b]), h)
    check_raises(run, (3, 2, 3), (2, 2, 3), match="input must have 2 dimensions, got 3")
    check_raises(run, (3, 3), (2, 3), (1, 3, 4), match="Expected hidden size (1, 2, 4), got [1, 3, 4]")
