"""Run the differential fuzzer for as long as wanted; print each distinct divergence once, shrunk.

    python -m tests.fuzz.run --seed 7 --minutes 30          # KNOWN features left out: finds what is new
    python -m tests.fuzz.run --seed 7 --minutes 30 --all    # KNOWN features generated too

Work goes in rounds of --examples programs, each round a hypothesis run with its own seed. A divergence is
grouped by its key (the op where dtrain first differs, and what differs); hypothesis shrinks one program per new
key, and later rounds skip programs whose key was already reported, so each cause prints once.
"""
import argparse
import sys
import traceback
import time

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from .gen import programs
from .known import KNOWN
from .interp import run_both, simplify


class Diverges(AssertionError):
    def __init__(self, div):
        super().__init__(div.key)
        self.div = div


_classes = {}


def _raise(div):
    # hypothesis tells failures apart by exception type (and raising line): one class per key makes it shrink
    # each cause separately and keeps a shrunk program on the cause it started from
    cls = _classes.setdefault(div.key, type(f"Diverges{len(_classes)}", (Diverges,), {}))
    raise cls(div)


def _leaves(exc):
    if isinstance(exc, Diverges):
        return [exc]
    return [x for e in getattr(exc, "exceptions", ()) for x in _leaves(e)]


def one_round(round_seed, examples, found, known):
    count = [0]

    @seed(round_seed)
    @settings(max_examples=examples, deadline=None, database=None, verbosity=Verbosity.quiet,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=True,
              phases=[Phase.generate, Phase.shrink])
    @given(programs(known=known))
    def check(program):
        count[0] += 1
        div = run_both(program)
        if div is not None and div.key not in found:
            _raise(div)

    try:
        check()
        return count[0], []
    except Exception as e:  # noqa: BLE001 - a Diverges or a group of them; anything else is a fuzzer bug
        leaves = _leaves(e)
        if len(leaves) != len(getattr(e, "exceptions", [e])):
            print(f"\n!!! fuzzer error in round seed {round_seed} (not a divergence):", flush=True)
            traceback.print_exception(e, file=sys.stdout)
        return count[0], [x.div for x in leaves]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--examples", type=int, default=300, help="programs per round")
    p.add_argument("--all", action="store_true", help="generate the KNOWN features too")
    p.add_argument("--tests", metavar="FILE", help="also write each divergence as an xfail regression test")
    args = p.parse_args(argv)
    print(f"seed {args.seed}, {args.minutes} min, KNOWN {'generated' if args.all else 'left out'}: "
          f"{', '.join(k.name for k in KNOWN) or '(none)'}", flush=True)
    start, end = time.monotonic(), time.monotonic() + 60 * args.minutes
    found, total, r = {}, 0, 0
    while time.monotonic() < end:
        n, divs = one_round(args.seed * 100003 + r, args.examples, found, not args.all)
        total += n
        r += 1
        print(f"round {r}: {total} programs, {(time.monotonic() - start) / 60:.1f} min, "
              f"{len(found) + len({d.key for d in divs} - set(found))} distinct divergences", flush=True)
        for div in divs:
            if div.key in found:
                continue
            div = simplify(div)
            found[div.key] = div
            print(f"\n=== divergence {len(found)} (round {r}, {total} programs, "
                  f"{(time.monotonic() - start) / 60:.1f} min)\n{div.report()}", flush=True)
            if args.tests:
                with open(args.tests, "a") as f:
                    f.write("\n\n" + div.test_source(f"divergence_{args.seed}_{len(found)}", div.key))
    print(f"\n{total} programs in {r} rounds, {(time.monotonic() - start) / 60:.1f} min: "
          f"{len(found)} distinct divergences", flush=True)
    for k in found:
        print("  " + k)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
