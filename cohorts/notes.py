"""Mentor notes as the health table marks them: how many a student has, and the latest."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Max

from cohorts.models import MentorNote


def mentor_note_marks(*, cohort_id: int, student_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """{student id: {"count", "last_at"}} for the students with notes in the cohort.
    One query, for one page of the table."""
    rows = (
        MentorNote.objects.filter(cohort_id=cohort_id, student_id__in=list(student_ids))
        .order_by()
        .values("student_id")
        .annotate(count=Count("id"), last_at=Max("created_at"))
    )
    return {row["student_id"]: {"count": row["count"], "last_at": row["last_at"]} for row in rows}
