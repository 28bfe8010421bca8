"""A small cohort the upsert tests write progressions into: two students, two assignments
(`world`), and `rec`, a progression record with sensible defaults. Shared by
tests/test_upserts.py and tests/test_pull_writes.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cohorts.models import Source
from cohorts.services import (
    AssignmentRecord,
    ProgressionRecord,
    StudentRecord,
    assignments_upsert,
    students_upsert,
)

T0 = datetime(2026, 3, 1, 9, 30, 15, 781000, tzinfo=UTC)


@pytest.fixture
def world(cohort_a):
    student_ids, _ = students_upsert(
        cohort=cohort_a,
        source=Source.OPENCLASS,
        records=[StudentRecord("s1", "Ada", "L", "ada@x.edu"), StudentRecord("s2", "Bo")],
    )
    assignment_ids, _ = assignments_upsert(
        cohort=cohort_a, records=[AssignmentRecord("a1", name="Intro"), AssignmentRecord("a2")]
    )
    return cohort_a, student_ids, assignment_ids


def rec(ext: str, **kw) -> ProgressionRecord:
    values = {
        "student_external_id": "s1",
        "assignment_external_id": "a1",
        "grade": 0.5,
        "started_at": T0,
        "completed_at": T0 + timedelta(hours=2),
        "reviewed_at": None,
    }
    values.update(kw)
    return ProgressionRecord(external_id=ext, **values)
