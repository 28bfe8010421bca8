"""Writes to runs: create, claim, track progress, record items, finish.

Every job, whatever its vendor, records itself through a `RunTracker`:

    tracker = RunTracker(run)
    with tracker.stage("fetch", total=pages, unit="pages"):
        ...
        tracker.advance()
        tracker.count("created", 3)
        tracker.item(key="123", outcome="failed", error_class=ErrorClass.NOT_FOUND, message="…")
    tracker.finish()

Three rules keep runs sound when workers die, tasks get lost and people click twice
(docs/architecture.md, "Jobs"):

- one live run per `lock_key`, by a partial unique index (`run_create`);
- one owner per run: `run_claim` writes a new lease, and every write of the tracker is
  conditional on it (`RunLeaseLost` otherwise);
- a queued run whose task never reached a worker is queued again, a bounded number of
  times (`run_requeue_lost`, called by the scheduled reaper).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone

from reports.models import (
    ACTIVE_STATUSES,
    Approval,
    ApprovalDecision,
    ErrorClass,
    Run,
    RunItem,
    RunKind,
    RunStatus,
)

logger = logging.getLogger(__name__)

LOCK_KEY_MAX = 200


class RunLeaseLost(BaseException):
    """This worker no longer owns its run: the run was re-queued (reaper, resume by hand)
    and perhaps claimed by another worker. Nothing of this worker may reach the run.

    A BaseException, as `asyncio.CancelledError` is, so that a job's broad
    `except Exception` (which turns errors into a failed run) cannot swallow it:
    `job_execute` catches it, logs it and stops without touching the run.
    """

    def __init__(self, run_id: int, lease: int) -> None:
        super().__init__(
            f"run {run_id}: lease {lease} is no longer held (the run was re-queued or "
            "claimed by another worker); this worker's writes are refused"
        )
        self.run_id = run_id
        self.lease = lease


def run_lock_key(*parts: object) -> str:
    """`kind:what:id` from its parts; a key too long for the column is shortened with a
    digest of the whole, so two different long keys stay different."""
    key = ":".join(str(p) for p in parts)
    if len(key) <= LOCK_KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: LOCK_KEY_MAX - len(digest) - 1]}#{digest}"


def run_create(
    *,
    kind: RunKind | str,
    triggered_by: str,
    user=None,
    dry_run: bool = False,
    subject: str = "",
    params: dict[str, Any] | None = None,
    lock_key: str = "",
) -> Run:
    """A new queued run; with a `lock_key` held by a live run, that live run instead.

    Use `run_get_or_create` to know which of the two it was.
    """
    run, _created = run_get_or_create(
        kind=kind,
        triggered_by=triggered_by,
        user=user,
        dry_run=dry_run,
        subject=subject,
        params=params,
        lock_key=lock_key,
    )
    return run


def run_get_or_create(
    *,
    kind: RunKind | str,
    triggered_by: str,
    user=None,
    dry_run: bool = False,
    subject: str = "",
    params: dict[str, Any] | None = None,
    lock_key: str = "",
) -> tuple[Run, bool]:
    """(run, True) for a new queued run, or (the live run holding `lock_key`, False).

    Not check-then-create: the insert itself is refused by the partial unique index
    `run_one_live_per_lock_key` when a queued or running run holds the key, so two
    requests at the same moment start exactly one run on SQLite and PostgreSQL alike.
    The insert runs in a savepoint, so a refusal leaves the caller's transaction usable.
    """
    fields = {
        "kind": kind,
        "triggered_by": triggered_by[:200],
        "user": user if (user is not None and user.is_authenticated) else None,
        "dry_run": dry_run,
        "subject": subject[:300],
        "params": params or {},
        "lock_key": lock_key,
    }
    if len(lock_key) > LOCK_KEY_MAX:
        raise ValueError(f"lock_key is longer than {LOCK_KEY_MAX} characters; use run_lock_key")
    if not lock_key:
        return Run.objects.create(**fields), True
    # A refusal, then the holder finishing before we read it, is retried once.
    for _attempt in range(2):
        try:
            with transaction.atomic():
                return Run.objects.create(**fields), True
        except IntegrityError:
            live = run_live_for(lock_key=lock_key)
            if live is not None:
                return live, False
    with transaction.atomic():
        return Run.objects.create(**fields), True


def run_live_for(*, lock_key: str) -> Run | None:
    """The queued or running run holding `lock_key`, if any."""
    if not lock_key:
        return None
    return Run.objects.filter(lock_key=lock_key, status__in=ACTIVE_STATUSES).first()


def run_claim(*, run_id: int) -> Run | None:
    """Move a queued run to running under a new lease. Returns None when it was not queued
    any more, so a duplicate delivery of the same task does nothing.

    The lease is the claim generation: read, then written +1 on the condition that
    neither status nor lease moved meanwhile, so the winner knows its lease exactly.
    """
    current = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).values("lease").first()
    if current is None:
        return None
    now = timezone.now()
    lease = current["lease"] + 1
    claimed = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED, lease=current["lease"]).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, lease=lease
    )
    if claimed != 1:
        return None
    run = Run.objects.get(pk=run_id)
    if run.lease != lease:  # re-queued and claimed again in between: not ours
        return None
    return run


def runs_stale(*, older_than_seconds: int) -> list[Run]:
    """Runs still marked running whose job stopped reporting (a killed worker)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(Run.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff))


def run_requeue(*, run: Run, max_resumes: int) -> bool:
    """Put a stale run back in the queue to resume it; after `max_resumes`, fail it.

    The conditional update makes two reapers racing over the same run harmless, and a
    worker that reports progress meanwhile keeps its run. The worker that lost it (if it
    is only slow, not dead) has its later writes refused: it no longer holds a running
    run under its lease.
    """
    resumes = int(run.params.get("resumes", 0))
    if resumes >= max_resumes:
        Run.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, heartbeat_at=run.heartbeat_at
        ).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            error_class=ErrorClass.INTERNAL,
            message=f"The worker stopped reporting and the run was resumed {resumes} times.",
        )
        return False
    params = {**run.params, "resumes": resumes + 1}
    updated = Run.objects.filter(
        pk=run.pk, status=RunStatus.RUNNING, heartbeat_at=run.heartbeat_at
    ).update(status=RunStatus.QUEUED, params=params, stage="", queued_at=timezone.now())
    return updated == 1


def runs_queued_stale(*, older_than_seconds: int) -> list[Run]:
    """Runs queued for longer than this without a worker taking them."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        Run.objects.filter(status=RunStatus.QUEUED, queued_at__lt=cutoff).order_by("queued_at")
    )


def run_requeue_lost(*, run: Run, max_requeues: int) -> bool:
    """A queued run whose task never reached a worker: True when it should be queued
    again (its clock restarts); after `max_requeues` of those, it is failed instead.

    Conditional on the run still being queued since the same moment, so a worker
    claiming it meanwhile, or another reaper, wins and this does nothing.
    """
    still_lost = Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED, queued_at=run.queued_at)
    if run.task_requeues >= max_requeues:
        waited = round((timezone.now() - run.queued_at).total_seconds() / 60)
        still_lost.update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            error_class=ErrorClass.INTERNAL,
            message=(
                "No worker ever picked this run up: its task was lost (queue restarted, "
                f"or enqueued after a failure) and was queued again {run.task_requeues} "
                f"times without effect; the last wait was {waited} minutes. Check that "
                "the task worker (manage.py qcluster) runs, then start the run again."
            ),
        )
        return False
    updated = still_lost.update(queued_at=timezone.now(), task_requeues=F("task_requeues") + 1)
    return updated == 1


def run_active_for(*, kind: str, subject_key: str, value: Any) -> Run | None:
    """The queued or running run of this kind whose params[subject_key] == value, if any."""
    return (
        Run.objects.filter(
            kind=kind,
            status__in=[RunStatus.QUEUED, RunStatus.RUNNING],
            **{f"params__{subject_key}": value},
        )
        .order_by("-created_at")
        .first()
    )


class RunTracker:
    """Records a run's progress, counts, stage timings and items while a job works.

    Progress goes to the database at most every `flush_seconds`, so a page polling the
    run sees it move without the job paying a write per row. Items are buffered and
    written in bulk.

    Every write is conditional on the lease taken at claim time (`run.lease`) and on the
    run still running: a worker that lost its run gets `RunLeaseLost` from the write
    instead of overwriting the new owner's progress, items or final status.
    """

    ITEM_BUFFER = 500

    def __init__(
        self,
        run: Run,
        *,
        flush_seconds: float = 0.5,
        on_progress: Callable[[Run], None] | None = None,
    ) -> None:
        self.run = run
        self.lease = run.lease
        self.flush_seconds = flush_seconds
        self.on_progress = on_progress
        self._last_flush = 0.0
        self._items: list[RunItem] = []
        self._seq = run.items.count()

    # -- progress ------------------------------------------------------------------
    @contextmanager
    def stage(self, name: str, *, total: int | None = None, unit: str = "") -> Iterator[None]:
        run = self.run
        run.stage = name
        run.progress_done = 0
        run.progress_total = total
        run.progress_unit = unit
        self._flush(force=True)
        began = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - began
            run.stage_timings[name] = round(run.stage_timings.get(name, 0.0) + elapsed, 3)
            self._flush(force=True)

    def set_total(self, total: int | None, *, unit: str | None = None) -> None:
        self.run.progress_total = total
        if unit is not None:
            self.run.progress_unit = unit
        self._flush()

    def advance(self, n: int = 1) -> None:
        self.run.progress_done += n
        self._flush()

    def count(self, key: str, n: int = 1) -> None:
        if n:
            self.run.counts[key] = self.run.counts.get(key, 0) + n
        self._flush()

    def set_count(self, key: str, value: int) -> None:
        self.run.counts[key] = value

    # -- items ---------------------------------------------------------------------
    def item(
        self,
        *,
        outcome: str,
        key: str = "",
        label: str = "",
        group: str = "",
        error_class: str = "",
        message: str = "",
        data: dict[str, Any] | None = None,
        seq: int | None = None,
    ) -> None:
        if seq is None:
            self._seq += 1
            seq = self._seq
        # A tuple, not a RunItem: building a model instance per item cost more than the
        # item's insert (issue 11); flush_items writes the tuples with one executemany.
        self._items.append(
            (
                seq,
                str(key)[:200],
                str(label)[:300],
                str(group)[:200],
                outcome,
                error_class,
                message,
                data or {},
            )
        )
        if len(self._items) >= self.ITEM_BUFFER:
            self.flush_items()

    def discard_items(self) -> None:
        """Drop the items not yet written (their transaction rolled back)."""
        self._items = []

    def flush_items(self) -> None:
        if self._items:
            with transaction.atomic():
                # Holding the run's row (PostgreSQL) or the write lock (SQLite) until the
                # items are in, so no reaper can take the run between check and insert.
                self._hold()
                _items_insert(self.run.pk, self._items)
            self._items = []

    # -- persistence ---------------------------------------------------------------
    def _owned(self):
        """The run, as long as this tracker's worker owns it."""
        return Run.objects.filter(pk=self.run.pk, lease=self.lease, status=RunStatus.RUNNING)

    def _refused(self) -> RunLeaseLost:
        self._items = []
        return RunLeaseLost(self.run.pk, self.lease)

    def _hold(self) -> None:
        """Write the heartbeat on the condition of the lease: this both proves ownership
        and locks the row for the rest of the transaction."""
        self.run.heartbeat_at = timezone.now()
        if self._owned().update(heartbeat_at=self.run.heartbeat_at) != 1:
            raise self._refused()

    def _flush(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < self.flush_seconds:
            return
        self._last_flush = now
        run = self.run
        run.heartbeat_at = timezone.now()
        written = self._owned().update(
            stage=run.stage,
            progress_done=run.progress_done,
            progress_total=run.progress_total,
            progress_unit=run.progress_unit,
            counts=run.counts,
            stage_timings=run.stage_timings,
            heartbeat_at=run.heartbeat_at,
        )
        if written != 1:
            raise self._refused()
        if self.on_progress:
            self.on_progress(run)

    def finish(
        self,
        *,
        status: RunStatus | str | None = None,
        message: str = "",
        error_class: str = "",
    ) -> Run:
        """Close the run. Without an explicit status: failed items make it partial."""
        run = self.run
        if status is None:
            failed = run.counts.get("failed", 0)
            status = RunStatus.PARTIAL if failed else RunStatus.SUCCEEDED
        with transaction.atomic():
            self._hold()
            self.flush_items()
            finished_at = timezone.now()
            self._owned().update(
                status=status,
                message=message or run.message,
                error_class=error_class,
                finished_at=finished_at,
                stage="",
                progress_done=run.progress_done,
                progress_total=run.progress_total,
                progress_unit=run.progress_unit,
                counts=run.counts,
                stage_timings=run.stage_timings,
                params=run.params,
            )
        run.status = status
        run.message = message or run.message
        run.error_class = error_class
        run.finished_at = finished_at
        run.stage = ""
        if self.on_progress:
            self.on_progress(run)
        return run


_ITEM_FIELDS = ("seq", "key", "label", "group", "outcome", "error_class", "message", "data")


def _items_insert(run_id: int, items: list[tuple]) -> None:
    """INSERT the tracker's buffered items (tuples in `_ITEM_FIELDS` order) with one
    executemany: no model instance, no SQL compiled per item."""
    meta = RunItem._meta
    connection = connections[router.db_for_write(RunItem)]
    qn = connection.ops.quote_name
    names = ("run", *_ITEM_FIELDS, "created_at")
    columns = ", ".join(qn(meta.get_field(name).column) for name in names)
    marks = ", ".join(["%s"] * len(names))
    sql = f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES ({marks})"
    adapt, encoder = connection.ops.adapt_json_value, meta.get_field("data").encoder
    now = meta.get_field("created_at").get_db_prep_save(timezone.now(), connection)
    rows = [(run_id, *item[:-1], adapt(item[-1], encoder), now) for item in items]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def run_fail(*, run: Run, message: str, error_class: str = ErrorClass.INTERNAL) -> Run:
    """Mark a run failed as a whole (outside a tracker, e.g. a crashed worker)."""
    run.status = RunStatus.FAILED
    run.message = message
    run.error_class = error_class
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "message", "error_class", "finished_at"])
    return run


def run_mark_emailed(*, run: Run) -> None:
    run.emailed_at = timezone.now()
    Run.objects.filter(pk=run.pk).update(emailed_at=run.emailed_at)


# --- approvals of guarded runs ------------------------------------------------------------
# A guarded job (e.g. a sync whose removals exceed a limit) stores the content hash of its
# plan in `run.params["plan_hash"]` and stops with status `held`. A person then approves
# that exact plan once, with a reason, or discards it. The job, queued again, applies the
# plan only if the plan it computes has the approved hash.
class ApprovalRefused(Exception):
    """The decision cannot be taken; the message says why."""


def approval_decide(
    *,
    run_id: int,
    plan_hash: str,
    decision: str,
    decided_by: str,
    reason: str,
    user=None,
) -> Approval:
    """Approve or discard a held run's plan, once. Approving puts the run back in the
    queue (the caller enqueues it after commit): a conditional update from `held`, so two
    approvals racing over the same run start it once and the other is refused."""
    reason = (reason or "").strip()
    if decision not in ApprovalDecision.values:
        raise ApprovalRefused(f"Unknown decision {decision!r}.")
    if not reason:
        raise ApprovalRefused("Give a reason: it is recorded with the decision.")
    try:
        with transaction.atomic():
            run = Run.objects.select_for_update().get(pk=run_id)
            if run.status != RunStatus.HELD:
                raise ApprovalRefused(
                    f"Run {run.pk} is {run.get_status_display().lower()}, not held: "
                    "there is nothing to decide."
                )
            if run.params.get("plan_hash") != plan_hash:
                raise ApprovalRefused(
                    f"The plan of run {run.pk} is not the one shown (it was recomputed "
                    "since); review the current plan."
                )
            approval = Approval.objects.create(
                run=run,
                plan_hash=plan_hash,
                decision=decision,
                decided_by=decided_by[:200],
                user=user if (user is not None and user.is_authenticated) else None,
                reason=reason,
            )
            if decision == ApprovalDecision.APPROVED:
                moved = _held_run_requeue(run, plan_hash)
                if moved != 1:
                    raise ApprovalRefused(f"Run {run.pk} was decided meanwhile.")
    except IntegrityError:
        raise ApprovalRefused(
            f"This plan of run {run_id} has already been decided; it is approved at most once."
        ) from None
    return approval


def _held_run_requeue(run: Run, plan_hash: str) -> int:
    """Held -> queued. A held run holds no `lock_key`; queuing it takes it again, which the
    database refuses while another run holds it (two syncs changing one system at once)."""
    try:
        with transaction.atomic():
            return Run.objects.filter(
                pk=run.pk, status=RunStatus.HELD, params__plan_hash=plan_hash
            ).update(
                status=RunStatus.QUEUED,
                finished_at=None,
                stage="",
                error_class="",
                heartbeat_at=timezone.now(),
                # The lost-task reaper measures the wait from here, not from creation.
                queued_at=timezone.now(),
            )
    except IntegrityError:
        live = run_live_for(lock_key=run.lock_key)
        if live is None:
            raise
        raise ApprovalRefused(
            f"Run #{live.pk} ({live.subject or live.get_kind_display()}) is "
            f"{live.get_status_display().lower()} and works on the same thing; approve run "
            f"{run.pk} when it has finished. Nothing was recorded."
        ) from None


def approval_record(
    *, run: Run, plan_hash: str, decided_by: str, reason: str, user=None
) -> Approval:
    """Record an approval given together with the request to run (the command's
    `--approve --reason`): it covers the plan this run computes, and no other run.
    Idempotent for a resumed run."""
    reason = (reason or "").strip()
    if not reason:
        raise ApprovalRefused("Give a reason: it is recorded with the approval.")
    approval, _ = Approval.objects.get_or_create(
        run=run,
        plan_hash=plan_hash,
        defaults={
            "decision": ApprovalDecision.APPROVED,
            "decided_by": decided_by[:200],
            "user": user if (user is not None and user.is_authenticated) else None,
            "reason": reason,
        },
    )
    return approval


def approval_for(*, run: Run, plan_hash: str) -> Approval | None:
    """The approval of this run's plan with this hash, if it was approved."""
    return Approval.objects.filter(
        run=run, plan_hash=plan_hash, decision=ApprovalDecision.APPROVED
    ).first()


def approval_discarded(*, run: Run) -> Approval | None:
    return Approval.objects.filter(run=run, decision=ApprovalDecision.DISCARDED).last()
