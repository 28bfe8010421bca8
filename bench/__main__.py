"""`python -m bench [--only NAME[,NAME]] [--size S] [--write] [--strict]`: run the cases and
print one table (with `--write`, also into docs/benchmarks.md's generated part).

`BENCH_ONLY=queue,load` in the environment does what `--only` does. Exit status: 0 when
every case ran (targets not met are reported with the case's notes, not failed, unless
`--strict`), 1 when a case failed (crashed, timed out, or said it failed, e.g. errors under
load), 2 for an unknown case name.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime

from bench.harness import Result, cases, run_in_child, table


def _names(values: list[str]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", action="append", default=[], help="run only these cases")
    parser.add_argument("--size", action="append", default=[], help="run only this size")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--write", action="store_true", help="rewrite docs/benchmarks.md's table")
    parser.add_argument("--strict", action="store_true", help="a target not met fails too")
    args = parser.parse_args(argv)
    only = _names(args.only) or _names([os.environ.get("BENCH_ONLY", "")])
    every = cases()
    unknown = sorted(set(only) - {c.name for c in every})
    if unknown:
        known = ", ".join(c.name for c in every)
        print(f"bench: no case named {', '.join(unknown)} (known: {known})", file=sys.stderr)
        return 2
    selected = [c for c in every if not only or c.name in only]
    if args.list:
        for c in selected:
            sized = "; ".join(f"{s} needs {', '.join(n)}" for s, n in c.size_needs.items())
            print(
                f"{c.name}: sizes {', '.join(c.sizes)}; needs {', '.join(c.needs) or '-'}"
                + (f"; {sized}" if sized else "")
            )
        return 0
    began = time.monotonic()
    results: list[Result] = []
    for case in selected:
        for size in case.sizes:
            if args.size and size not in args.size:
                continue
            print(f"bench: {case.name} [{size}] ...", file=sys.stderr, flush=True)
            case_began = time.monotonic()
            done = run_in_child(case, size)
            results.extend(done)
            for line in table(done).splitlines()[2:]:
                print(line, file=sys.stderr, flush=True)
            # What each case costs of `make bench`'s 15 minutes (data, floors and all).
            spent = time.monotonic() - case_began
            print(f"bench: {case.name} [{size}] took {spent:.0f} s", file=sys.stderr, flush=True)
    total = time.monotonic() - began
    return report(results, total, write=args.write, strict=args.strict)


def report(results: list[Result], total: float, *, write: bool, strict: bool) -> int:
    from bench.report import docs_write, machine, section, summary

    facts = machine()
    print("\n" + "; ".join(f"{k} {v}" for k, v in facts.items()))
    print(table(results))
    for r in results:  # what each case said: figures, and the profile of a target not met
        if r.failed or r.met is False or r.notes:
            label = "FAILED. " if r.failed else "target not met. " if r.met is False else ""
            print(f"\n{r.case} [{r.size}]: {label}{r.failed}".rstrip())
            if r.notes:
                print(r.notes)
    print("\n" + summary(results, total))
    if write:
        docs_write(section(results, facts=facts, total_seconds=total, when=datetime.now(UTC)))
        print("bench: wrote docs/benchmarks.md (generated part)", file=sys.stderr)
    failed = any(r.failed for r in results)
    not_met = any(r.met is False for r in results)
    return 1 if failed or (strict and not_met) else 0


if __name__ == "__main__":
    sys.exit(main())
