"""Run a program against a module (`dtrain` or `torch`) and compare two runs statement by statement.

After every statement both runs are read back in full: each variable's value, shape, dtype, `requires_grad`,
`is_leaf`, `grad_fn` presence and `.grad`; an exception must be raised by both runs, with the same type. At the
end an alias probe writes one element through each variable in turn (under `no_grad`) and records which other
variables see the write, so a copy where torch gives a view (or the reverse) shows even when the values agree.
"""
import re
import warnings
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

import dtrain

from .program import flat_ops, label, render, snippet


@lru_cache(maxsize=20000)
def _compiled(src):
    return compile(src, "<fuzz>", "exec")


def exc_type(e):
    """The builtin exception class a caller would catch (torch and dtrain both raise subclasses of these)."""
    for cls in type(e).__mro__:
        if cls.__module__ == "builtins":
            return cls.__name__
    return type(e).__name__


class Run:
    """One execution of a program against `mod`, one statement at a time."""

    def __init__(self, mod):
        self.mod = mod
        self.ns = {"torch": mod, "np": np}

    def step(self, op, no_grad=False):
        """Execute one statement; return the exception it raised, or None."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if no_grad:
                    with self.mod.no_grad():
                        exec(_compiled(render(op)), self.ns)
                else:
                    exec(_compiled(render(op)), self.ns)
        except Exception as e:  # noqa: BLE001 - every exception is an outcome to compare
            return e
        return None

    def names(self):
        return [n for n, v in self.ns.items() if isinstance(v, (self.mod.Tensor, np.ndarray))]


def _array(t, mod):
    a = t.detach().numpy() if isinstance(t, mod.Tensor) else t
    return np.array(a, copy=True)


def _get(f):
    """An attribute read; torch refuses some (e.g. grad_fn of a multi-output view modified in place)."""
    try:
        return f()
    except Exception as e:  # noqa: BLE001
        return ("raises", exc_type(e))


def _layout(t):
    """The strides that decide memory order (those of dims longer than 1) and is_contiguous(): what `.view()`
    of the tensor, a copy of it and an in-place write into it depend on. An empty tensor has no memory to
    order (torch calls its strides arbitrary): None."""
    if t.numel() == 0:
        return None
    return tuple(st for n, st in zip(t.shape, t.stride()) if n > 1), t.is_contiguous()


def read(v, mod):
    """Everything observable about one variable, as plain values (no references into the run)."""
    if isinstance(v, np.ndarray):
        return {"kind": "ndarray", "shape": v.shape, "dtype": str(v.dtype), "value": v.copy()}
    if not isinstance(v, mod.Tensor):
        return {"kind": type(v).__name__}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns on reading .grad of a non-leaf
        g = _get(lambda: v.grad)
        grad = g if g is None or isinstance(g, tuple) else (tuple(g.shape), str(g.dtype), _array(g, mod))
        return {"kind": "Tensor", "shape": tuple(v.shape), "dtype": str(v.dtype), "layout": _get(lambda: _layout(v)),
                "value": _get(lambda: _array(v, mod)), "requires_grad": _get(lambda: v.requires_grad),
                "is_leaf": _get(lambda: v.is_leaf), "grad_fn": _get(lambda: v.grad_fn is not None), "grad": grad}


# (rtol, atol). A program that computes anything in float32 is compared at float32's tolerance throughout: a
# float64 tensor converted from a float32 result carries its rounding.
_LOOSE = [False]


def _tol(dtype):
    return (1e-4, 1e-5) if "float32" in dtype or _LOOSE[0] else (1e-7, 1e-9)


def _close(a, b, dtype):
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b if isinstance(a, tuple) and isinstance(b, tuple) else False
    if a.shape != b.shape:
        return False
    if a.dtype.kind not in "fc":
        return np.array_equal(a, b)
    rtol, atol = _tol(dtype)
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.isclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol,
                                      equal_nan=True)))


def _show(x):
    if isinstance(x, np.ndarray):
        return np.array2string(x, precision=4, separator=", ").replace("\n", "")
    return repr(x)


def diff(name, want, got):
    """The first difference between torch's reading `want` and dtrain's `got` of variable `name`: (aspect, text)."""
    for key in ("kind", "shape", "dtype", "layout", "requires_grad", "is_leaf", "grad_fn"):
        if want.get(key) != got.get(key):
            return key, f"{name}.{key}: torch {want.get(key)!r}, dtrain {got.get(key)!r}"
    if "value" in want and not _close(want["value"], got["value"], want["dtype"]):
        return "value", f"{name}: torch {_show(want['value'])}, dtrain {_show(got['value'])}"
    if "grad" in want:
        w, g = want["grad"], got["grad"]
        if not _same_grad(w, g):
            return "grad", f"{name}.grad: torch {_show_grad(w)}, dtrain {_show_grad(g)}"
    return None


def _same_grad(w, g):
    if w is None or g is None or w[0] == "raises" or g[0] == "raises":
        return w == g
    return w[0] == g[0] and w[1] == g[1] and _close(w[2], g[2], w[1])


def _show_grad(g):
    return _show(g) if g is None or g[0] == "raises" else _show(g[2])


class Divergence(NamedTuple):
    index: int  # flat statement index (len(program) for the end-of-program alias probe)
    op: object  # the statement where the runs first differ (None for the probe)
    key: str  # what divergences are grouped by: "<op label> | <aspect>"
    detail: str  # torch's and dtrain's results, in words
    program: tuple
    raised: dict  # flat index -> exception type name torch raised

    def report(self):
        note = (self.index, f"diverges: {self.detail}")
        return f"[{self.key}]\n{self.detail}\n\n" + snippet(self.program, self.raised, note=note, upto=self.index)

    def test_source(self, name, reason=None):
        """The program as a regression test for test_regressions.py (xfail while `reason` is given)."""
        body = snippet(self.program, self.raised, note=(self.index, f"torch vs dtrain: {self.detail}"),
                       indent="        ", upto=self.index)
        mark = f"@pytest.mark.xfail(strict=True, reason={reason!r})\n" if reason else ""
        return (f"{mark}def test_{name}():\n    def program(torch):\n{body}\n        return locals()\n\n"
                f"    same_as_torch(program)\n")


def _message(e):
    """An exception's first line, numbers and shapes blanked, so one cause gives one key."""
    first = str(e).splitlines()[0] if str(e) else ""
    return re.sub(r"[0-9]+", "N", first)[:70]


def _key(op, no_grad, aspect):
    """What divergences are grouped by. A wrong value or gradient is keyed by the op's name; a flag or a refusal
    by its family alone (one cause shows through every view method or every in-place op alike)."""
    name = op.kind if op.kind in ("view", "inplace") and aspect.split()[0] not in ("value", "grad") else label(op)
    return f"{name}{' under no_grad' if no_grad else ''} | {aspect}"


def run_both(program):
    """Execute on torch and on dtrain in lockstep; return the first Divergence, or None."""
    rt, rd = Run(torch), Run(dtrain)
    _LOOSE[0] = "float32" in repr(program)
    raised = {}
    creators = {}
    ops = list(flat_ops(program))
    for i, (op, ng) in enumerate(ops):
        et, ed = rt.step(op, ng), rd.step(op, ng)
        raised[i] = None if et is None else exc_type(et)
        if op.out and et is None:
            creators[op.out] = (i, label(op))
        if (et is None) != (ed is None) or (et is not None and exc_type(et) != exc_type(ed)):
            def what(e):
                return "no error" if e is None else f"{exc_type(e)}({str(e).splitlines()[0][:150] if str(e) else ''})"
            if ed is None:
                aspect = f"dtrain does not raise: {_message(et)}"
            elif et is None:
                aspect = f"dtrain raises: {_message(ed)}"
            else:
                aspect = f"exception type: torch {exc_type(et)}, dtrain {exc_type(ed)}: {_message(et)}"
            return Divergence(i, op, _key(op, ng, aspect), f"torch: {what(et)}; dtrain: {what(ed)}", program, raised)
        for name in rt.names():
            want = read(rt.ns[name], torch)
            got = read(rd.ns[name], dtrain) if name in rd.ns else {"kind": "missing"}
            d = diff(name, want, got)
            if d:
                role = "target" if name in (op.target, op.out) else "other"
                return Divergence(i, op, _key(op, ng, f"{d[0]} of {role}"), d[1], program, raised)
    d = probe_aliases(rt, rd, creators)
    if d:
        return Divergence(len(ops), None, d[0], d[1], program, raised)
    return None


def _write_one(run, name, k, value):
    """Write `value` into flat element k of a variable (no autograd); return the element's old value."""
    v = run.ns[name]
    if isinstance(v, np.ndarray):
        old = v.flat[k]
        v.flat[k] = value
        return old
    idx = tuple(int(i) for i in np.unravel_index(k, tuple(v.shape)))
    with run.mod.no_grad():
        old = v[idx].item() if idx else v.item()
        if idx:
            v[idx] = value
        else:
            v.fill_(value)
    return old


def _values(run, names):
    out = {}
    for n in names:
        v = run.ns[n]
        out[n] = v.copy() if isinstance(v, np.ndarray) else _array(v, run.mod)
    return out


def probe_aliases(rt, rd, creators):
    """Write through each variable in turn; compare which variables see it. Returns (key, detail) or None."""
    names = [n for n in rt.names() if n in rd.ns]
    for n in names:
        size = int(np.prod(np.shape(rt.ns[n]) if isinstance(rt.ns[n], np.ndarray) else tuple(rt.ns[n].shape)))
        for k in sorted({0, size - 1}) if size else ():
            seen = []
            for run in (rt, rd):
                try:
                    before = _values(run, names)
                    old = _write_one(run, n, k, 1000.0 + k)
                    after = _values(run, names)
                    _write_one(run, n, k, old)
                    seen.append({m for m in names if not np.array_equal(before[m], after[m], equal_nan=True)})
                except Exception:  # noqa: BLE001 - a write that raises is covered by the in-place statements
                    seen.append(None)
            if None in seen or seen[0] == seen[1]:
                continue
            other = sorted(seen[0] ^ seen[1])[0]
            # of the two variables, the later one is the view (or copy) that went wrong
            later = max(creators.get(n, (-1, n)), creators.get(other, (-1, other)))
            key = f"alias | {later[1]}"
            return key, (f"writing element {k} of {n}: torch sees it in {sorted(seen[0])}, "
                         f"dtrain in {sorted(seen[1])}")
    return None


def same_as_torch(program):
    """Regression check: `program(torch)` runs a snippet and returns its `locals()`; run it on torch and on
    dtrain and assert every tensor and array agrees (values, flags, grads) and aliases the same others."""
    rt, rd = Run(torch), Run(dtrain)
    rt.ns.update(program(torch))
    rd.ns.update(program(dtrain))
    _LOOSE[0] = any("float32" in str(getattr(v, "dtype", "")) for v in rt.ns.values())
    for name in rt.names():
        got = read(rd.ns[name], dtrain) if name in rd.ns else {"kind": "missing"}
        d = diff(name, read(rt.ns[name], torch), got)
        assert d is None, d[1]
    d = probe_aliases(rt, rd, {})
    assert d is None, d[1]


def _names_in(args):
    """The variables among an op's arguments, nested ones too (torch.cat((t0, t1)), value=t2)."""
    out = set()
    for a in args:
        if isinstance(a, str):
            out.add(a)
        elif isinstance(a, tuple) and not hasattr(a, "kind"):  # not a nested Op (no_grad blocks go below)
            out |= _names_in(a)
    return out


def _uses(op):
    names = {op.target} | _names_in(op.args)
    if op.kind == "opt" and op.method in ("SGD", "Adam"):
        names |= set(op.args[0])
    if op.kind == "no_grad":
        names = set().union(*(_uses(o) for o in op.args))
    return names


def _without(program, i, j=None):
    """The program less statement i (or statement j of the no_grad block at i)."""
    if j is None:
        return program[:i] + program[i + 1:]
    inner = program[i].args[:j] + program[i].args[j + 1:]
    return program[:i] + ((program[i]._replace(args=inner),) if inner else ()) + program[i + 1:]


def simplify(div):
    """Drop the statements the divergence does not need (hypothesis turns them into the simplest statement,
    a fresh tensor, rather than deleting them): each removal is kept only if no later statement used what it
    made and the program still diverges with the same key."""
    changed = True
    while changed:
        changed = False
        prog = div.program
        spots = [(i, j) for i, op in enumerate(prog)
                 for j in (range(len(op.args)) if op.kind == "no_grad" else [None])]
        for i, j in reversed(spots):
            op = prog[i] if j is None else prog[i].args[j]
            rest = _without(prog, i, j)
            if op.out and any(op.out in _uses(o) for o in rest[i:]):
                continue
            d = run_both(rest)
            if d is not None and d.key == div.key:
                div, changed = d, True
                break
    return div
