"""Reads of cohorts, with the access rule: admins see every cohort, a mentor only the
cohorts they mentor (anything else is a 404, never a 403 that confirms it exists)."""

from __future__ import annotations

from django.db.models import Count, Max, Q, QuerySet
from django.shortcuts import get_object_or_404

from cohorts.models import Cohort, Student


def cohorts_visible_to(user) -> QuerySet[Cohort]:
    if not user.is_authenticated:
        return Cohort.objects.none()
    if user.is_staff:
        return Cohort.objects.all()
    return Cohort.objects.filter(mentors=user)


def cohort_get_for_user(*, user, pk: int) -> Cohort:
    return get_object_or_404(cohorts_visible_to(user), pk=pk)


def cohort_list_with_counts(*, user) -> QuerySet[Cohort]:
    return cohorts_visible_to(user).annotate(
        student_count=Count("enrollments", distinct=True),
        assignment_count=Count("assignments", distinct=True),
    )


def cohort_student_rows(*, cohort: Cohort) -> list[dict]:
    """Each enrolled student with completed count, completion share and last activity.

    Two queries, whatever the cohort's size.
    """
    assignment_total = cohort.assignments.count()
    students = (
        Student.objects.filter(enrollments__cohort=cohort)
        .annotate(
            completed=Count(
                "progressions",
                filter=Q(progressions__cohort=cohort, progressions__completed_at__isnull=False),
            ),
            last_started=Max("progressions__started_at", filter=Q(progressions__cohort=cohort)),
            last_completed=Max("progressions__completed_at", filter=Q(progressions__cohort=cohort)),
            last_reviewed=Max("progressions__reviewed_at", filter=Q(progressions__cohort=cohort)),
        )
        .order_by("last_name", "first_name", "id")
    )
    rows = []
    for s in students:
        stamps = [t for t in (s.last_started, s.last_completed, s.last_reviewed) if t]
        rows.append(
            {
                "student": s,
                "completed": s.completed,
                "total": assignment_total,
                "completion": (s.completed / assignment_total) if assignment_total else 0.0,
                "last_activity": max(stamps) if stamps else None,
            }
        )
    return rows


__all__ = [
    "cohort_get_for_user",
    "cohort_list_with_counts",
    "cohort_student_rows",
    "cohorts_visible_to",
]
