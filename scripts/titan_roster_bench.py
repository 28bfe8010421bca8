"""Measure reading and validating a 100,000-row Titan roster: time, then peak memory.

    DEBUG=true .venv/bin/python scripts/titan_roster_bench.py [USERS]

Writes a roster of USERS users (default 50,000) at two sites each into a temporary folder
(the generator of tests/test_titan_roster_large.py), reads it once for time and once under
tracemalloc for the peak of Python allocations (tracing slows that second read).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from integrations.titan.roster import titan_roster_read  # noqa: E402
from tests.test_titan_roster_large import ROLES, SITES, write_roster  # noqa: E402


def main() -> None:
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "titan.csv"
        rows = write_roster(path, users=users)
        size = path.stat().st_size / 2**20
        wall, cpu = time.perf_counter(), time.process_time()
        roster = titan_roster_read(path, sites=SITES, roles=ROLES)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        del roster
        tracemalloc.start()
        roster = titan_roster_read(path, sites=SITES, roles=ROLES)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(
        f"{rows:,} rows ({size:.1f} MiB): {wall:.2f} s wall, {cpu:.2f} s CPU; "
        f"peak {peak / 2**20:.1f} MiB of Python allocations; counts {roster.counts}"
    )


if __name__ == "__main__":
    main()
