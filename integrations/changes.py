"""Records what a pull changed in a cohort on its run, for any pull kind.

    with cohort_changes_recorded(tracker, cohort, timing=store.timing):
        ...write the cohort...

takes the cohort's health snapshot before (`cohorts.changes.snapshot_before`: its stored
health while valid), one after (also when the pull fails half-way: the pages it stored did
change the cohort), and adds one `change` run item per change plus one `summary` item per
cohort (`reports.changes` renders them in the report email and on the run page). Both
snapshots are as of the same moment. At the end it marks the cohort's data changed
(`cohorts.health_store.cohort_data_changed`) and stores the health the pages then serve,
whether recording worked or not. A pull that can tell it wrote nothing (`wrote`, asked
only when it ended without an error) leaves both alone: the after is the before.
Recording never fails the pull: an error here is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from cohorts.changes import (
    change_data,
    changes_between,
    snapshot_after,
    snapshot_before,
    summary_data,
)
from cohorts.health_store import HEALTH_INPUTS, cohort_data_changed
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
    wrote: Callable[[], bool] | None = None,
) -> Iterator[None]:
    """`wrote`, if given, says at the end whether the pull wrote anything: when it did
    not, the cohort is left as it was (its stored health valid) and the "after" is the
    "before" (no rows read again; the summary still says "no change")."""
    clock = timing or nullcontext
    before = None
    try:
        with clock():
            before = snapshot_before(cohort)
    except Exception:
        logger.exception(
            "run %s: could not snapshot cohort %s before the pull", tracker.run.pk, cohort.pk
        )
    unchanged = False
    try:
        yield
        unchanged = wrote is not None and not wrote()  # never after an error
    finally:
        if not unchanged:
            try:
                # The pull's end: whatever it wrote, the stored health is stale from here.
                cohort_data_changed(cohort.pk)
            except Exception:
                logger.exception(
                    "run %s: could not mark cohort %s changed", tracker.run.pk, cohort.pk
                )
        try:
            with clock():
                if unchanged:
                    after = before  # the same rows, as of the same moment
                else:
                    # What the stored health is keyed on, as the pull left it.
                    cohort.refresh_from_db(fields=HEALTH_INPUTS)
                    after = snapshot_after(cohort, at=before.at if before is not None else None)
                if before is not None:
                    changes_record(tracker, changes_between(before, after))
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
