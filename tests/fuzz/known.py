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


KNOWN = [
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

