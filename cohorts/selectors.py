"""Reads of cohorts, with the access rule: admins see every cohort, a mentor only the
cohorts they mentor (anything else is a 404, never a 403 that confirms it exists).

Every function here runs a fixed number of queries, whatever the cohort's size; the
number is in its docstring and pinned by the page tests.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import pandas as pd
from django.db import connection, connections
from django.db.models import Avg, Count, F, Max, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.shortcuts import get_object_or_404

from cohorts import analytics
from cohorts.models import Assignment, Cohort, Enrollment, MentorNote, Progression, Student


def cohorts_visible_to(user) -> QuerySet[Cohort]:
    if not user.is_authenticated:
        return Cohort.objects.none()
    if user.is_staff:
        return Cohort.objects.all()
    return Cohort.objects.filter(mentors=user)


def cohort_get_for_user(*, user, pk: int) -> Cohort:
    return get_object_or_404(cohorts_visible_to(user), pk=pk)


def cohort_student_get(*, cohort: Cohort, student_id: int) -> Student:
    """A student enrolled in the cohort, else 404 (one query). A student who left is still
    found: their history stays (`cohort_frames_with_leavers` says when they left)."""
    return get_object_or_404(Student.objects.filter(enrollments__cohort=cohort), pk=student_id)


def cohort_frames(*, cohort: Cohort) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(students, assignments, progressions) frames for `cohorts.analytics`. Three queries.

    Only active enrollments count: a student who left is in no frame, so in no metric and
    no denominator. Progressions without any timestamp or flag are left out
    (`analytics.scoped`); so are unpublished assignments. Sources that give them add the
    students' `vendor_last_activity` and `current_score`, and every progression its missing
    and late flags.
    """
    students, assignments, progressions, _ = cohort_frames_with_leavers(cohort=cohort)
    return students, assignments, progressions


def cohort_frames_with_leavers(
    *, cohort: Cohort
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`cohort_frames` and a fourth frame: the students who left (the students frame's
    columns and `left_at`), latest leaver first. The same three queries."""
    active, left = [], []
    for *row, is_active, left_at in (
        Enrollment.objects.filter(cohort=cohort)
        .order_by("student_id")
        .values_list(
            "student_id",
            "student__external_id",
            "student__first_name",
            "student__last_name",
            "student__email",
            "last_activity_at",
            "current_score",
            "active",
            "left_at",
        )
    ):
        (active if is_active else left).append((*row, left_at))
    vendor = [(row[5], row[6]) for row in active]
    active = [(*row[:5], row[-1]) for row in active]
    left = [(*row[:5], row[-1]) for row in left]
    students = analytics.students_frame(row[:-1] for row in active)
    if analytics.signals_for(cohort.source).vendor_activity:
        students["vendor_last_activity"] = analytics._utc([v[0] for v in vendor])
        students["current_score"] = pd.Series(
            [v[1] for v in vendor], index=students.index, dtype="float64"
        )
    leavers = analytics.students_frame(row[:-1] for row in left)
    leavers["left_at"] = analytics.utc_column([row[-1] for row in left])
    leavers = leavers.sort_values(["left_at", "student_id"], ascending=[False, True])
    assignments = analytics.assignments_frame(
        # Unpublished work is kept but left out of every metric.
        Assignment.objects.filter(cohort=cohort, published=True)
        .order_by("unit_position", "position", "id")
        .values_list("id", "external_id", "name", "kind", "unit", "unit_position", "position")
    )
    progressions = analytics.progressions_frame(
        _raw_rows(_progression_rows(Progression.objects.filter(cohort=cohort)))
    )
    return students, assignments, progressions, leavers.reset_index(drop=True)


def _progression_rows(qs: QuerySet) -> QuerySet:
    # A row with no start, completion or review says nothing any metric uses;
    # some vendors return one per student and assignment, so skip them early.
    return (
        qs.filter(
            Q(started_at__isnull=False)
            | Q(completed_at__isnull=False)
            | Q(reviewed_at__isnull=False)
            | Q(missing=True)
            | Q(late=True)
        )
        .order_by()
        .annotate(**{f"{name}_raw": _stamp(name) for name in analytics.STAMPS})
        .values_list(
            "student_id",
            "assignment_id",
            "grade",
            *(f"{n}_raw" for n in analytics.STAMPS),
            *analytics.FLAGS,
        )
    )


def cohort_progressions(
    *, cohort: Cohort, assignment_ids: list[int] | None = None, completed: bool = False
) -> pd.DataFrame:
    """Some of the cohort's rows, as `cohort_frames` reads them: those of these
    assignments, or the completed ones. One query."""
    qs = Progression.objects.filter(cohort=cohort)
    if assignment_ids is not None:
        qs = qs.filter(assignment_id__in=assignment_ids)
    if completed:
        qs = qs.filter(completed_at__isnull=False)
    return analytics.progressions_frame(_raw_rows(_progression_rows(qs)))


def student_progressions(*, cohort: Cohort, student_id: int) -> pd.DataFrame:
    """One student's rows of the cohort, as `cohort_frames` reads them. One query."""
    return analytics.progressions_frame(
        _raw_rows(_progression_rows(Progression.objects.filter(cohort=cohort, student=student_id)))
    )


def _stamp(name: str):
    # SQLite's driver would parse each timestamp in Python (Django registers a converter
    # for "datetime" columns); as text, pandas parses the whole column at once.
    if connection.vendor == "sqlite":
        return Cast(name, output_field=TextField())
    return F(name)


def _raw_rows(qs: QuerySet) -> list[tuple]:
    """The rows of a values_list query without Django's per-value converters.

    Converting 600,000 timestamps one by one takes most of a second on a 200,000-row
    cohort; pandas parses each column at once instead (`analytics.progressions_frame`
    reads both the ISO text from SQLite and the datetimes PostgreSQL returns).
    """
    sql, params = qs.query.sql_with_params()
    with connections[qs.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def cohort_list_rows(*, user, now: datetime) -> list[dict[str, Any]]:
    """Each cohort the user may see with its students, assignments, completion, students at
    risk and freshness. Four queries, however many cohorts and students there are.
    Students who left (inactive enrollments) count nowhere.

    Health here comes from per-student aggregates the database computes, classified by the
    same `analytics.student_health` as the cohort page, so the two pages agree (short of
    a quiz recorded twice with two grades: here both count, there the better one).
    """
    cohorts = list(cohorts_visible_to(user).order_by("name", "id"))
    visible = cohorts_visible_to(user).values("pk")
    assignment_counts = dict(
        Assignment.objects.filter(cohort__in=visible, published=True)
        .order_by()
        .values("cohort_id")
        .annotate(n=Count("id"))
        .values_list("cohort_id", "n")
    )
    enrolled: dict[int, list[int]] = defaultdict(list)
    vendor_activity: dict[tuple[int, int], Any] = {}
    for cohort_id, student_id, last_activity_at in (
        Enrollment.objects.filter(cohort__in=visible, active=True)
        .order_by()
        .values_list("cohort_id", "student_id", "last_activity_at")
    ):
        enrolled[cohort_id].append(student_id)
        vendor_activity[(cohort_id, student_id)] = last_activity_at
    published = Q(assignment__published=True)
    done = Q(completed_at__isnull=False) & published
    quiz = (
        Q(assignment__kind__iexact=analytics.QUIZ_KIND, grade__isnull=False)
        & published
        & (Q(started_at__isnull=False) | done | Q(reviewed_at__isnull=False))
    )
    aggregates: dict[int, list[tuple]] = defaultdict(list)
    for row in (
        Progression.objects.filter(cohort__in=visible)
        .order_by()
        .values("cohort_id", "student_id")
        .annotate(
            # Distinct assignments: two vendor records of one completion count once.
            completed=Count("assignment_id", filter=done, distinct=True),
            last_started=Max("started_at"),
            last_completed=Max("completed_at"),
            last_reviewed=Max("reviewed_at"),
            quiz_average=Avg("grade", filter=quiz),
            quizzes_graded=Count("assignment_id", filter=quiz, distinct=True),
            missing=Count("assignment_id", filter=Q(missing=True) & published, distinct=True),
            late=Count("assignment_id", filter=Q(late=True) & published, distinct=True),
        )
        .values_list(
            "cohort_id",
            "student_id",
            "completed",
            "last_started",
            "last_completed",
            "last_reviewed",
            "quiz_average",
            "quizzes_graded",
            "missing",
            "late",
        )
    ):
        cohort_id, student_id, completed, *stamps, quiz_average, quizzes, missing, late = row
        aggregates[cohort_id].append(
            (student_id, completed, stamps, quiz_average, quizzes, missing, late)
        )

    rows = []
    for cohort in cohorts:
        students = enrolled.get(cohort.pk, [])
        n_assignments = assignment_counts.get(cohort.pk, 0)
        known = {r[0]: r for r in aggregates.get(cohort.pk, [])}
        signals = analytics.signals_for(cohort.source)
        summary_rows = []
        for sid in sorted(students):
            _, completed, stamps, quiz_average, quizzes, missing, late = known.get(
                sid, (sid, 0, [], None, 0, 0, 0)
            )
            if signals.vendor_activity:
                stamps = [*stamps, vendor_activity.get((cohort.pk, sid))]
            last = max((s for s in stamps if s is not None), default=None)
            row = (sid, completed, last, quiz_average, quizzes)
            summary_rows.append((*row, missing, late) if signals.flags else row)
        summary = analytics.summary_frame(summary_rows, flags=signals.flags)
        health = analytics.student_health(
            summary,
            assignment_count=n_assignments,
            thresholds=analytics.Thresholds.of(cohort),
            now=now,
        )
        counts = analytics.health_counts(health)
        completed = int(summary["completed"].sum())
        possible = len(students) * n_assignments
        rows.append(
            {
                "cohort": cohort,
                "students": len(students),
                "assignments": n_assignments,
                "completed": completed,
                "completion": (completed / possible) if possible else 0.0,
                "at_risk": counts[analytics.AT_RISK],
                "watch": counts[analytics.WATCH],
                "freshness": cohort_freshness(cohort=cohort, now=now),
            }
        )
    return rows


def cohort_freshness(*, cohort: Cohort, now: datetime) -> dict[str, Any]:
    return analytics.freshness(
        last_synced_at=cohort.last_synced_at,
        last_sync_status=cohort.last_sync_status,
        sync_interval_hours=cohort.sync_interval_hours,
        now=now,
    )


def mentor_notes_for(*, cohort: Cohort, student: Student) -> QuerySet[MentorNote]:
    return MentorNote.objects.filter(cohort=cohort, student=student).order_by("-created_at", "-id")


def progressions_filtered(
    *,
    cohort: Cohort,
    student_id: int | None = None,
    assignment_id: int | None = None,
    completed: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Progression]:
    """The cohort's progressions, narrowed (API). A date range keeps the progressions with
    any activity (start, completion or review) inside it."""
    qs = Progression.objects.filter(cohort=cohort)
    if student_id is not None:
        qs = qs.filter(student_id=student_id)
    if assignment_id is not None:
        qs = qs.filter(assignment_id=assignment_id)
    if completed is not None:
        qs = qs.filter(completed_at__isnull=not completed)
    if since is not None or until is not None:
        window = Q()
        for field in ("started_at", "completed_at", "reviewed_at"):
            inside = Q()
            if since is not None:
                inside &= Q(**{f"{field}__gte": since})
            if until is not None:
                inside &= Q(**{f"{field}__lt": until})
            window |= inside
        qs = qs.filter(window)
    return qs.order_by("id")


__all__ = [
    "cohort_frames",
    "cohort_frames_with_leavers",
    "cohort_freshness",
    "cohort_get_for_user",
    "cohort_list_rows",
    "cohort_progressions",
    "cohort_student_get",
    "cohorts_visible_to",
    "mentor_notes_for",
    "person_cohorts",
    "progressions_filtered",
    "student_progressions",
]


def person_cohorts(*, user, student: Student) -> list[dict[str, Any]]:
    """Every cohort the same person is in, whatever its source, that the user may see:
    records sharing the student's person (one email, or linked by an admin). Each row:
    cohort, student (the record in that cohort), source, completed, assignments (published
    only), current score and last activity where the source gives them. Three queries."""
    if student.person_id is None:
        records = Student.objects.filter(pk=student.pk)
    else:
        records = Student.objects.filter(person_id=student.person_id)
    enrollments = list(
        Enrollment.objects.filter(student__in=records, cohort__in=cohorts_visible_to(user))
        .select_related("cohort", "student")
        .order_by("cohort__name", "cohort_id")
    )
    cohort_ids = [e.cohort_id for e in enrollments]
    assignments = dict(
        Assignment.objects.filter(cohort_id__in=cohort_ids, published=True)
        .order_by()
        .values("cohort_id")
        .annotate(n=Count("id"))
        .values_list("cohort_id", "n")
    )
    completed = {
        (c, s): n
        for c, s, n in Progression.objects.filter(
            cohort_id__in=cohort_ids,
            student__in=records,
            completed_at__isnull=False,
            assignment__published=True,
        )
        .order_by()
        .values("cohort_id", "student_id")
        .annotate(n=Count("assignment_id", distinct=True))
        .values_list("cohort_id", "student_id", "n")
    }
    return [
        {
            "cohort": e.cohort,
            "student": e.student,
            "source": e.cohort.get_source_display(),
            "completed": completed.get((e.cohort_id, e.student_id), 0),
            "assignments": assignments.get(e.cohort_id, 0),
            "current_score": e.current_score,
            "last_activity_at": e.last_activity_at,
            "this": e.student_id == student.pk,
        }
        for e in enrollments
    ]
