"""`python -m bench.child CASE SIZE`: run one case in this process and print its Result."""

from __future__ import annotations

import sys


def main() -> None:
    name, size = sys.argv[1], sys.argv[2]
    import django

    django.setup()
    from django.utils.module_loading import import_string

    from bench.harness import Result, cases, result_json

    case = next(c for c in cases() if c.name == name)
    results: Result | list[Result] = import_string(case.func)(size)
    print(result_json(results), flush=True)


if __name__ == "__main__":
    main()
