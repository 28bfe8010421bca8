"""The Canvas pull: one course, or many as a parent run with one child run per course.

A course pull reads in stages (course, students, assignments, submissions, modules; which
ones depends on the profile), each timed and counted on its run, then stores everything
in one transaction (stage "store"): the course becomes a Cohort (source canvas), its
active students Students (one person across vendors by email), assignments Assignments
and submissions Progressions (integrations/canvas/mapping.py). Upserts compare before
writing, so a re-run over unchanged data writes nothing.

Incremental: after a successful pull of the course, the next one asks Canvas only for
submissions submitted or graded since that pull *started* (less a safety overlap), so
changes made while it ran are not lost. A new student or a new assignment makes it read
every submission again (their older work would not show as "changed").

Bulk: the parent run lists the courses (ids given, or the account's courses by state and
term, up to a maximum), makes one child run per course, and pulls a few at a time
(worker threads only talk HTTP; the main thread writes). A failing course fails its own
run, classified, and the others go on; the parent ends partial and can retry that course
alone from its page. A resumed parent (its worker died) keeps the children that finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from itertools import chain
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cohorts.models import Assignment, Cohort, Source, Student
from cohorts.services import (
    ProgressionRecord,
    PullMemo,
    assignments_upsert,
    cohort_get_or_create,
    cohort_mark_synced,
    enrollment_details_update,
    enrollments_reconcile,
    progressions_upsert,
    students_upsert,
)
from integrations.batches import WriteBatches
from integrations.canvas.client import (
    Bucket,
    CanvasAuthError,
    CanvasClient,
)
from integrations.canvas.mapping import (
    BadRecord,
    Skipped,
    canvas_id,
    map_assignments,
    map_students,
    map_submissions,
)
from integrations.canvas.profiles import (
    DEFAULT_PROFILE,
    DEFAULT_STATE,
    PROFILES,
    ParamsInvalid,
    Profile,
    params_validate,
)
from integrations.changes import cohort_changes_recorded
from integrations.config import require
from integrations.http import (
    AuthError,
    ConfigError,
    MalformedResponse,
    NotFoundError,
    PermissionDenied,
    ThrottledError,
    TransientError,
    VendorError,
    redact,
)
from integrations.jobs import InvalidInput
from integrations.prefetch import Prefetch
from reports.models import ErrorClass, Run, RunKind, RunStatus
from reports.services import (
    RunTracker,
    run_claim,
    run_create,
    run_get_or_create,
    run_lock_key,
)

logger = logging.getLogger("integrations.canvas")

COUNT_KEYS = ("fetched", "created", "updated", "unchanged", "skipped", "failed")
BULK_COUNT_KEYS = ("courses", "succeeded", "failed")
STAGES = ("course", "students", "assignments", "submissions", "modules", "store")
HEARTBEAT_SECONDS = 5.0

# How a failed course is classified on its run and the parent's page.
FAILURE_LABELS = {
    "canvas_api": "Canvas API error",
    "throttled": "Throttled by Canvas",
    "auth": "Token refused",
    "permission": "Permission denied",
    "configuration": "Configuration",
    "data": "Unusable data",
    "timeout": "Timed out",
    "internal": "Internal error",
}
SUCCESS = frozenset({RunStatus.SUCCEEDED, RunStatus.PARTIAL})


def failure_of(exc: BaseException) -> tuple[str, bool]:
    """(kind, whether retrying can help) of what stopped a course pull."""
    if isinstance(exc, ConfigError | ParamsInvalid | InvalidInput):
        return "configuration", False
    if isinstance(exc, ThrottledError):
        return "throttled", True
    if isinstance(exc, AuthError):
        return "auth", False
    if isinstance(exc, PermissionDenied):
        return "permission", False
    if isinstance(exc, MalformedResponse | BadRecord):
        return "data", False
    if isinstance(exc, TransientError):
        return ("timeout" if "timed out" in exc.message else "canvas_api"), True
    if isinstance(exc, NotFoundError):
        return "canvas_api", False
    if isinstance(exc, VendorError):
        return "canvas_api", not exc.permanent
    return "internal", False


# --- Creating runs -----------------------------------------------------------------------


def _subject(params: dict[str, Any]) -> str:
    if params.get("mode") == "course":
        return params.get("cohort_name") or f"Canvas course {params.get('course_id')}"
    ids = params.get("course_ids") or []
    if ids:
        return f"Canvas: {len(ids)} courses"
    term = f", term {params['term']}" if params.get("term") else ""
    most = f", at most {params['max_courses']}" if params.get("max_courses") else ""
    return f"Canvas: {params.get('state', DEFAULT_STATE)} courses{term}{most}"


def canvas_run_create(*, params: dict[str, Any], triggered_by: str, user=None) -> Run:
    """A queued pull. `params`: mode "course" with course_id, or "bulk" with course_ids or
    all=True (state, term, max_courses); profile. Checked when the job starts."""
    params = {"profile": DEFAULT_PROFILE, **params}
    return run_create(
        kind=RunKind.CANVAS_SYNC,
        triggered_by=triggered_by,
        user=user,
        subject=_subject(params),
        params=params,
    )


def canvas_params_for(
    *,
    course_ids: list[str] | None = None,
    all_courses: bool = False,
    state: str = DEFAULT_STATE,
    term: str = "",
    max_courses: int | None = None,
    profile: str = DEFAULT_PROFILE,
) -> dict[str, Any]:
    """Run parameters from the command line's or the page's choices."""
    course_ids = [str(c).strip() for c in course_ids or []]
    if len(course_ids) == 1 and not all_courses:
        return {"mode": "course", "course_id": course_ids[0], "profile": profile}
    params: dict[str, Any] = {"mode": "bulk", "profile": profile, "state": state}
    if course_ids:
        params["course_ids"] = course_ids
    else:
        params["all"] = bool(all_courses)
    if term:
        params["term"] = term
    if max_courses is not None:
        params["max_courses"] = max_courses
    return params


def canvas_run_for_cohort(*, cohort_id: int, triggered_by: str, user=None) -> Run | None:
    """A queued full-profile pull of a Canvas cohort's course, unless one is already queued
    or running (then None). The entry point of "Sync now" and of the cohort's schedule.

    Two presses at the same moment start one run: the run's `lock_key` is refused by the
    database while another live run holds it (`run_get_or_create`); a live pull of the
    course started another way (a bulk child, the command line) also counts."""
    cohort = Cohort.objects.get(pk=cohort_id, source=Source.CANVAS)
    if _live_pull(cohort.external_id, fresh_only=False) is not None:
        return None
    params = {
        "profile": DEFAULT_PROFILE,
        "mode": "course",
        "course_id": cohort.external_id,
        "cohort_name": cohort.name,
    }
    run, created = run_get_or_create(
        kind=RunKind.CANVAS_SYNC,
        triggered_by=triggered_by,
        user=user,
        subject=_subject(params),
        params=params,
        lock_key=run_lock_key(RunKind.CANVAS_SYNC, "course", cohort.external_id),
    )
    return run if created else None


def _live_pull(course_id: str, *, exclude: int | None = None, fresh_only: bool = True):
    """A queued or running pull of this course (running ones still reporting progress)."""
    qs = Run.objects.filter(
        kind=RunKind.CANVAS_SYNC, params__mode="course", params__course_id=course_id
    )
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    if fresh_only:
        fresh = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)
        return qs.filter(status=RunStatus.RUNNING, heartbeat_at__gte=fresh).first()
    return qs.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).first()


# --- Fetching one course (no database: runs in worker threads too) ----------------------

StageFn = Callable[[str], AbstractContextManager[None]]


class StageClock:
    """Stage timings of a fetch that runs off the main thread (copied to its run later)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - began
            self.timings[name] = round(self.timings.get(name, 0.0) + elapsed, 3)


@dataclass
class CourseData:
    course: dict[str, Any] = field(default_factory=dict)
    users: list[dict] = field(default_factory=list)
    enrollments: list[dict] = field(default_factory=list)
    assignments: list[dict] | None = None
    submissions: list[dict] | None = None
    # Streamed instead (a course pull): the submissions pages, read while they are stored.
    submission_pages: Iterator[list[dict]] | None = None
    modules: list[dict] | None = None
    since: str = ""  # the watermark used ("" : every submission was read)
    stage_counts: dict[str, int] = field(default_factory=dict)
    modules_fetched_separately: int = 0


@dataclass(frozen=True)
class Known:
    """What the database already holds of a course, read before a fetch (main thread)."""

    since: str = ""
    students: frozenset[str] = frozenset()
    assignments: frozenset[str] = frozenset()


def course_fetch(
    client: CanvasClient,
    course_id: str,
    profile: Profile,
    known: Known,
    stage: StageFn,
    *,
    stream: bool = False,
) -> CourseData:
    """Read the course. `stream=True` (a course pull): everything but the submissions,
    which are left as a page iterator (`submission_pages`) that `course_store` reads while
    it stores; the modules are then read before them, as the store needs them first."""
    data = CourseData()
    with stage("course"):
        data.course = client.course(course_id)
        data.stage_counts["course"] = 1
    with stage("students"):
        data.enrollments = client.enrollments(course_id)
        data.users = client.students(course_id)
        data.stage_counts["students"] = len(map_students(data.users, data.enrollments).records)
    since = known.since
    if since and not _ids(data.users, "id") <= known.students:
        since = ""  # a new student: their earlier work is not "changed since"
    if profile.assignments:
        with stage("assignments"):
            data.assignments = client.assignments(course_id)
            data.stage_counts["assignments"] = len(data.assignments)
        if since and not _ids(data.assignments, "id") <= known.assignments:
            since = ""
    if profile.submissions and stream:
        data.submission_pages = client.submission_pages(course_id, since=since)
        data.since = since
        data.stage_counts["submissions"] = 0  # counted as the pages are stored
    elif profile.submissions:
        with stage("submissions"):
            data.submissions = client.submissions(course_id, since=since)
            data.since = since
            data.stage_counts["submissions"] = len(data.submissions)
    if profile.modules:
        with stage("modules"):
            data.modules = client.modules(course_id)
            data.stage_counts["modules"] = len(data.modules)
            data.modules_fetched_separately = sum(
                1 for m in data.modules if m.get("items_fetched_separately")
            )
    return data


def _ids(rows: list[dict], key: str) -> set[str]:
    ids = set()
    for row in rows:
        try:
            ids.add(canvas_id(row.get(key), key))
        except BadRecord:
            continue
    return ids


def course_known(course_id: str, profile: Profile, params: dict[str, Any], run: Run) -> Known:
    """The watermark and the ids already stored, for an incremental read of submissions."""
    if not profile.submissions or params.get("full_refresh"):
        return Known()
    cohort = Cohort.objects.filter(source=Source.CANVAS, external_id=course_id).first()
    if cohort is None:
        return Known()
    with_submissions = [p.name for p in PROFILES.values() if p.submissions]
    pulls = (
        Run.objects.filter(
            kind=RunKind.CANVAS_SYNC,
            status__in=list(SUCCESS),
            params__mode="course",
            params__course_id=course_id,
            params__profile__in=with_submissions,
            started_at__isnull=False,
        )
        .exclude(pk=run.pk)
        .order_by("-started_at")
    )
    previous = pulls.first()
    if previous is None:
        return Known()
    # A pull since then that failed half-way stored students and assignments without all
    # of their submissions: they would look known, so read everything again.
    if (
        Run.objects.filter(
            kind=RunKind.CANVAS_SYNC,
            params__mode="course",
            params__course_id=course_id,
            params__stored_partially=True,
            started_at__gt=previous.started_at,
        )
        .exclude(pk=run.pk)
        .exists()
    ):
        return Known()
    hours = int(settings.CANVAS_FULL_REFRESH_HOURS)
    if hours > 0:
        # Missing flags appear when a due date passes, which no "since" read returns:
        # every so often, read every submission again.
        last_full = pulls.filter(params__full_read=True).first()
        if last_full is None or last_full.started_at < timezone.now() - timedelta(hours=hours):
            return Known()
    overlap = timedelta(seconds=settings.CANVAS_WATERMARK_OVERLAP_SECONDS)
    since = (previous.started_at - overlap).astimezone(UTC)
    return Known(
        since=since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        students=frozenset(
            Student.objects.filter(enrollments__cohort=cohort, source=Source.CANVAS).values_list(
                "external_id", flat=True
            )
        ),
        assignments=frozenset(
            Assignment.objects.filter(cohort=cohort).values_list("external_id", flat=True)
        ),
    )


# --- Storing one course (main thread) --------------------------------------------------


def _cohort_for(course_id: str, name: str, cohort_name: str = "") -> Cohort:
    """The course's cohort. Canvas's name only names a new one (an admin may rename it)."""
    existing = Cohort.objects.filter(source=Source.CANVAS, external_id=course_id).first()
    if existing is None or (cohort_name and cohort_name != existing.name):
        return cohort_get_or_create(
            source=Source.CANVAS, external_id=course_id, name=(cohort_name or name)[:200]
        )
    return existing


def course_store(tracker: RunTracker, data: CourseData) -> None:
    """Write a fetched course and record what it did on the run. The cohort's two health
    snapshots are timed as "snapshot" (`_store_stage` books them apart).

    Submissions read whole (a course of a bulk pull): everything in one transaction.
    Streamed (`data.submission_pages`, a course pull): nothing is written before the first
    submissions page has arrived, and each page is stored while the next one is read
    (`integrations.prefetch.Prefetch`), so memory does not grow with the course. Pages go
    several to a transaction (`integrations.batches.WriteBatches`), committed when the next
    page is not there within 50 ms, so the write lock is never held longer while waiting
    for Canvas. A pull that fails before
    its first commit leaves nothing of the course stored, as before; one that fails later
    keeps the pages it committed and says so (`params.stored_partially`): the next pull of
    the course then reads every submission again (`course_known`).
    """
    run = tracker.run
    course_id = canvas_id(data.course.get("id"), "course id")
    name = str(data.course.get("name") or f"Canvas course {course_id}")
    students = map_students(data.users, data.enrollments)
    assignments = (
        map_assignments(data.assignments, data.modules) if data.assignments is not None else None
    )
    writer = _CourseWriter(tracker, course_id, name, students, assignments)
    if data.submission_pages is not None and assignments is not None:
        # Only an incremental read lists a pair twice (submitted since, graded since): a
        # full one lists each once, so it need not remember what it wrote (flat memory).
        writer.streamed(data.submission_pages, remember=bool(data.since))
        data.stage_counts["submissions"] = writer.served
    else:
        whole = [data.submissions] if data.submissions is not None else []
        with transaction.atomic():
            writer.write(iter(whole))
    skipped = writer.skipped
    fetched = sum(v for k, v in data.stage_counts.items() if k != "course")
    invalid = [s for s in skipped if s.invalid]
    counts = {
        **data.stage_counts,
        "fetched": fetched,
        **writer.totals,
        "enrollments_updated": writer.details_written,
        "skipped": len(skipped) - len(invalid),
        "failed": len(invalid),
    }
    counts["left"], counts["returned"] = writer.left, writer.returned
    for key, value in counts.items():
        tracker.set_count(key, value)
    tracker.item(
        outcome="course",
        key=course_id,
        label=name[:300],
        data={
            "cohort_id": writer.cohort_id,
            "since": data.since,
            "modules_fetched_separately": data.modules_fetched_separately,
            **counts,
        },
    )
    for record in invalid:
        tracker.item(
            outcome="failed",
            key=record.key,
            group=record.kind,
            error_class=ErrorClass.INVALID_DATA,
            message=f"Skipped: {record.reason}",
        )
    if data.since:
        run.params["since"] = data.since
    if data.submissions is not None or data.submission_pages is not None:
        run.params["full_read"] = not data.since


# Submissions written in one upsert at most (progressions_upsert's statement size).
WRITE_ROWS = 500


class _CourseWriter:
    """The writes of one course: cohort, students, assignments, then submissions page by
    page, counted exactly as one write of the whole list would be."""

    def __init__(self, tracker: RunTracker, course_id: str, name: str, students, assignments):
        self.tracker = tracker
        self.course_id, self.name = course_id, name
        self.students, self.assignments = students, assignments
        self.totals = {"created": 0, "updated": 0, "unchanged": 0}
        self.skipped: list[Skipped] = [*students.skipped]
        if assignments is not None:
            self.skipped += assignments.skipped
        self.served = 0
        self.details_written = self.left = self.returned = 0
        self.cohort_id: int | None = None
        self.wrote = False  # whether anything of the cohort's data changed
        # The cohort's stored progressions, read once for the whole pull (not per page).
        self._memo = PullMemo()
        self.waited = 0.0  # streamed: seconds waiting for Canvas's next page
        # Progression ids this pull wrote, when its read may list a pair twice.
        self._seen: set[str] | None = None
        # Streamed: what opens a batch before a write, what ends a page, whether Canvas's
        # next page is there (`streamed` sets them; read whole, one transaction holds all).
        self._before_write: Callable[[], None] = lambda: None
        self._after_page: Callable[[], None] = lambda: None
        self._next_ready: Callable[[], bool] = lambda: True
        self._before_wait: Callable[[], None] = lambda: None

    def write(self, pages: Iterator[list[dict]]) -> None:
        run = self.tracker.run
        cohort = _cohort_for(self.course_id, self.name, str(run.params.get("cohort_name") or ""))
        self.cohort_id = cohort.pk
        run.params["cohort_id"] = cohort.pk
        run.params["canvas_course_id"] = self.course_id
        # What the pull changed goes on the run (docs/notifications.md), as for OpenClass.
        snapshot = StageClock()
        try:
            # A pull that wrote nothing leaves the stored health valid (after = before).
            with cohort_changes_recorded(
                self.tracker,
                cohort,
                timing=lambda: snapshot.stage("snapshot"),
                wrote=lambda: self.wrote,
            ):
                self._write(cohort, pages)
        finally:
            timings = run.stage_timings
            spent = snapshot.timings.get("snapshot", 0.0)
            timings["snapshot"] = round(timings.get("snapshot", 0.0) + spent, 3)
        Run.objects.filter(pk=run.pk).update(params=run.params)

    def _write(self, cohort: Cohort, pages: Iterator[list[dict]]) -> None:
        with transaction.atomic():
            student_ids, result = students_upsert(
                cohort=cohort, source=Source.CANVAS, records=self.students.records
            )
            _add(self.totals, result)
            self.wrote = self.wrote or result.wrote
            details = {
                student_ids[u]: d for u, d in self.students.details.items() if u in student_ids
            }
            # Scores and last activity, per enrollment: counted apart from the records.
            self.details_written = enrollment_details_update(cohort=cohort, details=details)
            self.wrote = self.wrote or bool(self.details_written)
            assignment_ids: dict[str, int] = {}
            if self.assignments is not None:
                assignment_ids, result = assignments_upsert(
                    cohort=cohort, records=self.assignments.records
                )
                _add(self.totals, result)
                self.wrote = self.wrote or result.wrote
        if self.assignments is not None:
            keys = set(student_ids)
            pending: list[ProgressionRecord] = []
            for page in pages:
                mapped = map_submissions(page, points=self.assignments.points, student_ids=keys)
                self.skipped += mapped.skipped
                pending += mapped.records
                # Written once a statement's worth is there, or when Canvas's next page is
                # not: fewer, larger writes while the pull is behind, none held back while
                # it waits.
                if len(pending) >= WRITE_ROWS or not self._next_ready():
                    self._progressions(cohort, pending, student_ids, assignment_ids)
                    pending = []
                self._after_page()
            self._progressions(cohort, pending, student_ids, assignment_ids)
        self.left, self.returned = _reconcile(cohort, set(student_ids.values()))
        self.wrote = self.wrote or bool(self.left or self.returned)

    def _progressions(self, cohort, records, student_ids, assignment_ids) -> None:
        """Upsert these records (their own savepoint), counted as in one write of the whole
        list: a pair already written by this pull (read twice: the submitted-since and the
        graded-since reads) is written again, as the later read wins, but not counted."""
        if not records:
            return
        seen = self._seen
        again: list[ProgressionRecord] = []
        if seen is not None:
            if not seen.isdisjoint(r.external_id for r in records):
                again = [r for r in records if r.external_id in seen]
                records = [r for r in records if r.external_id not in seen]
            seen.update(r.external_id for r in records)
        self._before_write()
        with transaction.atomic():
            for batch, counted in ((records, True), (again, False)):
                if not batch:
                    continue
                result = progressions_upsert(
                    cohort=cohort,
                    source=Source.CANVAS,
                    records=batch,
                    student_ids=student_ids,
                    assignment_ids=assignment_ids,
                    memo=self._memo,
                )
                self.wrote = self.wrote or result.wrote
                if counted:
                    _add(self.totals, result)

    def streamed(self, pages: Iterator[list[dict]], *, remember: bool) -> None:
        """Store the pages as they arrive (see `course_store`). `remember`: the read may list
        a pair twice, so remember which were written, to count each once."""
        if remember:
            self._seen = set()
        tracker = self.tracker
        timings = tracker.run.stage_timings
        waited_before = timings.get("submissions", 0.0)
        batches = WriteBatches()
        try:
            with (
                Prefetch(pages, name="canvas-submissions") as prefetch,
                tracker.stage("submissions", unit="pages"),
            ):
                arrivals = self._arrivals(prefetch)
                try:
                    first = next(arrivals, None)  # a refusal here: nothing was written
                    batches.begin()

                    def after_page() -> None:
                        tracker.advance()
                        batches.page_done()

                    # A batch is opened by the next write, not before waiting for Canvas.
                    self._before_write = batches.begin
                    self._after_page = after_page
                    self._next_ready = prefetch.ready
                    self._before_wait = lambda: batches.before_wait(prefetch.ready)
                    self.write(chain([first] if first is not None else [], arrivals))
                except BaseException as exc:
                    if batches.committed:
                        batches.end()  # the pages stored before the failure stay
                        tracker.run.params["stored_partially"] = True
                        for key, value in self.totals.items():
                            tracker.set_count(key, value)
                    else:
                        batches.end(exc)  # nothing of the course was committed
                        tracker.discard_items()
                    raise
                batches.end()
        finally:
            # The stage's own clock counted the writes too: only the waits are Canvas's.
            timings["submissions"] = round(waited_before + self.waited, 3)
        tracker.run.stage = "store"

    def _arrivals(self, prefetch: Prefetch) -> Iterator[list[dict]]:
        while True:
            began = time.monotonic()
            self._before_wait()
            try:
                page = next(prefetch)
            except StopIteration:
                return
            finally:
                self.waited += time.monotonic() - began
            self.served += len(page)
            yield page


def _add(totals: dict[str, int], result) -> None:
    totals["created"] += result.created
    totals["updated"] += result.updated
    totals["unchanged"] += result.unchanged


def _reconcile(cohort: Cohort, seen: set[int]) -> tuple[int, int]:
    """Students the (complete) students stage no longer saw have left the cohort; those
    seen again are back (issue 7's rule, as for OpenClass). Returns (left, returned)."""
    result = enrollments_reconcile(cohort=cohort, seen_student_ids=seen)
    return result.left, result.returned


# --- The job -----------------------------------------------------------------------------


def canvas_sync_job(tracker: RunTracker) -> None:
    params = tracker.run.params
    try:
        params_validate(params)
    except ParamsInvalid as exc:
        raise InvalidInput(str(exc)) from None
    if params["mode"] == "bulk":
        _bulk_job(tracker)
        return
    try:
        _course_job(tracker)
    except Exception as exc:
        # Said on the run as for a course of a bulk pull: what failed, and whether a
        # retry can help. job_execute then records the failure itself.
        kind, retryable = failure_of(exc)
        params["failure"] = {
            "kind": kind,
            "label": FAILURE_LABELS[kind],
            "retryable": retryable,
        }
        raise


def _course_job(tracker: RunTracker) -> None:
    params = tracker.run.params
    client = CanvasClient.from_settings()  # ConfigError here: nothing was sent
    course_id = str(params["course_id"])
    busy = _live_pull(course_id, exclude=tracker.run.pk)
    if busy is not None:
        raise InvalidInput(
            f"A pull of course {course_id} is already running (run #{busy.pk}); "
            "this one sent nothing. Try again when it has finished."
        )
    existing = Cohort.objects.filter(source=Source.CANVAS, external_id=course_id).first()
    if existing is not None:
        params["cohort_id"] = existing.pk  # a failure marks the cohort's freshness too
    profile = PROFILES[params.get("profile", DEFAULT_PROFILE)]
    known = course_known(course_id, profile, params, tracker.run)
    for key in COUNT_KEYS:
        tracker.set_count(key, 0)
    data = course_fetch(client, course_id, profile, known, tracker.stage, stream=True)
    _store_stage(tracker, data)
    _bucket_note(tracker.run, client.bucket)


def _store_stage(tracker: RunTracker, data: CourseData) -> None:
    """The "store" stage, less the health snapshots' share, booked as "snapshot", and less
    the time spent waiting for streamed submissions pages, booked as "submissions"."""
    timings = tracker.run.stage_timings
    before = {k: timings.get(k, 0.0) for k in ("snapshot", "submissions")}
    try:
        with tracker.stage("store"):
            course_store(tracker, data)
    finally:
        spent = sum(timings.get(k, 0.0) - v for k, v in before.items())
        if spent and "store" in timings:
            timings["store"] = round(max(0.0, timings["store"] - spent), 3)


def _bucket_note(run: Run, bucket: Bucket) -> None:
    run.params["rate_limit"] = {
        "slowdowns": bucket.slowdowns,
        "slowed_seconds": round(bucket.slowed_seconds, 2),
        "cost": round(bucket.cost, 2),
    }


# --- Bulk --------------------------------------------------------------------------------


def _bulk_targets(client: CanvasClient, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(course id, name) of each course to pull, in Canvas's order."""
    if params.get("course_ids"):
        return [(str(c), "") for c in params["course_ids"]]
    account = require("CANVAS_ACCOUNT_ID")["CANVAS_ACCOUNT_ID"]
    limit = params.get("max_courses")
    found: list[tuple[str, str]] = []
    for page in client.account_courses(
        account, state=params.get("state", DEFAULT_STATE), term=str(params.get("term") or "")
    ):
        for course in page:
            try:
                found.append((canvas_id(course.get("id"), "course id"), str(course.get("name"))))
            except BadRecord:
                continue
            if limit and len(found) >= limit:
                return found
    return found


def _children(parent: Run, targets: list[tuple[str, str]], profile: str) -> list[Run]:
    """The parent's child runs, one per course; a resumed parent reuses those it made."""
    existing = {
        str(r.params.get("course_id")): r
        for r in Run.objects.filter(
            kind=RunKind.CANVAS_SYNC, params__parent_run_id=parent.pk
        ).order_by("id")
    }
    children = []
    for course_id, name in targets:
        child = existing.get(course_id)
        if child is None:
            params = {
                "mode": "course",
                "course_id": course_id,
                "profile": profile,
                "parent_run_id": parent.pk,
                "child_key": course_id,
            }
            child = run_create(
                kind=RunKind.CANVAS_SYNC,
                triggered_by=f"run:{parent.pk}",
                user=parent.user,
                subject=name or f"Canvas course {course_id}",
                params=params,
            )
        children.append(child)
    parent.params["child_run_ids"] = [c.pk for c in children]
    return children


@dataclass
class _InFlight:
    run: Run
    tracker: RunTracker
    clock: StageClock


def _child_start(child: Run) -> Run | None:
    """Claim a child to pull it here. A child left running by a dead worker is taken back;
    None when it finished already or another worker holds it."""
    child.refresh_from_db()
    if child.is_finished:
        return None
    if child.status == RunStatus.RUNNING:
        stale = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)
        if child.heartbeat_at and child.heartbeat_at >= stale and not _parent_resumed(child):
            return None
        Run.objects.filter(pk=child.pk, status=RunStatus.RUNNING).update(status=RunStatus.QUEUED)
    claimed = run_claim(run_id=child.pk)
    if claimed is None:
        return None
    if claimed.counts or claimed.stage_timings:
        claimed.items.all().delete()
        claimed.counts, claimed.stage_timings = {}, {}
        claimed.save(update_fields=["counts", "stage_timings"])
    return claimed


def _parent_resumed(child: Run) -> bool:
    parent = Run.objects.filter(pk=child.params.get("parent_run_id")).first()
    return bool(parent and parent.params.get("resumes"))


def _fetch_course(
    profile: Profile, course_id: str, known: Known, bucket: Bucket, clock: StageClock
) -> CourseData:
    client = CanvasClient.from_settings(bucket=bucket)
    return course_fetch(client, course_id, profile, known, clock.stage)


def _bulk_job(tracker: RunTracker) -> None:
    parent = tracker.run
    params = parent.params
    profile = PROFILES[params.get("profile", DEFAULT_PROFILE)]
    client = CanvasClient.from_settings()  # ConfigError here: nothing was sent
    with tracker.stage("courses", unit="courses"):
        targets = _bulk_targets(client, params)
        children = _children(parent, targets, profile.name)
    for key in BULK_COUNT_KEYS:
        tracker.set_count(key, 0)
    tracker.set_count("courses", len(children))
    concurrency = max(1, min(profile.concurrency, int(settings.CANVAS_CONCURRENCY)))
    bucket = client.bucket
    with tracker.stage("pull", total=len(children), unit="courses"):
        pending = list(children)
        waiting: list[Run] = []  # held by another worker: wait for them to finish
        in_flight: dict[Future, _InFlight] = {}
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="canvas") as pool:
            while pending or in_flight:
                while pending and len(in_flight) < concurrency:
                    child = pending.pop(0)
                    claimed = _child_start(child)
                    if claimed is None:
                        child.refresh_from_db()
                        if child.is_finished:
                            tracker.advance()
                        else:
                            waiting.append(child)
                        continue
                    flight = _child_launch(pool, claimed, profile, bucket)
                    if isinstance(flight, tuple):
                        in_flight[flight[0]] = flight[1]
                    else:
                        tracker.advance()
                if not in_flight:
                    break
                done, _ = wait(in_flight, timeout=HEARTBEAT_SECONDS, return_when=FIRST_COMPLETED)
                tracker.set_total(len(children))  # keeps the parent's heartbeat fresh
                for flight in in_flight.values():
                    flight.tracker.set_total(None)  # and each course's being fetched
                for future in done:
                    flight = in_flight.pop(future)
                    _child_finish(flight, future)
                    tracker.advance()
                    if _auth_failed(flight.run):
                        # A refused token fails every course alike: stop asking.
                        for child in pending:
                            _child_skip(child, "not pulled: Canvas refused the token")
                            tracker.advance()
                        pending = []
        for child in waiting:
            _child_wait(tracker, child)
            tracker.advance()
    _bulk_summary(tracker, children)
    _bucket_note(parent, bucket)


def _child_launch(pool: ThreadPoolExecutor, child: Run, profile: Profile, bucket: Bucket):
    tracker = RunTracker(child)
    course_id = str(child.params["course_id"])
    busy = _live_pull(course_id, exclude=child.pk)
    if busy is not None:
        tracker.finish(
            status=RunStatus.INVALID,
            message=f"A pull of course {course_id} is already running (run #{busy.pk}).",
            error_class=ErrorClass.CONFIG,
        )
        return None
    known = course_known(course_id, profile, child.params, child)
    clock = StageClock()
    tracker.run.stage = "fetch"
    tracker.set_total(None)
    future = pool.submit(_fetch_course, profile, course_id, known, bucket, clock)
    return future, _InFlight(child, tracker, clock)


def _child_finish(flight: _InFlight, future: Future) -> None:
    tracker, run = flight.tracker, flight.run
    for name, seconds in flight.clock.timings.items():
        run.stage_timings[name] = seconds
    try:
        data = future.result()
        _store_stage(tracker, data)
    except BaseException as exc:
        if not isinstance(exc, Exception):
            raise
        _child_fail(tracker, exc)
    else:
        tracker.finish()
    canvas_after_finish(tracker.run)


def _child_fail(tracker: RunTracker, exc: Exception) -> None:
    kind, retryable = failure_of(exc)
    if isinstance(exc, VendorError):
        message, error_class = exc.message, exc.error_class
    elif isinstance(exc, ConfigError):
        message, error_class = str(exc), ErrorClass.CONFIG
    else:
        logger.exception("Canvas course pull of run %s crashed", tracker.run.pk)
        message = f"{type(exc).__name__}: {exc}"
        error_class = ErrorClass.INTERNAL
    tracker.run.params["failure"] = {
        "kind": kind,
        "label": FAILURE_LABELS[kind],
        "retryable": retryable,
    }
    Run.objects.filter(pk=tracker.run.pk).update(params=tracker.run.params)
    tracker.finish(status=RunStatus.FAILED, message=redact(message), error_class=error_class)


def _child_skip(child: Run, message: str) -> None:
    claimed = _child_start(child)
    if claimed is None:
        return
    tracker = RunTracker(claimed)
    claimed.params["failure"] = {
        "kind": "auth",
        "label": FAILURE_LABELS["auth"],
        "retryable": False,
    }
    Run.objects.filter(pk=claimed.pk).update(params=claimed.params)
    tracker.finish(status=RunStatus.FAILED, message=message, error_class=ErrorClass.AUTH)


def _auth_failed(run: Run) -> bool:
    return (run.params.get("failure") or {}).get("kind") == "auth"


def _child_wait(tracker: RunTracker, child: Run) -> None:
    """Wait for a child another worker is pulling (a retry, or the reaper's resume)."""
    limit = time.monotonic() + settings.RUN_STALE_SECONDS
    while time.monotonic() < limit:
        child.refresh_from_db()
        if child.is_finished:
            return
        tracker.set_total(tracker.run.progress_total)
        time.sleep(1.0)


def bulk_children(parent: Run) -> list[Run]:
    """The latest run of each course of a bulk pull (a retried course: its retry)."""
    latest: dict[str, Run] = {}
    for run in Run.objects.filter(
        kind=RunKind.CANVAS_SYNC, params__parent_run_id=parent.pk
    ).order_by("id"):
        latest[str(run.params.get("course_id"))] = run
    return list(latest.values())


def bulk_stats(children: list[Run]) -> dict[str, Any]:
    finished = [c for c in children if c.is_finished]
    ok = [c for c in finished if c.status in SUCCESS]
    durations = [c.duration_seconds for c in finished if c.duration_seconds is not None]
    return {
        "courses": len(children),
        "finished": len(finished),
        "succeeded": len(ok),
        "failed": len(finished) - len(ok),
        "success_rate": (len(ok) / len(finished)) if finished else None,
        "average_seconds": (sum(durations) / len(durations)) if durations else None,
    }


def _bulk_summary(tracker: RunTracker, children: list[Run]) -> None:
    parent = tracker.run
    latest = bulk_children(parent)
    stats = bulk_stats(latest)
    for key in ("fetched", "created", "updated", "unchanged", "skipped"):
        tracker.set_count(key, sum(int(c.counts.get(key, 0)) for c in latest))
    tracker.set_count("courses", stats["courses"])
    tracker.set_count("succeeded", stats["succeeded"])
    tracker.set_count("failed", stats["failed"])
    parent.message = _bulk_message(stats)
    if latest and not stats["succeeded"] and all(_auth_failed(c) for c in latest):
        raise CanvasAuthError(
            "Canvas refused the token (401): check CANVAS_TOKEN; no course was pulled",
            status=401,
        )


def _bulk_message(stats: dict[str, Any]) -> str:
    if not stats["courses"]:
        return "No course matched the filters; nothing was pulled."
    rate = stats["success_rate"]
    average = stats["average_seconds"]
    parts = [f"{stats['succeeded']} of {stats['courses']} courses pulled"]
    if rate is not None:
        parts.append(f"success rate {rate:.0%}")
    if average is not None:
        parts.append(f"{average:.1f} s per course on average")
    return "; ".join(parts) + "."


def canvas_after_finish(run: Run) -> None:
    """Cohort freshness after a course pull; a retried child refreshes its parent."""
    cohort_id = run.params.get("cohort_id")
    if cohort_id and run.params.get("mode") == "course":
        cohort_mark_synced(
            cohort_id=cohort_id, run_id=run.pk, status=run.status, at=run.finished_at
        )
    parent_id = run.params.get("parent_run_id")
    if parent_id and run.params.get("retry_of"):
        parent_refresh(parent_id)


def parent_refresh(parent_id: int) -> None:
    """Recount a finished bulk run from the latest run of each course (after a retry)."""
    parent = Run.objects.filter(pk=parent_id).first()
    if parent is None or not parent.is_finished:
        return
    latest = bulk_children(parent)
    stats = bulk_stats(latest)
    counts = dict(parent.counts)
    counts.update(succeeded=stats["succeeded"], failed=stats["failed"], courses=stats["courses"])
    for key in ("fetched", "created", "updated", "unchanged", "skipped"):
        counts[key] = sum(int(c.counts.get(key, 0)) for c in latest)
    status = parent.status
    if parent.status in SUCCESS and stats["finished"] == stats["courses"]:
        status = RunStatus.PARTIAL if stats["failed"] else RunStatus.SUCCEEDED
    Run.objects.filter(pk=parent.pk).update(
        counts=counts, status=status, message=_bulk_message(stats)
    )


def canvas_retry_child(*, child: Run, triggered_by: str, user=None) -> Run:
    """A new run of one failed course of a bulk pull, under the same parent."""
    if child.params.get("mode") != "course" or not child.params.get("parent_run_id"):
        raise ValueError("Only a course of a bulk pull can be retried from its parent.")
    if not child.is_finished or child.status in SUCCESS:
        raise ValueError("Only a course whose pull failed can be retried.")
    if _live_pull(str(child.params["course_id"]), fresh_only=False) is not None:
        raise ValueError("A pull of this course is already queued or running.")
    params = {
        key: child.params[key]
        for key in ("mode", "course_id", "profile", "parent_run_id", "child_key")
        if key in child.params
    }
    params["retry_of"] = child.pk
    return run_create(
        kind=RunKind.CANVAS_SYNC,
        triggered_by=triggered_by,
        user=user,
        subject=child.subject,
        params=params,
    )


def canvas_scheduled_pull(params_json: str) -> str | None:
    """Entry point of a schedule made on the Canvas page: pull that selection now."""
    import json

    from integrations.tasks import run_job

    run = canvas_run_create(params=json.loads(params_json), triggered_by="schedule")
    return run_job(run.pk)
