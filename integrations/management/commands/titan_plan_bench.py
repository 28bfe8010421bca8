"""manage.py titan_plan_bench [--rows N]: time planning a Titan sync of N rows against N
current memberships (no vendor, no database)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from django.core.management.base import BaseCommand

from integrations.titan.bench import bench_csv, bench_plan, bench_state


class Command(BaseCommand):
    help = "Time the Titan planner on a large roster (default 100,000 rows)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rows", type=int, default=100_000)

    def handle(self, *args, **options) -> None:
        began = time.perf_counter()
        state = bench_state(options["rows"])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "titan-bench.csv"
            bench_csv(path, state)
            self.stderr.write(f"generated in {time.perf_counter() - began:.1f} s")
            t = bench_plan(path, state)
        steps = ", ".join(
            f"{name.replace('_', ' ')} {t[name][0]:.2f} s ({t[name][1]:.2f} s CPU)"
            for name in ("read_and_validate", "plan", "guardrail")
        )
        self.stdout.write(
            f"{t['rows']} rows against {t['memberships']} memberships: {steps}; "
            f"ops {t['ops']}; held={t['held']}"
        )
