"""torch.autograd.graph.saved_tensors_hooks, save_on_cpu and disable_saved_tensors_hooks against torch."""
import threading

import numpy as np
import pytest
import torch

import dtrain


def _program(T, pack, unpack):
    a = T.tensor([1.0, 2.0, 3.0], dtype=T.float64, requires_grad=True)
    b = T.tensor([4.0, 5.0, 6.0], dtype=T.float64, requires_grad=True)
    with T.autograd.graph.saved_tensors_hooks(pack, unpack):
        y = (a * b).exp().sum() + (a @ b) + T.tanh(a.reshape(3, 1) * b).sum()
    y.backward()
    return a, b


def test_the_hooks_see_the_ops_own_tensors_and_their_results_feed_backward():
    out = {}
    for T in (torch, dtrain):
        seen = []

        def pack(x):
            seen.append(x)
            return x.detach() * 2  # what the backward gets is the hook's, not the op's

        a, b = _program(T, pack, lambda p: p)
        # which of the op's own tensors the hooks saw (the order of an op's saved tensors is its own)
        out[T] = a.grad.tolist(), b.grad.tolist(), sorted("a" if s is a else "b" if s is b else str(tuple(s.shape))
                                                          for s in seen)
    np.testing.assert_allclose(out[dtrain][0], out[torch][0], rtol=1e-12)
    np.testing.assert_allclose(out[dtrain][1], out[torch][1], rtol=1e-12)
    assert out[dtrain][2] == out[torch][2]


def test_identity_hooks_change_nothing_and_run_with_grad_off():
    grads = {}
    for T in (torch, dtrain):
        modes = []

        def pack(x):
            modes.append(T.is_grad_enabled())
            return x

        a, b = _program(T, pack, lambda p: p)
        grads[T] = a.grad.tolist(), b.grad.tolist()
        assert modes and not any(modes)
    np.testing.assert_allclose(grads[dtrain], grads[torch], rtol=1e-12)


def test_innermost_hooks_win_and_hooks_are_per_thread():
    calls = []
    with dtrain.autograd.graph.saved_tensors_hooks(lambda x: calls.append("outer") or x, lambda p: p):
        with dtrain.autograd.graph.saved_tensors_hooks(lambda x: calls.append("inner") or x, lambda p: p):
            dtrain.ones(2, requires_grad=True).exp()
        other = []
        th = threading.Thread(target=lambda: other.append(dtrain.ones(2, requires_grad=True).exp()))
        th.start()
        th.join()
    assert calls == ["inner"]


def test_a_custom_functions_saved_tensors_go_through_the_hooks():
    for T in (torch, dtrain):
        class Square(T.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                return 2 * x * g

        x = T.tensor([3.0], requires_grad=True)
        with T.autograd.graph.saved_tensors_hooks(lambda t: t.detach() + 1, lambda p: p):
            y = Square.apply(x)
        y.backward()
        assert x.grad.tolist() == [8.0]


def test_retain_graph_unpacks_again_and_a_second_backward_without_it_raises():
    for T in (torch, dtrain):
        unpacked = []
        x = T.tensor([1.0, 2.0], requires_grad=True)
        with T.autograd.graph.saved_tensors_hooks(lambda t: t, lambda p: unpacked.append(1) or p):
            y = x.exp().sum()
        y.backward(retain_graph=True)
        y.backward()
        assert len(unpacked) == 2 and x.grad.tolist() == pytest.approx((2 * np.exp([1.0, 2.0])).tolist())
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            y.backward()


def test_save_on_cpu_gives_the_same_gradients(device):
    x = dtrain.tensor([0.5, 1.5, -2.0], device=device, requires_grad=True)
    with dtrain.autograd.graph.save_on_cpu():
        y = (x.exp() * x.tanh()).sum()
    y.backward()
    xt = torch.tensor([0.5, 1.5, -2.0], requires_grad=True)
    with torch.autograd.graph.save_on_cpu():
        (xt.exp() * xt.tanh()).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), xt.grad.numpy(), rtol=1e-6)
    assert x.grad.device == x.device


def test_a_tensor_saved_through_hooks_has_no_version_check():
    for T in (torch, dtrain):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        with T.autograd.graph.save_on_cpu():  # keeps a CPU tensor itself
            y = x * 1
            z = (y * y).sum()
        with T.no_grad():
            y.add_(1)  # without hooks backward would refuse; with them it reads what the hook kept
        z.backward()
        assert x.grad.tolist() == [4.0, 6.0]


def test_disable_saved_tensors_hooks_refuses_hooks():
    for T in (torch, dtrain):
        g = T.autograd.graph
        with g.disable_saved_tensors_hooks("no hooks here"):
            with pytest.raises(RuntimeError, match="no hooks here"):
                with g.saved_tensors_hooks(lambda x: x, lambda x: x):
                    pass
        with g.saved_tensors_hooks(lambda x: x, lambda x: x):
            with pytest.raises(RuntimeError, match="no hooks here"):
                with g.disable_saved_tensors_hooks("no hooks here"):
                    pass


def test_double_backward_through_packed_nodes():
    vals = {}
    for T in (torch, dtrain):
        x = T.tensor([0.3, -0.7], dtype=T.float64, requires_grad=True)
        with T.autograd.graph.saved_tensors_hooks(lambda t: t, lambda p: p):
            y = (x * x * x).sum()
        (g,) = T.autograd.grad(y, x, create_graph=True)
        g.sum().backward()
        vals[T] = x.grad.tolist()
    np.testing.assert_allclose(vals[dtrain], vals[torch], rtol=1e-12)


def test_autograd_grad_runs_only_the_nodes_on_the_way_to_its_inputs():
    for T in (torch, dtrain):
        a = T.ones(2, requires_grad=True)
        h = a.exp()  # below the input of grad: neither run nor freed by it
        (g,) = T.autograd.grad((h * 3).sum(), h)
        h.sum().backward()
        assert g.tolist() == [3.0, 3.0] and a.grad.tolist() == pytest.approx([np.e, np.e])


def test_gradient_edges_and_increment_version():
    for T in (torch, dtrain):
        a = T.tensor([1.0, 2.0], requires_grad=True)
        b = a * 2
        eb, ea = T.autograd.graph.get_gradient_edge(b), T.autograd.graph.get_gradient_edge(a)
        assert eb.node is b.grad_fn and eb.output_nr == 0 and type(ea.node).__name__ == "AccumulateGrad"
        (gb,) = T.autograd.grad(b.sum(), eb, retain_graph=True)
        ga, ga2 = T.autograd.grad((b * 3).sum(), [ea, a])
        assert gb.tolist() == [1.0, 1.0] and ga.tolist() == ga2.tolist() == [6.0, 6.0]
        with pytest.raises(RuntimeError, match="not possible to get the gradient edge"):
            T.autograd.graph.get_gradient_edge(T.ones(1))
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 1
        z = (y * y).sum()
        T.autograd.graph.increment_version(y)  # a write the counter could not see, announced
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.backward()
