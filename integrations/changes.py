"""Records what a pull changed in a cohort on its run, for any pull kind.

    with cohort_changes_recorded(tracker, cohort, timing=store.timing):
        ...write the cohort...

takes the cohort's health snapshot before (`cohorts.changes.snapshot_take`), one after
(also when the pull fails half-way: the pages it stored did change the cohort), and adds
one `change` run item per change plus one `summary` item per cohort
(`reports.changes` renders them in the report email and on the run page). Both snapshots
use the same `now`. Recording never fails the pull: an error here is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from django.utils import timezone

from cohorts.changes import change_data, changes_between, snapshot_take, summary_data
from cohorts.models import Cohort
from reports.changes import CHANGE_OUTCOME
from reports.services import RunTracker

logger = logging.getLogger(__name__)


@contextmanager
def cohort_changes_recorded(
    tracker: RunTracker,
    cohort: Cohort,
    *,
    timing: Callable[[], AbstractContextManager] | None = None,
) -> Iterator[None]:
    clock = timing or nullcontext
    now = timezone.now()
    before = None
    try:
        with clock():
            before = snapshot_take(cohort, now=now)
    except Exception:
        logger.exception(
            "run %s: could not snapshot cohort %s before the pull", tracker.run.pk, cohort.pk
        )
    try:
        yield
    finally:
        if before is not None:
            try:
                with clock():
                    cohort.refresh_from_db(fields=["name"])
                    changes_record(tracker, changes_between(before, snapshot_take(cohort, now=now)))
            except Exception:
                logger.exception(
                    "run %s: could not record what changed in cohort %s", tracker.run.pk, cohort.pk
                )


def changes_record(tracker: RunTracker, cohort_changes) -> None:
    tracker.item(
        outcome=CHANGE_OUTCOME,
        key="summary",
        label=cohort_changes.cohort_name,
        message=cohort_changes.summary,
        data=summary_data(cohort_changes),
    )
    for change in cohort_changes.changes:
        tracker.item(
            outcome=CHANGE_OUTCOME,
            key=change.key,
            label=change.label,
            message=change.message,
            data=change_data(cohort_changes, change),
        )
