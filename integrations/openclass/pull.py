"""The OpenClass pull job: class detail and progressions into a cohort.

(Skeleton: the job body is filled in by the OpenClass work; the run plumbing is here.)
"""

from __future__ import annotations

from django.db import transaction

from cohorts.models import Cohort, Source
from cohorts.services import cohort_mark_synced
from reports.models import Run, RunKind
from reports.services import RunTracker, run_active_for, run_create


def openclass_run_create(
    *, class_id: str, cohort_name: str = "", triggered_by: str, user=None
) -> Run:
    return run_create(
        kind=RunKind.OPENCLASS_SYNC,
        triggered_by=triggered_by,
        user=user,
        subject=cohort_name or f"OpenClass class {class_id}",
        params={"class_id": class_id, "cohort_name": cohort_name},
    )


def openclass_run_for_cohort(*, cohort_id: int, triggered_by: str, user=None) -> Run | None:
    """A queued run for the cohort, unless one is already queued or running (then None)."""
    with transaction.atomic():
        cohort = Cohort.objects.select_for_update().get(pk=cohort_id, source=Source.OPENCLASS)
        if run_active_for(
            kind=RunKind.OPENCLASS_SYNC, subject_key="class_id", value=cohort.external_id
        ):
            return None
        return openclass_run_create(
            class_id=cohort.external_id,
            cohort_name=cohort.name,
            triggered_by=triggered_by,
            user=user,
        )


def openclass_pull_job(tracker: RunTracker) -> None:
    raise NotImplementedError


def openclass_after_finish(run: Run) -> None:
    cohort_id = run.params.get("cohort_id")
    if cohort_id:
        cohort_mark_synced(
            cohort_id=cohort_id, run_id=run.pk, status=run.status, at=run.finished_at
        )
