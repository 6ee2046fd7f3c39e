"""A fuzz program is plain data: a tuple of `Op` records, each rendered to one Python statement.

Every record names its operands by variable (`t3`, `a5`, `lin0`, `opt2`), so a program reads as the script it
stands for. The interpreter executes exactly the text `render` produces, so the snippet printed for a failing
program is the program that ran, not a paraphrase of it.

    Op("new", "tensor", None, ((2, 2), "float64", True, (1.0, 2.0, 3.0, 4.0)), "t0")
        t0 = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    Op("view", "transpose", "t0", (0, 1), "t1")      t1 = t0.transpose(0, 1)
    Op("inplace", "setitem", "t1", ((0,), 2.5))      t1[0] = 2.5
    Op("no_grad", "", None, (op, op, ...))           with torch.no_grad(): ...
    Op("multi", "torch.cat", None, (("t0", "t1"), 0), "t2")
                                                     t2 = torch.cat((t0, t1), 0)
    Op("math", "index_select", "t0", (0, Lit((1, 0), (2,), "int64")), "t3")
                                                     t3 = t0.index_select(0, torch.tensor([1, 0]))
    Op("reduce", "var", "t0", (0, Kw("correction", 0)), "t4")
                                                     t4 = t0.var(0, correction=0)
"""
from typing import NamedTuple


class Lit(NamedTuple):
    """A constant tensor written inline (an index, a mask): `torch.tensor([1, 0])`."""
    values: tuple
    shape: tuple
    dtype: str  # int64 or bool


class Kw(NamedTuple):
    """A keyword argument: `correction=0`."""
    key: str
    value: object


class Op(NamedTuple):
    kind: str  # family: new, linear, view, math, reduce, inplace, flag, grad, backward, opt, numpy, no_grad
    method: str  # the torch name (transpose, add_, setitem, SGD, ...)
    target: str | None  # the variable the op reads or writes first
    args: tuple = ()  # literals, or variable names (a str argument is always a variable)
    out: str | None = None  # the variable it assigns


def flat_ops(program):
    """(op, under_no_grad) for every statement, blocks opened."""
    for op in program:
        if op.kind == "no_grad":
            for inner in op.args:
                yield inner, True
        else:
            yield op, False


def label(op):
    """What a divergence is grouped by: the op's family and name (and, for in-place writes, what they write)."""
    if op.kind == "inplace" and op.method in ("add_", "sub_", "mul_", "copy_", "setitem"):
        operand = op.args[-1]
        return f"{op.kind}:{op.method}({'tensor' if isinstance(operand, str) else 'scalar'})"
    return f"{op.kind}:{op.method}"


_SCALAR_OF = {"int64": int, "bool": bool}


def _nested(values, shape, dtype="float32"):
    if not shape:
        return repr(_SCALAR_OF.get(dtype, float)(values[0]))
    step = len(values) // shape[0] if shape[0] else 0
    return "[" + ", ".join(_nested(values[i * step:(i + 1) * step], shape[1:], dtype)
                           for i in range(shape[0])) + "]"


def _lit(x):
    if isinstance(x, Lit):  # int64 is what torch.tensor makes of ints; bool of bools
        return f"torch.tensor({_nested(x.values, x.shape, x.dtype)})"
    if isinstance(x, Kw):
        return f"{x.key}={_lit(x.value)}"
    if isinstance(x, tuple):
        return "(" + ", ".join(map(_lit, x)) + ("," if len(x) == 1 else "") + ")"
    return x if isinstance(x, str) else repr(x)


def _index(idx):
    def one(i):
        if isinstance(i, Lit):  # an advanced index
            return _lit(i)
        if isinstance(i, tuple):  # ("s", start, stop, step)
            _, a, b, c = i
            s = ("" if a is None else str(a)) + ":" + ("" if b is None else str(b))
            return s + ("" if c is None else f":{c}")
        return str(i)
    return ", ".join(map(one, idx)) if idx else "()"


def _call(args):
    return ", ".join(_lit(a) for a in args)


def _ramp(shape, dtype):
    """A gradient with distinct entries, so a gradient routed to the wrong element shows."""
    n = 1
    for s in shape:
        n *= s
    r = f"torch.arange(1.0, {n + 1}.0, dtype=torch.{dtype})"
    return r + (f".reshape{_lit(tuple(shape))}" if len(shape) != 1 else "")


def render(op):
    """The statement (one or more lines) the record stands for."""
    k, m, t, a, out = op
    lhs = f"{out} = " if out else ""
    if k == "new":
        shape, dtype, rg, values = a
        return f"{out} = torch.tensor({_nested(values, shape, dtype)}, dtype=torch.{dtype}" + (
            ", requires_grad=True)" if rg else ")")
    if k == "linear":
        fin, fout, bias, dtype, w, b = a
        lines = [f"{out} = torch.nn.Linear({fin}, {fout}, bias={bias}, dtype=torch.{dtype})",
                 "with torch.no_grad():",
                 f"    {out}.weight.copy_(torch.tensor({_nested(w, (fout, fin))}, dtype=torch.{dtype}))"]
        if bias:
            lines.append(f"    {out}.bias.copy_(torch.tensor({_nested(b, (fout,))}, dtype=torch.{dtype}))")
        return "\n".join(lines)
    if k == "param" or m in ("data", "grad"):
        return f"{lhs}{t}.{m}"
    if m == "getitem":
        return f"{lhs}{t}[{_index(a[0])}]"
    if m in ("split", "chunk", "unbind") or (m in ("max", "min") and len(a) == 3):  # one of the results
        return f"{lhs}{t}.{m}({_call(a[:-1])})[{a[-1]}]"
    if m.startswith("torch.") or m.startswith("F."):  # a function, operands first: torch.where(c, a, b)
        fn = "torch.nn.functional." + m[2:] if m.startswith("F.") else m
        return f"{lhs}{fn}({_call(((t,) if t else ()) + tuple(a))})"
    if m == "setitem":
        return f"{t}[{_index(a[0])}] = {_lit(a[1])}"
    if m == "mul_self":
        return f"{t}.mul_({t})"
    if m == "linear":  # F.linear(x, w[, b])
        return f"{lhs}torch.nn.functional.linear({t}, {_call(a)})"
    if m == "call":
        return f"{lhs}{t}({_call(a)})"
    if m == "to":
        return f"{lhs}{t}.to(torch.{a[0]})"
    if m == "grad_none":
        return f"{t}.grad = None"
    if m == "sum_backward":
        return "(" + " + ".join(f"{n}.sum()" for n in a) + ").backward()"
    if m == "grad_graph":
        return f"{out} = torch.autograd.grad(({t} * {t}).sum(), {a[0]}, create_graph=True)[0]"
    if k == "backward":
        shape, dtype, retain = a
        grad = _ramp(shape, dtype) if shape else ""
        return f"{t}.backward({grad}{', ' if grad and retain else ''}{'retain_graph=True' if retain else ''})"
    if k == "opt" and m in ("SGD", "Adam"):
        params, kwargs = a
        ps = f"{params[0]}.parameters()" if params[0].startswith("lin") else "[" + ", ".join(params) + "]"
        return f"{out} = torch.optim.{m}({ps}, " + ", ".join(f"{key}={v!r}" for key, v in kwargs) + ")"
    if k == "numpy":
        if m == "numpy":
            return f"{out} = {t}{'.detach()' if a and a[0] else ''}.numpy()"
        if m == "np_setitem":
            return f"{t}[{_index(a[0])}] = {_lit(a[1])}"
        return f"{out} = torch.{m}({t})"  # from_numpy, tensor
    return f"{lhs}{t}.{m}({_call(a)})"


def snippet(program, raised=None, module="dtrain", note=None, indent="", upto=None):
    """The program as a script. `raised[i]` is the exception type torch raised at flat statement i (or None):
    such statements are wrapped in `pytest.raises`, so the script runs to its end under torch. `note` is a
    (flat index, comment) put after the statement where dtrain diverges; statements after flat index `upto`
    are left out."""
    raised = raised or {}
    lines = []
    i = 0

    def emit(op, pad):
        nonlocal i
        if upto is not None and i > upto:
            i += 1
            return
        body = render(op).split("\n")
        exc = raised.get(i)
        if exc is not None:
            lines.append(f"{pad}with pytest.raises({exc}):")
            pad += "    "
        for j, line in enumerate(body):
            lines.append(pad + line)
        if note and note[0] == i:
            lines.append(f"{pad}# ^ {note[1]}")
        i += 1

    for op in program:
        if op.kind == "no_grad":
            if upto is not None and i > upto:
                break
            lines.append(indent + "with torch.no_grad():")
            for inner in op.args:
                emit(inner, indent + "    ")
        else:
            emit(op, indent)
    head = []
    if indent == "":
        head = [f"import {module} as torch" if module != "torch" else "import torch"]
        if any(v is not None for v in raised.values()):
            head.append("import pytest")
    return "\n".join(head + lines)
