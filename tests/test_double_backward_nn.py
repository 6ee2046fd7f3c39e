"""Double backward (create_graph=True) through the layers of dtrain.nn and the shape and indexing ops, against
torch: the first-order gradients, then the gradients of sum(grad * v) with respect to every differentiable input
and to the incoming gradient."""
import numpy as np
import pytest
import torch

import dtrain
from helpers import _default_device, assert_close

RTOL, ATOL = 1e-7, 1e-9  # float64 throughout


def _grads(m, fn, arrays, gy_array, vs, create_graph):
    xs = [m.tensor(a, requires_grad=True) if a.dtype.kind == "f" else m.tensor(a) for a in arrays]
    diff = [x for x in xs if x.requires_grad]
    y = fn(m, *xs)
    gy = m.tensor(gy_array, requires_grad=True)
    gs = m.autograd.grad(y, diff, gy, create_graph=create_graph, allow_unused=True)
    if not create_graph:
        return gs, None
    loss = sum((g * m.tensor(v)).sum() for g, v in zip(gs, vs) if g is not None)
    hs = m.autograd.grad(loss, diff + [gy], allow_unused=True) if loss.requires_grad else (None,) * (len(diff) + 1)
    return gs, hs


def _zero_if_none(t, like):
    return np.zeros(like) if t is None else t.detach().cpu().numpy()


def check_double(device, fn, *arrays, seed=0, rtol=RTOL, atol=ATOL):
    """fn(m, *tensors) in dtrain (on `device`, its default while fn runs) and in torch: first-order gradients
    (with and without create_graph) and the second-order ones, for every float input (integer arrays are
    passed as constant tensors)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        out = fn(torch, *[torch.tensor(a) for a in arrays])
    gy = rng.standard_normal(tuple(out.shape))
    shapes = [a.shape for a in arrays if a.dtype.kind == "f"]
    vs = [rng.standard_normal(s) for s in shapes]
    with _default_device(device):
        gd, hd = _grads(dtrain, fn, arrays, gy, vs, True)
        plain, _ = _grads(dtrain, fn, arrays, gy, vs, False)
    gt, ht = _grads(torch, fn, arrays, gy, vs, True)
    for i, s in enumerate(shapes):
        assert_close(_zero_if_none(gd[i], s), _zero_if_none(gt[i], s), atol, rtol, f"grad of input {i}")
        assert_close(_zero_if_none(gd[i], s), _zero_if_none(plain[i], s), atol, rtol,
                     f"grad of input {i} with create_graph against without")
    for i, s in enumerate(shapes + [gy.shape]):
        what = f"second-order grad wrt input {i}" if i < len(shapes) else "second-order grad wrt the incoming grad"
        assert_close(_zero_if_none(hd[i], s), _zero_if_none(ht[i], s), atol, rtol, what)


def rand(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


def F(m):
    return m.nn.functional


# ------------------------------------------------------------------------------------------- convolutions
CONV = [
    # (dims, x shape, w shape, kwargs)
    (1, (2, 3, 9), (4, 3, 3), dict()),
    (1, (2, 4, 10), (6, 2, 3), dict(stride=2, padding=1, dilation=2, groups=2)),
    (2, (2, 3, 6, 7), (4, 3, 3, 2), dict()),
    (2, (2, 1, 6, 6), (3, 1, 3, 3), dict(padding=1)),  # few taps: the direct kernel's path
    (2, (2, 4, 7, 8), (6, 2, 3, 3), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
    (2, (1, 8, 6, 6), (4, 8, 2, 2), dict(stride=2)),  # 8 channels: the compiled im2col's path
    (2, (2, 2, 5, 6), (3, 2, 2, 3), dict(padding="same", dilation=2)),  # asymmetric pads
    (3, (1, 2, 4, 5, 5), (3, 2, 2, 3, 2), dict(stride=(1, 2, 1), padding=1)),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", range(len(CONV)))
def test_conv(case, bias, device):
    nd, xs, ws, kw = CONV[case]
    arrays = [rand(case, *xs), rand(case + 10, *ws)] + ([rand(case + 20, ws[0])] if bias else [])
    fn = lambda m, x, w, *b: getattr(F(m), f"conv{nd}d")(x, w, *b, **kw)
    check_double(device, fn, *arrays, seed=case)


def test_conv_followed_by_a_nonlinearity(device):
    # the second order then also runs through the conv's forward (a gradient penalty's usual shape)
    arrays = [rand(1, 2, 3, 6, 6), rand(2, 4, 3, 3, 3), rand(3, 4)]
    check_double(device, lambda m, x, w, b: F(m).conv2d(x, w, b, padding=1).tanh(), *arrays)


CONV_T = [
    (1, (2, 3, 5), (3, 4, 3), dict()),
    (1, (2, 4, 5), (4, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=2)),
    (2, (2, 3, 4, 5), (3, 2, 3, 2), dict(stride=2, padding=1, output_padding=(1, 0))),
    (2, (2, 4, 4, 4), (4, 1, 2, 3), dict(dilation=2, groups=2, padding=(1, 2))),
    (2, (1, 2, 3, 3), (2, 2, 2, 2), dict(stride=2, dilation=3, output_padding=2)),  # output_padding >= stride
    (3, (1, 2, 3, 3, 2), (2, 3, 2, 2, 2), dict(stride=(2, 1, 1))),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", range(len(CONV_T)))
def test_conv_transpose(case, bias, device):
    nd, xs, ws, kw = CONV_T[case]
    cout = ws[1] * kw.get("groups", 1)
    arrays = [rand(case, *xs), rand(case + 10, *ws)] + ([rand(case + 20, cout)] if bias else [])
    fn = lambda m, x, w, *b: getattr(F(m), f"conv_transpose{nd}d")(x, w, *b, **kw).sin()
    check_double(device, fn, *arrays, seed=case)


def test_conv_third_order():
    # a formula's result is built from the two conv ops: it is differentiable again
    res = []
    for m in (dtrain, torch):
        x = m.tensor(rand(1, 1, 2, 5, 5), requires_grad=True)
        w = m.tensor(rand(2, 3, 2, 3, 3), requires_grad=True)
        y = F(m).conv2d(x, w, stride=2, padding=1)
        (gx,) = m.autograd.grad((y * y).sum(), x, create_graph=True)
        (gw,) = m.autograd.grad((gx * gx).sum(), w, create_graph=True)
        (gx3,) = m.autograd.grad((gw * m.tensor(rand(3, 3, 2, 3, 3))).sum(), x)
        res.append(gx3)
    assert_close(*res, ATOL, RTOL)


# ------------------------------------------------------------------------------------------ normalisation
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("shape,ns", [((3, 5), (5,)), ((2, 3, 4), (3, 4))], ids=["1d", "2d"])
def test_layer_norm(shape, ns, affine, device):
    arrays = [rand(0, *shape)]
    if affine != "none":
        arrays.append(1 + 0.3 * rand(1, *ns))
    if affine == "both":
        arrays.append(rand(2, *ns))
    check_double(device, lambda m, x, *wb: F(m).layer_norm(x, ns, *wb, eps=1e-3) ** 2, *arrays)


def test_layer_norm_of_a_non_leaf(device):
    arrays = [rand(0, 4, 6), rand(1, 6), rand(2, 6)]
    check_double(device, lambda m, x, w, b: F(m).layer_norm(x.sin() * 2, (6,), w, b), *arrays)


@pytest.mark.parametrize("weight", [True, False])
def test_rms_norm(weight, device):
    arrays = [rand(0, 3, 2, 5)] + ([1 + 0.3 * rand(1, 2, 5)] if weight else [])
    check_double(device, lambda m, x, *w: F(m).rms_norm(x, (2, 5), *w, eps=1e-4) ** 2, *arrays)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4, 5)], ids=["1d", "2d"])
def test_batch_norm(shape, affine, training, device):
    c = shape[1]
    arrays = [rand(0, *shape) * 2 + 1] + ([1 + 0.3 * rand(1, c), rand(2, c)] if affine else [])
    stats = rand(3, c), 1 + np.abs(rand(4, c))

    def fn(m, x, *wb):
        rm, rv = m.tensor(stats[0]), m.tensor(stats[1])
        return F(m).batch_norm(x.exp(), rm, rv, *wb, training=training, eps=1e-3) ** 2
    check_double(device, fn, *arrays)


def test_batch_norm_of_a_leaf_in_eval_mode(device):
    # the running mean is read back from the input itself when it is a leaf
    stats = rand(3, 3), 1 + np.abs(rand(4, 3))
    fn = lambda m, x, w, b: F(m).batch_norm(x, m.tensor(stats[0]), m.tensor(stats[1]), w, b, eps=1e-3) ** 2
    check_double(device, fn, rand(0, 4, 3, 2) + 3, rand(1, 3), rand(2, 3))


@pytest.mark.parametrize("norm", ["group", "instance"])
def test_group_and_instance_norm(norm, device):
    x = rand(0, 2, 4, 3, 3)
    if norm == "group":
        check_double(device, lambda m, x, w, b: F(m).group_norm(x, 2, w, b) ** 2, x, rand(1, 4), rand(2, 4))
    else:
        check_double(device, lambda m, x: F(m).instance_norm(x) ** 2, x)


# ---------------------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("nd,shape,kw", [
    (1, (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    (2, (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1)),
    (2, (2, 3, 7, 6), dict(kernel_size=(2, 3), stride=1, dilation=2, ceil_mode=True)),
    (2, (2, 3, 6, 6), dict(kernel_size=2, return_indices=True)),
    (3, (1, 2, 4, 5, 4), dict(kernel_size=2, stride=(1, 2, 2), padding=1)),
    (3, (1, 2, 4, 4, 4), dict(kernel_size=2, return_indices=True)),
])
def test_max_pool(nd, shape, kw, device):
    def fn(m, x):
        y = getattr(F(m), f"max_pool{nd}d")(x, **kw)
        return (y[0] if kw.get("return_indices") else y) ** 2
    check_double(device, fn, rand(0, *shape))


@pytest.mark.parametrize("nd,shape,kw", [
    (1, (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    (2, (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    (2, (2, 3, 7, 6), dict(kernel_size=(2, 3), ceil_mode=True)),
    (2, (2, 3, 6, 6), dict(kernel_size=3, padding=1, divisor_override=5)),
    (3, (1, 2, 4, 5, 4), dict(kernel_size=2, stride=(1, 2, 2), padding=1, ceil_mode=True, count_include_pad=False)),
])
def test_avg_pool(nd, shape, kw, device):
    check_double(device, lambda m, x: getattr(F(m), f"avg_pool{nd}d")(x, **kw) ** 2, rand(0, *shape))


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("nd,shape,out", [(1, (2, 3, 7), 3), (2, (2, 3, 7, 5), (3, 2)),
                                          (3, (1, 2, 5, 4, 3), (2, 3, 2))])
def test_adaptive_pool(kind, nd, shape, out, device):
    check_double(device, lambda m, x: getattr(F(m), f"adaptive_{kind}_pool{nd}d")(x, out) ** 2, rand(0, *shape))


# ----------------------------------------------------------------------------------- dropout, embedding
@pytest.mark.parametrize("p", [0.0, 0.4])
def test_dropout(p):
    # the two frameworks draw different masks: each run's mask is read off its own first-order gradient
    res = []
    for m in (dtrain, torch):
        m.manual_seed(0)
        x = m.tensor(rand(0, 5, 6), requires_grad=True)
        y = F(m).dropout(x, p, training=True)
        mask = (y / x).detach()
        (g,) = m.autograd.grad((y ** 3).sum(), x, create_graph=True)
        (h,) = m.autograd.grad((g * m.tensor(rand(1, 5, 6))).sum(), x)
        res.append((mask, g.detach(), h))
    for mask, g, h in res:
        x = rand(0, 5, 6)
        mask = mask.numpy()
        np.testing.assert_allclose(g.numpy(), 3 * (mask * x) ** 2 * mask, rtol=RTOL)
        np.testing.assert_allclose(h.numpy(), 6 * mask ** 3 * x * rand(1, 5, 6), rtol=RTOL)


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding(padding_idx, device):
    idx = np.array([[0, 2, 4], [2, 1, 0]])
    check_double(device, lambda m, w, i: F(m).embedding(i, w, padding_idx=padding_idx) ** 2, rand(0, 5, 3), idx)


# ---------------------------------------------------------------------------------------------- attention
def _bool_mask():
    return np.random.default_rng(7).random((4, 5)) > 0.3


@pytest.mark.parametrize("variant", ["plain", "causal", "float_mask", "bool_mask", "broadcast", "mask_grad"])
def test_attention(variant, device):
    q, k, v = rand(0, 2, 3, 4, 6), rand(1, 2, 3, 5, 6), rand(2, 2, 3, 5, 7)
    if variant == "causal":
        k, v = k[:, :, :4], v[:, :, :4]
    if variant == "broadcast":
        k, v = k[:1], v[:1]
    extra = (rand(3, 4, 5),) if variant == "mask_grad" else ()

    def fn(m, q, k, v, *mask):
        kw = {}
        if variant == "causal":
            kw["is_causal"] = True
        elif variant == "float_mask":
            kw["attn_mask"] = m.tensor(rand(3, 4, 5))
        elif variant == "bool_mask":
            kw["attn_mask"] = m.tensor(_bool_mask())
        elif variant == "mask_grad":
            kw["attn_mask"] = mask[0]
        return F(m).scaled_dot_product_attention(q, k, v, **kw).sin()
    check_double(device, fn, q, k, v, *extra)


# ------------------------------------------------------------------------------- shape and indexing ops
def _setitem(m, x, v, key):
    y = x * 1
    y[key] = v
    return y


_I = np.array([[0, 2, 1], [1, 1, 0]])  # gather/scatter indices into (2, 4) along dim 1 (unique per row for scatter)
_J = np.array([2, 0, 2])  # index_select / index_add (repeats) along dim 0 of a (3, 4)
_K = np.array([2, 0])  # index_copy (distinct)
_UNPOOL = np.array([[[[0, 3], [9, 14]]]])  # max_unpool2d indices into a 4x4 plane

SHAPE_OPS = {
    "cat": (lambda m, a, b: m.cat([a, b * 2, a], 1) ** 2, [(2, 3), (2, 2)]),
    "cat_dim0_with_empty": (lambda m, a, b: m.cat([a.reshape(-1), m.zeros(0, dtype=a.dtype), b.reshape(-1)]) ** 2,
                            [(2, 3), (4,)]),
    "stack": (lambda m, a, b: m.stack([a, b.sin()], 1) ** 2, [(2, 3), (2, 3)]),
    "repeat": (lambda m, x: x.repeat(2, 1, 3) ** 2, [(2, 3)]),
    "tile": (lambda m, x: x.tile((2,)) ** 2, [(2, 3)]),
    "flip": (lambda m, x: x.flip((0, 2)) ** 2, [(2, 3, 4)]),
    "roll_dims": (lambda m, x: x.roll((1, -2), (0, 1)) ** 2, [(3, 4)]),
    "roll_flat": (lambda m, x: x.roll(5) ** 2, [(3, 4)]),
    "tril": (lambda m, x: x.tril(-1) ** 2, [(2, 4, 4)]),
    "triu": (lambda m, x: x.triu(1) ** 2, [(4, 3)]),
    "diag": (lambda m, x: m.diag(x, 1) ** 2, [(3,)]),
    "median": (lambda m, x: x.median() * x, [(5,)]),
    "einsum_mm": (lambda m, a, b: m.einsum("ij,jk->ik", a, b) ** 2, [(2, 3), (3, 4)]),
    "einsum_batched_ellipsis": (lambda m, a, b: m.einsum("...ij,...jk", a, b) ** 2, [(2, 2, 3), (1, 3, 4)]),
    "einsum_outer": (lambda m, a, b: m.einsum("i,j->ij", a, b).sin(), [(3,), (4,)]),
    "einsum_diagonal": (lambda m, a, b: m.einsum("iij,j->i", a, b) ** 2, [(3, 3, 2), (2,)]),
    "einsum_sum_out": (lambda m, a, b: m.einsum("ij,jk->", a, b) ** 2, [(2, 3), (3, 2)]),
    "einsum_three": (lambda m, a, b, c: m.einsum("ij,jk,kl->il", a, b, c) ** 2, [(2, 3), (3, 2), (2, 2)]),
    "pad_constant": (lambda m, x: F(m).pad(x, (1, 2, -1, 1), value=0.5) ** 2, [(2, 3, 4)]),
    "pad_reflect": (lambda m, x: F(m).pad(x, (2, 1, 1, 2), mode="reflect") ** 2, [(1, 2, 4, 5)]),
    "pad_replicate": (lambda m, x: F(m).pad(x, (2, 1), mode="replicate") ** 2, [(2, 2, 4)]),
    "pad_circular": (lambda m, x: F(m).pad(x, (1, 2, 2, 1, 1, 0), mode="circular") ** 2, [(1, 1, 2, 3, 4)]),
    "unfold": (lambda m, x: F(m).unfold(x, (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)) ** 2, [(2, 2, 4, 5)]),
    "fold": (lambda m, x: F(m).fold(x, (4, 5), (2, 2), padding=1, stride=(2, 1)) ** 2, [(2, 8, 18)]),
    "tensor_unfold": (lambda m, x: x.unfold(1, 2, 1) ** 2, [(2, 4)]),
    "max_unpool": (lambda m, x, i: F(m).max_unpool2d(x, i, 2, output_size=(4, 4)) ** 2, [(1, 1, 2, 2), _UNPOOL]),
    "advanced_index": (lambda m, x, i: x[i] ** 2, [(3, 4), _J]),
    "advanced_index_mixed": (lambda m, x, i: x[i, 1:] ** 2, [(3, 4), _J]),
    "gather": (lambda m, x, i: x.gather(1, i) ** 2, [(2, 4), _I]),
    "gather_smaller_index": (lambda m, x, i: x.gather(1, i) ** 2, [(3, 4), _I]),
    "scatter": (lambda m, x, s, i: x.scatter(1, i, s.sin()) ** 2, [(2, 4), (2, 3), _I]),
    "scatter_add": (lambda m, x, s, i: x.scatter_add(1, i, s) ** 2, [(2, 4), (2, 3), _I]),
    "index_select": (lambda m, x, i: x.index_select(0, i) ** 2, [(3, 4), _J]),
    "index_add": (lambda m, x, s, i: x.index_add(0, i, s, alpha=2) ** 2, [(3, 4), (3, 4), _J]),
    "index_copy": (lambda m, x, s, i: x.index_copy(0, i, s) ** 2, [(3, 4), (2, 4), _K]),
    "select_scatter": (lambda m, x, s: m.select_scatter(x, s, 1, 2) ** 2, [(3, 4), (3,)]),
    "slice_scatter": (lambda m, x, s: m.slice_scatter(x, s, 1, 0, 4, 2) ** 2, [(3, 4), (3, 2)]),
    "diagonal_scatter": (lambda m, x, s: m.diagonal_scatter(x, s, 1) ** 2, [(3, 4), (3,)]),
    "index_put": (lambda m, x, v, i: x.index_put((i,), v) ** 2, [(3, 4), (4,), _K]),
    "index_put_accumulate": (lambda m, x, v, i: x.index_put((i,), v, accumulate=True) ** 2, [(3, 4), (3, 4), _J]),
    "setitem_advanced": (lambda m, x, v, i: _setitem(m, x, v, i) ** 2, [(3, 4), (2, 4), _K]),
    "setitem_basic": (lambda m, x, v: _setitem(m, x, v, (slice(0, 2), 1)) ** 2, [(3, 4), (2,)]),
    "scatter_reduce_sum": (lambda m, x, s, i: x.scatter_reduce(1, i, s, "sum") ** 2, [(2, 4), (2, 3), _I]),
    "scatter_reduce_mean": (lambda m, x, s, i: x.scatter_reduce(1, i, s, "mean") ** 2, [(2, 4), (2, 3), _I]),
    "scatter_reduce_mean_exclude_self": (
        lambda m, x, s, i: x.scatter_reduce(1, i, s, "mean", include_self=False) ** 2, [(2, 4), (2, 3), _I]),
    "scatter_reduce_amax": (lambda m, x, s, i: x.scatter_reduce(1, i, s, "amax") ** 2, [(2, 4), (2, 3), _I]),
    "scatter_reduce_amin_exclude_self": (
        lambda m, x, s, i: x.scatter_reduce(1, i, s, "amin", include_self=False) ** 2, [(2, 4), (2, 3), _I]),
    "scatter_reduce_amax_ties": (lambda m, x, s, i: x.scatter_reduce(1, i, s, "amax") ** 2,
                                 [np.array([[1.0, 3.0, 2.0, 0.0], [2.0, 2.0, 1.0, 3.0]]),
                                  np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 1.0]]), _I]),
    "scatter_reduce_prod": (lambda m, x, s, i: x.scatter_reduce(1, i, s, "prod") ** 2, [(2, 4), (2, 3), _I]),
    "scatter_reduce_prod_exclude_self": (
        lambda m, x, s, i: x.scatter_reduce(1, i, s, "prod", include_self=False) ** 2, [(2, 4), (2, 3), _I]),
    "scatter_reduce_prod_one_zero": (lambda m, x, s, i: x.scatter_reduce(1, i, s, "prod") ** 2,
                                     [np.array([[1.5, 0.0, -2.0, 0.5], [0.7, 1.2, 0.0, 2.0]]),
                                      np.array([[0.0, 1.5, -1.0], [2.0, 0.0, 3.0]]), _I]),
    "scatter_reduce_prod_along_dim0": (lambda m, x, s, i: x.scatter_reduce(0, i.T, s, "prod") ** 2,
                                       [(3, 2), (3, 2), _I]),
    "scatter_reduce_sum_exclude_self": (
        lambda m, x, s, i: x.scatter_reduce(1, i, s, "sum", include_self=False) ** 2, [(2, 4), (2, 3), _I]),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_and_indexing_ops(name, device):
    fn, specs = SHAPE_OPS[name]
    arrays = [rand(i, *s) if isinstance(s, tuple) else s for i, s in enumerate(specs)]  # arrays: as they are
    check_double(device, fn, *arrays)


def test_to_another_dtype(device):
    # float32 in between: both frameworks round the same products
    check_double(device, lambda m, x: (x.to(m.float32) ** 2).double() * x, rand(0, 3, 4), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", [
    lambda m, x: F(m).max_pool2d(x, 2),
    lambda m, x: F(m).avg_pool2d(x, 2, padding=1),
    lambda m, x: x.index_select(2, m.tensor(np.array([0, 3, 3]))),
    lambda m, x: F(m).pad(x, (1, 1, 2, 1), mode="reflect"),
], ids=["max_pool", "avg_pool", "index_select", "pad_reflect"])
def test_third_order_through_a_linear_map(op):
    # the second-order graph holds the backward as a map beside its adjoint; differentiating it again swaps them
    res = []
    for m in (dtrain, torch):
        x = m.tensor(rand(0, 1, 2, 4, 4), requires_grad=True)
        (g1,) = m.autograd.grad((op(m, x) ** 3).sum(), x, create_graph=True)
        (g2,) = m.autograd.grad((g1 * m.tensor(rand(1, 1, 2, 4, 4))).sum(), x, create_graph=True)
        (g3,) = m.autograd.grad((g2 * g2).sum(), x)
        res.append((g1.detach(), g2.detach(), g3))
    for a, e in zip(*res):
        assert_close(a, e, ATOL, RTOL)


def test_attention_with_dropout_against_finite_differences():
    # the frameworks draw different dropout masks: dtrain's second order against its own finite differences,
    # the mask redrawn identically at each call
    q, k, v = (dtrain.tensor(rand(i, 2, 3, 4), requires_grad=True) for i in range(3))

    def f(q, k, v):
        dtrain.manual_seed(5)
        return F(dtrain).scaled_dot_product_attention(q, k, v, dropout_p=0.4, is_causal=True)
    assert dtrain.autograd.gradgradcheck(f, (q, k, v))


def test_attention_with_a_mask_computed_in_the_graph(device):
    # a float mask that requires grad and is not a leaf (its values are not saved), broadcast over the batch
    check_double(device, lambda m, q, k, v, mk: F(m).scaled_dot_product_attention(q, k, v, attn_mask=mk.sin() * 2),
                 rand(0, 2, 3, 4), rand(1, 2, 5, 4), rand(2, 2, 5, 3), rand(3, 3, 5))


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_without_the_compiled_kernels(monkeypatch, affine, device):
    # the portable op (the one of batch norm) on the layer's trailing dims
    from dtrain.nn.functional import _norm
    monkeypatch.setattr(_norm, "_fits_kernels", lambda *a: False)
    arrays = [rand(0, 2, 3, 4)] + ([1 + 0.3 * rand(1, 3, 4), rand(2, 3, 4)] if affine else [])
    check_double(device, lambda m, x, *wb: F(m).layer_norm(x.sin(), (3, 4), *wb) ** 2, *arrays)


# ------------------------------------------------------------------------------------------ linear algebra
def _well_conditioned(seed, *shape):
    return rand(seed, *shape) * 0.3 + np.eye(shape[-1]) * 2


def _spd(seed, *shape):
    a = rand(seed, *shape)
    return a @ a.swapaxes(-1, -2) + np.eye(shape[-1]) * shape[-1]


LINALG = {
    "inv": (lambda m, a: m.linalg.inv(a), [_well_conditioned(0, 2, 3, 3)]),
    "det": (lambda m, a: m.linalg.det(a), [_well_conditioned(0, 2, 3, 3)]),
    "slogdet": (lambda m, a: m.linalg.slogdet(a)[1], [_well_conditioned(0, 3, 3) - 4 * np.eye(3)]),
    "cholesky": (lambda m, a: m.linalg.cholesky(a), [_spd(0, 2, 3, 3)]),
    "cholesky_upper": (lambda m, a: m.linalg.cholesky(a, upper=True), [_spd(0, 3, 3)]),
    "cholesky_of_a_symmetrised_input": (lambda m, a: m.linalg.cholesky(a @ a.mT + 3 * m.eye(3, dtype=a.dtype)),
                                        [rand(0, 3, 3)]),
    "solve_triangular_lower": (lambda m, a, b: m.linalg.solve_triangular(a, b, upper=False),
                               [_well_conditioned(0, 3, 3), rand(1, 2, 3, 2)]),
    "solve_triangular_upper_right_unit": (
        lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True, left=False, unitriangular=True),
        [_well_conditioned(0, 2, 3, 3), rand(1, 2, 4, 3)]),
}


@pytest.mark.parametrize("name", list(LINALG))
def test_linear_algebra(name, device):
    fn, arrays = LINALG[name]
    check_double(device, lambda m, *a: fn(m, *a).sin(), *arrays, rtol=1e-6)


@pytest.mark.parametrize("op", [
    lambda m, x: F(m).max_pool3d(x.unsqueeze(2), (1, 2, 2)),
    lambda m, x: x.scatter_reduce(3, m.tensor(np.array([0, 1, 0, 1]).repeat(8).reshape(1, 2, 4, 4)), x * 2, "amax"),
    lambda m, x: F(m).embedding(m.tensor(np.array([1, 0, 1])), x.reshape(8, 4)),
    lambda m, x: x.scatter_reduce(3, m.tensor(np.array([0, 1, 0, 1]).repeat(8).reshape(1, 2, 4, 4)), x * 2, "prod"),
], ids=["max_pool3d", "scatter_reduce", "embedding", "scatter_reduce_prod"])
def test_third_order_under_saved_tensor_hooks(op):
    # the maps made in the second pass run again in the third, when the node's saved arrays are packed
    res = []
    for m in (dtrain, torch):
        x = m.tensor(rand(0, 1, 2, 4, 4), requires_grad=True)
        with m.autograd.graph.saved_tensors_hooks(lambda t: t * 1, lambda t: t):
            y = op(m, x)
        (g1,) = m.autograd.grad((y ** 3).sum(), x, create_graph=True)
        (g2,) = m.autograd.grad((g1 * m.tensor(rand(1, 1, 2, 4, 4))).sum(), x, create_graph=True)
        (g3,) = m.autograd.grad((g2 * g2).sum(), x)
        res.append(g3)
    assert_close(*res, ATOL, RTOL)


# ------------------------------------------------------------------------------ whole training programs
def _same_params(dm, tm):
    with torch.no_grad():
        for (dn, dp), (tn, tp) in zip(dm.named_parameters(), tm.named_parameters()):
            assert dn == tn
            dp.data.copy_(dtrain.tensor(tp.detach().numpy()))


def _critic(m):
    nn = m.nn
    m.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.Tanh(), nn.GroupNorm(2, 4),
                         nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Tanh(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(6),
                         nn.Linear(6, 1)).double()


def test_wgan_gradient_penalty_step(device):
    # WGAN-GP: the penalty on the critic's input gradient, differentiated with respect to the critic's weights
    models = {m: _critic(m) for m in (dtrain, torch)}
    _same_params(models[dtrain], models[torch])
    real, fake, eps = rand(0, 3, 2, 8, 8), rand(1, 3, 2, 8, 8), np.random.default_rng(2).random((3, 1, 1, 1))
    grads = {}
    for m, net in models.items():
        with _default_device(device) if m is dtrain else torch.no_grad():
            net = net.to(device) if m is dtrain else net
            x = (m.tensor(eps) * m.tensor(real) + (1 - m.tensor(eps)) * m.tensor(fake)).requires_grad_(True)
        (gx,) = m.autograd.grad(net(x).sum(), x, create_graph=True)
        penalty = ((gx.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss = net(m.tensor(fake, device=device) if m is dtrain else m.tensor(fake)).mean() + 10 * penalty
        loss.backward()
        grads[m] = [p.grad for p in net.parameters()]
    for a, e in zip(grads[dtrain], grads[torch]):
        assert_close(a, e, 1e-9, 1e-7)


def test_maml_step_through_conv_batch_norm_and_attention():
    # MAML: one inner SGD step on a support batch, the outer loss on the query batch differentiated through it
    def build(m):
        m.manual_seed(0)
        return m.nn.ModuleDict({"conv": m.nn.Conv1d(3, 4, 3, padding=1), "bn": m.nn.BatchNorm1d(4),
                                "emb": m.nn.Embedding(5, 4)}).double()
    models = {m: build(m) for m in (dtrain, torch)}
    _same_params(models[dtrain], models[torch])
    ids = np.array([[0, 3, 1, 4, 2, 2], [1, 1, 0, 4, 3, 0]])
    support, query = rand(0, 2, 3, 6), rand(1, 2, 3, 6)
    grads = {}
    for m, net in models.items():
        F_ = m.nn.functional

        def forward(x, params):
            h = F_.conv1d(x, params["conv.weight"], params["conv.bias"], padding=1)
            h = F_.batch_norm(h, None, None, params["bn.weight"], params["bn.bias"], training=True)
            e = F_.embedding(m.tensor(ids), params["emb.weight"]).transpose(1, 2)  # (2, 4, 6)
            q = (h + e).transpose(1, 2)
            return F_.scaled_dot_product_attention(q, q, q, is_causal=True).tanh().sum()
        params = dict(net.named_parameters())
        inner = m.autograd.grad(forward(m.tensor(support), params), list(params.values()), create_graph=True)
        fast = {k: p - 0.1 * g for (k, p), g in zip(params.items(), inner)}
        forward(m.tensor(query), fast).backward()
        grads[m] = [p.grad for p in params.values()]
    for a, e in zip(grads[dtrain], grads[torch]):
        assert_close(a, e, 1e-9, 1e-7)


HALF = {
    "attention": (lambda m, x, w: F(m).scaled_dot_product_attention(x * 1, w, w, is_causal=True), (2, 3, 4), (2, 5, 4)),
    "batch_norm_eval": (lambda m, x, w: F(m).batch_norm(x, m.zeros(3, dtype=x.dtype), m.ones(3, dtype=x.dtype), w[0],
                                                        w[1]), (2, 3, 4), (2, 3)),
    "layer_norm": (lambda m, x, w: F(m).layer_norm(x * 1, (4,), w[0], w[1]), (2, 3, 4), (2, 4)),
    "conv2d": (lambda m, x, w: F(m).conv2d(x, w, padding=1), (1, 2, 5, 5), (3, 2, 3, 3)),
    "max_pool": (lambda m, x, w: F(m).max_pool1d(x * w.reshape(1, 3, 1), 2), (2, 3, 4), (3,)),
}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", list(HALF))
def test_half_precision(case, dtype):
    # widened ops save float32 copies of half-precision inputs: the gradients still come in the inputs' dtype,
    # and are torch's to half-precision rounding (relative to the largest)
    fn, xs, ws = HALF[case]
    res = []
    for m in (dtrain, torch):
        d = getattr(m, dtype)
        x = m.tensor(rand(0, *xs), dtype=d, requires_grad=True)
        w = m.tensor(1 + 0.2 * rand(1, *ws), dtype=d, requires_grad=True)
        y = fn(m, x, w)
        gs = m.autograd.grad((y ** 2).sum(), (x, w), create_graph=True)
        hs = m.autograd.grad(sum((t * t).sum() for t in gs), (x, w), allow_unused=True)
        res.append([t for t in gs + hs if t is not None])
    assert len(res[0]) == len(res[1])
    for a, e in zip(*res):
        assert str(a.dtype) == str(e.dtype)
        a, e = a.float().detach().numpy(), e.float().detach().numpy()
        np.testing.assert_allclose(a, e, atol=3e-2 * np.abs(e).max())


def _channels_last(m, x):
    return x.contiguous(memory_format=m.channels_last)


STRIDED = {
    "conv2d_transposed_input": (lambda m, x, w: F(m).conv2d(x.transpose(2, 3), w, padding=1), (2, 3, 6, 5),
                                (4, 3, 3, 3)),
    "conv2d_channels_last": (lambda m, x, w: F(m).conv2d(_channels_last(m, x), _channels_last(m, w), stride=2),
                             (2, 8, 6, 6), (4, 8, 3, 3)),
    "conv_transpose2d_channels_last": (lambda m, x, w: F(m).conv_transpose2d(_channels_last(m, x), w, stride=2),
                                       (2, 3, 4, 4), (3, 2, 3, 3)),
    "max_pool2d_channels_last": (lambda m, x, w: F(m).max_pool2d(_channels_last(m, x * w), 2), (2, 3, 4, 4),
                                 (3, 1, 1)),
    "avg_pool2d_channels_last": (lambda m, x, w: F(m).avg_pool2d(_channels_last(m, x * w), 2), (2, 3, 4, 4),
                                 (3, 1, 1)),
    "batch_norm_channels_last": (lambda m, x, w: F(m).batch_norm(_channels_last(m, x), None, None, w, None,
                                                                 training=True), (2, 3, 4, 4), (3,)),
    "layer_norm_transposed": (lambda m, x, w: F(m).layer_norm(x.mT, (3,), w), (2, 3, 4), (3,)),
    "attention_transposed_keys": (lambda m, x, w: F(m).scaled_dot_product_attention(x, w.mT, w.mT), (2, 3, 4),
                                  (2, 4, 5)),
    "cat_of_views": (lambda m, x, w: m.cat([x.mT, w[:, ::2]], 1), (3, 4), (4, 6)),
    "gather_of_a_transposed": (lambda m, x, w: (x.mT * w).gather(0, m.tensor(np.array([[1, 0, 3], [2, 2, 0]]))),
                               (3, 4), (4, 3)),
}


@pytest.mark.parametrize("name", list(STRIDED))
def test_strided_inputs(name, device):
    fn, xs, ws = STRIDED[name]
    check_double(device, lambda m, x, w: fn(m, x, w) ** 2, rand(0, *xs), rand(1, *ws))


# ------------------------------------------------------------------------------------ sparse COO tensors
# Against the same products on the dense matrix the values make (torch's exact oracle): torch's own sparse
# path returns the values' gradient without a graph, so its second order silently drops what depends on it
# (its second order of the dense operand's gradient alone agrees with the oracle: checked below).
_SP_IDX = np.array([[0, 1, 1, 0], [1, 0, 2, 1]])  # (0, 1) twice: uncoalesced


def _oracle_dense(v):
    return torch.zeros(2, 3, dtype=v.dtype).index_put((torch.tensor(_SP_IDX[0]), torch.tensor(_SP_IDX[1])), v,
                                                      accumulate=True)


SPARSE = {
    "sparse_mm": (lambda m, s, d: m.sparse.mm(s, d), lambda S, d: S @ d),
    "mm": (lambda m, s, d: m.mm(s, d), lambda S, d: S @ d),
    "t_then_mm": (lambda m, s, d: m.sparse.mm(s.t(), d[:2]), lambda S, d: S.t() @ d[:2]),
    "to_dense": (lambda m, s, d: s.to_dense() * d[:2, :1].sin(), lambda S, d: S * d[:2, :1].sin()),
    "coalesce_values": (lambda m, s, d: s.coalesce().values() * d[:3, 0],
                        lambda S, d: S[[0, 1, 1], [1, 0, 2]] * d[:3, 0]),
    "mul_by_a_number": (lambda m, s, d: m.sparse.mm(s * 3.0, d), lambda S, d: (S * 3.0) @ d),
    "add_and_sub": (lambda m, s, d: (s + s * s.to_dense()[0, 1].item() - 2 * s).to_dense() * d[:2, :1],
                    lambda S, d: (S + S * S[0, 1].item() - 2 * S) * d[:2, :1]),
    "sparse_sum": (lambda m, s, d: m.sparse.sum(s, 1).to_dense() * d[:2, 0], lambda S, d: S.sum(1) * d[:2, 0]),
    "to_float32": (lambda m, s, d: s.to(m.float32).to_dense().double() * d[:2, :1],
                   lambda S, d: S.float().double() * d[:2, :1]),
}


@pytest.mark.parametrize("name", list(SPARSE))
def test_sparse(name):
    fn, dense_fn = SPARSE[name]
    va, da = np.array([2.0, 1.0, 3.0, -0.5]), rand(0, 3, 2)
    gy = rand(1, *dense_fn(_oracle_dense(torch.tensor(va)), torch.tensor(da)).shape)
    res = []
    for m in (dtrain, torch):
        v, d = m.tensor(va, requires_grad=True), m.tensor(da, requires_grad=True)
        y = fn(m, m.sparse_coo_tensor(m.tensor(_SP_IDX), v * 1, (2, 3)), d) if m is dtrain else \
            dense_fn(_oracle_dense(v * 1), d)
        gs = m.autograd.grad(y, (v, d), m.tensor(gy), create_graph=True, allow_unused=True)
        loss = sum((g * g.detach().sin()).sum() for g in gs if g is not None and g.requires_grad)
        hs = m.autograd.grad(loss, (v, d), allow_unused=True)
        res.append([np.zeros(s) if t is None else t.detach().numpy()
                    for t, s in zip(gs + hs, [va.shape, da.shape] * 2)])
    for a, e in zip(*res):
        assert_close(a, e, ATOL, 1e-6)


def test_sparse_mm_second_order_of_the_dense_gradient_is_torchs():
    res = []
    for m in (dtrain, torch):
        v = m.tensor(np.array([2.0, 1.0, 3.0, -0.5]), requires_grad=True)
        d = m.tensor(rand(0, 3, 2), requires_grad=True)
        y = m.sparse.mm(m.sparse_coo_tensor(m.tensor(_SP_IDX), v * 1, (2, 3), check_invariants=True), d)
        gd, _ = m.autograd.grad((y ** 2).sum(), (d, v), create_graph=True)
        res.append(m.autograd.grad((gd ** 2).sum(), (v, d)))
    for a, e in zip(*res):
        assert_close(a, e, ATOL, RTOL)


def test_to_sparse_then_mm():
    # a dense tensor made sparse: its gradient lives on its nonzeros (torch's first-order rule), at every order
    aa = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    res = []
    for m in (dtrain, torch):
        a, d = m.tensor(aa, requires_grad=True), m.tensor(rand(0, 3, 2), requires_grad=True)
        y = m.sparse.mm(a.to_sparse(), d) if m is dtrain else (a * m.tensor(aa != 0)) @ d
        gs = m.autograd.grad((y ** 3).sum(), (a, d), create_graph=True)
        res.append(gs + m.autograd.grad(sum((g * g).sum() for g in gs), (a, d)))
    for a, e in zip(*res):
        assert_close(a, e, ATOL, RTOL)


def test_ops_sharing_a_formula_key_keep_their_own():
    # batch norm's op and torch.norm's are both Norm, F.unfold's and Tensor.unfold's both Unfold: each node
    # gets its own op's formula (torch.norm's: torch's result, or dtrain's error naming it while it has none)
    res = []
    for m in (dtrain, torch):
        x = m.tensor(rand(0, 3, 4), requires_grad=True)
        try:
            (g,) = m.autograd.grad(x.norm(dim=1).sum() ** 2, x, create_graph=True)
        except NotImplementedError as e:
            assert m is dtrain and "LinalgVectorNormBackward0" in str(e)
            return
        res.append(m.autograd.grad((g * g).sum(), x))
    assert_close(*res, ATOL, RTOL)


def test_ctc_loss_is_differentiated_once_as_torchs():
    # torch's CTC loss has no derivative of its backward: the first-order gradient with create_graph is
    # torch's, and differentiating it raises torch's error
    lp_a = np.log(np.random.default_rng(0).dirichlet(np.ones(4), size=(5, 2)))
    grads = []
    for m in (dtrain, torch):
        lp = m.tensor(lp_a, requires_grad=True)
        loss = F(m).ctc_loss(lp, m.tensor(np.array([[1, 2], [3, 1]])), m.tensor(np.array([5, 4])),
                             m.tensor(np.array([2, 1])))
        (g,) = m.autograd.grad(loss, lp, create_graph=True)
        assert g.requires_grad and type(g.grad_fn).__name__ == "NotImplemented"
        with pytest.raises(RuntimeError, match="derivative for aten::_ctc_loss_backward is not implemented"):
            m.autograd.grad((g * g).sum(), lp)
        grads.append(g)
    assert_close(*grads, ATOL, RTOL)


# layers composed of the ops above: twice differentiable through their formulas
COMPOSED = {
    "interpolate_nearest": (lambda m, x: F(m).interpolate(x, scale_factor=2, mode="nearest"), [(1, 2, 3, 3)]),
    "interpolate_bilinear": (lambda m, x: F(m).interpolate(x, size=(5, 4), mode="bilinear"), [(1, 2, 3, 3)]),
    "interpolate_linear_align_corners": (lambda m, x: F(m).interpolate(x, size=7, mode="linear", align_corners=True),
                                         [(1, 2, 3)]),
    "grid_sample": (lambda m, x, grid: F(m).grid_sample(x, grid.tanh(), align_corners=False),
                    [(1, 2, 4, 4), (1, 3, 3, 2)]),
    "pixel_shuffle": (lambda m, x: F(m).pixel_shuffle(x, 2), [(1, 8, 2, 2)]),
    "local_response_norm": (lambda m, x: F(m).local_response_norm(x, 2), [(1, 4, 3, 3)]),
    "fractional_max_pool2d": (lambda m, x: F(m).fractional_max_pool2d(
        x, 2, output_size=(2, 2), _random_samples=m.tensor(np.full((1, 2, 2), 0.5))), [(1, 2, 5, 5)]),
}


@pytest.mark.parametrize("name", list(COMPOSED))
def test_composed_layers(name, device):
    fn, shapes = COMPOSED[name]
    check_double(device, lambda m, *a: fn(m, *a) ** 2, *[rand(i, *s) for i, s in enumerate(shapes)])


def test_scatter_reduce_prod_with_two_zeros_in_a_slot():
    # torch's gradient of src is then an Error node: differentiating it raises, that of self does not
    res = []
    for m in (dtrain, torch):
        x = m.tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
        s = m.tensor(np.array([[0.0, 0.0, 2.0]]), requires_grad=True)
        y = x.scatter_reduce(1, m.tensor(np.array([[0, 0, 1]])), s, "prod")
        gx, gs = m.autograd.grad((y * y).sum(), (x, s), create_graph=True)
        with pytest.raises(RuntimeError, match="Double backward is unsupported for src when >1 zeros"):
            m.autograd.grad(gs.sum(), (x, s))
        res.append((gx, gs) + m.autograd.grad(gx.sum(), (x, s)))
    for a, e in zip(*res):
        assert_close(a, e, ATOL, RTOL)


@pytest.mark.parametrize("variant", ["plain", "causal", "bool_mask", "gqa"])
def test_attention_where_torch_picks_its_flash_kernel(variant, device):
    # 4-D inputs of one head size: torch's CPU dispatcher picks its flash kernel, whose backward it does not
    # differentiate (it raises); its math kernel does. dtrain differentiates attention twice whatever the shapes:
    # torch's math kernel is the oracle, and torch's own error is pinned here
    from torch.nn.attention import SDPBackend, sdpa_kernel
    q, k, v = rand(0, 2, 4, 5, 4), rand(1, 2, 4, 6, 4), rand(2, 2, 4, 6, 4)
    if variant == "causal":
        k, v = k[:, :, :5], v[:, :, :5]
    if variant == "gqa":
        k, v = k[:, :2], v[:, :2]
    kw = {"causal": dict(is_causal=True), "gqa": dict(enable_gqa=True)}.get(variant, {})

    def fn(m, q, k, v):
        keep = np.random.default_rng(7).random((5, 6)) > 0.3
        mask = dict(attn_mask=m.tensor(keep)) if variant == "bool_mask" else {}
        return F(m).scaled_dot_product_attention(q, k, v, **kw, **mask).sin()
    with sdpa_kernel(SDPBackend.MATH):
        check_double(device, fn, q, k, v)
    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    (g,) = torch.autograd.grad(fn(torch, qt, kt, vt).sum(), qt, create_graph=True)
    with pytest.raises(RuntimeError, match="_scaled_dot_product_flash_attention_for_cpu_backward is not implemented"):
        torch.autograd.grad(g.sum(), qt)
