"""The OpenClass pull job: class detail and progressions into a cohort.

Streams the class's progressions one page at a time (a class can hold tens of thousands)
and writes each page in its own savepoint, pages sharing a transaction while the next one
is already there (`integrations.batches`), so memory stays flat and a failure on page N
keeps pages 0..N-1. Re-running over unchanged data writes nothing (upserts keyed by the
vendor's ids). A resumed run (re-queued after its worker died) starts again from page 0;
pages stored before come back as `unchanged`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cohorts.models import Cohort, Source
from cohorts.services import (
    AssignmentRecord,
    ProgressionRecord,
    PullMemo,
    StudentRecord,
    UpsertResult,
    assignments_upsert,
    cohort_get_or_create,
    cohort_mark_synced,
    enrollments_reconcile,
    progressions_upsert,
    students_upsert,
)
from integrations.batches import WriteBatches
from integrations.changes import cohort_changes_recorded
from integrations.http import ConfigError, VendorError
from integrations.jobs import InvalidInput
from integrations.openclass.client import (
    MAX_ID_LENGTH,
    ClassDetail,
    OpenClassAssignment,
    OpenClassClient,
    OpenClassUser,
    ProgressionPage,
)
from integrations.prefetch import Prefetch
from reports.models import ErrorClass, Run, RunKind, RunStatus
from reports.services import RunTracker, run_get_or_create, run_lock_key

# The contract leaves the maximum open: its docs say 100, the old tool used 200.
MAX_PAGE_SIZE = 200
COUNT_KEYS = ("fetched", "created", "updated", "unchanged", "failed")


def openclass_lock_key(class_id: str) -> str:
    """One live pull per OpenClass class, whoever starts it (page, schedule, command)."""
    return run_lock_key(RunKind.OPENCLASS_SYNC, "class", class_id) if class_id else ""


def openclass_run_start(
    *, class_id: str, cohort_name: str = "", triggered_by: str, user=None, cohort_id=None
) -> tuple[Run, bool]:
    """(a new queued pull, True), or (the class's live pull, False)."""
    params = {"class_id": class_id, "cohort_name": cohort_name}
    if cohort_id is not None:
        params["cohort_id"] = cohort_id  # the run page links its cohort from the start
    return run_get_or_create(
        kind=RunKind.OPENCLASS_SYNC,
        triggered_by=triggered_by,
        user=user,
        subject=cohort_name or f"OpenClass class {class_id}",
        params=params,
        lock_key=openclass_lock_key(class_id),
    )


def openclass_run_create(
    *, class_id: str, cohort_name: str = "", triggered_by: str, user=None
) -> Run:
    """A queued pull of the class, or the class's live pull if one is queued or running."""
    run, _created = openclass_run_start(
        class_id=class_id, cohort_name=cohort_name, triggered_by=triggered_by, user=user
    )
    return run


def openclass_run_for_cohort(*, cohort_id: int, triggered_by: str, user=None) -> Run | None:
    """A queued run for the cohort, unless one is already queued or running (then None).

    The run's lock key makes this hold under concurrency: two presses of "Sync now" at
    the same moment (or a press and the schedule) make exactly one run.
    """
    cohort = Cohort.objects.get(pk=cohort_id, source=Source.OPENCLASS)
    run, created = openclass_run_start(
        class_id=cohort.external_id,
        cohort_name=cohort.name,
        triggered_by=triggered_by,
        user=user,
        cohort_id=cohort.pk,
    )
    return run if created else None


class _Wrote:
    """Whether the pull wrote anything to the cohort (an unchanged re-run writes nothing:
    then its stored health stays valid and the change report reads no rows)."""

    def __init__(self) -> None:
        self.any = False

    def add(self, *results: UpsertResult) -> None:
        self.any = self.any or any(r.wrote for r in results)

    def __bool__(self) -> bool:
        return self.any


class _StoreClock:
    """Seconds spent on the database (writes, snapshots), so the fetch stage's timing
    counts only the vendor's time."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def timing(self) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds += time.monotonic() - began


def openclass_pull_job(tracker: RunTracker) -> None:
    params = tracker.run.params
    class_id = str(params.get("class_id") or "").strip()
    if not class_id:
        raise InvalidInput("class_id is empty: give the OpenClass class id (--class-id)")
    if len(class_id) > MAX_ID_LENGTH:
        raise InvalidInput(f"class_id is longer than {MAX_ID_LENGTH} characters")
    busy = _other_live_pull(tracker.run, class_id)
    if busy is not None:
        # Two pulls of one class would race on the same upserts; the live one is enough.
        raise InvalidInput(
            f"A pull of class {class_id} is already running (run #{busy.pk}); "
            "this one sent nothing. Try again when it has finished."
        )
    cohort_name = str(params.get("cohort_name") or "").strip()
    page_size = int(settings.OPENCLASS_PAGE_SIZE)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ConfigError(f"OPENCLASS_PAGE_SIZE must be between 1 and {MAX_PAGE_SIZE}")
    client = OpenClassClient.from_settings()  # ConfigError here: nothing was sent

    with tracker.stage("authenticate"):
        client.login()

    for key in COUNT_KEYS:
        tracker.set_count(key, 0)
    store, snapshot = _StoreClock(), _StoreClock()
    wrote = _Wrote()
    try:
        with tracker.stage("fetch", unit="pages"):
            detail = client.class_detail(class_id)
            with store.timing():
                cohort = _cohort_for(class_id, cohort_name, detail.name)
                tracker.run.params["cohort_id"] = cohort.pk
            # What the pull changed goes on the run (docs/notifications.md); its two
            # health snapshots are booked as "snapshot" time.
            with cohort_changes_recorded(
                tracker, cohort, timing=snapshot.timing, wrote=wrote.__bool__
            ):
                with store.timing():
                    _, curriculum = assignments_upsert(
                        cohort=cohort, records=_curriculum_records(detail)
                    )
                wrote.add(curriculum)
                _pages_pull(tracker, client, cohort, detail, page_size, store, wrote)
    finally:
        # Writes and snapshots ran inside the fetch stage; book them apart, so the timings
        # say whether the vendor or the database took the time (a failed run included).
        timings = tracker.run.stage_timings
        if "fetch" in timings:
            spent = store.seconds + snapshot.seconds
            timings["fetch"] = round(max(0.0, timings["fetch"] - spent), 3)
            timings["store"] = round(timings.get("store", 0.0) + store.seconds, 3)
            timings["snapshot"] = round(timings.get("snapshot", 0.0) + snapshot.seconds, 3)


def _other_live_pull(run: Run, class_id: str) -> Run | None:
    """Another running pull of the class that still reports progress (not an orphan)."""
    fresh = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)
    return (
        Run.objects.filter(
            kind=RunKind.OPENCLASS_SYNC,
            status=RunStatus.RUNNING,
            params__class_id=class_id,
            heartbeat_at__gte=fresh,
        )
        .exclude(pk=run.pk)
        .first()
    )


def _pages_pull(
    tracker: RunTracker,
    client: OpenClassClient,
    cohort: Cohort,
    detail: ClassDetail,
    page_size: int,
    store: _StoreClock,
    wrote: _Wrote,
) -> None:
    """Fetch and store one page at a time; only the id sets for the counts are kept.

    After the last page of a complete pull (every page fetched, no record skipped), the
    students it never saw have left the cohort (`enrollments_reconcile`).
    """
    students: set[str] = set()
    seen_pks: set[int] = set()
    assignments = {item.assignment_id for item in detail.curriculum}
    next_page = 0
    skipped_any, more_promised = False, False
    memo = PullMemo()  # students and assignments this pull has written
    # Pages share a transaction while the next one is there (each in its own savepoint);
    # its commits are the store's time.
    batch = WriteBatches(timing=store.timing)
    try:
        # Page N+1 is fetched and decoded in a thread while page N is stored here.
        with Prefetch(
            client.iter_progression_pages(detail.id, page_size), name="openclass-pages"
        ) as pages:
            for page in pages:
                with store.timing():
                    batch.begin()
                    _progress_total(tracker, page)
                    seen_pks.update(_page_store(tracker, cohort, page, memo, wrote))
                batch.page_done()
                # Waiting for the next page is OpenClass's time (fetch), not the store's.
                batch.before_wait(pages.ready)
                skipped_any = skipped_any or bool(page.invalid)
                more_promised = page.can_load_more
                students.update(p.user.id for p in page.progressions)
                assignments.update(p.assignment.id for p in page.progressions)
                tracker.set_count("students", len(students))
                tracker.set_count("assignments", len(assignments))
                tracker.advance()
                next_page = page.page + 1
    except VendorError as exc:
        # Say how far it got: the pages before this one are stored and stay.
        exc.message = f"{exc.message} {_at_page(next_page)}"
        raise
    except Exception as exc:
        # Not the vendor (the database, a bug): the run's message still says which page.
        raise PagePullError(f"{type(exc).__name__}: {exc} {_at_page(next_page)}") from exc
    finally:
        batch.end()  # the pages stored before a failure stay
    # A skipped record may be a student's only one, and a last page that still promised
    # more ended the listing early (the client stops on an empty page): neither pull saw
    # the whole class, so nobody is taken as having left.
    if not skipped_any and not more_promised:
        with store.timing():
            changed = enrollments_reconcile(cohort=cohort, seen_student_ids=seen_pks)
        wrote.any = wrote.any or bool(changed.left or changed.returned)
        # Only when something changed, so a steady class keeps its usual counts.
        for key, n in (("left", changed.left), ("returned", changed.returned)):
            if n:
                tracker.set_count(key, n)


class PagePullError(Exception):
    """A page failed for a reason other than the vendor; the message names the page."""


def _at_page(page: int) -> str:
    kept = "; the pages before it are stored" if page else ""
    return f"(at page {page}{kept})"


def _cohort_for(class_id: str, cohort_name: str, vendor_name: str) -> Cohort:
    """The class's cohort. An explicit cohort name renames it; the vendor's class name only
    names a new one (an admin may have renamed the cohort since)."""
    cohort_name, vendor_name = cohort_name[:200], vendor_name[:200]
    existing = Cohort.objects.filter(source=Source.OPENCLASS, external_id=class_id).first()
    if existing is None or (cohort_name and cohort_name != existing.name):
        return cohort_get_or_create(
            source=Source.OPENCLASS, external_id=class_id, name=cohort_name or vendor_name
        )
    return existing


def _curriculum_records(detail: ClassDetail) -> list[AssignmentRecord]:
    return [
        AssignmentRecord(
            external_id=item.assignment_id,
            unit=item.unit,
            unit_position=item.unit_position,
            position=item.position,
        )
        for item in detail.curriculum
    ]


def _progress_total(tracker: RunTracker, page: ProgressionPage) -> None:
    total = page.page_count
    if total is None:
        return
    # The list can grow while we page through it; never show more done than total.
    total = max(total, tracker.run.progress_done + 1)
    if tracker.run.progress_total != total:
        tracker.set_total(total, unit="pages")


def _page_store(
    tracker: RunTracker, cohort: Cohort, page: ProgressionPage, memo: PullMemo, wrote: _Wrote
) -> set[int]:
    """Write one page in one transaction and record what it did; returns the pks of the
    students it saw."""
    # One record per student and assignment of the page (the client hands the same user
    # and assignment objects on every page, so each is converted once per pull).
    users: dict[str, OpenClassUser] = {}
    kinds: dict[str, OpenClassAssignment] = {}
    for p in page.progressions:
        users[p.user.id] = p.user  # the last one wins, as in students_upsert
        kinds.setdefault(p.assignment.id, p.assignment)  # the first one, as in assignments_upsert
    students = [memo.converted(user, _student_record) for user in users.values()]
    # Progressions carry names and types but no curriculum order: fill, never move.
    assignments = [memo.converted(item, _assignment_record) for item in kinds.values()]
    progressions = [
        ProgressionRecord(
            external_id=p.id,
            student_external_id=p.user.id,
            assignment_external_id=p.assignment.id,
            grade=p.grade,
            started_at=p.started_at,
            completed_at=p.completed_at,
            reviewed_at=p.reviewed_at,
        )
        for p in page.progressions
    ]
    try:
        with transaction.atomic():
            student_ids, student_result = students_upsert(
                cohort=cohort, source=Source.OPENCLASS, records=students, memo=memo
            )
            assignment_ids, assignment_result = assignments_upsert(
                cohort=cohort, records=assignments, fill_only=True, memo=memo
            )
            result = progressions_upsert(
                cohort=cohort,
                source=Source.OPENCLASS,
                records=progressions,
                student_ids=student_ids,
                assignment_ids=assignment_ids,
                memo=memo,
            )
    except BaseException:
        memo.clear()  # it may hold what this page's rolled-back writes claimed
        raise
    wrote.add(student_result, assignment_result, result)
    counts = {
        "fetched": page.fetched,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "failed": len(page.invalid),
    }
    for key, n in counts.items():
        # No flush per key: the caller's advance() shows the page's counts all at once.
        tracker.set_count(key, tracker.run.counts.get(key, 0) + n)
    tracker.item(
        outcome="page",
        key=str(page.page),
        label=f"page {page.page}",
        data={
            **counts,
            "students_created": student_result.created,
            "assignments_created": assignment_result.created,
        },
    )
    for record in page.invalid:
        tracker.item(
            outcome="failed",
            key=record.key,
            group=f"page {page.page}",
            error_class=ErrorClass.INVALID_DATA,
            message=f"Skipped: {record.message}",
        )
    return set(student_ids.values())


def _student_record(user: OpenClassUser) -> StudentRecord:
    return StudentRecord(
        external_id=user.id,
        first_name=user.first_name[:150],
        last_name=user.last_name[:150],
        email=user.email[:254],
    )


def _assignment_record(assignment: OpenClassAssignment) -> AssignmentRecord:
    return AssignmentRecord(
        external_id=assignment.id, name=assignment.name[:300], kind=assignment.type[:30]
    )


def openclass_after_finish(run: Run) -> None:
    cohort_id = run.params.get("cohort_id")
    if not cohort_id:
        # Stopped before the cohort was looked up (sign-in refused, vendor down): the
        # class's cohort still failed a pull, and the run names it for the stale-data
        # alerts (docs/notifications.md).
        cohort_id = (
            Cohort.objects.filter(source=Source.OPENCLASS, external_id=run.params.get("class_id"))
            .values_list("pk", flat=True)
            .first()
        )
        if cohort_id:
            run.params["cohort_id"] = cohort_id
            Run.objects.filter(pk=run.pk).update(params=run.params)
    if cohort_id:
        cohort_mark_synced(
            cohort_id=cohort_id, run_id=run.pk, status=run.status, at=run.finished_at
        )
