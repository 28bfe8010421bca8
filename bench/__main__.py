"""`python -m bench [--only NAME ...] [--write]`: run the cases and print one table."""

from __future__ import annotations

import argparse
import platform
import sys

from bench.harness import cases, run_in_child, table


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", action="append", default=[], help="run only this case")
    parser.add_argument("--size", action="append", default=[], help="run only this size")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    selected = [c for c in cases() if not args.only or c.name in args.only]
    if args.list:
        for c in selected:
            print(f"{c.name}: sizes {', '.join(c.sizes)}; needs {', '.join(c.needs) or '-'}")
        return 0
    results = []
    for case in selected:
        for size in case.sizes:
            if args.size and size not in args.size:
                continue
            print(f"bench: {case.name} [{size}] ...", file=sys.stderr, flush=True)
            done = run_in_child(case, size)
            results.extend(done)
            for line in table(done).splitlines()[2:]:
                print(line, file=sys.stderr, flush=True)
    print(f"\n{platform.node()}: {platform.python_implementation()} {platform.python_version()}")
    print(table(results))
    return 0 if all(r.met is not False and not r.skipped for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
