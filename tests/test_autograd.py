"""Autograd semantics, each against torch's behaviour: accumulation, retained graphs, hooks, grad modes,
custom Functions, version counters, end-of-backward callbacks, deep graphs."""
import re
import warnings

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
    before = v._version
    x.add_(1)
    assert v._version == before + 1
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


def _node_hook_run(m, hook, pre, create_graph, how):
    """x.exp() with a hook on its node, then x's gradient by autograd.grad or backward: (the gradient, and
    what the hook saw), or the error's type and message."""
    x = m.tensor([1.0, 2.0], dtype=m.float64, requires_grad=True)
    y = x.exp()
    seen = []

    def fn(*args):
        seen.append([[None if g is None else np.round(g.tolist(), 9).tolist() for g in a] for a in args])
        return hook(*args)
    fn.__name__ = "my_hook"
    (y.grad_fn.register_prehook if pre else y.grad_fn.register_hook)(fn)
    try:
        if how == "grad":
            (g,) = m.autograd.grad((y * y).sum(), x, create_graph=create_graph)
        else:
            (y * y).sum().backward(create_graph=create_graph)
            g = x.grad
        out = np.round(g.tolist(), 9).tolist()
        if create_graph:  # the replaced gradient is part of the graph: differentiate it once more
            out = (out, np.round(m.autograd.grad(g.sum(), x)[0].tolist(), 9).tolist())
        return out, seen
    except Exception as e:  # noqa: BLE001 - compared with torch's
        # (torch words an input left without a gradient two ways, by where its engine finds out)
        return type(e).__name__, re.sub(r"One of the differentiated Tensors|The differentiated Tensor at index 0",
                                        "An input", str(e))


NODE_HOOKS = {
    "post_scale": (False, lambda gi, go: (gi[0] * 10,)),
    "post_none": (False, lambda gi, go: None),
    "post_drop": (False, lambda gi, go: (None,)),
    "post_list": (False, lambda gi, go: [gi[0]]),
    "post_count": (False, lambda gi, go: (gi[0], gi[0])),
    "post_size": (False, lambda gi, go: (gi[0][:1],)),
    "post_type": (False, lambda gi, go: (gi[0].double(),)),
    "post_int": (False, lambda gi, go: (5,)),
    "pre_scale": (True, lambda go: (go[0] * 5,)),
    "pre_none": (True, lambda go: None),
    "pre_list": (True, lambda go: [go[0]]),
    "pre_size": (True, lambda go: (go[0][:1],)),
}


@pytest.mark.parametrize("how", ["grad", "backward"])
@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("case", NODE_HOOKS)
def test_node_hooks_replace_gradients_as_torch(case, create_graph, how):
    # Node.register_hook's fn(grad_inputs, grad_outputs) and register_prehook's fn(grad_outputs) may return a
    # tuple that takes the gradients' place (these returns were ignored, or the pre-hook got each tensor alone)
    pre, hook = NODE_HOOKS[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on backward(create_graph=True)'s reference cycle
        want = _node_hook_run(torch, hook, pre, create_graph, how)
        got = _node_hook_run(dtrain, hook, pre, create_graph, how)
    assert got == want


@pytest.mark.parametrize("how", ["grad", "grad_create_graph", "backward"])
def test_autograd_grad_computes_only_the_wanted_input_gradients(how):
    # torch's nodes compute only the gradients whose edges lead to what autograd.grad returns: grad(y, x)
    # through a linear layer computes no weight or bias gradient (a gradient penalty's first pass); backward()
    # computes them all. Seen by the node's hook (its input order differs: torch's addmm takes the bias first)
    def run(m):
        m.manual_seed(0)
        x = m.ones(2, 3, requires_grad=True)
        y = m.nn.Linear(3, 4)(x * 2)
        seen = []
        y.grad_fn.register_hook(lambda gi, go: seen.append([tuple(g.shape) for g in gi if g is not None]))
        if how == "backward":
            y.sum().backward()
        else:
            m.autograd.grad(y.sum(), x, create_graph=how == "grad_create_graph")
        return seen
    mine, theirs = run(dtrain), run(torch)
    assert [len(s) for s in mine] == [len(s) for s in theirs] == [3 if how == "backward" else 1]
    assert all((2, 3) in s for s in mine)


def test_backward_with_create_graph_warns_of_the_reference_cycle_once(monkeypatch):
    # torch's TORCH_WARN_ONCE: the first backward(create_graph=True) of the process warns, later ones do not,
    # and autograd.grad (which accumulates nothing) never does
    import dtrain.autograd as ag
    monkeypatch.setattr(ag, "_cycle_warned", [False])
    x = dtrain.ones(3, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dtrain.autograd.grad((x * x).sum(), x, create_graph=True)
        (x * x).sum().backward(create_graph=True)
        (x * x).sum().backward(create_graph=True)
    msgs = [str(w.message) for w in caught if "reference cycle" in str(w.message)]
    assert len(msgs) == 1 and msgs[0].startswith("Using backward() with create_graph=True will create a reference")
    assert x.grad.requires_grad and x.grad.tolist() == [4.0, 4.0, 4.0]


def test_multi_output_op_with_one_output_used():
    check(lambda m, x: x.split(2, dim=1)[1] * 3, (3, 5))
    check(lambda m, x: x.max(dim=1).values, (3, 5))


def test_grad_dtype_and_device_follow_the_leaf(device):
    x = dtrain.ones(3, dtype=dtrain.float32, device=device, requires_grad=True)
    (x.double() * 2).sum().backward()
    assert x.grad.dtype is dtrain.float32 and x.grad.device == x.device
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_grad_destination_puts_fresh_leaf_grads_into_a_flat_buffer():
    flat = np.zeros(5)
    a = dtrain.zeros(2, 1, dtype=dtrain.float64, requires_grad=True)
    b = dtrain.zeros(3, dtype=dtrain.float64, requires_grad=True)
    calls = []

    def slot(view):
        def dest(g):
            calls.append(g.shape)
            view[...] = g
            return view
        return dest
    graph.set_grad_destination(a, slot(flat[:2].reshape(2, 1)))
    graph.set_grad_destination(b, slot(flat[2:]))
    ((a.reshape(-1) * 2).sum() + (b * 3).sum()).backward()
    assert flat.tolist() == [2.0, 2.0, 3.0, 3.0, 3.0] and sorted(calls) == [(2, 1), (3,)]
    assert np.shares_memory(a.grad.numpy(), flat)
    (b * 1).sum().backward()                     # accumulation into the existing .grad: in the buffer, no call
    assert flat.tolist() == [2.0, 2.0, 4.0, 4.0, 4.0] and len(calls) == 2
    b.grad = None
    graph.set_grad_destination(b, None)
    (b * 1).sum().backward()
    assert not np.shares_memory(b.grad.numpy(), flat) and flat[2:].tolist() == [4.0, 4.0, 4.0]


def test_grad_destination_sees_the_final_gradient_and_no_op_sees_it():
    """The destination gets the leaf's summed, hooked gradient; autograd.grad never reaches it."""
    got = []

    def leaf():
        w = dtrain.zeros(3, requires_grad=True)
        view = np.zeros(3, np.float32)
        graph.set_grad_destination(w, lambda g: (got.append(g.copy()), np.copyto(view, g), view)[2])
        return w, view

    w, view = leaf()
    (w * 2 + w * 3).sum().backward()                       # two producers: the destination gets their sum
    assert [g.tolist() for g in got] == [[5.0, 5.0, 5.0]] and w.grad._data is view
    got.clear()
    w, view = leaf()
    w.register_hook(lambda g: g * 10)                      # a hook replaces the gradient first
    (w * 2).sum().backward()
    assert view.tolist() == [20.0, 20.0, 20.0]
    got.clear()
    w, view = leaf()
    dtrain.autograd.grad((w * 2).sum(), [w])               # autograd.grad accumulates nothing
    assert got == [] and w.grad is None
    rng = np.random.default_rng(0)
    xs, ws = rng.standard_normal((4, 64)), rng.standard_normal((80, 64))
    w = dtrain.nn.Parameter(dtrain.from_numpy(ws.copy()))
    view = np.zeros((80, 64))
    graph.set_grad_destination(w, lambda g: (np.multiply(g, 0.5, out=view), view)[1])
    tw = torch.tensor(ws, requires_grad=True)
    for m, wt in ((dtrain, w), (torch, tw)):
        y = m.nn.functional.linear(m.tensor(xs), wt)
        m.nn.functional.linear(m.tanh(y[:, :64]), wt).square().sum().backward()
    assert w.grad._data is view
    np.testing.assert_allclose(view, 0.5 * tw.grad.numpy(), rtol=1e-12, atol=1e-10)


class _WritableSlot:
    """A destination an op may write into (array, scale), counting the copies the engine makes instead."""

    def __init__(self, array, scale):
        self.array, self.scale, self.copies = array, scale, 0

    def __call__(self, g):
        self.copies += 1
        np.multiply(g, self.scale if self.scale is not None else 1, out=self.array)
        return self.array


@pytest.mark.parametrize("scale", [None, 0.5, 1 / 3])
def test_a_whole_weight_gradient_is_written_into_its_destination_without_a_copy(scale):
    rng = np.random.default_rng(3)
    xs, ws = rng.standard_normal((5, 16)), rng.standard_normal((8, 16))
    tw = torch.tensor(ws, requires_grad=True)
    torch.nn.functional.linear(torch.tensor(xs), tw).tanh().sum().backward()
    want = tw.grad.numpy() * (scale if scale is not None else 1)

    def run(setup=lambda w: None):
        w = dtrain.nn.Parameter(dtrain.from_numpy(ws.copy()))
        slot = _WritableSlot(np.zeros((8, 16)), scale)
        graph.set_grad_destination(w, slot)
        setup(w)
        return w, slot, dtrain.nn.functional.linear(dtrain.tensor(xs), w).tanh().sum()

    w, slot, loss = run()
    loss.backward()
    assert w.grad._data is slot.array and slot.copies == 0  # Linear wrote it there, scaled
    np.testing.assert_allclose(slot.array, want, rtol=1e-12, atol=1e-12)
    # where the gradient is not whole or may change, the engine copies instead
    w, slot, loss = run(lambda w: w.register_hook(lambda g: g * 1))
    loss.backward()
    assert slot.copies == 1 and w.grad._data is slot.array
    np.testing.assert_allclose(slot.array, want, rtol=1e-12, atol=1e-12)
    w, slot, loss = run()
    loss = loss + (w * 0).sum()                                # two producers: their sum is copied in
    loss.backward()
    assert slot.copies == 1
    np.testing.assert_allclose(slot.array, want, rtol=1e-12, atol=1e-12)
    w, slot, loss = run()
    (gw,) = dtrain.autograd.grad(loss, [w])                    # autograd.grad: nothing reaches the slot
    assert slot.copies == 0 and not slot.array.any() and w.grad is None
    np.testing.assert_allclose(gw.numpy(), tw.grad.numpy(), rtol=1e-12)


def test_linear_backward_knows_nothing_of_buckets():
    from dtrain._ops import linalg
    assert not hasattr(graph, "grad_destination") and not hasattr(graph, "deliver") and not hasattr(graph, "_pass")
    assert "grad_destination" not in vars(linalg) and "deliver" not in vars(linalg)


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
    from dtrain._ops.linalg import Matmul
    produced = []
    orig = Matmul.backward

    def spy(ctx, grad):
        res = orig(ctx, grad)
        produced.append(res[1])
        return res
    Matmul.backward = spy
    try:
        w = dtrain.ones(3, 2, requires_grad=True)
        (dtrain.ones(4, 3) @ w).sum().backward()   # matmul declares its gradients fresh: the leaf keeps it
    finally:
        Matmul.backward = orig
    assert w.grad._data is produced[0]
    a = dtrain.ones(3, requires_grad=True)
    b = dtrain.ones(3, requires_grad=True)
    (a + b).sum().backward()          # one gradient array reaches both leaves: each gets its own
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())


def test_an_op_that_keeps_its_gradient_never_has_it_taken():
    """Ownership is the op's explicit declaration, not a reference count: an undeclared op's gradient is
    copied into the leaf, and a declared one that hands the same array to two inputs is copied too."""
    kept = []

    class Keeps(graph.Function):  # returns an array it also keeps (held elsewhere)
        def forward(ctx, x):
            return x * 2

        def backward(ctx, g):
            kept.append(g * 2)
            return kept[-1]

    class Twice(graph.Function):
        _fresh_grads = True

        def forward(ctx, x, y):
            return x + y

        def backward(ctx, g):
            r = g * 1
            return r, r

    w = dtrain.zeros(3, requires_grad=True)
    Keeps.apply(w).sum().backward()
    assert not np.shares_memory(w.grad.numpy(), kept[0])
    Keeps.apply(w).sum().backward()
    assert kept[0].tolist() == [2.0, 2.0, 2.0] and w.grad.tolist() == [4.0, 4.0, 4.0]
    a, b = dtrain.zeros(3, requires_grad=True), dtrain.zeros(3, requires_grad=True)
    Twice.apply(a, b).sum().backward()
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.add_(1)
    assert b.grad.tolist() == [1.0, 1.0, 1.0]


def test_two_threads_run_backward_on_independent_graphs_at_once():
    import threading
    barrier = threading.Barrier(2)
    results, errors = {}, []

    def work(k):
        try:
            rng = np.random.default_rng(k)
            xs, ws = rng.standard_normal((8, 5)), rng.standard_normal((5, 5))
            w = dtrain.tensor(ws, requires_grad=True)
            order = []

            def hook(g):
                # both threads are inside a backward here: each callback must go to its own pass
                graph.queue_callback(lambda: order.append(k))
                barrier.wait(timeout=10)
                return g
            h = dtrain.tensor(xs) @ w
            h.register_hook(hook)
            h.tanh().square().sum().backward()
            done = list(order)  # this pass's callback ran before its backward() returned
            tw = torch.tensor(ws, requires_grad=True)
            (torch.tensor(xs) @ tw).tanh().square().sum().backward()
            results[k] = (w.grad.numpy(), tw.grad.numpy(), done)
        except Exception as e:  # reported below: an assertion in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k, (g, tg, order) in results.items():
        np.testing.assert_allclose(g, tg, rtol=1e-12)
        assert order == [k]
    with pytest.raises(RuntimeError, match="during backward pass"):
        graph.queue_callback(lambda: None)


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
    class Cube(graph.Function):  # an op of its own, with an array backward and no tensor formula
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        def backward(ctx, g):
            (x,) = ctx.saved
            return 3 * g * x * x

    x = dtrain.randn(3, dtype=dtrain.float64, requires_grad=True)
    (g,) = dtrain.autograd.grad(Cube.apply(x).sum(), x)  # an ordinary pass works
    assert_close(g, 3 * x.detach() ** 2)
    with pytest.raises(NotImplementedError, match="CubeBackward0"):
        dtrain.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)


# higher-order gradients through views and in-place writes into them (strided views' backwards are one linear
# map between geometries, recorded as an op; CopySlices runs the write's own formula)
def _written_row(m, x):
    y = x * x
    y[1].mul_(y[0] * 2)
    return (y ** 2).sum()


def _written_column_of_transposed(m, x):
    y = x * 1
    y.t()[0].copy_(x[2] ** 3)
    return (y ** 3).sum()


def _view_read_after_write(m, x):
    y = x * 1
    v = y[:, 1:]
    v.mul_(x[:, :2])
    return (v ** 2).sum() + (y ** 3).sum()


def _written_through_overlapping_windows(m, x):
    y = x.t() * 1
    y.unfold(0, 2, 1).mul_(2)
    return (y ** 3).sum()


@pytest.mark.parametrize("f", [
    lambda m, x: (x.unfold(0, 2, 1) ** 3).sum(),
    lambda m, x: (x.unfold(1, 2, 1).sin() * x.unfold(1, 2, 1)).sum(),
    lambda m, x: (x.as_strided((2, 2), (1, 2), 1) ** 3).sum(),
    lambda m, x: (x.diagonal(1) ** 3).sum() + (x[1:, ::2] ** 3).sum() + (x.unbind(1)[2] ** 3).sum(),
    lambda m, x: sum((p ** 3).sum() * (i + 1) for i, p in enumerate(x.split(2, 0))),
    _written_row, _written_column_of_transposed, _view_read_after_write,
], ids=["unfold", "unfold_twice", "as_strided", "index_diagonal_unbind", "split", "written_row",
        "written_column_of_transposed", "view_read_after_write"])
def test_create_graph_through_views_and_writes_into_them(f):
    xa = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [0.3, 0.6, -0.2]])
    w = np.arange(9.0).reshape(3, 3)
    res = {}
    for m in (dtrain, torch):
        x = m.tensor(xa, requires_grad=True)
        (g,) = m.autograd.grad(f(m, x), x, create_graph=True)
        (h,) = m.autograd.grad((g * g * m.tensor(w)).sum(), x)
        res[m] = g.detach(), h
    for a, e in zip(res[dtrain], res[torch]):
        assert_close(a, e)


def test_create_graph_through_a_write_into_overlapping_windows_first_order():
    # the first-order gradient is torch's (the last write of a shared element wins); torch's second order
    # differentiates its own write-back as a gather of every window, dtrain's as the exact adjoint
    xa = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [0.3, 0.6, -0.2]])
    gs = []
    for m in (dtrain, torch):
        x = m.tensor(xa, requires_grad=True)
        (g,) = m.autograd.grad(_written_through_overlapping_windows(m, x), x, create_graph=True)
        gs.append(g.detach())
    assert_close(*gs)
