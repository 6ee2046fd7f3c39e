"""Sparse COO tensors against torch: construction, coalescing, printing, products with dense matrices and their
gradients, sums, additions, device moves, and the errors of what is not supported. dtrain runs on each `device`
(CUDA: a real GPU or the emulated one), torch on the CPU."""
import warnings

import numpy as np
import pytest
import torch

import dtrain

LIBS = (torch, dtrain)
TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-12, atol=1e-12)}

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")


def _np(t):
    return t.detach().cpu().numpy()


def _on(lib, device):
    """Where `lib` computes in a test on `device`: dtrain there, torch (the oracle) on the CPU."""
    return device if lib is dtrain else "cpu"


def _is_on(t, device):
    """Whether dtrain's tensor `t` is on the tested `device` ("cuda" is device 0, current in the default run)."""
    return t.device == dtrain.device("cuda:0" if device == "cuda" else device)


def _same_repr(d, t):
    """dtrain's sparse tensor prints as torch's; off the CPU with torch's device suffix, the rest as on the CPU."""
    if d.device.type == "cpu":
        assert repr(d) == repr(t)
        return
    assert f"device='{d.device}', size=" in repr(d)
    assert repr(d.detach().cpu()) == repr(t.detach())
    assert (d.grad_fn and d.grad_fn.name()) == (t.grad_fn and t.grad_fn.name())


def _graph(rng, n=7, nnz=15, duplicates=True):
    """Random COO indices of an n×n adjacency (with repeated entries when `duplicates`) and their weights."""
    idx = rng.integers(0, n, (2, nnz))
    if duplicates:
        idx[:, -3:] = idx[:, :3]
    return idx, rng.standard_normal(nnz)


def _both(fn):
    return {lib.__name__: fn(lib) for lib in LIBS}


@pytest.mark.parametrize("case", ["uncoalesced", "coalesced", "hybrid", "empty", "float64", "grad", "int", "leaf"])
def test_repr_matches_torch(case, device):
    def build(lib):
        dev = _on(lib, device)
        i = lib.tensor([[0, 1, 1, 0], [2, 0, 2, 2]])
        if case == "leaf":
            return lib.sparse_coo_tensor(i, lib.tensor([3., 4., 5., 1.]), (2, 3), device=dev, requires_grad=True)
        if case == "hybrid":
            return lib.sparse_coo_tensor(i, lib.arange(8.).reshape(4, 2), (2, 3, 2), device=dev)
        if case == "empty":
            return lib.sparse_coo_tensor(lib.zeros(2, 0, dtype=lib.long), lib.zeros(0), (2, 3), device=dev)
        if case == "int":
            return lib.sparse_coo_tensor(i, lib.tensor([1, 2, 3, 4]), (2, 3), device=dev)
        v = lib.tensor([3., 4., 5., 1.], dtype=lib.float64 if case == "float64" else None,
                       requires_grad=case == "grad", device=dev)
        s = lib.sparse_coo_tensor(i.to(dev), v, (2, 3))
        return s.coalesce() if case in ("coalesced", "grad") else s
    r = _both(build)
    _same_repr(r["dtrain"], r["torch"])


def test_layout_and_metadata(device):
    rng = np.random.default_rng(0)
    idx, val = _graph(rng)
    s = {lib.__name__: lib.sparse_coo_tensor(lib.tensor(idx), lib.tensor(val), (7, 7), device=_on(lib, device))
         for lib in LIBS}
    d, t = s["dtrain"], s["torch"]
    assert d.layout is dtrain.sparse_coo and str(d.layout) == str(t.layout) == "torch.sparse_coo"
    assert d.is_sparse and not dtrain.ones(2).is_sparse
    assert tuple(d.shape) == tuple(t.shape) and d.dim() == t.dim() and d._nnz() == t._nnz()
    assert d.sparse_dim() == t.sparse_dim() and d.dense_dim() == t.dense_dim()
    assert d.is_coalesced() == t.is_coalesced() is False
    assert d.dtype is dtrain.float64 and _is_on(d, device) and dc_device(d) == d.device
    if device == "cpu":
        assert d.type() == t.type() == "torch.sparse.DoubleTensor" and d.float().type() == t.float().type()
    # coalescing sorts the indices row-major and sums repeated entries, as torch's does
    dc, tc = d.coalesce(), t.coalesce()
    assert dc.is_coalesced() and dc._nnz() == tc._nnz()
    np.testing.assert_array_equal(_np(dc.indices()), _np(tc.indices()))
    np.testing.assert_allclose(_np(dc.values()), _np(tc.values()), rtol=1e-12)
    np.testing.assert_allclose(_np(d.to_dense()), _np(t.to_dense()), rtol=1e-12)
    np.testing.assert_array_equal(_np(d._indices()), idx)
    assert dc.indices().device == dc.values().device == d.device
    # the size defaults to the smallest that holds the indices
    assert tuple(dtrain.sparse_coo_tensor(dtrain.tensor(idx), dtrain.tensor(val), device=device).shape) == \
        tuple(torch.sparse_coo_tensor(torch.tensor(idx), torch.tensor(val)).shape)


def dc_device(s):
    return s._values().device


@pytest.mark.parametrize("sparse_dim", [None, 1, 2])
def test_to_sparse_and_back(sparse_dim, device):
    a = np.array([[0, 1.5, 0], [0, 0, 0], [2, 0, -1]])
    out = _both(lambda lib: lib.tensor(a, device=_on(lib, device)).to_sparse() if sparse_dim is None else
                lib.tensor(a, device=_on(lib, device)).to_sparse(sparse_dim))
    _same_repr(out["dtrain"], out["torch"])
    np.testing.assert_array_equal(_np(out["dtrain"].to_dense()), a)
    # the gradient through to_sparse / to_dense reaches the dense tensor (zero where it was not kept)
    w = np.arange(9.).reshape(3, 3)
    grads = {}
    for lib in LIBS:
        x = lib.tensor(a, requires_grad=True, device=_on(lib, device))
        s = x.to_sparse() if sparse_dim is None else x.to_sparse(sparse_dim)
        (s.to_dense() * lib.tensor(w, device=_on(lib, device))).sum().backward()
        grads[lib.__name__] = _np(x.grad)
    np.testing.assert_array_equal(grads["dtrain"], grads["torch"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["sparse.mm", "spmm", "matmul_operator", "mm_method", "torch.mm", "torch.matmul"])
def test_sparse_dense_product_and_gradients(op, dtype, device):
    """A graph convolution's product: gradients reach the dense operand and the sparse one's values."""
    rng = np.random.default_rng(1)
    idx, val = _graph(rng)
    h = rng.standard_normal((7, 4))
    w = rng.standard_normal((7, 4))
    res = {}
    for lib in LIBS:
        dt, dev = getattr(lib, dtype), _on(lib, device)
        v = lib.tensor(val, dtype=dt, requires_grad=True, device=dev)
        x = lib.tensor(h, dtype=dt, requires_grad=True, device=dev)
        s = lib.sparse_coo_tensor(lib.tensor(idx, device=dev), v, (7, 7))
        y = {"sparse.mm": lambda: lib.sparse.mm(s, x), "spmm": lambda: lib.spmm(s, x),
             "matmul_operator": lambda: s @ x, "mm_method": lambda: s.mm(x), "torch.mm": lambda: lib.mm(s, x),
             "torch.matmul": lambda: lib.matmul(s, x)}[op]()
        (y * lib.tensor(w, dtype=dt, device=dev)).sum().backward()
        res[lib.__name__] = (y, v.grad, x.grad)
    (yd, gvd, gxd), (yt, gvt, gxt) = res["dtrain"], res["torch"]
    assert yd.dtype.name == dtype and yd.grad_fn.name() == yt.grad_fn.name()
    assert yd.device == gvd.device == gxd.device and _is_on(yd, device) and yd.is_contiguous()
    np.testing.assert_allclose(_np(yd), _np(yt), **TOL[dtype])
    np.testing.assert_allclose(_np(gxd), _np(gxt), **TOL[dtype])
    np.testing.assert_allclose(_np(gvd), _np(gvt), **TOL[dtype])


@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1), 2, (1, 2), -1])
def test_sparse_sum(dim, device):
    rng = np.random.default_rng(2)
    idx, _ = _graph(rng, n=5, nnz=9)
    val = rng.standard_normal((9, 3))
    gw = None
    res = {}
    for lib in LIBS:
        v = lib.tensor(val, requires_grad=True, device=_on(lib, device))
        s = lib.sparse_coo_tensor(lib.tensor(idx), v, (5, 5, 3))
        out = lib.sparse.sum(s) if dim is None else lib.sparse.sum(s, dim)
        dense = out.to_dense() if out.is_sparse else out
        if gw is None:
            gw = rng.standard_normal(tuple(dense.shape))
        (dense * lib.tensor(gw, device=_on(lib, device))).sum().backward()
        res[lib.__name__] = (out, v.grad)
    (od, gd), (ot, gt) = res["dtrain"], res["torch"]
    assert od.layout is (dtrain.sparse_coo if ot.is_sparse else dtrain.strided)
    assert _is_on(od, device)
    if ot.is_sparse:
        _same_repr(od, ot)
        np.testing.assert_array_equal(_np(od.indices()), _np(ot.indices()))
        od, ot = od.values(), ot.values()
    np.testing.assert_allclose(_np(od), _np(ot), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(gd), _np(gt), rtol=1e-12)


def test_transpose_scale_cast_and_their_gradients(device):
    rng = np.random.default_rng(3)
    idx, val = _graph(rng, n=4, nnz=6)
    h = rng.standard_normal((4, 2))
    res = {}
    for lib in LIBS:
        v = lib.tensor(val, requires_grad=True, device=_on(lib, device))
        s = lib.sparse_coo_tensor(lib.tensor(idx), v, (4, 4), device=_on(lib, device))
        a = (s.t() * 0.5).float()
        b = (-(s / 4)).coalesce()
        y = lib.sparse.mm(a, lib.tensor(h, dtype=lib.float32, device=_on(lib, device))).sum() + \
            b.values().pow(2).sum()
        y.backward()
        res[lib.__name__] = (a, b, y, v.grad)
    for d, t in zip(res["dtrain"][:2], res["torch"][:2]):
        _same_repr(d, t)
    np.testing.assert_allclose(_np(res["dtrain"][2]), _np(res["torch"][2]), rtol=1e-5)
    np.testing.assert_allclose(_np(res["dtrain"][3]), _np(res["torch"][3]), rtol=1e-5)


def _error(fn):
    try:
        fn()
    except Exception as e:  # the type and the first line of the message, as the user sees them
        return type(e).__name__, str(e).split("\n")[0]
    return None


@pytest.mark.parametrize("name,fn,same_text", [
    ("view", lambda lib, s: s.view(6), False),
    ("exp", lambda lib, s: s.exp(), False),
    ("exp", lambda lib, s: lib.exp(s), False),
    ("mean", lambda lib, s: s.mean(), False),
    ("numpy", lambda lib, s: s.numpy(), True),
    ("values", lambda lib, s: s.values(), True),
    ("indices", lambda lib, s: s.indices(), True),
    ("add", lambda lib, s: s + 1, True),
    ("nnz", lambda lib, s: lib.sparse_coo_tensor(lib.tensor([[0, 1]]), lib.ones(3), (2,)), True),
    ("indices_dim", lambda lib, s: lib.sparse_coo_tensor(lib.tensor([0, 1]), lib.ones(2), (2, 3)), True),
    ("mm_shape", lambda lib, s: lib.sparse.mm(s, lib.ones(2, 2)), True),
    ("mm_dtype", lambda lib, s: lib.sparse.mm(s, lib.ones(3, 2, dtype=lib.float64)), True),
])
def test_unsupported_and_invalid_raise_as_torch(name, fn, same_text, device):
    errs = {lib.__name__: _error(lambda: fn(lib, lib.sparse_coo_tensor(lib.tensor([[0, 1, 1], [2, 0, 2]]),
                                                                         lib.tensor([3., 4., 5.]), (2, 3),
                                                                         device=_on(lib, device))))
            for lib in LIBS}
    assert errs["torch"] is not None and errs["dtrain"] is not None
    assert errs["dtrain"][0] == errs["torch"][0]
    if name == "numpy" and device != "cpu":  # torch names the device first
        assert errs["dtrain"][1].startswith(f"can't convert {'cuda:0' if device == 'cuda' else device} device type tensor to numpy")
    elif same_text:
        assert errs["dtrain"][1] == errs["torch"][1]
    else:  # torch's dispatcher text, naming the op and the device's sparse backend
        backend = "SparseCUDA" if device.startswith("cuda") else "SparseCPU"
        assert errs["dtrain"][1].startswith(f"Could not run 'aten::{name}' with arguments from the '{backend}'")


def test_indices_outside_the_size_raise():
    # torch checks this only with check_invariants=True (its default is off, and an index outside the size is
    # then undefined behaviour); dtrain always checks
    i = [[0, 2], [1, 0]]
    with pytest.raises(RuntimeError, match=r"size is inconsistent with indices: for dim 0, size is 2 but found "
                                           r"index 2") as e:
        dtrain.sparse_coo_tensor(dtrain.tensor(i), dtrain.ones(2), (2, 2))
    with pytest.raises(RuntimeError) as t:
        torch.sparse_coo_tensor(torch.tensor(i), torch.ones(2), (2, 2), check_invariants=True)
    assert str(t.value).split(".")[0] in str(e.value)


@pytest.mark.parametrize("make", ["constructor", "requires_grad_", "coalesced"])
def test_sparse_leaf_gets_a_sparse_grad(make, device):
    """A sparse leaf that requires grad: to_dense and products track it, and its .grad is the sparse tensor of
    its values' gradient at its indices, summed over backward passes, as torch's."""
    rng = np.random.default_rng(8)
    idx, val = _graph(rng, n=5, nnz=7)
    h, w = rng.standard_normal((5, 3)), rng.standard_normal((5, 5))
    res = {}
    for lib in LIBS:
        dev = _on(lib, device)
        if make == "constructor":
            s = lib.sparse_coo_tensor(lib.tensor(idx), lib.tensor(val), (5, 5), device=dev, requires_grad=True)
        else:
            s = lib.sparse_coo_tensor(lib.tensor(idx), lib.tensor(val), (5, 5), device=dev)
            s = (s.coalesce() if make == "coalesced" else s).requires_grad_()
        assert s.is_leaf and s.requires_grad and s.grad is None
        d = s.to_dense()
        assert d.requires_grad and d.grad_fn.name() == "ToDenseBackward0"
        (d * lib.tensor(w, device=dev)).sum().backward()
        first = s.grad
        lib.sparse.mm(s, lib.tensor(h, device=dev)).pow(2).sum().backward()  # a second pass adds to it
        res[lib.__name__] = (s, first, s.grad)
    for d, t in zip(res["dtrain"], res["torch"]):
        if device != "cpu":  # torch's CUDA kernel adds the second gradient by concatenation, as dtrain's
            d, t = d.detach().coalesce(), t.detach().coalesce()
        _same_repr(d.detach(), t.detach())
        np.testing.assert_allclose(_np(d._values()), _np(t._values()), rtol=1e-12)
    assert _is_on(res["dtrain"][2], device)
    if device != "cpu":
        assert res["dtrain"][2]._nnz() == 2 * res["torch"][2]._nnz() and not res["dtrain"][2].is_coalesced()


@pytest.mark.cuda
def test_moves_between_devices_carry_values_and_gradients():
    rng = np.random.default_rng(5)
    idx, val = _graph(rng)
    v = dtrain.tensor(val, requires_grad=True)
    s = dtrain.sparse_coo_tensor(dtrain.tensor(idx), v, (7, 7))
    moves = {"to": lambda t: t.to("cuda"), "cuda": lambda t: t.cuda(),
             "to_dtype": lambda t: t.to(f"cuda:{dtrain.cuda.device_count() - 1}", dtrain.float32)}
    for name, move in moves.items():
        c = move(s)
        assert c.is_sparse and c.is_cuda and c.grad_fn.name() == "ToCopyBackward0", name
        assert c._indices().device == c._values().device == c.device, name
        back = c.cpu()
        assert back.device.type == "cpu" and not back.is_coalesced()
        np.testing.assert_allclose(_np(back.to_dense()), _np(s.to_dense()), rtol=1e-6)
        np.testing.assert_array_equal(_np(back._indices()), idx)
        # the gradient comes back to the CPU values, in their dtype
        v.grad = None
        w = rng.standard_normal(7)
        (c.to_dense().sum(0) * dtrain.tensor(w, dtype=c.dtype, device=c.device)).sum().backward()
        assert v.grad.device.type == "cpu" and v.grad.dtype is dtrain.float64
        np.testing.assert_allclose(_np(v.grad), w[idx[1]], rtol=1e-6)
    c = s.cuda()
    assert c.to("cuda:0") is c and s.cpu() is s and s.to(dtrain.float64) is s  # no move, no copy
    copied = s.to(copy=True)  # unless asked for
    assert copied is not s and copied._values()._data is not s._values()._data
    # products refuse operands of two devices, as torch
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        dtrain.sparse.mm(s.cuda(), dtrain.ones(7, 2, dtype=dtrain.float64))
    # the indices go where the values are, as in torch
    assert dtrain.sparse_coo_tensor(dtrain.tensor(idx), dtrain.tensor(val, device="cuda"), (7, 7))._indices().is_cuda


@pytest.mark.cuda
def test_cuda_products_refuse_what_cusparse_cannot_multiply():
    s = dtrain.sparse_coo_tensor(dtrain.tensor([[0, 1], [1, 0]]), dtrain.tensor([1, 2]), (2, 2), device="cuda")
    with pytest.raises(RuntimeError, match="\"addmm_sparse_cuda\" not implemented for 'Long'"):
        dtrain.sparse.mm(s, dtrain.ones(2, 2, dtype=dtrain.long, device="cuda"))


@pytest.mark.parametrize("case", ["uncoalesced", "coalesced", "mixed", "alpha", "sub", "promote", "hybrid"])
def test_add_of_sparse_tensors_matches_torch(case, device):
    rng = np.random.default_rng(6)
    ia, va = _graph(rng, n=5, nnz=8)
    ib, vb = _graph(rng, n=5, nnz=6)
    if case == "hybrid":
        va, vb = rng.standard_normal((8, 2)), rng.standard_normal((6, 2))
    w = rng.standard_normal((5, 5, 2) if case == "hybrid" else (5, 5))
    res = {}
    for lib in LIBS:
        dev = _on(lib, device)
        a_v = lib.tensor(va, requires_grad=True, device=dev)
        b_v = lib.tensor(vb, requires_grad=True, device=dev, dtype=lib.float32 if case == "promote" else None)
        shape = (5, 5, 2) if case == "hybrid" else (5, 5)
        a = lib.sparse_coo_tensor(lib.tensor(ia), a_v, shape, device=dev)
        b = lib.sparse_coo_tensor(lib.tensor(ib), b_v, shape, device=dev)
        if case in ("coalesced", "hybrid", "promote", "sub"):
            a, b = a.coalesce(), b.coalesce()
        elif case == "mixed":
            b = b.coalesce()
        out = {"alpha": lambda: lib.add(a, b, alpha=2.5), "sub": lambda: a - b}.get(case, lambda: a + b)()
        (out.to_dense() * lib.tensor(w, device=dev)).sum().backward()
        res[lib.__name__] = (out, a_v.grad, b_v.grad, a._nnz() + b._nnz())
    (od, gad, gbd, nnz), (ot, gat, gbt, _) = res["dtrain"], res["torch"]
    assert od.dtype.name == str(ot.dtype).split(".")[1]
    if device == "cpu":
        assert od.is_coalesced() == ot.is_coalesced()
        _same_repr(od, ot)
    else:  # torch's CUDA kernel concatenates the two, uncoalesced, as dtrain's does
        assert not od.is_coalesced() and od._nnz() == nnz
    np.testing.assert_allclose(_np(od.to_dense()), _np(ot.to_dense()), rtol=1e-6)
    np.testing.assert_allclose(_np(gad), _np(gat), rtol=1e-6)
    np.testing.assert_allclose(_np(gbd), _np(gbt), rtol=1e-6)


def test_add_with_a_dense_operand_matches_torch(device):
    rng = np.random.default_rng(7)
    idx, val = _graph(rng, n=4, nnz=5)
    d0 = rng.standard_normal((4, 4))
    res = {}
    for lib in LIBS:
        dev = _on(lib, device)
        v = lib.tensor(val, requires_grad=True, device=dev)
        s = lib.sparse_coo_tensor(lib.tensor(idx), v, (4, 4), device=dev)
        d = lib.tensor(d0, requires_grad=True, device=dev)
        out = lib.add(d, s, alpha=3) - s
        (out * out).sum().backward()
        res[lib.__name__] = (out, v.grad, d.grad, _error(lambda: s + d))
    for x, y in zip(res["dtrain"][:3], res["torch"][:3]):
        np.testing.assert_allclose(_np(x), _np(y), rtol=1e-12)
    assert res["dtrain"][3] == res["torch"][3]  # sparse + dense: torch's RuntimeError


def test_zeros_like_is_sparse(device):
    out = {}
    for lib in LIBS:
        s = lib.sparse_coo_tensor(lib.tensor([[0, 1, 1], [2, 0, 2]]), lib.ones(3, 2), (2, 3, 2),
                                  device=_on(lib, device))
        out[lib.__name__] = (lib.zeros_like(s), lib.zeros_like(s, dtype=lib.float64),
                             lib.zeros_like(s, layout=lib.strided))
    for d, t in zip(out["dtrain"], out["torch"]):
        assert d.layout is (dtrain.sparse_coo if t.is_sparse else dtrain.strided) and _is_on(d, device)
        if t.is_sparse:
            assert d.is_coalesced() == t.is_coalesced() and d.sparse_dim() == t.sparse_dim()
            _same_repr(d, t)
        np.testing.assert_array_equal(_np(d.to_dense() if d.is_sparse else d),
                                      _np(t.to_dense() if t.is_sparse else t))


def test_values_and_indices_of_a_coalesced_tensor_are_views(device):
    out = {}
    for lib in LIBS:
        s = lib.sparse_coo_tensor(lib.tensor([[0, 1, 1], [2, 0, 2]]), lib.tensor([3., 4., 5.]), (2, 3),
                                  device=_on(lib, device)).coalesce()
        s.values()[0] = 100  # writes into the sparse tensor, as in torch
        s._values()[2] *= 2
        out[lib.__name__] = (s.to_dense(), s.values().requires_grad, s.indices().requires_grad)
    np.testing.assert_array_equal(_np(out["dtrain"][0]), _np(out["torch"][0]))
    assert out["dtrain"][1:] == out["torch"][1:]


@pytest.mark.parametrize("src,dst", [(torch, dtrain), (dtrain, torch)])
def test_saved_sparse_tensor_crosses(src, dst, tmp_path):
    rng = np.random.default_rng(4)
    idx, val = _graph(rng)
    s = src.sparse_coo_tensor(src.tensor(idx), src.tensor(val, dtype=src.float32), (7, 7))
    src.save({"adj": s, "adj_c": s.coalesce()}, tmp_path / "a.pt")
    got = dst.load(tmp_path / "a.pt")  # weights_only=True: sparse tensors are in torch's default allowlist
    for k in ("adj", "adj_c"):
        want = s if k == "adj" else s.coalesce()
        assert got[k].is_sparse and got[k].is_coalesced() == want.is_coalesced()
        assert repr(got[k]) == repr(want)  # the same indices, values, size, nnz
        np.testing.assert_array_equal(_np(got[k].to_dense()), _np(want.to_dense()))


@pytest.mark.cuda
def test_saved_cuda_sparse_tensor_loads_in_torch_and_back(tmp_path):
    rng = np.random.default_rng(9)
    idx, val = _graph(rng)
    s = dtrain.sparse_coo_tensor(dtrain.tensor(idx), dtrain.tensor(val, dtype=dtrain.float32), (7, 7),
                                 device="cuda:0")
    dtrain.save({"adj": s, "adj_c": s.coalesce()}, tmp_path / "a.pt")
    got = dtrain.load(tmp_path / "a.pt")
    theirs = torch.load(tmp_path / "a.pt", map_location="cpu")
    for k in ("adj", "adj_c"):
        assert got[k].is_sparse and got[k].device == s.device and got[k].is_coalesced() == theirs[k].is_coalesced()
        assert repr(got[k].cpu()) == repr(theirs[k])
        np.testing.assert_array_equal(_np(got[k].to_dense()), _np(s.to_dense()))


def test_sparse_tensor_pickles_and_deep_copies(device):
    import copy
    import pickle
    s = dtrain.sparse_coo_tensor(dtrain.tensor([[0, 1, 1], [2, 0, 2]]), dtrain.tensor([3., 4., 5.]), (2, 3),
                                 device=device)
    for c in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert repr(c) == repr(s) and c._values()._data is not s._values()._data and c.device == s.device


@pytest.mark.parametrize("make", [lambda lib, **kw: lib.zeros(2, 3, **kw), lambda lib, **kw: lib.randn(2, **kw),
                                  lambda lib, **kw: lib.full((2,), 1.0, **kw),
                                  lambda lib, **kw: lib.arange(3, **kw), lambda lib, **kw: lib.eye(2, **kw)])
def test_factories_take_strided_and_refuse_sparse_layout(make):
    assert make(dtrain, layout=dtrain.strided).layout is dtrain.strided
    assert make(torch, layout=torch.strided).layout is torch.strided
    with pytest.raises(NotImplementedError, match="not layout torch.sparse_coo"):
        make(dtrain, layout=dtrain.sparse_coo)  # never a dense tensor in its place


def test_graph_network_trains_on_cuda_with_the_losses_of_torch_on_the_cpu():
    """tests/programs/gcn.py (pygcn's style: model, features and sparse adjacency moved with .cuda()) under
    dtrain on the emulated GPUs (a real one where there is one) against torch on the CPU."""
    import os
    import re
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "programs", "gcn.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    out = {}
    for name, cmd, extra in (("torch", [sys.executable, script], {}),
                             ("dtrain", [sys.executable, os.path.join(here, "programs", "as_dtrain.py"), script],
                              {"DTRAIN_EMULATE_CUDA": "2"})):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(env, **extra))
        assert p.returncode == 0, f"{name}:\n" + p.stdout[-2000:] + p.stderr[-3000:]
        out[name] = p.stdout
    assert "DEVICE cuda cuda cuda" in out["dtrain"] and "DEVICE cpu cpu cpu" in out["torch"]
    pat = r"EPOCH \d+ loss_train ([0-9.]+) loss_val ([0-9.]+) acc_val ([0-9.]+)|TEST loss ([0-9.]+) accuracy ([0-9.]+)"
    got = [float(v) for m in re.findall(pat, out["dtrain"]) for v in m if v]
    want = [float(v) for m in re.findall(pat, out["torch"]) for v in m if v]
    assert len(got) == len(want) == 7 * 3 + 2
    # float32 over 120 Adam steps: a few hundred ulps of drift at most
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)
    assert got[-1] >= 0.8  # and it learned the communities
