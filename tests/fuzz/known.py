"""KNOWN: the program features dtrain gets wrong today, left out of generation so that CI's fuzz run stays green.

Each entry names the divergence; its shrunk program is a strict-xfail test in test_regressions.py. A predicate
sees the generator's state (the torch shadow run's variables, `s.ns`, and what it tracked about them) and the
statement about to be drawn.
"""
from typing import Callable, NamedTuple

import torch


class Known(NamedTuple):
    """A divergence dtrain has today, kept out of generation until it is fixed (see test_regressions.py)."""
    name: str
    divergence: str
    excludes: Callable  # (State, op, under_no_grad) -> True to leave the op out


def _tensor(s, name):
    v = s.ns.get(name) if isinstance(name, str) else None
    return v if isinstance(v, torch.Tensor) else None


def _aliased(s, name):
    """Other variables that share the memory of `name` (views, bases, from_numpy)."""
    t = _tensor(s, name)
    if t is None:
        return []
    ptr = t.untyped_storage().data_ptr()
    return [n for n, v in s.ns.items() if isinstance(v, torch.Tensor) and v is not t
            and v.untyped_storage().data_ptr() == ptr]


def _operands(op):
    return [a for a in op.args if isinstance(a, str)]  # a str argument is always a variable


def _partial_overlap(s, op):
    """An in-place write whose tensor operand shares memory with the target without being the same view."""
    dst = _tensor(s, op.target)
    for name in _operands(op):
        src = _tensor(s, name)
        if src is None or src.untyped_storage().data_ptr() != dst.untyped_storage().data_ptr():
            continue
        if src is dst and op.method != "setitem":
            continue
        if op.method == "setitem" or (src.data_ptr(), src.shape, src.stride()) != (dst.data_ptr(), dst.shape,
                                                                                    dst.stride()):
            return True
    return False


# Each entry names a divergence dtrain has today (and its test in test_regressions.py); CI's fuzz run leaves the
# feature out until the core is fixed. Drop an entry when its regression test XPASSes.
KNOWN = [
    Known("detach_shared",
          "detach_() on a view (torch raises RuntimeError), or on a tensor in a graph: torch's graph then no longer "
          "reaches it (views taken before keep their history, .grad stays None); dtrain's backward still does",
          lambda s, op, ng: op.method == "detach_" and (bool(_aliased(s, op.target))
                                                       or _tensor(s, op.target).requires_grad)),
    Known("partial_overlap",
          "an in-place write from a tensor that partly overlaps the target: torch raises RuntimeError "
          "(unsupported operation: some elements ... refer to a single memory location), dtrain writes",
          lambda s, op, ng: op.kind == "inplace" and _partial_overlap(s, op)),
    Known("duplicate_params",
          "an optimizer given the same tensor twice (torch warns): torch's SGD with momentum steps both entries "
          "from a fresh momentum buffer, dtrain's second entry sees the first one's buffer",
          lambda s, op, ng: op.kind == "opt" and op.method in ("SGD", "Adam") and not op.args[0][0].startswith("lin")
          and len({id(s.ns[n]) for n in op.args[0]}) < len(op.args[0])),
]


def excluded(s, op, no_grad):
    for k in KNOWN:
        try:
            if k.excludes(s, op, no_grad):
                return k
        except Exception:  # noqa: BLE001 - torch refused to answer (e.g. grad_fn of a stale view): leave it out
            return k
    return None

