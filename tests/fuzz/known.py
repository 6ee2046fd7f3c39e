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
KNOWN = []  # nothing known today: every feature the generator has is drawn


def excluded(s, op, no_grad):
    for k in KNOWN:
        try:
            if k.excludes(s, op, no_grad):
                return k
        except Exception:  # noqa: BLE001 - torch refused to answer (e.g. grad_fn of a stale view): leave it out
            return k
    return None

