"""Sparse COO tensors against torch: construction, coalescing, printing, products with dense matrices and their
gradients, sums, and the errors of what is not supported."""
import warnings

import numpy as np
import pytest
import torch

import dtrain

LIBS = (torch, dtrain)
TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-12, atol=1e-12)}

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")


def _np(t):
    return t.detach().numpy()


def _graph(rng, n=7, nnz=15, duplicates=True):
    """Random COO indices of an n×n adjacency (with repeated entries when `duplicates`) and their weights."""
    idx = rng.integers(0, n, (2, nnz))
    if duplicates:
        idx[:, -3:] = idx[:, :3]
    return idx, rng.standard_normal(nnz)


def _both(fn):
    return {lib.__name__: fn(lib) for lib in LIBS}


@pytest.mark.parametrize("case", ["uncoalesced", "coalesced", "hybrid", "empty", "float64", "grad", "int"])
def test_repr_matches_torch(case):
    def build(lib):
        i = lib.tensor([[0, 1, 1, 0], [2, 0, 2, 2]])
        if case == "hybrid":
            return lib.sparse_coo_tensor(i, lib.arange(8.).reshape(4, 2), (2, 3, 2))
        if case == "empty":
            return lib.sparse_coo_tensor(lib.zeros(2, 0, dtype=lib.long), lib.zeros(0), (2, 3))
        if case == "int":
            return lib.sparse_coo_tensor(i, lib.tensor([1, 2, 3, 4]), (2, 3))
        v = lib.tensor([3., 4., 5., 1.], dtype=lib.float64 if case == "float64" else None,
                       requires_grad=case == "grad")
        s = lib.sparse_coo_tensor(i, v, (2, 3))
        return s.coalesce() if case in ("coalesced", "grad") else s
    r = _both(lambda lib: repr(build(lib)))
    assert r["dtrain"] == r["torch"]


def test_layout_and_metadata():
    rng = np.random.default_rng(0)
    idx, val = _graph(rng)
    s = {lib.__name__: lib.sparse_coo_tensor(lib.tensor(idx), lib.tensor(val), (7, 7)) for lib in LIBS}
    d, t = s["dtrain"], s["torch"]
    assert d.layout is dtrain.sparse_coo and str(d.layout) == str(t.layout) == "torch.sparse_coo"
    assert d.is_sparse and not dtrain.ones(2).is_sparse
    assert tuple(d.shape) == tuple(t.shape) and d.dim() == t.dim() and d._nnz() == t._nnz()
    assert d.sparse_dim() == t.sparse_dim() and d.dense_dim() == t.dense_dim()
    assert d.is_coalesced() == t.is_coalesced() is False
    assert d.dtype is dtrain.float64
    assert d.type() == t.type() == "torch.sparse.DoubleTensor" and d.float().type() == t.float().type()
    # coalescing sorts the indices row-major and sums repeated entries, as torch's does
    dc, tc = d.coalesce(), t.coalesce()
    assert dc.is_coalesced() and dc._nnz() == tc._nnz()
    np.testing.assert_array_equal(_np(dc.indices()), _np(tc.indices()))
    np.testing.assert_allclose(_np(dc.values()), _np(tc.values()), rtol=1e-12)
    np.testing.assert_allclose(_np(d.to_dense()), _np(t.to_dense()), rtol=1e-12)
    np.testing.assert_array_equal(_np(d._indices()), idx)
    # the size defaults to the smallest that holds the indices
    assert tuple(dtrain.sparse_coo_tensor(dtrain.tensor(idx), dtrain.tensor(val)).shape) == \
        tuple(torch.sparse_coo_tensor(torch.tensor(idx), torch.tensor(val)).shape)


@pytest.mark.parametrize("sparse_dim", [None, 1, 2])
def test_to_sparse_and_back(sparse_dim):
    a = np.array([[0, 1.5, 0], [0, 0, 0], [2, 0, -1]])
    out = _both(lambda lib: lib.tensor(a).to_sparse() if sparse_dim is None else lib.tensor(a).to_sparse(sparse_dim))
    assert repr(out["dtrain"]) == repr(out["torch"])
    np.testing.assert_array_equal(_np(out["dtrain"].to_dense()), a)
    # the gradient through to_sparse / to_dense reaches the dense tensor (zero where it was not kept)
    w = np.arange(9.).reshape(3, 3)
    grads = {}
    for lib in LIBS:
        x = lib.tensor(a, requires_grad=True)
        s = x.to_sparse() if sparse_dim is None else x.to_sparse(sparse_dim)
        (s.to_dense() * lib.tensor(w)).sum().backward()
        grads[lib.__name__] = _np(x.grad)
    np.testing.assert_array_equal(grads["dtrain"], grads["torch"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["sparse.mm", "spmm", "matmul_operator", "mm_method", "torch.mm", "torch.matmul"])
def test_sparse_dense_product_and_gradients(op, dtype):
    """A graph convolution's product: gradients reach the dense operand and the sparse one's values."""
    rng = np.random.default_rng(1)
    idx, val = _graph(rng)
    h = rng.standard_normal((7, 4))
    w = rng.standard_normal((7, 4))
    res = {}
    for lib in LIBS:
        dt = getattr(lib, dtype)
        v = lib.tensor(val, dtype=dt, requires_grad=True)
        x = lib.tensor(h, dtype=dt, requires_grad=True)
        s = lib.sparse_coo_tensor(lib.tensor(idx), v, (7, 7))
        y = {"sparse.mm": lambda: lib.sparse.mm(s, x), "spmm": lambda: lib.spmm(s, x),
             "matmul_operator": lambda: s @ x, "mm_method": lambda: s.mm(x), "torch.mm": lambda: lib.mm(s, x),
             "torch.matmul": lambda: lib.matmul(s, x)}[op]()
        (y * lib.tensor(w, dtype=dt)).sum().backward()
        res[lib.__name__] = (y, v.grad, x.grad)
    (yd, gvd, gxd), (yt, gvt, gxt) = res["dtrain"], res["torch"]
    assert yd.dtype.name == dtype and yd.grad_fn.name() == yt.grad_fn.name()
    np.testing.assert_allclose(_np(yd), _np(yt), **TOL[dtype])
    np.testing.assert_allclose(_np(gxd), _np(gxt), **TOL[dtype])
    np.testing.assert_allclose(_np(gvd), _np(gvt), **TOL[dtype])


@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1), 2, (1, 2), -1])
def test_sparse_sum(dim):
    rng = np.random.default_rng(2)
    idx, _ = _graph(rng, n=5, nnz=9)
    val = rng.standard_normal((9, 3))
    gw = None
    res = {}
    for lib in LIBS:
        v = lib.tensor(val, requires_grad=True)
        s = lib.sparse_coo_tensor(lib.tensor(idx), v, (5, 5, 3))
        out = lib.sparse.sum(s) if dim is None else lib.sparse.sum(s, dim)
        dense = out.to_dense() if out.is_sparse else out
        if gw is None:
            gw = rng.standard_normal(tuple(dense.shape))
        (dense * lib.tensor(gw)).sum().backward()
        res[lib.__name__] = (out, v.grad)
    (od, gd), (ot, gt) = res["dtrain"], res["torch"]
    assert od.layout is (dtrain.sparse_coo if ot.is_sparse else dtrain.strided)
    if ot.is_sparse:
        assert repr(od.detach()) == repr(ot.detach()) and od.grad_fn.name() == ot.grad_fn.name()
        np.testing.assert_array_equal(_np(od.indices()), _np(ot.indices()))
        od, ot = od.values(), ot.values()
    np.testing.assert_allclose(_np(od), _np(ot), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(gd), _np(gt), rtol=1e-12)


def test_transpose_scale_cast_and_their_gradients():
    rng = np.random.default_rng(3)
    idx, val = _graph(rng, n=4, nnz=6)
    h = rng.standard_normal((4, 2))
    res = {}
    for lib in LIBS:
        v = lib.tensor(val, requires_grad=True)
        s = lib.sparse_coo_tensor(lib.tensor(idx), v, (4, 4))
        a = (s.t() * 0.5).float()
        b = (-(s / 4)).coalesce()
        y = lib.sparse.mm(a, lib.tensor(h, dtype=lib.float32)).sum() + b.values().pow(2).sum()
        y.backward()
        res[lib.__name__] = (repr(a), repr(b), y, v.grad)
    for d, t in zip(res["dtrain"][:2], res["torch"][:2]):
        assert d == t
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
def test_unsupported_and_invalid_raise_as_torch(name, fn, same_text):
    errs = {lib.__name__: _error(lambda: fn(lib, lib.sparse_coo_tensor(lib.tensor([[0, 1, 1], [2, 0, 2]]),
                                                                         lib.tensor([3., 4., 5.]), (2, 3))))
            for lib in LIBS}
    assert errs["torch"] is not None and errs["dtrain"] is not None
    assert errs["dtrain"][0] == errs["torch"][0]
    if same_text:
        assert errs["dtrain"][1] == errs["torch"][1]
    else:  # torch's dispatcher text, naming the op
        assert errs["dtrain"][1].startswith(f"Could not run 'aten::{name}' with arguments from the 'SparseCPU'")


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


def test_sparse_leaf_requires_grad_is_refused():
    s = dtrain.tensor([[0, 1.], [2, 0]]).to_sparse()
    with pytest.raises(NotImplementedError, match="sparse leaf"):
        s.requires_grad_()
    with pytest.raises(NotImplementedError, match="sparse leaf"):
        dtrain.sparse_coo_tensor(dtrain.tensor([[0], [1]]), dtrain.ones(1), (2, 2), requires_grad=True)


@pytest.mark.cuda
def test_cuda_sparse_raises_naming_the_op():
    with pytest.raises(NotImplementedError, match="to_sparse: dtrain's sparse COO tensors are CPU-only"):
        dtrain.ones(2, 2, device="cuda").to_sparse()


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


def test_sparse_tensor_pickles_and_deep_copies():
    import copy
    import pickle
    s = dtrain.sparse_coo_tensor(dtrain.tensor([[0, 1, 1], [2, 0, 2]]), dtrain.tensor([3., 4., 5.]), (2, 3))
    for c in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert repr(c) == repr(s) and c._values()._data is not s._values()._data


@pytest.mark.parametrize("make", [lambda lib, **kw: lib.zeros(2, 3, **kw), lambda lib, **kw: lib.randn(2, **kw),
                                  lambda lib, **kw: lib.full((2,), 1.0, **kw),
                                  lambda lib, **kw: lib.arange(3, **kw), lambda lib, **kw: lib.eye(2, **kw)])
def test_factories_take_strided_and_refuse_sparse_layout(make):
    assert make(dtrain, layout=dtrain.strided).layout is dtrain.strided
    assert make(torch, layout=torch.strided).layout is torch.strided
    with pytest.raises(NotImplementedError, match="not layout torch.sparse_coo"):
        make(dtrain, layout=dtrain.sparse_coo)  # never a dense tensor in its place
