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


# Each entry names a divergence dtrain has today (and its test in test_regressions.py); CI's fuzz run leaves the
# feature out until the core is fixed. Drop an entry when its regression test XPASSes.
KNOWN = [
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

