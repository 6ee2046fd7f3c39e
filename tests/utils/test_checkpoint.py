"""Gradient checkpointing: gradients equal the plain run's (and torch's), activations are not kept."""
import numpy as np
import pytest
import torch

import dtrain
from dtrain.utils.checkpoint import CheckpointError, checkpoint, checkpoint_sequential

nn = dtrain.nn


def _mlp(depth, width=16, p=0.3):
    dtrain.manual_seed(0)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width, dtype=dtrain.float64), nn.Tanh(), nn.Dropout(p)]
    return nn.Sequential(*layers)


def _run(model, x, forward):
    """Loss, gradients of every parameter and of x, and the next random draw after backward."""
    model.zero_grad()
    x.grad = None
    dtrain.manual_seed(5)
    loss = forward().pow(2).sum()
    loss.backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()] + [x.grad.numpy().copy()]
    return loss.item(), grads, dtrain.rand(3).tolist()


def _saved_bytes(loss):
    """Bytes of arrays held for backward by the graph reachable from `loss`."""
    total, seen, stack = 0, set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        total += sum(getattr(a, "nbytes", 0) for a in (getattr(node, "saved", None) or ()))
        stack += [child for child, _ in node.next_functions]
    return total


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_gradients_match_with_dropout(use_reentrant):
    model = _mlp(6)
    x = dtrain.randn(4, 16, dtype=dtrain.float64, requires_grad=True)
    plain = _run(model, x, lambda: model(x))
    seq = _run(model, x, lambda: checkpoint_sequential(model, 3, x, use_reentrant=use_reentrant))
    one = _run(model, x, lambda: checkpoint(model, x, use_reentrant=use_reentrant))
    for got in (seq, one):
        assert got[0] == plain[0]  # same dropout masks in forward ...
        for a, b in zip(got[1], plain[1]):
            np.testing.assert_array_equal(a, b)  # ... and in the recomputation
        assert got[2] == plain[2]  # the random stream after backward is the caller's, as if nothing was recomputed


def test_gradients_match_torch():
    model = _mlp(3, p=0.0)
    tmodel = torch.nn.Sequential(*[torch.nn.Linear(16, 16, dtype=torch.float64) if isinstance(m, nn.Linear) else
                                   torch.nn.Tanh() if isinstance(m, nn.Tanh) else torch.nn.Identity() for m in model])
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    xa = np.random.default_rng(0).standard_normal((5, 16))
    x, tx = dtrain.tensor(xa, requires_grad=True), torch.tensor(xa, requires_grad=True)
    checkpoint_sequential(model, 2, x, use_reentrant=False).sum().backward()
    torch.utils.checkpoint.checkpoint_sequential(tmodel, 2, tx, use_reentrant=False).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12)


def test_activations_are_not_kept():
    model = _mlp(16, width=64)
    x = dtrain.randn(32, 64, dtype=dtrain.float64, requires_grad=True)
    plain = _saved_bytes(model(x).sum())
    ckpt = _saved_bytes(checkpoint_sequential(model, 8, x, use_reentrant=False).sum())
    assert ckpt < plain / 3, (ckpt, plain)


def test_autograd_grad_outside_tensors_and_outputs():
    dtrain.manual_seed(1)
    w = dtrain.randn(3, 3, dtype=dtrain.float64, requires_grad=True)
    x = dtrain.randn(2, 3, dtype=dtrain.float64, requires_grad=True)
    w2 = w * 2  # a non-leaf tensor from outside, used inside

    def f(a, scale=1.0):
        return (a @ w2).tanh() * scale, a, "label"

    def loss_of(out):
        return (out[0] * out[1].sum()).sum()

    want = dtrain.autograd.grad(loss_of(f(x, scale=3.0)), (x, w), retain_graph=True)
    out = checkpoint(f, x, scale=3.0, use_reentrant=False)
    assert out[2] == "label" and out[0].grad_fn is not None
    got = dtrain.autograd.grad(loss_of(out), (x, w))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13)


def test_backward_twice_and_hooks():
    model = _mlp(2, p=0.0)
    x = dtrain.randn(2, 16, dtype=dtrain.float64)
    fired = []
    for p in model.parameters():
        p.register_post_accumulate_grad_hook(lambda p: fired.append(id(p)))
    loss = checkpoint(model, x, use_reentrant=False).sum()
    loss.backward(retain_graph=True)
    first = [p.grad.numpy().copy() for p in model.parameters()]
    loss.backward()
    for p, g in zip(model.parameters(), first):
        np.testing.assert_allclose(p.grad.numpy(), 2 * g)
    assert sorted(fired) == sorted(2 * [id(p) for p in model.parameters()])  # once per parameter per pass
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_errors_and_warnings():
    x = dtrain.randn(2, requires_grad=True)
    with pytest.warns(UserWarning, match="use_reentrant parameter should be passed explicitly"):
        checkpoint(lambda a: a * 2, x)
    with pytest.raises(ValueError, match="Unexpected keyword arguments: k"):
        checkpoint(lambda a, k: a * k, x, k=2, use_reentrant=True)
    calls = []

    def changes(a):
        calls.append(1)
        return a[: len(calls)] ** 2  # saves a slice of another shape when recomputed

    with pytest.raises(CheckpointError, match=r"tensor at position 0:\nsaved metadata: \{'shape': torch.Size\(\[1\]\)"):
        checkpoint(changes, x, use_reentrant=False).sum().backward()
    with dtrain.no_grad():
        assert checkpoint(lambda a: a * 2, x, use_reentrant=False).grad_fn is None


def test_import_paths():
    import dtrain.utils.checkpoint as mod
    assert dtrain.utils.checkpoint is mod and mod.checkpoint is checkpoint


def test_non_reentrant_keeps_the_calls_own_graph_stops_recomputing_early_and_nests():
    """As torch's: the result's node is the call's last op, recomputation ends once the last saved tensor is
    back (the rest of the call does not run again), and a checkpoint inside a checkpoint gives torch's
    gradients."""
    out = {}
    for T in (torch, dtrain):
        x = T.tensor([0.1, -0.5, 1.2, 0.3], dtype=T.float64, requires_grad=True)
        w = T.tensor([0.7, 0.2, -1.1, 0.4], dtype=T.float64, requires_grad=True)
        ends = []

        def f(a):
            b = a.exp()  # saves its result: the last saved tensor of the call
            c = b * 2  # saves nothing that needs a gradient
            ends.append("end")
            return c

        y = T.utils.checkpoint.checkpoint(f, x, use_reentrant=False)
        y.sum().backward()

        def inner(a):
            return (a * w).tanh()

        def outer(a):
            return T.utils.checkpoint.checkpoint(inner, a.sin(), use_reentrant=False).exp()

        z = T.utils.checkpoint.checkpoint(outer, x, use_reentrant=False)
        z.sum().backward()
        out[T] = ends, y.grad_fn.name(), z.grad_fn.name(), x.grad.tolist(), w.grad.tolist()
    assert out[dtrain][:3] == out[torch][:3] == (["end"], "MulBackward0", "ExpBackward0")
    np.testing.assert_allclose(out[dtrain][3], out[torch][3], rtol=1e-12)
    np.testing.assert_allclose(out[dtrain][4], out[torch][4], rtol=1e-12)
