"""KNOWN: the program features dtrain gets wrong today, left out of generation so that CI's fuzz run stays green.

Each entry names the divergence; its shrunk program is a strict-xfail test in test_regressions.py. A predicate
sees the generator's state (the torch shadow run's variables, `s.ns`, and what it tracked about them) and the
statement about to be drawn.
"""
from typing import Callable, NamedTuple

import numpy as np
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


def _read_only(s, name):
    """dtrain hands out read-only NumPy views for these (torch writes, or refuses internal overlap)."""
    t = _tensor(s, name)
    origin = s.origin.get(name, frozenset())
    return ("expand" in origin or "diagonal" in origin
            or (t is not None and any(st == 0 and n > 1 for st, n in zip(t.stride(), t.shape))))


def _stale_views(s, op):
    """An in-place write in a graph while other views of the same memory exist (beside the target's base)."""
    dst = _tensor(s, op.target)
    others = [s.ns[n] for n in _aliased(s, op.target) if s.ns[n] is not dst._base]
    operands = [_tensor(s, n) for n in _operands(op)]
    return bool(others) and any(t is not None and t.requires_grad for t in [dst, *others, *operands])


def _written(s, op):
    if op.kind == "inplace":
        return [_tensor(s, op.target)]
    if op.kind == "opt" and op.method == "step":
        return [p for g in s.ns[op.target].param_groups for p in g["params"]]
    return []


def _multi_output_view_written(s, op):
    """A write to memory that a split/chunk/unbind output of a graph tensor sees."""
    for t in _written(s, op):
        ptr = t.untyped_storage().data_ptr()
        for n, v in s.ns.items():
            if (isinstance(v, torch.Tensor) and v.untyped_storage().data_ptr() == ptr and v.requires_grad
                    and s.origin.get(n, frozenset()) & {"split", "chunk", "unbind"}):
                return True
    return False


def _shares_param_memory(s, op):
    """An optimizer step (several parameters) while something else views a parameter or its gradient."""
    if not (op.kind == "opt" and op.method == "step"):
        return False
    params = [p for g in s.ns[op.target].param_groups for p in g["params"]]
    if len(params) < 2:
        return False
    owned = [t for p in params for t in (p, p.grad) if t is not None]
    ptrs = {t.untyped_storage().data_ptr() for t in owned}
    arrays = [t.detach().numpy() for t in owned]
    for v in s.ns.values():
        if isinstance(v, torch.Tensor) and v.untyped_storage().data_ptr() in ptrs and not any(v is t for t in owned):
            return True
        if isinstance(v, np.ndarray) and any(np.shares_memory(v, a) for a in arrays):
            return True
    return False


_NOT_VIEWS = ("clone", "contiguous", "to", "detach", "data")

# Each entry names a divergence dtrain has today (and its test in test_regressions.py); CI's fuzz run leaves the
# feature out until the core is fixed. Drop an entry when its regression test XPASSes.
KNOWN = [
    Known("view_under_no_grad",
          "a view taken under no_grad of a tensor that requires grad: torch's view requires grad, dtrain's not",
          lambda s, op, ng: ng and op.kind == "view" and op.method not in _NOT_VIEWS
          and _tensor(s, op.target).requires_grad),
    Known("requires_grad_with_views",
          "requires_grad_() on a tensor that already has views: torch's views then require grad, dtrain's not",
          lambda s, op, ng: op.method == "requires_grad_" and bool(_aliased(s, op.target))),
    Known("retain_grad_without_grad",
          "retain_grad() on a tensor that does not require grad: torch raises RuntimeError, dtrain does not",
          lambda s, op, ng: op.method == "retain_grad" and not _tensor(s, op.target).requires_grad),
    Known("detach_shared",
          "detach_() on a view (torch raises RuntimeError), or on a tensor in a graph: torch's graph then no longer "
          "reaches it (views taken before keep their history, .grad stays None); dtrain's backward still does",
          lambda s, op, ng: op.method == "detach_" and (bool(_aliased(s, op.target))
                                                       or _tensor(s, op.target).requires_grad)),
    Known("partial_overlap",
          "an in-place write from a tensor that partly overlaps the target: torch raises RuntimeError "
          "(unsupported operation: some elements ... refer to a single memory location), dtrain writes",
          lambda s, op, ng: op.kind == "inplace" and _partial_overlap(s, op)),
    Known("read_only_views",
          "writes into expand() or diagonal() results: dtrain's arrays are read-only (NumPy ValueError) where "
          "torch writes (diagonal) or raises RuntimeError (internal overlap)",
          lambda s, op, ng: (op.kind == "inplace" or op.method == "np_setitem") and _read_only(s, op.target)),
    Known("unfold_unbind_copy",
          "unfold() (any rank) and unbind() of a 1-D tensor return copies in dtrain, views in torch",
          lambda s, op, ng: op.method == "unfold" or (op.method == "unbind" and _tensor(s, op.target).dim() == 1)),
    Known("numpy_under_no_grad",
          ".numpy() of a tensor that requires grad, under no_grad: torch returns the array, dtrain raises",
          lambda s, op, ng: ng and op.method == "numpy" and not op.args[0] and _tensor(s, op.target).requires_grad),
    Known("stale_views",
          "an in-place write in a graph while other views of that memory exist: views taken before keep their "
          "old history (wrong requires_grad / is_leaf, gradients that skip the write)",
          lambda s, op, ng: op.kind == "inplace" and _stale_views(s, op)),
    Known("retain_grad_then_inplace",
          "retain_grad() then an in-place op on that tensor: dtrain's hook stays on the old node (wrong .grad)",
          lambda s, op, ng: op.kind == "inplace" and op.target in s.retained),
    Known("inplace_saves_self",
          "exp_(), tanh_() or mul_(self or a view of self) in a graph: torch saves the op's own input/output "
          "and raises at backward once it is changed in place; dtrain computes from the stale data",
          lambda s, op, ng: (op.method in ("exp_", "tanh_", "mul_self")
                             or op.method == "mul_" and isinstance(op.args[0], str)
                             and (op.args[0] == op.target or op.args[0] in _aliased(s, op.target)))
          and _tensor(s, op.target).requires_grad),
    Known("linear_saved_copy",
          "an in-place write to the 1-D or 3-D input of F.linear / nn.Linear in a graph: torch raises at "
          "backward, dtrain saved a reshaped copy and computes from the old values",
          lambda s, op, ng: op.kind == "inplace" and bool(s.linear_nd & {op.target, *_aliased(s, op.target)})),
    Known("backward_after_free",
          "a second backward() after one without retain_graph: dtrain raises 'backward through the graph a second "
          "time' for graphs (views) where torch saved nothing and goes on",
          lambda s, op, ng: op.kind == "backward" and s.freed),
    Known("multi_output_views",
          "a write (in-place op, optimizer step) to memory seen by a split/chunk/unbind output in a graph: torch "
          "refuses the write or any later use of the view (RuntimeError), dtrain goes on",
          lambda s, op, ng: _multi_output_view_written(s, op)),
    Known("optimizer_moves_params",
          "an optimizer step over several parameters moves them (and their gradients) into flat buffers: views, "
          ".grad references and .numpy() arrays taken before stop aliasing them",
          lambda s, op, ng: _shares_param_memory(s, op)),
    Known("duplicate_params",
          "an optimizer given the same tensor twice (torch warns): torch's SGD with momentum steps both entries "
          "from a fresh momentum buffer, dtrain's second entry sees the first one's buffer",
          lambda s, op, ng: op.kind == "opt" and op.method in ("SGD", "Adam") and not op.args[0][0].startswith("lin")
          and len({id(s.ns[n]) for n in op.args[0]}) < len(op.args[0])),
    Known("inplace_on_view_transposed_grad",
          "an in-place write through a view of a graph tensor, then a transposed view of the base in the loss: "
          "the gradient reaching the write is not C-contiguous and dtrain's backward zeroes a temporary copy "
          "(wrong gradient)",
          lambda s, op, ng: op.kind == "view" and op.method in ("t", "transpose", "permute")
          and op.target in s.written_through_views),
    Known("no_grad_view_written",
          "a view made under no_grad, written in place with grad mode on from a tensor that requires grad: torch "
          "raises RuntimeError (a view was created in no_grad mode ...), dtrain writes",
          lambda s, op, ng: not ng and op.kind == "inplace" and op.target in s.no_grad_views
          and any(t is not None and t.requires_grad for t in [_tensor(s, n) for n in [op.target, *_operands(op)]])),
    Known("permute_0d",
          "permute() with no dims (0-d tensor): torch raises TypeError, dtrain returns the tensor",
          lambda s, op, ng: op.method == "permute" and not op.args),
]


def excluded(s, op, no_grad):
    for k in KNOWN:
        try:
            if k.excludes(s, op, no_grad):
                return k
        except Exception:  # noqa: BLE001 - torch refused to answer (e.g. grad_fn of a stale view): leave it out
            return k
    return None

