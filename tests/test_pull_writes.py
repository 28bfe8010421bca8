"""What an OpenClass pull reads and writes (issue 11, pulls): the cohort's stored
progressions read once per pull, an unchanged re-run that writes nothing and leaves the
stored health valid, assignments read once per pull, plain-UPDATE writes, the empty
cohort's "before", and the simulator's cached times. Runs on SQLite and, in the suite's
PostgreSQL run, on PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from cohorts import services
from cohorts.changes import snapshot_before, snapshot_take
from cohorts.models import (
    Assignment,
    Cohort,
    Enrollment,
    Progression,
    Source,
    StoredHealth,
    Student,
)
from cohorts.services import (
    AssignmentRecord,
    EnrollmentDetail,
    PullMemo,
    StudentRecord,
    assignments_upsert,
    progressions_upsert,
    students_upsert,
)
from integrations.jobs import job_execute
from integrations.openclass.pull import openclass_run_create
from integrations.openclass.simulator import WEB
from reports.models import Run, RunStatus
from tests.upsert_world import T0, rec

pytestmark = pytest.mark.django_db

COHORT_TABLES = ("cohorts_progression", "cohorts_student", "cohorts_assignment")
WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def pull_run(class_id: str = WEB) -> Run:
    run = openclass_run_create(class_id=class_id, triggered_by="test")
    return job_execute(run.pk, send_report=False)


def cohort_writes(queries) -> list[str]:
    """Writes to the cohort's rows (progressions, students, assignments, enrollments,
    persons, stored health): the run's own bookkeeping and the cohort's sync fields aside."""
    tables = (*COHORT_TABLES, "cohorts_enrollment", "cohorts_person", "cohorts_storedhealth")
    return [
        q["sql"]
        for q in queries
        if WRITES.match(q["sql"]) and any(f'"{t}"' in q["sql"] for t in tables)
    ]


@pytest.fixture
def sent(monkeypatch) -> list[list[tuple]]:
    """The progression rows each write statement sent (on SQLite the statement goes to
    the driver's connection, past Django's query logging)."""
    calls: list[list[tuple]] = []
    real = services._progressions_write

    def spy(rows):
        calls.append(list(rows))
        return real(rows)

    monkeypatch.setattr(services, "_progressions_write", spy)
    return calls


def upsert(world, records, memo, *, cohort=None):
    cohort_a, student_ids, assignment_ids = world
    return progressions_upsert(
        cohort=cohort or cohort_a,
        source=Source.OPENCLASS,
        records=records,
        student_ids=student_ids,
        assignment_ids=assignment_ids,
        memo=memo,
    )


# --- progressions: the cohort's stored rows read once per pull ------------------------------


def test_with_a_memo_the_cohorts_rows_are_read_once_and_unchanged_pages_cost_nothing(
    world, django_assert_num_queries
):
    upsert(world, [rec(f"p{i}") for i in range(6)], None)
    memo = PullMemo()
    with django_assert_num_queries(1):  # the cohort's stored rows, once
        first = upsert(world, [rec("p0"), rec("p1"), rec("p2")], memo)
    with django_assert_num_queries(0):  # the next page: compared with what was read
        second = upsert(world, [rec("p3"), rec("p4"), rec("p5")], memo)
    for result in (first, second):
        assert (result.created, result.updated, result.unchanged) == (0, 0, 3)


def test_with_a_memo_counts_stay_exact_and_only_changed_rows_are_written(world, sent):
    other = Cohort.objects.create(name="Other", source=Source.OPENCLASS, external_id="other")
    upsert(world, [rec("p0"), rec("p1")], None)
    upsert(world, [rec("p9")], None, cohort=other)
    sent.clear()
    memo = PullMemo()
    result = upsert(world, [rec("p0"), rec("p1", grade=0.9), rec("p9"), rec("new")], memo)
    # p1 changed, p9 moves from the other cohort (read by id: not in this cohort's rows),
    # "new" is created, p0 is left alone.
    assert (result.created, result.updated, result.unchanged) == (1, 2, 1)
    assert result.changed_keys == ["p1", "p9"]
    # One statement for the three rows that differ.
    assert [[row[-1] for row in rows] for rows in sent] == [["p1", "p9", "new"]]
    assert Progression.objects.get(external_id="p1").grade == 0.9
    assert Progression.objects.get(external_id="p9").cohort == world[0]
    # What this page wrote is what the memo now knows: the same rows again are unchanged.
    again = upsert(world, [rec("p1", grade=0.9), rec("p9"), rec("new")], memo)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    # And a later change of a row the memo holds is still seen.
    later = upsert(world, [rec("new", grade=None)], memo)
    assert (later.updated, later.changed_keys) == (1, ["new"])


def test_the_memo_forgets_the_rows_when_a_page_rolls_back(world):
    memo = PullMemo()
    upsert(world, [rec("p0")], memo)
    with pytest.raises(RuntimeError), transaction.atomic():
        upsert(world, [rec("p0", grade=0.1), rec("p1")], memo)
        raise RuntimeError("the page failed after its upsert")
    memo.clear()  # what the pull does when a page fails
    result = upsert(world, [rec("p0", grade=0.1), rec("p1")], memo)
    assert (result.created, result.updated, result.unchanged) == (1, 1, 0)


# --- students and assignments ----------------------------------------------------------------


def test_the_memo_reads_the_cohorts_assignments_once_and_fills_them(
    cohort_a, django_assert_num_queries
):
    assignments_upsert(
        cohort=cohort_a, records=[AssignmentRecord(f"a{i}", unit="W1") for i in range(3)]
    )
    memo = PullMemo()
    with django_assert_num_queries(2):  # the cohort's assignments, one UPDATE for the fills
        ids, result = assignments_upsert(
            cohort=cohort_a,
            records=[AssignmentRecord("a0", name="Zero", kind="lesson")],
            fill_only=True,
            memo=memo,
        )
    assert result.updated == 1
    with django_assert_num_queries(1):  # the fills of a later page: no read
        _, result = assignments_upsert(
            cohort=cohort_a,
            records=[AssignmentRecord("a1", name="One"), AssignmentRecord("a2", name="Two")],
            fill_only=True,
            memo=memo,
        )
    assert result.updated == 2
    assert dict(Assignment.objects.values_list("external_id", "name")) == {
        "a0": "Zero",
        "a1": "One",
        "a2": "Two",
    }
    assert Assignment.objects.get(external_id="a0").kind == "lesson"
    # A new one is created (and its pk read back); never moved by a fill.
    ids, result = assignments_upsert(
        cohort=cohort_a, records=[AssignmentRecord("a3", name="Three")], fill_only=True, memo=memo
    )
    assert result.created == 1 and ids["a3"] == Assignment.objects.get(external_id="a3").pk


def test_changed_students_are_saved_by_plain_updates(cohort_a):
    students_upsert(
        cohort=cohort_a, source=Source.OPENCLASS, records=[StudentRecord("s1", "Ada", "L", "a@x")]
    )
    ids, result = students_upsert(
        cohort=cohort_a,
        source=Source.OPENCLASS,
        records=[StudentRecord("s1", "Ada", "Lovelace", "ada@x.edu")],
    )
    assert (result.created, result.updated, result.enrolled) == (0, 1, 0)
    row = Student.objects.get(pk=ids["s1"])
    assert (row.last_name, row.email, row.person_id is not None) == ("Lovelace", "ada@x.edu", True)


def test_an_existing_student_enrolled_in_a_new_cohort_counts_as_a_write(cohort_a):
    other = Cohort.objects.create(name="Other", source=Source.OPENCLASS, external_id="other")
    record = StudentRecord("s1", "Ada")
    students_upsert(cohort=cohort_a, source=Source.OPENCLASS, records=[record])
    _, result = students_upsert(cohort=other, source=Source.OPENCLASS, records=[record])
    assert (result.created, result.updated, result.enrolled, result.wrote) == (0, 0, 1, True)
    _, result = students_upsert(cohort=other, source=Source.OPENCLASS, records=[record])
    assert result.wrote is False


# --- the pull ---------------------------------------------------------------------------------


def test_an_unchanged_rerun_writes_nothing_and_reads_the_progressions_once(openclass, sent):
    sim = openclass()
    first = pull_run()
    assert first.status == RunStatus.SUCCEEDED, first.message
    assert sum(len(rows) for rows in sent) == len(sim.progressions(WEB))
    cohort = Cohort.objects.get(pk=first.params["cohort_id"])
    stored = StoredHealth.objects.get(cohort=cohort)
    sent.clear()
    with CaptureQueriesContext(connection) as queries:
        again = pull_run()
    assert again.status == RunStatus.SUCCEEDED, again.message
    assert again.counts["created"] == again.counts["updated"] == 0
    assert again.counts["unchanged"] == len(sim.progressions(WEB))
    assert sent == [] and cohort_writes(queries) == []
    reads = [q for q in queries if re.match(r"^\s*SELECT", q["sql"], re.IGNORECASE)]
    assert len([q for q in reads if 'FROM "cohorts_progression"' in q["sql"]]) == 1
    # The cohort's data did not change: its stored health stays valid, as it was.
    after = Cohort.objects.get(pk=cohort.pk)
    assert after.data_version == cohort.data_version
    row = StoredHealth.objects.get(cohort=cohort)
    assert (row.data_version, row.computed_at) == (stored.data_version, stored.computed_at)
    # The change report still says so.
    summary = again.items.get(outcome="change", key="summary")
    assert summary.message == "no change"


def test_a_rerun_that_changes_one_grade_marks_the_cohort_changed(openclass, sent):
    sim = openclass()
    first = pull_run()
    cohort = Cohort.objects.get(pk=first.params["cohort_id"])
    target = next(p for p in sim.progressions(WEB) if p.grade is not None)
    sim.set_grade(target.id, 0.11)
    sent.clear()
    again = pull_run()
    assert (again.counts["updated"], again.counts["created"]) == (1, 0)
    assert [[row[-1] for row in rows] for rows in sent] == [[target.id]]
    after = Cohort.objects.get(pk=cohort.pk)
    assert after.data_version > cohort.data_version
    assert StoredHealth.objects.get(cohort=cohort).data_version == after.data_version


def test_a_failed_rerun_still_marks_the_cohort_changed(openclass, monkeypatch):
    from integrations.openclass import pull

    openclass()
    first = pull_run()
    cohort = Cohort.objects.get(pk=first.params["cohort_id"])

    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pull, "progressions_upsert", broken)
    again = pull_run()
    assert again.status == RunStatus.FAILED
    assert Cohort.objects.get(pk=cohort.pk).data_version > cohort.data_version


def test_the_before_of_an_empty_cohort_equals_the_computed_one_and_stores_nothing(
    cohort_a, django_assert_max_num_queries
):
    cohort = Cohort.objects.get(pk=cohort_a.pk)
    with django_assert_max_num_queries(3):
        before = snapshot_before(cohort)
    computed = snapshot_take(cohort, now=before.at)
    for name in ("cohort_id", "cohort_name", "students", "done", "grades", "blockers"):
        assert getattr(before, name) == getattr(computed, name), name
    assert before.assignment_names == computed.assignment_names
    assert not StoredHealth.objects.filter(cohort=cohort).exists()


# --- the simulator ----------------------------------------------------------------------------


def test_the_simulator_serves_a_time_changed_in_place(openclass):
    from integrations.openclass.simulator import build

    sim = build()
    sim_class = sim.classes[WEB]
    progression = next(p for p in sim_class.progressions if p.completed_at is not None)
    first = sim._render(progression, sim_class)
    assert first["completed_assignment_at"].endswith("Z")
    progression.completed_at = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
    again = sim._render(progression, sim_class)
    assert again["completed_assignment_at"] == "2026-05-04T03:02:01.123Z"
    assert again["started_assignment_at"] == first["started_assignment_at"]
    progression.broken = True
    assert "id" not in sim._render(progression, sim_class)["user"]
    assert "id" in sim.users[progression.user_id]  # the stored user is left whole


def test_a_write_that_breaks_a_constraint_raises_djangos_error(world):
    from django.db import IntegrityError

    cohort_a, student_ids, assignment_ids = world
    with pytest.raises(IntegrityError), transaction.atomic():
        progressions_upsert(
            cohort=cohort_a,
            source=None,  # NOT NULL
            records=[rec("p1")],
            student_ids=student_ids,
            assignment_ids=assignment_ids,
        )
    assert not Progression.objects.filter(external_id="p1").exists()


def test_enrollment_details_are_saved_by_plain_updates_and_only_when_changed(world):
    cohort, student_ids, _ = world
    s1, s2 = student_ids["s1"], student_ids["s2"]
    first = {
        s1: EnrollmentDetail(current_score=81.5, final_score=70.0, last_activity_at=T0),
        s2: EnrollmentDetail(current_score=None, final_score=None, last_activity_at=None),
    }
    assert services.enrollment_details_update(cohort=cohort, details=first) == 1  # s2 as stored

    later = T0 + timedelta(days=1)
    second = {**first, s2: EnrollmentDetail(current_score=55.0, last_activity_at=later)}
    with CaptureQueriesContext(connection) as queries:
        assert services.enrollment_details_update(cohort=cohort, details=second) == 1
    # executemany is logged as "N times: <sql>"
    writes = [q["sql"] for q in queries.captured_queries if "UPDATE" in q["sql"]]
    assert len(writes) == 1 and "CASE" not in writes[0]

    stored = {
        e.student_id: (e.current_score, e.final_score, e.last_activity_at)
        for e in Enrollment.objects.filter(cohort=cohort)
    }
    assert stored == {s1: (81.5, 70.0, T0), s2: (55.0, None, later)}
    assert services.enrollment_details_update(cohort=cohort, details=second) == 0
