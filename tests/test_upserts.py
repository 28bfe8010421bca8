"""The pull upserts (cohorts.services) without model instances: exact created / updated /
unchanged counts, only changed rows written, the per-pull memo. Runs on SQLite and, in the
suite's PostgreSQL run, on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cohorts import services
from cohorts.models import Assignment, Cohort, Enrollment, Progression, Source, Student
from cohorts.services import (
    AssignmentRecord,
    PullMemo,
    StudentRecord,
    assignments_upsert,
    progressions_upsert,
    students_upsert,
)
from tests.upsert_world import T0, rec

pytestmark = pytest.mark.django_db


def upsert(world, records, *, now=None, cohort=None):
    cohort_a, student_ids, assignment_ids = world
    return progressions_upsert(
        cohort=cohort or cohort_a,
        source=Source.OPENCLASS,
        records=records,
        student_ids=student_ids,
        assignment_ids=assignment_ids,
        now=now,
    )


def synced(ext: str) -> datetime:
    return Progression.objects.get(external_id=ext).synced_at


def test_new_rows_are_created_with_every_value(world):
    result = upsert(world, [rec("p1"), rec("p2", student_external_id="s2", grade=None)])
    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    row = Progression.objects.get(external_id="p1")
    assert (row.grade, row.started_at, row.completed_at, row.reviewed_at) == (
        0.5,
        T0,
        T0 + timedelta(hours=2),
        None,
    )
    assert (row.cohort, row.student.external_id, row.assignment.external_id) == (
        world[0],
        "s1",
        "a1",
    )
    assert (row.score, row.late, row.missing, row.excused) == (None, False, False, False)
    assert Progression.objects.get(external_id="p2").grade is None


def test_an_unchanged_batch_counts_unchanged_writes_nothing_and_keeps_synced_at(world):
    first = T0 + timedelta(days=1)
    upsert(world, [rec("p1"), rec("p2", reviewed_at=T0)], now=first)
    with CaptureQueriesContext(connection) as queries:
        result = upsert(world, [rec("p1"), rec("p2", reviewed_at=T0)], now=first + timedelta(1))
    assert (result.created, result.updated, result.unchanged) == (0, 0, 2)
    assert result.changed_keys == []
    writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert writes == []  # one read, no write
    assert synced("p1") == synced("p2") == first


@pytest.mark.parametrize(
    "change",
    [
        {"grade": 0.75},
        {"grade": None},
        {"started_at": None},
        {"completed_at": T0 + timedelta(hours=2, microseconds=1)},
        {"reviewed_at": T0 + timedelta(days=1)},
        {"student_external_id": "s2"},
        {"assignment_external_id": "a2"},
        {"score": 7.5},
        {"late": True},
        {"missing": True},
        {"excused": True},
    ],
)
def test_each_compared_column_that_changes_updates_only_its_row(world, change):
    first = T0 + timedelta(days=1)
    upsert(world, [rec("p1"), rec("p2"), rec("p3")], now=first)
    later = first + timedelta(hours=1)
    result = upsert(world, [rec("p1"), rec("p2", **change), rec("p3")], now=later)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    assert result.changed_keys == ["p2"]
    assert (synced("p1"), synced("p2"), synced("p3")) == (first, later, first)
    row = Progression.objects.get(external_id="p2")
    for field, value in change.items():
        if field.endswith("_external_id"):
            assert getattr(row, field.removesuffix("_external_id")).external_id == value
        else:
            assert getattr(row, field) == value


def test_a_row_of_another_cohort_moves_and_counts_updated(world):
    other = Cohort.objects.create(name="Other", source=Source.OPENCLASS, external_id="other")
    upsert(world, [rec("p1")], cohort=other)
    result = upsert(world, [rec("p1"), rec("p9")])
    assert (result.created, result.updated, result.unchanged) == (1, 1, 0)
    assert result.changed_keys == ["p1"]
    assert Progression.objects.get(external_id="p1").cohort == world[0]


def test_mixed_batches_larger_than_one_statement_count_exactly(world, monkeypatch):
    monkeypatch.setattr(services, "_batch_size", lambda columns: 2)
    upsert(world, [rec(f"p{i}") for i in range(5)])
    records = [rec(f"p{i}", grade=0.9 if i in (1, 4) else 0.5) for i in range(5)]
    records += [rec("p5"), rec("p6")]
    result = upsert(world, records)
    assert (result.created, result.updated, result.unchanged) == (2, 2, 3)
    assert result.changed_keys == ["p1", "p4"]
    assert Progression.objects.count() == 7


def test_a_repeated_id_in_one_batch_keeps_the_last(world):
    result = upsert(world, [rec("p1", grade=0.1), rec("p1", grade=0.2)])
    assert (result.created, result.updated, result.unchanged) == (1, 0, 0)
    assert Progression.objects.get(external_id="p1").grade == 0.2


def test_times_with_and_without_microseconds_and_other_zones_compare_equal(world):
    paris = datetime(2026, 3, 1, 11, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris")
    )
    upsert(world, [rec("p1", started_at=T0.replace(microsecond=0), reviewed_at=paris)])
    again = upsert(world, [rec("p1", started_at=T0.replace(microsecond=0), reviewed_at=paris)])
    assert (again.updated, again.unchanged) == (0, 1)
    same_instant = paris.astimezone(UTC)
    again = upsert(
        world, [rec("p1", started_at=T0.replace(microsecond=0), reviewed_at=same_instant)]
    )
    assert (again.updated, again.unchanged) == (0, 1)


def test_the_memo_skips_records_already_written_in_this_pull(cohort_a, django_assert_num_queries):
    memo = PullMemo()
    records = [StudentRecord("s1", "Ada", "L", "ada@x.edu"), StudentRecord("s2", "Bo")]
    ids, result = students_upsert(
        cohort=cohort_a, source=Source.OPENCLASS, records=records, memo=memo
    )
    assert (result.created, result.unchanged) == (2, 0)
    with django_assert_num_queries(0):
        again, result = students_upsert(
            cohort=cohort_a, source=Source.OPENCLASS, records=list(records), memo=memo
        )
    assert again == ids and (result.created, result.updated, result.unchanged) == (0, 0, 2)
    # A changed record goes to the database again; the others stay skipped.
    changed = [StudentRecord("s1", "Ada", "L", "ada@new.edu"), StudentRecord("s2", "Bo")]
    _, result = students_upsert(
        cohort=cohort_a, source=Source.OPENCLASS, records=changed, memo=memo
    )
    assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
    assert Student.objects.get(external_id="s1").email == "ada@new.edu"
    assert Enrollment.objects.filter(cohort=cohort_a).count() == 2


def test_the_memo_for_assignments_fills_once_and_never_moves(cohort_a, django_assert_num_queries):
    assignments_upsert(cohort=cohort_a, records=[AssignmentRecord("a1", unit="W1", position=3)])
    memo = PullMemo()
    fill = [AssignmentRecord("a1", name="Intro", kind="lesson")]
    ids, result = assignments_upsert(cohort=cohort_a, records=fill, fill_only=True, memo=memo)
    assert result.updated == 1
    with django_assert_num_queries(0):
        again, result = assignments_upsert(
            cohort=cohort_a, records=list(fill), fill_only=True, memo=memo
        )
    assert again == ids and (result.updated, result.unchanged) == (0, 1)
    row = Assignment.objects.get(external_id="a1")
    assert (row.name, row.kind, row.unit, row.position) == ("Intro", "lesson", "W1", 3)


def test_the_memo_builds_a_record_once_per_object():
    memo = PullMemo()
    user = object()
    built = []

    def convert(item):
        built.append(item)
        return StudentRecord("x")

    first = memo.converted(user, convert)
    assert memo.converted(user, convert) is first
    assert built == [user]
