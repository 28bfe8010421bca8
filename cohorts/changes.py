"""What a pull changed in a cohort: a health snapshot before it, one after, and the diff.

Vendor-neutral (no `integrations` import): a pull job takes `snapshot_before(cohort)`
before it writes and `snapshot_after(cohort, at=before.at)` after, then records
`changes_between(before, after)` on its run (`integrations.changes.cohort_changes_recorded`
does all three). The diff reuses the cohort page's own health (`analytics.CohortHealth`),
so "became at risk" here means what the health table says, with the same reasons in words.

Cheap on a big cohort: the "before" is the cohort's stored health (`cohorts.health_store`)
while it is valid, read without a row; the "after" reads the rows once and stores the
health the pages serve from then on.

Both snapshots of one pull are as of the same moment (the before's), so time passing
during the pull never shows as a change: only the data the pull wrote does.
`snapshot_take` computes one from the rows, at any moment.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import compress
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.utils import timezone

from cohorts import analytics, health_store
from cohorts.selectors import cohort_frames_with_leavers

# A "new blocker" is an assignment that entered the cohort's worst few blockers.
BLOCKERS_TOP = 5

# Categories in reading order, with what a person reads.
CATEGORIES = (
    "completions",
    "grades",
    "at_risk",
    "watch",
    "recovered",
    "joined",
    "left",
    "blockers",
)
LABELS = {
    "completions": "new completions",
    "grades": "new grades",
    "at_risk": "became at risk",
    "watch": "now to watch",
    "recovered": "recovered",
    "joined": "joined",
    "left": "left",
    "blockers": "new blockers",
}
# Items of these categories are one per student, but count every completion / grade.
_COUNTED_BY_N = frozenset({"completions", "grades"})


@dataclass(frozen=True, slots=True)
class StudentState:
    name: str
    external_id: str
    status: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Snapshot:
    """A cohort's health at one moment: who is where and why, what is done and graded."""

    cohort_id: int
    cohort_name: str
    students: dict[int, StudentState]
    done: frozenset[tuple[int, int]]  # (student_id, assignment_id) completed
    grades: dict[tuple[int, int], float]
    blockers: dict[int, tuple[str, str, str]]  # assignment_id -> (name, external_id, reason)
    assignment_names: dict[int, str]
    at: datetime | None = None  # the moment it is as of


@dataclass(frozen=True, slots=True)
class Change:
    category: str
    key: str  # the student's or assignment's vendor id
    label: str  # their name
    message: str  # what happened, in words
    n: int = 1
    student_id: int | None = None
    assignment_id: int | None = None
    severity: int = 0  # for ordering: the worst first


@dataclass
class CohortChanges:
    cohort_id: int
    cohort_name: str
    changes: list[Change] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CATEGORIES, 0)
        for change in self.changes:
            counts[change.category] += change.n if change.category in _COUNTED_BY_N else 1
        return counts

    @property
    def summary(self) -> str:
        """Counts first, in words: "3 new completions, 1 became at risk"; or no change."""
        parts = [f"{n} {LABELS[key]}" for key, n in self.counts.items() if n]
        return ", ".join(parts) if parts else "no change"


# --- snapshots --------------------------------------------------------------------------


def snapshot_from_frames(
    students: pd.DataFrame,
    assignments: pd.DataFrame,
    progressions: pd.DataFrame,
    *,
    thresholds: analytics.Thresholds,
    now: datetime,
    cohort_id: int = 0,
    cohort_name: str = "",
    tz: str = "UTC",
    starts_on: date | None = None,
    ends_on: date | None = None,
) -> Snapshot:
    health = analytics.CohortHealth(
        students,
        assignments,
        progressions,
        thresholds=thresholds,
        now=now,
        tz=tz,
        starts_on=starts_on,
        ends_on=ends_on,
    )
    return snapshot_from_health(
        health, health_store.pairs_of(health), cohort_id=cohort_id, cohort_name=cohort_name
    )


def snapshot_from_health(
    health: analytics.CohortHealth,
    pairs: dict[str, np.ndarray],
    *,
    cohort_id: int = 0,
    cohort_name: str = "",
) -> Snapshot:
    """A snapshot from a default view (computed, or restored from storage) and its pairs
    (`health_store.pairs_of`)."""
    frame = health.health
    states = {
        int(sid): StudentState(str(name), str(ext), str(status), tuple(reasons))
        for sid, name, ext, status, reasons in zip(
            frame["student_id"].tolist(),
            frame["name"],
            frame["external_id"],
            frame["status"],
            frame["reasons"],
            strict=True,
        )
    }
    students = pairs["student_id"].tolist()
    assignments = pairs["assignment_id"].tolist()
    done = frozenset(compress(zip(students, assignments, strict=True), pairs["done"].tolist()))
    graded = ~np.isnan(pairs["grade"])
    grades = dict(
        zip(
            zip(
                pairs["student_id"][graded].tolist(),
                pairs["assignment_id"][graded].tolist(),
                strict=True,
            ),
            pairs["grade"][graded].tolist(),
            strict=True,
        )
    )
    worst = health.blockers.loc[health.blockers["score"] > 0].head(BLOCKERS_TOP)
    blockers = {
        int(row["assignment_id"]): (
            str(row["name"]),
            str(row["external_id"]),
            analytics.blocker_reason(row),
        )
        for _, row in worst.iterrows()
    }
    plan = health.all_assignments
    names = dict(zip(plan["assignment_id"].tolist(), plan["name"], strict=True))
    return Snapshot(
        cohort_id=cohort_id,
        cohort_name=cohort_name,
        students=states,
        done=done,
        grades=grades,
        blockers=blockers,
        assignment_names=names,
        at=health.now.to_pydatetime(),
    )


def snapshot_take(cohort, *, now: datetime | None = None) -> Snapshot:
    """The cohort's snapshot from the database (the three queries of `cohort_frames`)."""
    students, assignments, progressions, _ = cohort_frames_with_leavers(cohort=cohort)
    return snapshot_from_frames(
        students,
        assignments,
        progressions,
        thresholds=analytics.Thresholds.of(cohort),
        now=now or timezone.now(),
        cohort_id=cohort.pk,
        cohort_name=cohort.name,
        tz=settings.TIME_ZONE,
        starts_on=cohort.starts_on,
        ends_on=cohort.ends_on,
    )


def snapshot_before(cohort, *, now: datetime | None = None) -> Snapshot:
    """A pull's "before": the cohort's stored health while it is valid (one query, no
    rows read), else computed now and stored (the pages serve it too); an empty cohort's
    without computing anything."""
    now = now or timezone.now()
    found = health_store.stored_pairs(cohort, now=now)
    if found is None:
        if not (cohort.enrollments.exists() or cohort.assignments.exists()):
            # Nothing in it yet (a first pull): the empty snapshot, no pandas, no charts.
            return Snapshot(cohort.pk, cohort.name, {}, frozenset(), {}, {}, {}, at=now)
        health = health_store.health_refresh(cohort, now=now).health
        found = health, health_store.pairs_of(health)
    return snapshot_from_health(*found, cohort_id=cohort.pk, cohort_name=cohort.name)


# How old the before's moment may be for the health computed as of it to be the one
# stored for the pages as well (see snapshot_after).
BEFORE_REUSED_FOR = timedelta(seconds=60)


def snapshot_after(cohort, *, at: datetime | None, now: datetime | None = None) -> Snapshot:
    """A pull's "after", as of `at` (the before's moment, so that only what the pull wrote
    shows as a change, never time passing). The rows are read once. The health is computed
    once when `at` is recent (at most `BEFORE_REUSED_FOR` ago, the same local day: a
    first pull's, or a before computed at the pull's start, of a pull that took less):
    as of `at`, it is also the health stored for the pages, which then says "as of" at
    most that much before the pull's end and stays fresh nearly as long as one computed
    at its end. Otherwise (a before read from an older stored health, a longer pull) a
    second health, as of `now`, is computed and stored. `cohort` is read after the pull's
    writes (its data version bumped)."""
    now = now or timezone.now()
    began = time.perf_counter()
    frames = cohort_frames_with_leavers(cohort=cohort)
    then = at if at is not None else now
    recent = health_store.is_fresh(then, now) and now - then <= BEFORE_REUSED_FOR
    moment = then if recent else now
    current, leavers = health_store.health_compute(cohort, now=moment, frames=frames)
    current.state()
    health_store.health_store(cohort, current, leavers, seconds=time.perf_counter() - began)
    health = current
    if then != moment:
        health = health_store.health_compute(cohort, now=then, frames=frames)[0]
    return snapshot_from_health(
        health, health_store.pairs_of(health), cohort_id=cohort.pk, cohort_name=cohort.name
    )


# --- the diff -----------------------------------------------------------------------------


def _status_words(state: StudentState) -> str:
    label = analytics.STATUS_LABELS.get(state.status, state.status).lower()
    return f"{label}: {'; '.join(state.reasons)}" if state.reasons else label


def _names_list(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def changes_between(before: Snapshot, after: Snapshot) -> CohortChanges:
    """Everything that changed from `before` to `after`, worst and biggest first."""
    result = CohortChanges(cohort_id=after.cohort_id, cohort_name=after.cohort_name)
    out = result.changes
    severity = analytics._SEVERITY
    names = {**before.assignment_names, **after.assignment_names}

    # Completions and grades, one item per student.
    new_done: dict[int, list[int]] = defaultdict(list)
    for sid, aid in after.done - before.done:
        if sid in after.students:
            new_done[sid].append(aid)
    new_grades: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for (sid, aid), grade in after.grades.items():
        if sid in after.students and before.grades.get((sid, aid)) != grade:
            new_grades[sid].append((aid, grade))
    for sid, aids in sorted(new_done.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        state = after.students[sid]
        titles = sorted(names.get(a, str(a)) for a in aids)
        word = "completion" if len(aids) == 1 else "completions"
        out.append(
            Change(
                "completions",
                state.external_id,
                state.name,
                f"{len(aids)} new {word}: {_names_list(titles)}",
                n=len(aids),
                student_id=sid,
            )
        )
    for sid, graded in sorted(new_grades.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        state = after.students[sid]
        parts = sorted(f"{names.get(a, str(a))} {g * 100:.0f}%" for a, g in graded)
        word = "grade" if len(graded) == 1 else "grades"
        out.append(
            Change(
                "grades",
                state.external_id,
                state.name,
                f"{len(graded)} new {word}: {_names_list(parts)}",
                n=len(graded),
                student_id=sid,
            )
        )

    # Health: students in both snapshots whose status moved.
    for sid in sorted(set(before.students) & set(after.students)):
        was, now = before.students[sid], after.students[sid]
        up = severity[now.status] - severity[was.status]
        if up > 0:
            category = "at_risk" if now.status == analytics.AT_RISK else "watch"
            message = "; ".join(now.reasons)
            if was.status != analytics.ON_TRACK:
                message = f"{message} (was {_status_words(was)})"
            out.append(
                Change(
                    category,
                    now.external_id,
                    now.name,
                    message,
                    student_id=sid,
                    severity=severity[now.status],
                )
            )
        elif up < 0:
            if now.status == analytics.ON_TRACK:
                message = f"back on track (was {_status_words(was)})"
            else:
                message = f"now {_status_words(now)} (was {_status_words(was)})"
            out.append(
                Change(
                    "recovered",
                    now.external_id,
                    now.name,
                    message,
                    student_id=sid,
                    severity=severity[was.status],
                )
            )

    # Who joined and who left.
    for sid in sorted(
        set(after.students) - set(before.students), key=lambda s: after.students[s].name
    ):
        state = after.students[sid]
        out.append(
            Change(
                "joined",
                state.external_id,
                state.name,
                f"joined ({_status_words(state)})",
                student_id=sid,
                severity=severity[state.status],
            )
        )
    for sid in sorted(
        set(before.students) - set(after.students), key=lambda s: before.students[s].name
    ):
        state = before.students[sid]
        out.append(Change("left", state.external_id, state.name, "left the cohort", student_id=sid))

    # Blockers that entered the worst few.
    for aid, (name, ext, reason) in after.blockers.items():
        if aid not in before.blockers:
            out.append(Change("blockers", ext, name, reason, assignment_id=aid))

    order = {c: i for i, c in enumerate(CATEGORIES)}
    out.sort(key=lambda c: (order[c.category], -c.severity, -c.n, c.label.lower()))
    return result


def change_data(cohort_changes: CohortChanges, change: Change) -> dict[str, Any]:
    """What a run item stores for one change (JSON, no secrets: names and ids only)."""
    return {
        "change": change.category,
        "change_label": LABELS[change.category],
        "cohort_id": cohort_changes.cohort_id,
        "cohort": cohort_changes.cohort_name,
        "n": change.n,
        "student_id": change.student_id,
        "assignment_id": change.assignment_id,
        "severity": change.severity,
    }


def summary_data(cohort_changes: CohortChanges) -> dict[str, Any]:
    return {
        "change": "summary",
        "cohort_id": cohort_changes.cohort_id,
        "cohort": cohort_changes.cohort_name,
        # A list, in reading order (jsonb keeps no key order): [category, label, count].
        "counts": [[key, LABELS[key], n] for key, n in cohort_changes.counts.items()],
    }
