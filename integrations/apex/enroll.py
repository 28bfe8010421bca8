"""The APEX enrollment job: a stored roster CSV into APEX classrooms.

Stages: validate (read the roster, record its row problems) → authenticate → enroll
(progress in rows) → report. Classrooms are sent concurrently, each classroom's batches
in order; worker threads only talk HTTP and hand their results to the main thread, which
alone writes to the database (SQLite allows one writer) and records each batch in one
transaction, so a batch is either fully recorded or not at all.

Resuming: every recorded row is keyed by its spreadsheet row number (`RunItem.seq`) in
the run's stored roster. A resumed run keeps the rows already recorded as enrolled or
already enrolled, forgets the rest, and sends only those again; a batch that went through
but was not recorded before a crash is answered "Enrollment already exists" and counted
as already enrolled, so nothing is enrolled twice and every row ends with one outcome.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from integrations.apex.client import (
    ApexClient,
    BatchResult,
    ClassroomNotFound,
    Outcome,
    Student,
)
from integrations.apex.roster import INVALID, Roster, RosterRefused, RosterRow, roster_read
from integrations.config import require
from integrations.http import ConfigError, MalformedResponse, TransientError, VendorError, redact
from integrations.models import RosterUpload
from integrations.rosters import roster_store_path, roster_stored
from reports.actions import RunAction
from reports.constants import ErrorClass
from reports.models import Run, RunKind, RunStatus
from reports.services import RunTracker, run_create, run_get_or_create, run_live_for, run_lock_key

logger = logging.getLogger(__name__)

ENROLLED = Outcome.ENROLLED.value
ALREADY_ENROLLED = Outcome.ALREADY_ENROLLED.value
FAILED = Outcome.FAILED.value
SKIPPED = "skipped"
WOULD_SEND = "would_send"
INVALID_OUTCOME = "invalid"
DONE_OUTCOMES = (ENROLLED, ALREADY_ENROLLED)
COUNT_KEYS = ("rows", "classrooms", ENROLLED, ALREADY_ENROLLED, FAILED, SKIPPED, "invalid")

# A whole-batch failure (retries of the HTTP layer used up, or a malformed answer) gets
# this many attempts in all before it fails the run (transient) or its rows (malformed).
BATCH_ATTEMPTS = 2
# The main thread wakes this often while workers wait, to keep the run's heartbeat fresh.
HEARTBEAT_SECONDS = 5.0
# At most this many answered batches are recorded in one transaction.
RECORD_AT_ONCE = 20
ERROR_LOG_HEADER = ("ClassroomName", "StudentId", "Code", "Message", "Row")


class ResumeRefused(Exception):
    """The run cannot be resumed; the message says why."""


# --- creating and resuming runs --------------------------------------------------------
def apex_lock_key(upload_id: int) -> str:
    """One live run per stored roster: two confirms of one upload start one run."""
    return run_lock_key(RunKind.APEX_ENROLL, "upload", upload_id)


def apex_run_create(*, upload: RosterUpload, dry_run: bool, triggered_by: str, user=None) -> Run:
    """A queued run of the upload, or the upload's live run if one is queued or running."""
    run, _created = apex_run_start(
        upload=upload, dry_run=dry_run, triggered_by=triggered_by, user=user
    )
    return run


def apex_run_start(
    *, upload: RosterUpload, dry_run: bool, triggered_by: str, user=None
) -> tuple[Run, bool]:
    """(a new queued run of the upload, True), or (its live run, False)."""
    return run_get_or_create(
        lock_key=apex_lock_key(upload.pk),
        kind=RunKind.APEX_ENROLL,
        triggered_by=triggered_by,
        user=user,
        dry_run=dry_run,
        subject=upload.original_name,
        params={
            "roster_id": upload.pk,
            "file_name": upload.original_name,
            "sha256": upload.sha256,
            "size": upload.size,
        },
    )


def apex_run_from_path(path: str | os.PathLike, *, dry_run: bool, triggered_by: str) -> Run:
    """A queued run for a local file (the command). A file that cannot even be stored
    still gets a run, which the job closes as invalid with the reason."""
    path = Path(path)
    upload, refusal = roster_store_path(path)
    if upload is not None:
        return apex_run_create(upload=upload, dry_run=dry_run, triggered_by=triggered_by)
    return run_create(
        kind=RunKind.APEX_ENROLL,
        triggered_by=triggered_by,
        dry_run=dry_run,
        subject=path.name,
        params={"file_name": path.name, "refused": refusal},
    )


def apex_resume_problem(run: Run) -> str | None:
    """Why this run cannot be resumed now, or None when it can."""
    if run.kind != RunKind.APEX_ENROLL:
        return f"Run {run.pk} is not an APEX enrollment."
    if run.dry_run:
        return f"Run {run.pk} is a dry run: it sent nothing, so there is nothing to resume."
    if not run.params.get("roster_id"):
        return f"Run {run.pk} has no stored roster to resume from."
    if run.items_pruned_at:
        # Resuming skips the rows its items record as done; without them it would resend all.
        return (
            f"Run {run.pk}'s items were pruned on {run.items_pruned_at:%Y-%m-%d} (retention); "
            "run the file again instead."
        )
    if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        # The same threshold as the run reaper (integrations.tasks.runs_reap), which
        # re-queues such runs by itself; a resume by hand just need not wait for it.
        stale_after = timedelta(seconds=settings.RUN_STALE_SECONDS)
        beat = run.heartbeat_at or run.started_at or run.created_at
        if timezone.now() - beat < stale_after:
            return (
                f"Run {run.pk} is still {run.get_status_display().lower()}; it can be resumed "
                f"once it has shown no progress for {settings.RUN_STALE_SECONDS} seconds "
                "(a stopped worker)."
            )
        return None
    if run.status in (RunStatus.FAILED, RunStatus.INVALID):
        return None
    return (
        f"Run {run.pk} finished ({run.get_status_display().lower()}). To retry its failed "
        "rows, run the file again: students already enrolled are reported as such."
    )


def apex_run_resume(*, run_id: int, triggered_by: str) -> Run:
    """Queue a failed, invalid or dead run again; it skips the rows already done."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        problem = apex_resume_problem(run)
        if problem:
            raise ResumeRefused(problem)
        now = timezone.now()
        history = [*run.params.get("resumed", [])]
        history.append({"by": triggered_by[:200], "at": now.isoformat(), "from": run.status})
        run.params = {**run.params, "resumed": history}
        run.status = RunStatus.QUEUED
        run.finished_at = None
        run.message = ""
        run.error_class = ""
        run.stage = ""
        run.heartbeat_at = now
        run.queued_at = now
        try:
            with transaction.atomic():
                run.save(
                    update_fields=[
                        "params",
                        "status",
                        "finished_at",
                        "message",
                        "error_class",
                        "stage",
                        "heartbeat_at",
                        "queued_at",
                    ]
                )
        except IntegrityError:
            # Another run of the same file is queued or running (its lock key is taken).
            live = run_live_for(lock_key=run.lock_key)
            holder = f"Run {live.pk}" if live else "Another run"
            raise ResumeRefused(
                f"{holder} of this file is already under way; run {run.pk} can be resumed "
                "once it has finished."
            ) from None
    return run


# --- the job ---------------------------------------------------------------------------
def apex_enroll_job(tracker: RunTracker) -> None:
    run = tracker.run
    params = run.params
    if params.get("refused"):
        raise RosterRefused(params["refused"])
    upload = roster_stored(params.get("roster_id"))
    batch_size, concurrency = _limits()
    require("APEX_BASE_URL", "APEX_CLIENT_ID", "APEX_CLIENT_SECRET", secret=("APEX_CLIENT_SECRET",))
    done_before = _prepare_resume(tracker)

    with tracker.stage("validate", unit="rows"):
        roster = roster_read(upload.path, on_progress=lambda n: _progress_to(tracker, n))
        _record_problems(tracker, roster, done_before)
    pending = {
        classroom: [row for row in rows if row.row not in done_before]
        for classroom, rows in roster.classrooms.items()
    }
    pending = {classroom: rows for classroom, rows in pending.items() if rows}
    to_send = sum(len(rows) for rows in pending.values())

    # Progress counts the rows the file has: rows that already have an outcome (invalid,
    # duplicate, done before a resume) are done before the first request.
    settled = roster.rows - to_send

    if run.dry_run:
        # The one read-only call the contract allows: a token. A refusal fails the run
        # here, so a dry run says whether the credentials work; nothing else is sent.
        client = ApexClient.from_settings()
        try:
            with tracker.stage("authenticate"):
                client.authenticate()
        finally:
            client.close()
        with tracker.stage("report", total=roster.rows, unit="rows"):
            tracker.advance(settled)
            _record_dry_run(tracker, pending, batch_size)
            run.message = _summary(run, roster, done_before, to_send=to_send, dry_run=True)
        return

    client = ApexClient.from_settings()
    try:
        if to_send:
            with tracker.stage("authenticate"):
                client.authenticate()
        _send_all(tracker, client, pending, batch_size, concurrency, to_send, rows=roster.rows)
    finally:
        client.close()
    with tracker.stage("report"):
        run.message = _summary(run, roster, done_before, to_send=to_send, dry_run=False)


def _limits() -> tuple[int, int]:
    batch_size = settings.APEX_BATCH_SIZE
    concurrency = settings.APEX_CONCURRENCY
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"APEX_BATCH_SIZE must be a whole number of 1 or more, got {batch_size}")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(
            f"APEX_CONCURRENCY must be a whole number of 1 or more, got {concurrency}"
        )
    return batch_size, concurrency


def _prepare_resume(tracker: RunTracker) -> set[int]:
    """Keep the rows this run already got through; forget every other outcome (they are
    recorded again) and rebuild the counts from what is kept. A new run keeps nothing."""
    run = tracker.run
    tracker.flush_items()
    with transaction.atomic():
        run.items.exclude(outcome__in=DONE_OUTCOMES).delete()
    kept = dict(run.items.values_list("outcome").annotate(n=Count("id")).order_by())
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts.update(kept)
    run.counts = counts
    if not kept:
        return set()
    return set(run.items.values_list("seq", flat=True))


def _progress_to(tracker: RunTracker, rows: int) -> None:
    tracker.advance(rows - tracker.run.progress_done)


def _record_problems(tracker: RunTracker, roster: Roster, done_before: set[int]) -> None:
    tracker.set_count("rows", roster.rows)
    tracker.set_count("classrooms", len(roster.classrooms))
    invalid_rows = duplicate_rows = 0
    for problem in roster.problems:
        if problem.row in done_before:
            # Resumed, and read differently this time (APEX_ORG_ID changed): the row went
            # through already and keeps that one outcome.
            continue
        invalid = problem.kind == INVALID
        invalid_rows += invalid
        duplicate_rows += not invalid
        tracker.item(
            outcome=INVALID_OUTCOME if invalid else SKIPPED,
            key=problem.student,
            label=f"Row {problem.row}",
            group=problem.classroom,
            seq=problem.row,
            error_class=ErrorClass.INVALID_DATA if invalid else "",
            message=problem.message,
            data={"row": problem.row, "column": problem.column},
        )
    with transaction.atomic():
        tracker.flush_items()
    tracker.count("invalid", invalid_rows)
    # An invalid row did not go through: it is a failure of this run (exit status 1).
    tracker.count(FAILED, invalid_rows)
    tracker.count(SKIPPED, duplicate_rows)


def _record_dry_run(
    tracker: RunTracker, pending: dict[str, list[RosterRow]], batch_size: int
) -> None:
    requests_ = 0
    for classroom, rows in pending.items():
        batches = -(-len(rows) // batch_size)
        requests_ += batches
        for index, row in enumerate(rows):
            tracker.item(
                outcome=WOULD_SEND,
                key=row.student,
                label=f"Row {row.row}",
                group=classroom,
                seq=row.row,
                message=(
                    f"Dry run, not sent: would go in request {index // batch_size + 1} of "
                    f"{batches} to classroom {classroom} with ImportOrgId {row.org}."
                ),
                data={"row": row.row, "org": row.org, "dry_run": True},
            )
        tracker.flush_items()
        tracker.advance(len(rows))
    tracker.count(WOULD_SEND, sum(len(rows) for rows in pending.values()))
    tracker.set_count("requests", requests_)


# --- sending ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Batch:
    classroom: str
    rows: list[RosterRow]
    result: BatchResult | None = None
    error: VendorError | None = None
    sent: bool = True


@dataclass(frozen=True, slots=True)
class _Fatal:
    error: BaseException


_DONE = object()


def _send_all(
    tracker: RunTracker,
    client: ApexClient,
    pending: dict[str, list[RosterRow]],
    batch_size: int,
    concurrency: int,
    total: int,
    *,
    rows: int | None = None,
) -> None:
    """Send `total` rows; progress runs over all the file's `rows`, the others settled."""
    rows = total if rows is None else rows
    with tracker.stage("enroll", total=rows, unit="rows"):
        tracker.advance(rows - total)
        if not total:
            return
        out: queue.Queue = queue.Queue()
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="apex-enroll")
        try:
            for classroom, rows in pending.items():
                # copy_context: the worker's log lines carry the run (integrations.logs).
                worker_args = (client, classroom, rows, batch_size, out, stop)
                pool.submit(contextvars.copy_context().run, _classroom_worker, *worker_args)
            remaining = len(pending)
            fatal: BaseException | None = None
            while remaining:
                try:
                    messages = [out.get(timeout=HEARTBEAT_SECONDS)]
                except queue.Empty:
                    tracker.advance(0)
                    continue
                # The batches answered meanwhile are recorded together (one transaction):
                # a thread busy writing would otherwise hold back the threads sending.
                while len(messages) < RECORD_AT_ONCE:
                    try:
                        messages.append(out.get_nowait())
                    except queue.Empty:
                        break
                answered = []
                for message in messages:
                    if message is _DONE:
                        remaining -= 1
                    elif isinstance(message, _Fatal):
                        if fatal is None:
                            fatal = message.error
                            stop.set()
                    else:
                        answered.append(message)
                if answered:
                    _record_batches(tracker, answered)
            if fatal is not None:
                raise fatal
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)


def _classroom_worker(
    client: ApexClient,
    classroom: str,
    rows: list[RosterRow],
    batch_size: int,
    out: queue.Queue,
    stop: threading.Event,
) -> None:
    """Send one classroom's batches in order (runs in a worker thread: no database)."""
    try:
        missing: ClassroomNotFound | None = None
        for start in range(0, len(rows), batch_size):
            if stop.is_set():
                return
            batch = rows[start : start + batch_size]
            if missing is not None:
                out.put(_Batch(classroom, batch, error=missing, sent=False))
                continue
            try:
                result = _send_batch(client, classroom, batch)
            except ClassroomNotFound as exc:
                missing = exc
                out.put(_Batch(classroom, batch, error=exc))
            except MalformedResponse as exc:
                out.put(_Batch(classroom, batch, error=exc))
            else:
                out.put(_Batch(classroom, batch, result=result))
    except Exception as exc:  # auth refused, vendor unreachable, a bug: stop the run
        stop.set()  # at once, so no other classroom starts a request meanwhile
        out.put(_Fatal(exc))
    finally:
        out.put(_DONE)


def _send_batch(client: ApexClient, classroom: str, rows: list[RosterRow]) -> BatchResult:
    students = [Student(row.student, row.org) for row in rows]
    for _attempt in range(BATCH_ATTEMPTS - 1):
        try:
            return client.enroll(classroom, students)
        except (TransientError, MalformedResponse) as exc:
            logger.warning(
                "APEX batch for %s failed as a whole (%s); trying it again",
                classroom,
                redact(exc.message),
            )
            policy = client.http.retry
            policy.sleep(policy.delay(policy.max_retries, getattr(exc, "retry_after", None)))
    return client.enroll(classroom, students)  # the last attempt: its error stops the batch


def _record_batches(tracker: RunTracker, batches: list[_Batch]) -> None:
    """Record these batches' rows, all in one transaction: never half of a batch."""
    counts: Counter[str] = Counter()
    try:
        with transaction.atomic():
            for batch in batches:
                _record_batch(tracker, batch, counts)
            tracker.flush_items()
    except BaseException:
        # Rolled back. The tracker may still buffer part of the batches (it writes every
        # 500 items); the run's final flush would record that part after all.
        tracker.discard_items()
        raise
    counts["requests"] += sum(1 for batch in batches if batch.sent)
    for key, n in counts.items():
        tracker.count(key, n)
    tracker.advance(sum(len(batch.rows) for batch in batches))


def _record_batch(tracker: RunTracker, batch: _Batch, counts: Counter[str]) -> None:
    if batch.error is not None:
        error = batch.error
        note = "" if batch.sent else " (not sent: an earlier request showed it is unknown)"
        message = redact(error.message) + note
        for row in batch.rows:
            counts[FAILED] += 1
            tracker.item(
                outcome=FAILED,
                key=row.student,
                label=f"Row {row.row}",
                group=batch.classroom,
                seq=row.row,
                error_class=error.error_class,
                message=message,
                data={"row": row.row, "org": row.org, "code": error.status},
            )
        return
    assert batch.result is not None
    for row, result in zip(batch.rows, batch.result.results, strict=True):
        counts[result.outcome.value] += 1
        tracker.item(
            outcome=result.outcome.value,
            key=row.student,
            label=f"Row {row.row}",
            group=batch.classroom,
            seq=row.row,
            error_class=result.error_class,
            message=redact(result.message),
            data={"row": row.row, "org": row.org, "code": result.code},
        )


def _summary(
    run: Run, roster: Roster, done_before: set[int], *, to_send: int, dry_run: bool
) -> str:
    c = run.counts
    parts = [f"{c.get('rows', 0)} rows, {c.get('classrooms', 0)} classrooms"]
    if dry_run:
        parts.append(
            f"dry run: {to_send} enrollments would be sent in {c.get('requests', 0)} requests; "
            "nothing was sent. Signed in to APEX: the credentials work"
        )
    else:
        parts.append(
            f"{c.get(ENROLLED, 0)} enrolled, {c.get(ALREADY_ENROLLED, 0)} already enrolled, "
            f"{c.get(FAILED, 0)} failed"
        )
    if roster.duplicates:
        parts.append(f"{_rows(roster.duplicates, 'duplicate row')} skipped")
    if roster.invalid:
        parts.append(_rows(roster.invalid, "invalid row"))
    if done_before:
        parts.append(f"resumed: {_rows(len(done_before), 'row')} done earlier not sent again")
    text = "; ".join(parts) + "." + "".join(f" {note}" for note in roster.notes)
    if dry_run:
        text += (
            " Not checked by a dry run: whether each classroom exists in APEX and whether "
            "each student is known or already enrolled; only APEX can say, when the file "
            "is sent for real."
        )
    return text


def _rows(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --- the error log ---------------------------------------------------------------------
def apex_error_log_rows(run: Run) -> Iterator[tuple[Any, ...]]:
    """The seed tool's error_log.csv: one line per row that did not go through."""
    items = (
        run.items.filter(outcome__in=[FAILED, INVALID_OUTCOME])
        .order_by("seq", "id")
        .values_list("group", "key", "data", "error_class", "message", "seq")
    )
    for group, key, data, error_class, message, seq in items.iterator(chunk_size=2000):
        code = (data or {}).get("code")
        yield (group, key, code if code is not None else error_class, message, seq)


def apex_run_actions(run: Run) -> list[RunAction]:
    """What the run page offers for an APEX run: the seed's error log and a resume."""
    actions = []
    if run.is_finished and run.items.filter(error_class__gt="").exists():
        actions.append(
            RunAction(
                "Download error_log.csv",
                reverse("integrations:apex_error_log", args=[run.pk]),
                download=True,
            )
        )
    if apex_resume_problem(run) is None:
        actions.append(
            RunAction(
                "Resume",
                reverse("integrations:apex_resume", args=[run.pk]),
                method="post",
                primary=True,
            )
        )
    return actions
