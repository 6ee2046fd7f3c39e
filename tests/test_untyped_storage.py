"""Tensor.untyped_storage() and Tensor.storage() against torch: which tensors share a storage, its size, bytes,
address and printed form."""
import warnings

import pytest
import torch

import dtrain


def _storages(T):
    t = T.arange(6.0).reshape(2, 3)
    return {
        "t": t, "view": t[1:, ::2], "t_T": t.t(), "detach": t.detach(), "data": t.data, "clone": t.clone(),
        "from_numpy": T.from_numpy(t.numpy()), "reshape_copy": t.t().reshape(-1), "select": t[1, 2],
    }


def test_which_tensors_share_a_storage_as_in_torch():
    for T in (torch, dtrain):
        ts = _storages(T)
        base = ts["t"].untyped_storage()
        shared = {k for k, v in ts.items() if v.untyped_storage() is base}
        assert shared == {"t", "view", "t_T", "detach", "data", "select"}, T.__name__
        same_ptr = {k for k, v in ts.items() if v.untyped_storage().data_ptr() == base.data_ptr()}
        assert same_ptr == shared | {"from_numpy"}  # another storage over the same memory


def test_size_bytes_and_address_match_torch():
    want, got = torch.arange(5, dtype=torch.int16)[2:], dtrain.arange(5, dtype=dtrain.int16)[2:]
    ws, gs = want.untyped_storage(), got.untyped_storage()
    assert (gs.nbytes(), gs.size(), len(gs), gs.element_size()) == (ws.nbytes(), ws.size(), len(ws), ws.element_size())
    assert gs.tolist() == ws.tolist() and gs[2] == ws[2] and gs[0:4].tolist() == ws[0:4].tolist()
    assert gs.data_ptr() == got.data_ptr() - got.storage_offset() * got.element_size()
    assert str(gs.device) == str(ws.device) and gs.is_cuda is False and gs.is_shared() == ws.is_shared()
    assert repr(gs) == repr(ws)
    assert dtrain.is_storage(gs) and not dtrain.is_storage(got)


def test_a_write_through_the_tensor_is_seen_in_its_storage():
    for T in (torch, dtrain):
        t = T.zeros(2, dtype=T.uint8)
        s = t.untyped_storage()
        t[1] = 7
        assert s.tolist() == [0, 7]


def test_typed_storage_warns_once_and_counts_elements():
    for T in (torch, dtrain):
        t = T.arange(4.0)
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            ts = t.storage()
        assert (ts.size(), len(ts), ts[1], ts.tolist()) == (4, 4, 1.0, [0.0, 1.0, 2.0, 3.0])
        assert ts.dtype == T.float32 and ts.data_ptr() == t.data_ptr() and ts.element_size() == 4
        assert ts.untyped() is t.untyped_storage()
    assert repr(dtrain.arange(2.0).storage()) == repr(torch.arange(2.0).storage())


def test_new_storage_and_refusals():
    assert dtrain.UntypedStorage(8).nbytes() == torch.UntypedStorage(8).nbytes() == 8
    s = dtrain.zeros(3).untyped_storage()
    assert s.resize_(12) is s
    with pytest.raises(NotImplementedError, match="resized"):
        s.resize_(0)
    with pytest.raises(RuntimeError):
        dtrain.eye(2).to_sparse().untyped_storage()
    with pytest.raises(RuntimeError, match="SparseTensorImpl"):
        torch.eye(2).to_sparse().untyped_storage()


def test_storage_on_a_device(device):
    t = dtrain.arange(3, dtype=dtrain.uint8, device=device)
    s = t.untyped_storage()
    assert s.device == t.device and s.is_cuda == (device != "cpu")
    assert s.tolist() == [0, 1, 2] and s.cpu().tolist() == [0, 1, 2] and s.clone().tolist() == [0, 1, 2]
    assert s.cpu()[0:3].tolist() == [0, 1, 2] and s[1] == 1
