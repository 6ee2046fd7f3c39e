"""In-place writes through views, and the autograd bookkeeping around them, against torch.

Each case is a small program `prog(m, *leaves)` run once on dtrain and once on torch (`m` is the module) from
the same inputs. It returns a dict of named results: tensors (compared by value, `requires_grad`, `is_leaf`,
and `.grad` when a leaf has one), Python values, or exceptions (compared by type and, up to torch's hint, by
message). Every leaf's gradient is compared too."""
import re

import numpy as np
import pytest
import torch

import dtrain

from helpers import assert_close


class _Raised:
    def __init__(self, exc):
        self.type, self.full = type(exc), str(exc).split(" Hint:")[0]
        # which node a saved tensor "is output of" depends on how each library rewired its graph for a chain
        # of in-place writes; compared exactly only where a test asks for it (`full`)
        self.msg = re.sub(r", which is output \d+ of \w+,", "", self.full)


def attempt(fn):
    """fn()'s result, or the exception it raised (so a program can go on after an expected error)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - compared with torch's exception below
        return _Raised(e)


def aliases(m, a, b):
    """Whether a write through `a` is seen through `b` (storage sharing, observed rather than asked)."""
    before = b.detach().clone()
    a.detach().add_(1)
    changed = not m.equal(b.detach(), before)
    a.detach().sub_(1)
    return changed


def version(t):
    """The version counter's value (an int in both)."""
    return t._version


def run(prog, *arrays, grad=True):
    """Run `prog` on dtrain and torch from `arrays` (leaves requiring grad where float and `grad`)."""
    outs = {}
    for m in (dtrain, torch):
        leaves = [m.tensor(a.copy()).requires_grad_(grad and a.dtype.kind == "f") for a in arrays]
        res = prog(m, *leaves)
        for i, t in enumerate(leaves):
            res[f"leaf{i}"] = t
        outs[m] = res
    d, t = outs[dtrain], outs[torch]
    assert d.keys() == t.keys()
    for k in t:
        _compare(d[k], t[k], k)
    return d, t


def _compare(a, e, what):
    if isinstance(e, _Raised):
        assert isinstance(a, _Raised), f"{what}: torch raised {e.type.__name__}: {e.msg}; dtrain gave {a!r}"
        assert a.type is e.type, f"{what}: {a.type.__name__}({a.msg}) != torch's {e.type.__name__}({e.msg})"
        assert a.msg == e.msg, f"{what}: message\n  {a.msg}\n!= torch's\n  {e.msg}"
        return
    assert not isinstance(a, _Raised), f"{what}: dtrain raised {a.type.__name__}: {a.msg}"
    if isinstance(e, (list, tuple)):
        assert len(a) == len(e), what
        for i, (x, y) in enumerate(zip(a, e)):
            _compare(x, y, f"{what}[{i}]")
        return
    if not isinstance(e, torch.Tensor):
        assert a == e, f"{what}: {a!r} != torch's {e!r}"
        return
    assert isinstance(a, dtrain.Tensor), f"{what}: {type(a)}"
    assert tuple(a.shape) == tuple(e.shape), f"{what}: shape {tuple(a.shape)} != {tuple(e.shape)}"
    assert_close(a, e, what=what)
    assert a.requires_grad == e.requires_grad, f"{what}: requires_grad {a.requires_grad} != {e.requires_grad}"
    assert a.is_leaf == e.is_leaf, f"{what}: is_leaf {a.is_leaf} != {e.is_leaf}"
    if e.is_leaf and e.requires_grad:
        assert (a.grad is None) == (e.grad is None), f"{what}.grad: {a.grad} vs torch's {e.grad}"
        if e.grad is not None:
            assert_close(a.grad, e.grad, what=f"{what}.grad")


_rng = np.random.default_rng(15)


def randn(*shape):
    return _rng.standard_normal(shape)


# ----------------------------------------------------------------------------------------------- the issue
def test_issue_program_inplace_on_view_with_transposed_gradient():
    def prog(m, x):
        w = m.tensor([[10., 20.], [30., 40.]], dtype=m.float64)
        y = x * 1
        y[0].mul_(2)
        (y.t() * w).sum().backward()
        return {"y": y}
    d, t = run(prog, np.array([[1., 2.], [3., 4.]]))
    assert d["leaf0"].grad.tolist() == [[20, 60], [20, 40]]


# ------------------------------------------- in-place through a view: base layout x view x op x grad layout
BASES = {
    "contiguous": lambda m, x: x * 1,
    "transposed": lambda m, x: x.t() * 1,        # a fresh tensor in transposed (column-major) layout
    "t_clone": lambda m, x: x.t().clone(),
    "expand_clone": lambda m, x: x[:1].expand(4, 4).clone() + x,
    "strided_row": lambda m, x: (x.t() * 1)[::2],  # the view's base is a non-contiguous root
}
VIEWS = {
    "row": lambda b: b[1],
    "col": lambda b: b[:, 1],
    "t": lambda b: b.t(),
    "step": lambda b: b[::2],
    "t_slice": lambda b: b.t()[1:],
    "diagonal": lambda b: b.diagonal(),
    "narrow_unsqueeze": lambda b: b.narrow(1, 1, 2).unsqueeze(0),
    "transpose_select": lambda b: b.transpose(0, 1)[0],
    "unfold": lambda b: b[0].unfold(0, 2, 2),  # windows that do not overlap: a write is well defined
}
def _operand(v, w):
    return w[0, : v.shape[-1]] if v.ndim else w[0, 0]


OPS = {
    "mul_scalar": lambda m, v, w: v.mul_(2),
    "add_tensor": lambda m, v, w: v.add_(_operand(v, w)),
    "copy": lambda m, v, w: v.copy_(_operand(v, w) * 3),
    "zero": lambda m, v, w: v.zero_(),
    "exp_then_mul": lambda m, v, w: v.exp_().mul_(_operand(v, w)),
    "setitem": lambda m, v, w: v.__setitem__(..., w[0, 1]),
    "masked_fill": lambda m, v, w: v.masked_fill_(_operand(v, w) > 0, 0.5),
    "index_put": lambda m, v, w: v.__setitem__(m.tensor([0]), w[1, 1]) if v.ndim else v.clamp_(-0.5, 0.5),
    "iadd_then_clamp": lambda m, v, w: v.__iadd__(_operand(v, w)).clamp_(-0.5, 0.5),
}
CONSUMERS = {  # the gradient reaching the base: same layout as the base, transposed, from a matmul
    "same_layout": lambda m, b, c: (b * c[: b.shape[0], : b.shape[1]]).sum(),
    "transposed": lambda m, b, c: (b.t() * c[: b.shape[1], : b.shape[0]]).sum(),
    "matmul": lambda m, b, c: (b @ c[: b.shape[1], :2]).pow(2).sum(),
}


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("base", BASES)
def test_inplace_through_view_gradient(base, view, op, consumer):
    def prog(m, x, w, c):
        b = BASES[base](m, x)
        v = VIEWS[view](b)
        out = OPS[op](m, v, w)
        res = {"b": b, "v": v, "out": out, "versions": (version(b), version(v)), "out_is_v": out is v}
        res["backward"] = attempt(lambda: CONSUMERS[consumer](m, b, c).backward())
        return res
    run(prog, randn(4, 4), randn(4, 4), randn(4, 4))


def test_chain_of_inplace_ops_on_two_views_and_the_base():
    def prog(m, x, w):
        y = x * 1
        a, b = y[0], y[:, 1]
        a.mul_(w[0])
        b.add_(a[1] * 1)            # a value written through the sibling
        y.t()[2].div_(w[1, 2] + 3)
        y.exp_()
        c = y[1:].t()
        c.sub_(w[1:].t())
        return {"y": y, "a": a, "b": b, "c": c, "backward": attempt(lambda: (y * w).sum().backward())}
    run(prog, randn(4, 4), randn(4, 4))


# ---------------------------------------------------------- a view taken before a write to its base/sibling
@pytest.mark.parametrize("writer", ["base", "sibling", "same_view_again", "nested_view"])
def test_view_taken_before_write_sees_new_history(writer):
    def prog(m, x, w):
        y = x * 1
        v = y[1]
        nested = v[1:]
        if writer == "base":
            y.mul_(w)
        elif writer == "sibling":
            y[:, 2].mul_(5)
        elif writer == "same_view_again":
            y[1].add_(w[0])
        else:
            nested.mul_(w[0, 1:])
        res = {"v": v, "nested": nested, "y": y, "v_grad_fn": v.grad_fn.name(),
               "versions": (version(v), version(y))}
        (v * w[2]).sum().backward()
        return res
    run(prog, randn(4, 4), randn(4, 4))


def test_view_of_base_without_grad_after_base_gets_history():
    def prog(m, x):
        b = m.zeros(3, 4, dtype=m.float64)
        v = b[1]
        before = (v.requires_grad, v.is_leaf)
        b.add_(x)
        after = (v.requires_grad, v.is_leaf, v.grad_fn.name())
        (v * 3).sum().backward()
        return {"before": before, "after": after, "v": v}
    run(prog, randn(3, 4))


# ---------------------------------------------------------------------------- requires_grad of views
def test_view_before_requires_grad_on_base():
    def prog(m, x):
        a = x.detach().clone()
        v = a[:2]
        a.requires_grad_()
        out = v * 2
        out.sum().backward()
        return {"v_rg": v.requires_grad, "v_leaf": v.is_leaf, "out_rg": out.requires_grad, "a_grad": a.grad is None}
    run(prog, randn(4), grad=False)


def test_view_made_under_no_grad():
    def prog(m, x):
        with m.no_grad():
            v = x[:2]
            u = (x * 1)[1:]
        out = v * 2
        out.sum().backward()
        res = {"v": (v.requires_grad, v.is_leaf), "u": (u.requires_grad, u.is_leaf), "out": out.requires_grad}
        res["v_row"], res["v_slice"] = v[1], v[1:]  # views of it in grad mode are tracked (a graph to nowhere)
        y = x * 1
        with m.no_grad():
            vv = y[:2]
        res["write"] = attempt(lambda: vv.mul_(2))
        with m.no_grad():
            vv.mul_(2)  # inside no_grad both the view and the write: allowed
        res["y"] = y
        return res
    run(prog, randn(4))


# ------------------------------------------------------------------------ multi-output views and refusals
@pytest.mark.parametrize("splitter", ["split", "chunk", "unbind", "split_sizes"])
def test_writes_to_multi_output_views(splitter):
    def pieces(t):
        return {"split": lambda: t.split(1), "chunk": lambda: t.chunk(3), "unbind": lambda: t.unbind(),
                "split_sizes": lambda: t.split([1, 2])}[splitter]()

    def prog(m, x):
        res = {}
        y = x * 1
        s = pieces(y)
        res["direct"] = attempt(lambda: s[0].mul_(2))
        y2 = x * 1
        s2 = pieces(y2)
        y2.mul_(2)
        res["indirect"] = attempt(lambda: s2[0].grad_fn)
        z = x.detach().clone()
        s3 = pieces(z)
        s3[0].mul_(2)  # no graph: allowed, and written through
        res["z"] = z
        res["alias"] = aliases(m, s3[-1], z)
        return res
    run(prog, randn(3))


def test_detach_in_place_on_views():
    def prog(m, x):
        y = x * 1
        v = y[:2]
        res = {"view": attempt(lambda: v.detach_())}
        z = x.detach()[1:]
        res["plain"] = attempt(lambda: (z.detach_(), z.requires_grad, z.is_leaf)[1:])
        return res
    run(prog, randn(3))


# ------------------------------------------------------------------- saved tensors modified in place
SAVED_CASES = {
    "exp_then_write": lambda m, y, w: (y.exp_(), y.add_(1), y)[-1],
    "mul_self": lambda m, y, w: y.mul_(y),
    "mul_other_requiring_grad": lambda m, y, w: y.mul_(w),
    "pow_then_write_input": lambda m, y, w: (y.pow(2), y.add_(1))[0],
    "mul_scalar_then_write": lambda m, y, w: (y * 2, y.add_(1))[0],
    "mul_tensor_then_write": lambda m, y, w: (y * w, y.add_(1))[0],
    "sigmoid_then_write_input": lambda m, y, w: (y.sigmoid(), y.add_(1))[0],
    "sigmoid_then_write_output": lambda m, y, w: (lambda s: (s, s.add_(1))[0])(y.sigmoid()),
    "relu_then_write_input": lambda m, y, w: (y.relu(), y.add_(1))[0],
    "tanh_then_write_output": lambda m, y, w: (lambda s: (s, s.mul_(2))[0])(y.tanh()),
    "abs_then_write": lambda m, y, w: (y.abs(), y.add_(1))[0],
    "sum_then_write": lambda m, y, w: (y.sum(), y.add_(1))[0],
    "add_then_write": lambda m, y, w: (y + w, y.add_(1))[0],
    "view_then_write_base": lambda m, y, w: (y[0] * w[0], y.add_(1))[0],
    "write_view_of_saved": lambda m, y, w: (y * w, y[0].add_(1))[0],
    "linear_1d": lambda m, y, w: (m.nn.functional.linear(y[0], w), y.add_(1))[0],
    "linear_3d": lambda m, y, w: (m.nn.functional.linear(y.reshape(2, 2, 4), w), y.add_(1))[0],
    "linear_3d_no_grad_input": lambda m, y, w: (lambda h: (m.nn.functional.linear(h, w), h.add_(1))[0])(
        y.detach().reshape(2, 2, 4) * 1),
    "matmul_then_write": lambda m, y, w: (y @ w, y.add_(1))[0],
    "write_pow_output": lambda m, y, w: (lambda p: (p.mul_(2), p)[1])(y.pow(3)),
}


@pytest.mark.parametrize("case", SAVED_CASES)
def test_saved_tensor_modified_in_place(case):
    def prog(m, x, w):
        y = x * 1
        out = SAVED_CASES[case](m, y, w)
        return {"backward": attempt(lambda: out.sum().backward())}
    d, t = run(prog, randn(4, 4), randn(4, 4))
    if isinstance(t["backward"], _Raised):
        assert d["backward"].full == t["backward"].full


# ------------------------------------------------------------------ hooks, retained grads, second backward
def test_retain_grad_follows_in_place_write():
    def prog(m, x):
        y = x * 1
        y.retain_grad()
        y.mul_(2)
        v = (x * 1)
        r = v[0]
        r.retain_grad()
        v.mul_(3)
        (y.sum() + (r * 2).sum()).backward()
        return {"y_grad": y.grad, "r_grad": r.grad, "r_fn": r.grad_fn.name()}
    run(prog, randn(2, 3))


def test_retain_grad_on_a_view_written_in_place():
    def prog(m, x):
        y = x * 1
        v = y[1]
        v.retain_grad()
        v.mul_(3)
        (y * y).sum().backward()
        return {"v_grad": v.grad, "fn": v.grad_fn.name(), "y_fn": y.grad_fn.name()}
    run(prog, randn(2, 3))


def test_hook_on_a_view_before_it_is_written_in_place():
    def prog(m, x):
        y = x * 1
        v = y[1]
        seen = []
        v.register_hook(lambda g: seen.append(g.clone()))
        v.mul_(3)
        (y * y).sum().backward()
        return {"hook": seen}
    run(prog, randn(2, 3))


def test_view_dtype_shares_the_version_counter():
    def prog(m, x):
        a = x.detach().clone().float()
        b = a.view(m.int32)
        a.add_(1)
        return {"versions": (version(a), version(b)), "alias": aliases(m, a, b)}
    run(prog, randn(4), grad=False)


def test_view_reused_after_backward():
    def prog(m, x):
        v = x[0]
        v.sum().backward()
        second = attempt(lambda: v.sum().backward())
        t = x.t()
        t.sum().backward()
        third = attempt(lambda: (t * 1).sum().backward())
        return {"second": second, "third": third}
    run(prog, randn(2, 3))


# ---------------------------------------------------------------------------- view ops that must alias
def test_unfold_and_unbind_of_1d_are_views():
    def prog(m, x):
        a = x.detach().clone()
        u = a.unfold(0, 2, 1)
        parts = a.unbind()
        return {"u": u, "u_alias": aliases(m, u, a), "stride": u.stride(), "p_alias": aliases(m, parts[2], a),
                "p_version": version(parts[0]) == version(a)}
    run(prog, randn(5), grad=False)


@pytest.mark.parametrize("shape,dim,size,step", [((5,), 0, 3, 2), ((5,), 0, 2, 1), ((4, 5), 1, 2, 1),
                                                 ((4, 5, 3), 0, 2, 2), ((4, 5), -2, 4, 3)])
def test_unfold_in_graph_gradient(shape, dim, size, step):
    def prog(m, x):
        u = x.unfold(dim, size, step)
        (u * m.arange(u.numel(), dtype=m.float64).reshape(u.shape)).sum().backward()
        return {"u": u, "stride": u.stride()}
    run(prog, randn(*shape))


def test_expand_and_diagonal_writes():
    def prog(m, x):
        a = x.detach().clone()
        res = {}
        e = a[:1].expand(3, 4)
        res["overlap"] = attempt(lambda: e.mul_(2))
        res["overlap_setitem"] = attempt(lambda: e.__setitem__(0, 1.0))
        res["overlap_zero"] = attempt(lambda: e.zero_())
        same = a.expand(3, 4)  # expanding to the same shape: no overlap, writable
        same.mul_(2)
        d = a[:, :3].diagonal()
        d.add_(1)
        one = a[:1, :1].expand(1, 1)
        one.fill_(7)
        res.update(a=a, same=same, d=d, d_alias=aliases(m, d, a))
        return res
    run(prog, randn(3, 4), grad=False)


def test_fill_of_an_expanded_view_in_a_graph():
    def prog(m, x):
        y = x * 1
        e = y[:1].expand(3, 4)
        e.fill_(2.0)           # allowed: every alias gets the same value
        z = x * 1
        z.expand(2, 3, 4)[0].zero_()
        res = {"y": y, "z": z, "backward": attempt(lambda: (y * x).sum().backward())}
        res["backward_z"] = attempt(lambda: (z * x).sum().backward())
        return res
    run(prog, randn(3, 4))


def test_diagonal_write_in_graph():
    def prog(m, x, w):
        y = x * 1
        y.diagonal().mul_(w[0, :3])
        (y * w).sum().backward()
        return {"y": y}
    run(prog, randn(3, 4), randn(3, 4))


def test_as_strided():
    def prog(m, x):
        a = m.as_strided(x, (2, 2), (1, 2), 1)
        b = x.as_strided((3,), (2,))
        (a.sum() + (b * 2).sum()).backward()
        c = x.detach().clone()
        s = c.as_strided((2,), (3,), 1)
        s.fill_(0)
        return {"a": a, "b": b, "c": c, "s_alias": aliases(m, s, c)}
    run(prog, randn(6))


def test_grad_layout_allows_view():
    def prog(m, x, w):
        (x.t() * w).sum().backward()
        return {"flat": x.grad.view(-1), "contig": x.grad.is_contiguous()}
    run(prog, randn(3, 2), randn(2, 3))


# ------------------------------------------------------------------------------------------- misc writes
def test_zero_dim_tensor_written_into_graph_tensor():
    def prog(m, x, s):
        y = x * 1
        y[0] = s
        y[1] = m.tensor(5., dtype=m.float64)
        (y * y).sum().backward()
        return {"y": y}
    run(prog, randn(3), np.array(2.5))


def test_version_counter_shared_by_views():
    def prog(m, x):
        a = x.detach().clone()
        v = a.t()[1:]
        w = v.reshape(-1) if v.is_contiguous() else v[0]
        a.add_(1)
        w.mul_(2)
        return {"versions": (version(a), version(v), version(w)), "a": a}
    run(prog, randn(3, 3), grad=False)


def test_version_reads_as_torchs_int():
    for T in (torch, dtrain):
        x = T.zeros(3)
        v = x[1:]
        before = x._version
        v.add_(1)
        assert type(x._version) is int and x._version == before + 1 == v._version == x.detach()._version


# ------------------------------------------------- t[key] = v where the key selects all of t (torch's copy_to)
WHOLE_KEYS = {
    ":": slice(None), "...": Ellipsis, "(:, :)": (slice(None), slice(None)), "0:5": slice(0, 5),
    "::1": slice(None, None, 1), "(:, ...)": (slice(None), Ellipsis), "()": (), "(..., 0:3)": (Ellipsis, slice(0, 3)),
    # not the whole tensor: a view, so CopySlices in both
    "-2:": slice(-2, None), "(:, 1:)": (slice(None), slice(1, None)), "0:1": slice(0, 1),
}
WHOLE_VALUES = {
    "self": lambda m, t, y: t, "fresh": lambda m, t, y: y * 3, "row": lambda m, t, y: t[0], "flip": lambda m, t, y: t.flip(0),
    "lead_ones": lambda m, t, y: (y * 3)[:1, None, :1], "scalar": lambda m, t, y: 5.0, "0-d": lambda m, t, y: y.sum(),
    "int": lambda m, t, y: m.ones(2, 3, dtype=m.int64), "no_grad": lambda m, t, y: m.ones(3),
}


@pytest.mark.parametrize("value", WHOLE_VALUES)
@pytest.mark.parametrize("key", WHOLE_KEYS)
def test_setitem_of_the_whole_tensor_is_its_copy_or_fill(key, value):
    # torch's indexing returns t itself for full slices, so `t[:] = v` records t.copy_(v) (CopyBackwards), or
    # t.fill_(v) for a 0-d value (FillBackward3); a first and a second backward give the same gradients
    def prog(m, x, y):
        t = x * 2
        v = WHOLE_VALUES[value](m, t, y)
        out = {"write": attempt(lambda: t.__setitem__(WHOLE_KEYS[key], v))}
        if isinstance(out["write"], _Raised):
            return out
        out["t"], out["node"] = t, type(t.grad_fn).__name__
        out["inputs"] = [type(n).__name__ for n, _ in t.grad_fn.next_functions]
        (t * t).sum().backward(retain_graph=True)
        (t * t).sum().backward()
        return out
    d, _ = run(prog, randn(2, 3), randn(2, 3))
    if not isinstance(d["write"], _Raised):
        assert d["node"] in ("CopyBackwards", "FillBackward3", "CopySlices")


@pytest.mark.parametrize("value", [[1.0, 2.0, 3.0], (1, 2, 3), np.ones(3), np.array(2.0), np.float32(2), np.bool_(True),
                                   None, "1", 1 + 2j, 1 + 0j, 2 ** 70, np.int64(3), True, 2.5],
                         ids=lambda v: type(v).__name__ + (f"={v}" if np.ndim(v) == 0 else ""))
@pytest.mark.parametrize("key", [slice(None), 0, (slice(None), 1)], ids=[":", "0", "(:, 1)"])
def test_setitem_values_torch_takes_and_refuses(key, value):
    # torch's valueToTensor: Python numbers (and NumPy integers) only; a list, an array or None is a TypeError,
    # never a silent conversion (None used to write NaN)
    def prog(m, x):
        t = m.zeros(2, 3)
        return {"write": attempt(lambda: t.__setitem__(key, value)), "t": t}
    run(prog, randn(1), grad=False)
