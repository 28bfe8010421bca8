"""A large roster (50,000 rows over 500 classrooms) through the simulator, memory bounded."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from integrations.apex.enroll import apex_run_from_path
from integrations.jobs import job_execute
from reports.models import RunStatus

pytestmark = pytest.mark.django_db

CLASSROOMS = 500
PER_CLASSROOM = 100
MISSING_EVERY = 1000  # every 1000th row names a student APEX does not know
PEAK_LIMIT = 150 * 1024 * 1024


def test_fifty_thousand_rows_go_through_with_bounded_memory(apex, tmp_path):
    simulator = apex()
    path = tmp_path / "large.csv"
    with path.open("w") as out:
        out.write("ClassroomName,StudentId\n")
        n = 0
        for c in range(1, CLASSROOMS + 1):
            for _ in range(PER_CLASSROOM):
                n += 1
                student = f"X{n}" if n % MISSING_EVERY == 0 else f"S{1_000_000 + n}"
                out.write(f"CLS-{c:04d},{student}\n")
    rows = CLASSROOMS * PER_CLASSROOM
    missing = rows // MISSING_EVERY

    tracemalloc.start()
    began = time.monotonic()
    try:
        run = apex_run_from_path(path, dry_run=False, triggered_by="test")
        run = job_execute(run.pk, send_report=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - began

    assert run.status == RunStatus.PARTIAL, run.message
    assert run.counts["rows"] == rows and run.counts["classrooms"] == CLASSROOMS
    assert run.counts["enrolled"] == rows - missing
    assert run.counts["failed"] == missing
    assert run.counts["requests"] == CLASSROOMS * PER_CLASSROOM // 50
    assert run.items.count() == rows
    assert simulator.enrollment_count() == rows - missing + 3
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.1f} MiB"
    print(f"\n50,000 rows: {elapsed:.1f} s, peak {peak / 2**20:.1f} MiB, {run.stage_timings}")
