"""A cohort's health, computed once and served until it is stale.

The default view of a cohort (no unit, no dates, no chart frequency) is what most requests
ask for: the health page, its CSVs, the API's metrics and the student page all read it.
Computing it means reading every progression of the cohort (200,000 rows in the benchmark
cohort) into pandas, so it is computed once, stored in `StoredHealth`, and served from
there while it is still valid. Filtered views are computed live, as before.

What is served always equals the live computation at the stored moment (`computed_at`,
shown as "as of HH:MM"): the stored figures ARE a live computation, restored exactly
(`CohortHealth.state` / `restored`). A stored health is stale, and computed again by the
next request that needs it, when:

- the cohort's data changed: `Cohort.data_version` moved. It is bumped at the end of every
  pull (`integrations.changes.cohort_changes_recorded`, a failed pull included; not after
  a pull that ended without an error and says it wrote nothing), by every single-object
  save of a student, enrollment, assignment or progression, or delete of a student,
  enrollment or assignment (the Django admin, the shell: the receivers below), and by
  `cohort_data_changed` for any other writer;
- its inputs changed: thresholds, course dates, source, time zone, or this code's or
  pandas' version (all in `key`);
- time passed: it is older than `HEALTH_MAX_AGE_SECONDS` (inactivity and trends count to
  "now"), or was computed on an earlier local day (charts end today), or in the future;
- it cannot be read back (signature or format): it is never trusted, only recomputed.

Mentor notes are never stored: the pages read them on every request.

A request reads the cohort (with its data version) BEFORE it reads the rows, and writers
bump the version in or after the transaction that writes the rows; so figures stored
under a version never come from older rows than that version's. A store never replaces
a newer one (higher data version, or the same version computed later).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import time
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from django.utils.crypto import salted_hmac

from cohorts import analytics
from cohorts.models import Assignment, Cohort, Enrollment, Progression, StoredHealth, Student

logger = logging.getLogger(__name__)

# Bump when what is stored changes shape: every stored health becomes stale at once.
FORMAT = 3
_SALT = "cohorts.health_store"
BLOCKERS_CHARTED = 10  # the health page's chart (views.BLOCKERS_SHOWN)


@dataclass
class Served:
    """The default view of a cohort: its health and what the pages show beside it."""

    health: analytics.CohortHealth
    leavers: pd.DataFrame
    charts: dict[str, Any]
    computed_at: datetime
    stored: bool  # read from storage (False: computed by this request)
    live: bool = False  # a filtered view computed from the rows, never stored


# --- staleness ------------------------------------------------------------------------


def cohort_data_changed(cohort_id: int) -> None:
    """Say that the cohort's data changed: its stored health is stale from now on. Call
    it in, or after, the transaction that wrote the rows (never before it)."""
    Cohort.objects.filter(pk=cohort_id).update(data_version=F("data_version") + 1)


def max_age() -> timedelta:
    return timedelta(seconds=settings.HEALTH_MAX_AGE_SECONDS)


# The cohort's fields the stored health depends on (read them fresh before computing).
HEALTH_INPUTS = (
    "name",
    "data_version",
    "source",
    "inactive_days",
    "behind_fraction",
    "low_grade",
    "starts_on",
    "ends_on",
)


def health_key(cohort: Cohort) -> str:
    """Everything the default view depends on besides the time."""
    parts = (
        FORMAT,
        pd.__version__,
        cohort.data_version,
        cohort.source,
        cohort.inactive_days,
        repr(float(cohort.behind_fraction)),
        repr(float(cohort.low_grade)),
        cohort.starts_on,
        cohort.ends_on,
        settings.TIME_ZONE,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def is_fresh(computed_at: datetime, now: datetime) -> bool:
    """Young enough to serve at `now`: not older than the bound, not from an earlier
    local day, not from the future."""
    if computed_at > now or now - computed_at > max_age():
        return False
    return timezone.localdate(computed_at) == timezone.localdate(now)


# --- signed storage -------------------------------------------------------------------


def _seal(value: Any) -> bytes:
    body = zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1)
    return salted_hmac(_SALT, body, algorithm="sha256").digest() + body


def _unseal(blob: bytes | memoryview) -> Any:
    """The value, or ValueError when the signature does not match (written by anything
    but this code with this SECRET_KEY): a stored health is only ever trusted signed."""
    blob = bytes(blob)
    mac, body = blob[:32], blob[32:]
    if not hmac.compare_digest(mac, salted_hmac(_SALT, body, algorithm="sha256").digest()):
        raise ValueError("stored health: bad signature")
    return pickle.loads(zlib.decompress(body))


# --- computing ------------------------------------------------------------------------


def health_compute(
    cohort: Cohort, *, now: datetime, frames: tuple | None = None
) -> tuple[analytics.CohortHealth, pd.DataFrame]:
    """The cohort's default view computed live at `now`, and its leavers (three queries,
    none with `frames` = cohort_frames_with_leavers' four)."""
    from cohorts.selectors import cohort_frames_with_leavers

    students, assignments, progressions, leavers = frames or cohort_frames_with_leavers(
        cohort=cohort
    )
    health = analytics.CohortHealth(
        students,
        assignments,
        progressions,
        thresholds=analytics.Thresholds.of(cohort),
        now=now,
        tz=settings.TIME_ZONE,
        starts_on=cohort.starts_on,
        ends_on=cohort.ends_on,
        source=cohort.source,
    )
    return health, leavers


def charts_for(health: analytics.CohortHealth) -> dict[str, Any]:
    from cohorts import charts  # plotly: only where charts are drawn

    return {
        "completion": charts.completion_figure(health.completion),
        "blockers": charts.blockers_figure(health.blockers, limit=BLOCKERS_CHARTED),
        "progress": charts.progress_figure(health.progress),
    }


def pairs_of(health: analytics.CohortHealth) -> dict[str, np.ndarray]:
    """Each counted student x assignment: completed or not, and its grade (the change
    report's "what was done and graded")."""
    pairs = health.all_progressions
    return {
        "student_id": pairs["student_id"].to_numpy(dtype="int64"),
        "assignment_id": pairs["assignment_id"].to_numpy(dtype="int64"),
        "done": pairs["completed_at"].notna().to_numpy(),
        "grade": pairs["grade"].to_numpy(dtype="float64"),
        # Microseconds since the epoch (done rows only mean anything): the progress chart
        # of a view narrowed by dates alone needs nothing else.
        "completed_at": pairs["completed_at"].astype("datetime64[us, UTC]").array.asi8,
    }


def completions_of(pairs: dict[str, np.ndarray]) -> pd.DataFrame:
    """The completed pairs as progressions rows (`analytics.progressions_frame`'s columns):
    enough for completions over time, never for anything that needs starts or reviews."""
    done = pairs["done"]
    completed = pd.DatetimeIndex(pairs["completed_at"][done].astype("datetime64[us]"))
    completed = completed.tz_localize("UTC")
    return pd.DataFrame(
        {
            "student_id": pairs["student_id"][done],
            "assignment_id": pairs["assignment_id"][done],
            "grade": pairs["grade"][done],
            "started_at": completed,
            "completed_at": completed,
            "reviewed_at": pd.DatetimeIndex([pd.NaT] * int(done.sum()), tz="UTC").as_unit("us"),
        }
    )


def health_store(
    cohort: Cohort,
    health: analytics.CohortHealth,
    leavers: pd.DataFrame,
    *,
    seconds: float = 0.0,
) -> Served:
    """Store a default view computed for `cohort` as read (its data version and inputs).
    Never replaces a newer one. Returns it as served."""
    figures = charts_for(health)
    state = health.state()
    computed_at = health.now.to_pydatetime()
    values = {
        "key": health_key(cohort),
        "data_version": cohort.data_version,
        "computed_at": computed_at,
        "seconds": seconds,
        "payload": _seal({"health": state, "leavers": leavers, "charts": figures}),
        "pairs": _seal(pairs_of(health)),
    }
    older = Q(data_version__lt=cohort.data_version) | Q(
        data_version=cohort.data_version, computed_at__lte=computed_at
    )
    try:
        # Its own transaction (a savepoint inside a pull's): a store that fails (a lock
        # held too long) costs the next request a computation, never this one its answer.
        with transaction.atomic():
            if not StoredHealth.objects.filter(older, cohort_id=cohort.pk).update(**values):
                try:
                    with transaction.atomic():
                        StoredHealth.objects.create(cohort_id=cohort.pk, **values)
                except IntegrityError:
                    pass  # a newer one is stored: it stays
    except DatabaseError:
        logger.warning("cohort %s: could not store its health", cohort.pk, exc_info=True)
    return Served(health, leavers, figures, computed_at, stored=False)


def health_refresh(cohort: Cohort, *, now: datetime | None = None) -> Served:
    """Compute the default view now and store it (a pull's end, a stale one)."""
    began = time.perf_counter()
    health, leavers = health_compute(cohort, now=now or timezone.now())
    health.state()
    return health_store(cohort, health, leavers, seconds=time.perf_counter() - began)


def _stored_row(cohort: Cohort, *, with_pairs: bool = False) -> StoredHealth | None:
    qs = StoredHealth.objects.filter(cohort_id=cohort.pk)
    if not with_pairs:
        qs = qs.defer("pairs")
    return qs.first()


def stored_valid(cohort: Cohort, row: StoredHealth | None, now: datetime) -> bool:
    return (
        row is not None
        and row.key == health_key(cohort)
        and row.data_version == cohort.data_version
        and is_fresh(row.computed_at, now)
    )


def health_served(cohort: Cohort, *, now: datetime | None = None) -> Served:
    """The cohort's default view: the stored one while valid (one query), else computed
    now and stored (one query, the three of the frames, and one or two writes).

    `cohort` must have been read by this request (its data version and thresholds are
    what the stored one is checked against)."""
    now = now or timezone.now()
    row = _stored_row(cohort)
    if stored_valid(cohort, row, now):
        try:
            content = _unseal(row.payload)
            return Served(
                analytics.CohortHealth.restored(content["health"]),
                content["leavers"],
                content["charts"],
                row.computed_at,
                stored=True,
            )
        except Exception:
            pass
    return health_refresh(cohort, now=now)


def stored_pairs(cohort: Cohort, *, now: datetime) -> tuple[analytics.CohortHealth, dict] | None:
    """The stored default view and its pairs while valid (the change report's "before"),
    else None."""
    row = _stored_row(cohort, with_pairs=True)
    if not stored_valid(cohort, row, now):
        return None
    try:
        content = _unseal(row.payload)
        return analytics.CohortHealth.restored(content["health"]), _unseal(row.pairs)
    except Exception:
        return None


def health_narrowed(
    cohort: Cohort,
    served: Served,
    *,
    unit: str | None = None,
    date_from: date | None = None,
    freq: str | None = None,
) -> analytics.CohortHealth:
    """The stored default view narrowed by a unit, a first day or a chart frequency, as of
    its moment (`CohortHealth.narrowed`), reading only the rows they need: the unit's, or
    the completed ones (one query)."""
    from cohorts.selectors import cohort_progressions

    base = served.health
    rows = None
    if unit is not None and unit in base.units:
        plan = base.all_assignments
        ids = plan.loc[plan["unit"] == unit, "assignment_id"].tolist()
        rows = cohort_progressions(cohort=cohort, assignment_ids=ids)
    else:
        # Dates alone: the completions over time, from the stored pairs (no row read).
        blob = (
            StoredHealth.objects.filter(cohort_id=cohort.pk, computed_at=served.computed_at)
            .values_list("pairs", flat=True)
            .first()
        )
        try:
            rows = completions_of(_unseal(blob)) if blob is not None else None
        except Exception:
            rows = None
        if rows is None:  # replaced meanwhile, or unreadable: the completed rows
            rows = cohort_progressions(cohort=cohort, completed=True)
    return base.narrowed(rows, unit=unit, date_from=date_from, freq=freq)


# --- single saves (the Django admin, the shell) ----------------------------------------
# Bulk writes (the pulls' upserts) send no signal: the pull's end bumps the version.


@receiver(post_save, sender=Progression, dispatch_uid="health_store.progression")
@receiver(post_save, sender=Assignment, dispatch_uid="health_store.assignment")
@receiver(post_save, sender=Enrollment, dispatch_uid="health_store.enrollment")
# Deletes (the admin; a student's delete cascades to their enrollments). Not progressions:
# a receiver would make every bulk delete of them fetch each row first.
@receiver(post_delete, sender=Assignment, dispatch_uid="health_store.assignment_deleted")
@receiver(post_delete, sender=Enrollment, dispatch_uid="health_store.enrollment_deleted")
def _cohort_row_saved(sender, instance, **kwargs) -> None:
    cohort_data_changed(instance.cohort_id)


@receiver(post_save, sender=Student, dispatch_uid="health_store.student")
def _student_saved(sender, instance, created: bool, **kwargs) -> None:
    if created:
        return  # in no cohort yet: its enrollment will say so
    Cohort.objects.filter(enrollments__student_id=instance.pk).update(
        data_version=F("data_version") + 1
    )
