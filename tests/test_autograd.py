"""Autograd semantics, each against torch's behaviour: accumulation, retained graphs, hooks, grad modes,
custom Functions, version counters, end-of-backward callbacks, deep graphs."""
import numpy as np
import pytest
import torch

import dtrain
from dtrain.autograd import graph
from helpers import assert_close, check

FRAMEWORKS = [dtrain, torch]


def leaf(m, data, device="cpu"):
    t = m.tensor(np.asarray(data, dtype=np.float64))
    return t.to(device) if m is dtrain else t


@pytest.mark.parametrize("m", FRAMEWORKS, ids=["dtrain", "torch"])
def test_grads_accumulate_across_backward_calls(m):
    x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_allclose(np.asarray(x.grad.tolist()), [5.0, 7.0, 9.0])


def test_second_backward_through_freed_graph_raises():
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    for m in FRAMEWORKS:
        x = m.tensor([1.0, 2.0], requires_grad=True)
        y = (x.exp() * x).sum()
        y.backward(retain_graph=True)
        y.backward()
        if m is dtrain:
            got = x.grad.numpy()
        else:
            want = x.grad.numpy()
    np.testing.assert_allclose(got, want)


def test_leaf_grads_never_alias():
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    y = dtrain.tensor([3.0, 4.0], requires_grad=True)
    (x + y).sum().backward()
    x.grad.mul_(10)
    assert y.grad.tolist() == [1.0, 1.0]
    assert x.grad.tolist() == [10.0, 10.0]


def test_diamond_graph_sums_both_paths():
    check(lambda m, x: (lambda h: h.sin() * h + h.exp())(x * 3), (4, 5))


def test_non_scalar_backward_needs_gradient():
    x = dtrain.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(dtrain.tensor([1.0, 2.0, 3.0]))
    assert x.grad.tolist() == [2.0, 4.0, 6.0]


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        dtrain.ones(2).sum().backward()


def test_hooks_on_leaf_and_non_leaf_change_gradients():
    res = {}
    for m in FRAMEWORKS:
        x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
        h = x * 2
        h.register_hook(lambda g: g * 10)
        x.register_hook(lambda g: g + 1)
        (h * h).sum().backward()
        res[m.__name__] = x.grad.tolist()
    assert res["dtrain"] == res["torch"]


def test_hook_removal():
    x = dtrain.tensor([1.0], requires_grad=True)
    handle = x.register_hook(lambda g: g * 100)
    handle.remove()
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0]


def test_post_accumulate_grad_hook_fires_once_after_accumulation():
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.tolist()))
    (x * x + x * 3).sum().backward()   # x reaches the leaf through three edges
    assert seen == [[5.0, 7.0]]
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2).register_post_accumulate_grad_hook(lambda p: None)


def test_queue_callback_runs_at_end_of_backward():
    order = []
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: graph.queue_callback(lambda: order.append(("callback", x.grad.tolist()))))
    x.register_post_accumulate_grad_hook(lambda p: order.append(("accumulated",)))
    y.sum().backward()
    assert order == [("accumulated",), ("callback", [2.0, 2.0])]
    with pytest.raises(RuntimeError, match="during backward"):
        graph.queue_callback(lambda: None)
    # torch's spelling, used by DDP implementations
    z = x * 3
    z.register_hook(lambda g: dtrain.autograd.Variable._execution_engine.queue_callback(lambda: order.append("v")))
    z.sum().backward()
    assert order[-1] == "v"


def test_deep_chain_is_iterative():
    x = dtrain.tensor([0.5], dtype=dtrain.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000], rtol=1e-9)


@pytest.mark.parametrize("ctx", ["no_grad", "inference_mode", "set_grad_enabled"])
def test_grad_modes_as_context_and_decorator(ctx):
    x = dtrain.ones(2, requires_grad=True)
    mk = {"no_grad": dtrain.no_grad, "inference_mode": dtrain.inference_mode,
          "set_grad_enabled": lambda: dtrain.set_grad_enabled(False)}[ctx]
    with mk():
        y = x * 2
        with dtrain.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None
    assert dtrain.is_grad_enabled()

    @mk()
    def f(t):
        return t * 2
    assert not f(x).requires_grad
    assert dtrain.is_grad_enabled()


def test_set_grad_enabled_as_function_call():
    dtrain.set_grad_enabled(False)
    try:
        assert not (dtrain.ones(1, requires_grad=True) * 2).requires_grad
    finally:
        dtrain.set_grad_enabled(True)
    assert dtrain.is_grad_enabled()


def test_detach_retain_grad_is_leaf_and_grad_fn():
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    d = h.detach()
    assert x.is_leaf and not h.is_leaf and d.is_leaf and not d.requires_grad
    assert h.grad_fn.name() == "MulBackward0"
    (node, nr), (other, _) = h.grad_fn.next_functions
    assert node.name() == "torch::autograd::AccumulateGrad" and node.variable is x and other is None
    (h * h).sum().backward()
    assert h.grad.tolist() == [6.0, 12.0]
    assert x.grad.tolist() == [18.0, 36.0]
    d2 = h.detach_() if False else None
    with pytest.raises(RuntimeError, match="leaf variables"):
        h.requires_grad_(False)
    with pytest.raises(RuntimeError, match="floating point"):
        dtrain.tensor([1, 2]).requires_grad_()


def test_autograd_grad_returns_without_accumulating():
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    u = dtrain.tensor([5.0], requires_grad=True)
    y = (x ** 3).sum()
    (gx,) = dtrain.autograd.grad(y, x, retain_graph=True)
    assert gx.tolist() == [3.0, 12.0] and x.grad is None
    with pytest.raises(RuntimeError, match="allow_unused"):
        dtrain.autograd.grad(y, [x, u], retain_graph=True)
    gx2, gu = dtrain.autograd.grad(y, [x, u], allow_unused=True)
    assert gu is None and gx2.tolist() == [3.0, 12.0]


def test_grad_of_intermediate_with_grad_outputs():
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    y = h * 4
    (gh,) = dtrain.autograd.grad(y, h, grad_outputs=dtrain.tensor([1.0, 0.5]))
    assert gh.tolist() == [4.0, 2.0]


def test_inplace_on_leaf_requiring_grad_raises():
    x = dtrain.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad is being used in an in-place"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="view of a leaf Variable"):
        x[0:1].mul_(2)
    with dtrain.no_grad():
        x.add_(1)
    assert x.tolist() == [2.0, 2.0]


def test_modifying_a_saved_tensor_raises_at_backward():
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    y = x.sigmoid()        # saves its output
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    a = x * 1
    b = a * a              # saves a
    a.add_(1)
    with pytest.raises(RuntimeError, match="is at version 1; expected version 0"):
        b.sum().backward()
    v = x * 1
    w = v[0:1] * 3         # saves only the scalar 3: modifying the view's base is fine for mul by a constant
    v.add_(1)
    w.sum().backward()


def test_inplace_on_non_leaf_matches_torch():
    def f(m, x):
        y = x * 2
        y.add_(1)
        y.mul_(x)          # the old value of y is needed for x's gradient: it must be kept for backward
        y.exp_()
        return y
    check(f, (3, 4))


def test_setitem_in_graph_matches_torch():
    def f(m, x, v):
        y = x * 1
        y[1:3, 0] = v[:2] * 2
        y[0] = 5.0
        return y * y
    check(f, (4, 3), (3,))


def test_views_share_version_counter():
    x = dtrain.zeros(4)
    v = x[1:3]
    before = v._version.value
    x.add_(1)
    assert v._version.value == before + 1
    assert v.tolist() == [1.0, 1.0]


class _Cube(dtrain.autograd.Function):
    @staticmethod
    def forward(ctx, x, k):
        ctx.save_for_backward(x)
        ctx.k = k
        return x ** 3 * k

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        assert ctx.needs_input_grad == (True, False)
        return g * 3 * x * x * ctx.k, None


class _TorchCube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, k):
        ctx.save_for_backward(x)
        ctx.k = k
        return x ** 3 * k

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x * ctx.k, None


def test_custom_function_matches_torch():
    check(lambda m, x: (_Cube if m is dtrain else _TorchCube).apply(x, 2.0).sin(), (3, 2))


class _ArgMax(dtrain.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        idx = x.argmax(0)
        ctx.mark_non_differentiable(idx)
        return x * 2, idx

    @staticmethod
    def backward(ctx, g, gi):
        return g * 2


def test_custom_function_non_differentiable_output():
    x = dtrain.tensor([1.0, 3.0, 2.0], requires_grad=True)
    y, i = _ArgMax.apply(x)
    assert not i.requires_grad and y.requires_grad and i.item() == 1
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


class _WrongGrad(dtrain.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x  # should be 2 * g * x


def test_gradcheck_accepts_right_and_rejects_wrong_gradients():
    x = dtrain.randn(3, dtype=dtrain.float64, requires_grad=True)
    w = dtrain.randn(3, 2, dtype=dtrain.float64, requires_grad=True)
    assert dtrain.autograd.gradcheck(lambda a, b: (a @ b).tanh(), (x, w))
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        dtrain.autograd.gradcheck(_WrongGrad.apply, (x,))
    assert not dtrain.autograd.gradcheck(_WrongGrad.apply, (x,), raise_exception=False)


def test_backward_with_inputs_only_accumulates_there():
    x = dtrain.tensor([1.0], requires_grad=True)
    y = dtrain.tensor([2.0], requires_grad=True)
    (x * y).sum().backward(inputs=[x])
    assert x.grad.tolist() == [2.0] and y.grad is None


def test_node_hooks_see_gradients():
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    seen = []
    y.grad_fn.register_hook(lambda gin, gout: seen.append((gin[0].tolist(), gout[0].tolist())))
    y.sum().backward()
    assert seen == [([3.0, 3.0], [1.0, 1.0])]


def test_multi_output_op_with_one_output_used():
    check(lambda m, x: x.split(2, dim=1)[1] * 3, (3, 5))
    check(lambda m, x: x.max(dim=1).values, (3, 5))


def test_grad_dtype_and_device_follow_the_leaf(device):
    x = dtrain.ones(3, dtype=dtrain.float32, device=device, requires_grad=True)
    (x.double() * 2).sum().backward()
    assert x.grad.dtype is dtrain.float32 and x.grad.device == x.device
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_grad_view_puts_leaf_grads_into_a_flat_buffer():
    flat = np.zeros(5)
    a = dtrain.zeros(2, 1, dtype=dtrain.float64, requires_grad=True)
    b = dtrain.zeros(3, dtype=dtrain.float64, requires_grad=True)
    graph.set_grad_view(a, flat[:2].reshape(2, 1))
    graph.set_grad_view(b, flat[2:])
    ((a.reshape(-1) * 2).sum() + (b * 3).sum()).backward()
    assert flat.tolist() == [2.0, 2.0, 3.0, 3.0, 3.0]
    assert np.shares_memory(a.grad.numpy(), flat)
    (b * 1).sum().backward()                     # accumulation lands in the buffer too
    assert flat.tolist() == [2.0, 2.0, 4.0, 4.0, 4.0]
    b.grad = None
    graph.set_grad_view(b, None)
    (b * 1).sum().backward()
    assert not np.shares_memory(b.grad.numpy(), flat) and flat[2:].tolist() == [4.0, 4.0, 4.0]
    with pytest.raises(ValueError, match="does not fit"):
        graph.set_grad_view(a, flat[:3])


def test_grad_destination_only_where_nothing_can_tell():
    """A backward may write a leaf's gradient straight into its grad view only when that changes nothing."""
    from dtrain.autograd import graph
    seen = []

    class Probe(graph.Function):  # an op of dtrain's own (arrays in, arrays out), as Linear is
        def forward(ctx, x):
            return x * 2

        def backward(ctx, g):
            seen.append(graph.grad_destination(ctx, 0))
            return g * 2

    def leaf():
        w = dtrain.zeros(3, requires_grad=True)
        view = np.zeros(3, np.float32)
        graph.set_grad_view(w, view)
        return w, view

    w, view = leaf()
    Probe.apply(w).sum().backward()
    dst = seen.pop()
    assert dst[0] is view and dst[1] is None and w.grad._data is view and view.tolist() == [2.0, 2.0, 2.0]
    Probe.apply(w).sum().backward()                        # a .grad exists: accumulate, don't overwrite
    assert seen.pop() is None and view.tolist() == [4.0, 4.0, 4.0]
    w, view = leaf()
    dtrain.autograd.grad(Probe.apply(w).sum(), [w])        # autograd.grad accumulates nothing
    assert seen.pop() is None and view.tolist() == [0.0, 0.0, 0.0]
    w, view = leaf()
    (Probe.apply(w) + Probe.apply(w)).sum().backward()     # two producers: neither may write
    assert seen == [None, None] and view.tolist() == [4.0, 4.0, 4.0]  # the second adds to the first's
    seen.clear()
    w, view = leaf()
    w.register_hook(lambda g: g * 10)                      # a hook may replace the gradient first
    Probe.apply(w).sum().backward()
    assert seen.pop() is None and view.tolist() == [20.0, 20.0, 20.0]
    w = dtrain.zeros(3, requires_grad=True)                # no grad view
    Probe.apply(w).sum().backward()
    assert seen.pop() is None
    w, view = leaf()
    graph.set_grad_view(w, view, scale=0.25)               # the gradient materialises scaled
    w.sin().sum().backward()                               # (an op that returns its gradient)
    np.testing.assert_allclose(view, 0.25 * np.cos(np.zeros(3)))
    assert w.grad._data is view
    w.sin().sum().backward()                               # accumulating into it is not scaled
    np.testing.assert_allclose(view, 1.25 * np.cos(np.zeros(3)))


@pytest.mark.parametrize("scale", [None, 1 / 3])
@pytest.mark.parametrize("shared", [False, True])
def test_linear_writes_weight_gradient_into_its_grad_view(shared, scale, monkeypatch):
    from dtrain.autograd import graph
    copies_into_view = []
    copyto = np.copyto
    monkeypatch.setattr(np, "copyto", lambda dst, *a, **k: (copies_into_view.append(dst is view),
                                                            copyto(dst, *a, **k)))
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((4, 64))
    ws = rng.standard_normal((80, 64))
    w = dtrain.nn.Parameter(dtrain.from_numpy(ws.copy()))
    view = np.zeros((80, 64))
    graph.set_grad_view(w, view, scale)
    tw = torch.tensor(ws, requires_grad=True)
    for m, wt in ((dtrain, w), (torch, tw)):
        x = m.tensor(xs)
        y = m.nn.functional.linear(x, wt)
        if shared:
            y = m.nn.functional.linear(m.tanh(y[:, :64]), wt)
        y.square().sum().backward()
    assert w.grad._data is view
    # one producer: the product went straight into the view; two: their sum is copied (or scaled) in
    assert copies_into_view.count(True) == (1 if shared and scale is None else 0)
    np.testing.assert_allclose(view, tw.grad.numpy() * (scale or 1), rtol=1e-12, atol=1e-10)


def test_linear_hands_over_weight_and_bias_gradients_before_computing_the_input_gradient():
    # what lets DDP start a bucket's all-reduce while the layer's largest product is still to come
    from dtrain.autograd import graph
    order = []
    rng = np.random.default_rng(2)
    lin = dtrain.nn.Linear(6, 5)
    views = [np.zeros(p.shape, np.float32) for p in lin.parameters()]
    for p, v, name in zip(lin.parameters(), views, ("weight", "bias")):
        graph.set_grad_view(p, v, 0.5)
        p.register_post_accumulate_grad_hook(lambda p, name=name: order.append(name))
    x = dtrain.from_numpy(rng.standard_normal((4, 6)).astype(np.float32)).requires_grad_()
    h = x * 1
    h.register_hook(lambda g: order.append("input"))
    lin(h).square().sum().backward()
    assert order == ["weight", "bias", "input"]
    assert lin.weight.grad._data is views[0] and lin.bias.grad._data is views[1]
    tl = torch.nn.Linear(6, 5)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(lin.weight.detach().numpy()))
        tl.bias.copy_(torch.from_numpy(lin.bias.detach().numpy()))
    tx = torch.from_numpy(x.detach().numpy()).requires_grad_()
    tl(tx).square().sum().backward()
    # float32 sums of a few products in another order than torch's BLAS: tolerances from the dtype's epsilon,
    # the absolute one relative to the gradient's scale (an entry near zero has no relative precision)
    eps = np.finfo(np.float32).eps
    for got, want in ((views[0], 0.5 * tl.weight.grad.numpy()), (views[1], 0.5 * tl.bias.grad.numpy()),
                      (x.grad.numpy(), tx.grad.numpy())):
        np.testing.assert_allclose(got, want, rtol=16 * eps, atol=16 * eps * np.abs(want).max())


def test_linear_of_a_few_rows_through_a_wide_layer_is_contiguous_and_matches_torch():
    # the forward takes W @ x.T for such shapes (faster in OpenBLAS); the result must not show it
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((3, 96)).astype(np.float32)
    ws = rng.standard_normal((128, 96)).astype(np.float32)
    bs = rng.standard_normal(128).astype(np.float32)
    y = dtrain.nn.functional.linear(dtrain.from_numpy(xs), dtrain.from_numpy(ws), dtrain.from_numpy(bs))
    ref = torch.nn.functional.linear(torch.from_numpy(xs), torch.from_numpy(ws), torch.from_numpy(bs))
    assert y.is_contiguous() and y.stride() == ref.stride() and y.shape == ref.shape
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_leaf_gradients_are_accumulated_as_soon_as_ready():
    """A leaf's hooks run before the rest of the graph is done (what DDP's overlap relies on), as in torch."""
    order = []
    w1 = dtrain.ones(3, requires_grad=True)
    w2 = dtrain.ones(3, requires_grad=True)
    w2.register_post_accumulate_grad_hook(lambda p: order.append("w2 ready"))
    h = (w1 * 2).exp()
    h.register_hook(lambda g: order.append("grad of h computed"))
    (h * w2).sum().backward()
    assert order == ["w2 ready", "grad of h computed"]


def test_fresh_gradients_are_not_copied_into_leaves_but_shared_ones_are():
    import sys
    from dtrain.autograd import graph as g
    # the engine's ownership rule counts references at one call site; keep it calibrated
    def probe():
        out = (np.ones(2),)
        for (_, _), arr in zip(((None, 0),), out):
            return sys.getrefcount(arr)
    assert probe() == g._OWNED_REFS
    from dtrain._ops.linalg import Matmul
    produced = []
    orig = Matmul.backward

    def spy(ctx, grad):
        import weakref
        res = orig(ctx, grad)
        produced.append(weakref.ref(res[1]))  # a strong reference here would itself forbid keeping it
        return res
    Matmul.backward = spy
    try:
        w = dtrain.ones(3, 2, requires_grad=True)
        (dtrain.ones(4, 3) @ w).sum().backward()   # matmul's weight gradient is fresh: the leaf keeps it
    finally:
        Matmul.backward = orig
    assert w.grad._data is produced[0]()
    a = dtrain.ones(3, requires_grad=True)
    b = dtrain.ones(3, requires_grad=True)
    (a + b).sum().backward()          # one gradient array reaches both leaves: each gets its own
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())


def test_callbacks_wait_for_the_outermost_backward():
    """A backward started inside another (as gradient checkpointing does) must not run the outer pass's
    end-of-backward callbacks early."""
    order = []
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    inner_x = dtrain.tensor([3.0], requires_grad=True)

    def hook(g):
        graph.queue_callback(lambda: order.append("outer callback"))
        (inner_x * 2).sum().backward()          # a nested pass
        order.append("nested pass done")
        return g
    y = x * 2
    y.register_hook(hook)
    y.sum().backward()
    assert order == ["nested pass done", "outer callback"]
    assert inner_x.grad.tolist() == [2.0]


# ----------------------------------------------------------------------------- higher-order gradients
def _gradient_penalty(m, x, w, b):
    y = (x @ w + b).tanh().sum() + (x * x).sigmoid().mean()
    (gx,) = (dtrain if m is dtrain else torch).autograd.grad(y, x, create_graph=True)
    return (gx * gx).sum() + y


def test_gradient_penalty_matches_torch():
    check(_gradient_penalty, (4, 3), (3, 5), (5,))


def test_hessian_vector_product_matches_torch():
    def hvp(m, x, v):
        f = (x ** 3).sum() + (x.sin() * x.exp()).sum() + (x / (x * x + 1)).sum()
        (g,) = m.autograd.grad(f, x, create_graph=True)
        (h,) = m.autograd.grad((g * v).sum(), x, create_graph=True)
        return h
    check(hvp, (6,), (6,))


def test_backward_with_create_graph_accumulates_differentiable_grads():
    x = dtrain.tensor([1.0, 2.0], dtype=dtrain.float64, requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad and x.grad.tolist() == [3.0, 12.0]
    (gg,) = dtrain.autograd.grad(x.grad.sum(), x)
    assert gg.tolist() == [6.0, 12.0]


def test_gradgradcheck():
    x = dtrain.randn(3, dtype=dtrain.float64, requires_grad=True)
    w = dtrain.randn(3, 2, dtype=dtrain.float64, requires_grad=True)
    assert dtrain.autograd.gradgradcheck(lambda a, b: (a @ b).tanh() * 2 - (a.exp() / (1 + a * a)).sum(), (x, w))
    assert dtrain.autograd.gradgradcheck(lambda a: a.view(3, 1).expand(3, 2).permute(1, 0).sigmoid().mean(), (x,))


def test_create_graph_through_an_op_without_a_formula_says_which():
    x = dtrain.randn(3, dtype=dtrain.float64, requires_grad=True)
    with pytest.raises(NotImplementedError, match="CumsumBackward0"):
        dtrain.autograd.grad(x.cumsum(0).sum(), x, create_graph=True)
