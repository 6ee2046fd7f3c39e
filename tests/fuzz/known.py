"""KNOWN: the program features dtrain gets wrong today, left out of generation so that CI's fuzz run stays green.

Each entry names the divergence; its shrunk program is a strict-xfail test in test_regressions.py. A predicate
sees the generator's state (the torch shadow run's variables, `s.ns`, and what it tracked about them) and the
statement about to be drawn.
"""
from typing import Callable, NamedTuple


class Known(NamedTuple):
    """A divergence dtrain has today, kept out of generation until it is fixed (see test_regressions.py)."""
    name: str
    divergence: str
    excludes: Callable  # (State, op, under_no_grad) -> True to leave the op out


# Each entry names a divergence dtrain has today (and its test in test_regressions.py); CI's fuzz run leaves the
# feature out until the core is fixed. Drop an entry when its regression test XPASSes.
def _shared_grads(s):
    """Whether two leaves of the torch shadow run hold .grad tensors on one storage."""
    import torch
    ptrs = [v.grad.untyped_storage().data_ptr() for v in s.ns.values()
            if isinstance(v, torch.Tensor) and v.is_leaf and v.grad is not None]
    return len(ptrs) != len(set(ptrs))


def _graph_has(t, names=(), nodes=()):
    """Whether the torch shadow's graph behind `t` holds a node named in `names`, or one of `nodes`."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if type(fn).__name__ in names or fn in nodes:
            return True
        todo.extend(f for f, _ in fn.next_functions)
    return False


def _odd_size1_strides(t):
    """Whether a size-1 dim of torch's tensor has a stride other than C order's (unfold gives such strides;
    NumPy's arrays do not carry them)."""
    acc = 1
    for n, st in zip(reversed(t.shape), reversed(t.stride())):
        if n == 1 and st != acc:
            return True
        acc *= max(n, 1)
    return False


def _cumsums_over_size1(s):
    """The shadow's cumsum nodes that ran over a dim of size 1 (their backward passes the gradient through)."""
    import torch
    return {v.grad_fn for v in s.ns.values() if isinstance(v, torch.Tensor) and v.grad_fn is not None
            and type(v.grad_fn).__name__ == "CumsumBackward0" and v.dim()
            and v.shape[v.grad_fn._saved_dim % v.dim()] == 1}


KNOWN = [
    Known("grad_graph_layout_through_cumsum_of_size1",
          "create_graph=True through cumsum over a dim of size 1: torch's backward returns the incoming gradient "
          "itself there, so an expanded gradient (stride 0) reaches the result; dtrain's double-backward formula "
          "(dtrain/autograd/) computes a new contiguous one (values agree, layout differs)",
          lambda s, op, ng: op.method == "grad_graph" and _graph_has(s.ns[op.target], nodes=_cumsums_over_size1(s))),
    Known("lerp_tensor_weight_saved_inputs",
          "lerp with a tensor weight: torch's LerpBackward1 saves self and end (the weight's gradient is "
          "grad * (end - self)), so writing into either before the backward raises; dtrain composes "
          "self + weight * (end - self), which saves the difference instead, and backs the stale values. The fix "
          "is a Function of its own, which needs a double-backward formula beside it (dtrain/autograd/)",
          lambda s, op, ng: op.method in ("lerp_", "lerp") and len(op.args) > 1 and isinstance(op.args[1], str)),
    Known("integer_target_of_a_graph_fill",
          "t[key] = x for an integer t and a 0-d x that requires grad: torch writes it as fill_ (FillBackward3) "
          "and gives the integer tensor requires_grad=True (copy_ does not); dtrain leaves it a plain integer "
          "tensor",
          lambda s, op, ng: op.kind == "inplace" and op.method == "setitem" and not ng
          and not s.ns[op.target].dtype.is_floating_point and isinstance(op.args[-1], str)
          and s.ns[op.args[-1]].dim() == 0 and s.ns[op.args[-1]].requires_grad),
    Known("masked_scatter_from_own_memory",
          "x.masked_scatter_(mask, source) with a source sharing x's memory: torch reads each source element as "
          "it writes, so earlier writes show in later reads; dtrain reads the source before writing",
          lambda s, op, ng: op.method == "masked_scatter_"
          and s.ns[op.args[1]].untyped_storage().data_ptr() == s.ns[op.target].untyped_storage().data_ptr()),
    Known("where_layout_from_size1_strides",
          "torch.where over an operand whose size-1 dims carry strides other than C order's (an unfold result): "
          "torch's TensorIterator weighs those strides when it orders the result's dims, dtrain's operands do "
          "not keep them, so the result's layout differs (values agree)",
          lambda s, op, ng: op.method == "torch.where" and any(
              isinstance(a, str) and _odd_size1_strides(s.ns[a]) for a in op.args)),
    Known("var_std_saves_self",
          "var and std: torch's nodes save self, so a write into the input before the backward (an optimizer "
          "step) raises; dtrain's Var keeps x - mean(x) instead, a temporary no write reaches (its "
          "double-backward formula in dtrain/autograd/ reads that form)",
          lambda s, op, ng: op.kind in ("opt", "inplace") and any(
              type(v.grad_fn).__name__ in ("VarBackward0", "StdBackward0") for v in s.ns.values()
              if isinstance(v, __import__("torch").Tensor) and v.grad_fn is not None)),
    Known("saved_operand_of_a_promotion",
          "an op that promotes an integer operand (t_int * x_float) saves, in dtrain, the converted copy, so a "
          "later in-place write into the integer tensor (even t.copy_(t)) goes unnoticed; torch saves the "
          "operand itself and raises in the backward (the fix is in arith.py's _binary promotion)",
          lambda s, op, ng: op.kind in ("inplace", "opt") and not s.ns[op.target].dtype.is_floating_point
          and any(isinstance(v, __import__("torch").Tensor) and v.requires_grad for v in s.ns.values())),
    Known("write_through_data_of_a_saved_0d_result",
          "writing through .data of a 0-d result an op saved (t1 = t0.exp(); t1.data.exp_()): torch's backward "
          "reads the written values, dtrain's the saved ones (its 0-d saved result is not the tensor's memory)",
          lambda s, op, ng: op.kind == "inplace" and s.ns[op.target].dim() == 0 and any(
              isinstance(v, __import__("torch").Tensor) and v.grad_fn is not None and v is not s.ns[op.target]
              and v.untyped_storage().data_ptr() == s.ns[op.target].untyped_storage().data_ptr()
              for v in s.ns.values())),
    Known("masked_fill_into_expanded",
          "masked_fill_ into an expanded tensor (0 strides): torch writes it; dtrain refuses it as an "
          "overlapping write (assign_'s check_overlap)",
          lambda s, op, ng: op.method in ("masked_fill_", "masked_scatter_") and 0 in s.ns[op.target].stride()
          and s.ns[op.target].numel() > 1),
    Known("masked_scatter_of_a_0d_graph_tensor",
          "masked_scatter_ into a 0-d tensor that requires grad: dtrain's backward fails with TypeError "
          "('numpy.float32' object does not support item assignment) where torch's runs",
          lambda s, op, ng: op.method == "masked_scatter_" and s.ns[op.target].dim() == 0),
    Known("shared_grad_storage",
          "torch's AccumulateGrad takes over an incoming gradient instead of copying it when nothing else holds "
          "that tensor (a reference count), and the gradients of two 0-d leaves summed into one loss are two "
          "views of one storage: their .grad then share memory, and a later backward accumulating into one "
          "changes the other (torch: t1.grad 2 after a second backward of t0 alone). dtrain gives each leaf its "
          "own .grad; matching would mean copying torch's reference counts",
          lambda s, op, ng: op.kind in ("backward", "grad") and _shared_grads(s)),
]

# Divergences outside what the generator draws (its tensors have at most 24 elements, and it never asks for
# create_graph), kept here so that they are not forgotten:
# - an in-place op whose input shares the target's memory without being refused (not dense, torch's "too
#   hard"): torch reads the input as it writes; dtrain follows it element by element for inner runs shorter
#   than 16 elements, a run at a time beyond (torch's vector loop then reads 2 x its SIMD width ahead, which
#   depends on the CPU: AVX2 or AVX-512);
# - create_graph=True through an in-place write into overlapping windows (unfold with step < size): the first
#   order is torch's (the last write of a shared element wins); torch's second order differentiates its own
#   write-back as a read of every window, dtrain's as the exact adjoint of the first order;
# - create_graph=True through a product of a sparse COO tensor: torch returns the values' gradient without a
#   graph (its second order drops what depends on it, and differentiates a to_sparse input off its nonzeros,
#   where its first order is masked to them); dtrain's second order is that of the same product on the dense
#   matrix the values make, masked as its first order;
# - create_graph=True through scaled_dot_product_attention of 4-D inputs of one head size: torch's CPU
#   dispatcher picks its flash kernel, whose backward it does not differentiate (it raises); dtrain
#   differentiates attention twice whatever the shapes, as torch's math kernel does;
# - create_graph=True through embedding_bag: torch has no derivative of its backward and raises at second
#   order; dtrain's embedding_bag is composed of ops that all have one, and differentiates it.


def excluded(s, op, no_grad):
    for k in KNOWN:
        try:
            if k.excludes(s, op, no_grad):
                return k
        except Exception:  # noqa: BLE001 - torch refused to answer (e.g. grad_fn of a stale view): leave it out
            return k
    return None

