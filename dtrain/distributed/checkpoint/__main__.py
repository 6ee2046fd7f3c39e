"""python -m dtrain.distributed.checkpoint ls DIR | consolidate DIR OUT_FILE"""
import argparse
import sys

from .format_utils import consolidate, describe, format_table


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dtrain.distributed.checkpoint",
                                     description="Inspect or consolidate a sharded dtrain checkpoint.")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("ls", aliases=["describe"], help="list keys, shapes, dtypes and bytes")
    ls.add_argument("dir")
    cons = sub.add_parser("consolidate", help="write the whole checkpoint as one torch.load-able file")
    cons.add_argument("dir")
    cons.add_argument("out_file")
    args = parser.parse_args(argv)
    try:
        if args.command == "consolidate":
            consolidate(args.dir, args.out_file)
            print(f"wrote {args.out_file}")
        else:
            print(format_table(describe(args.dir)))
    except (OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
