"""Writes to runs: create, claim, track progress, record items, finish.

Every job, whatever its vendor, records itself through a `RunTracker`:

    tracker = RunTracker(run)
    with tracker.stage("fetch", total=pages, unit="pages"):
        ...
        tracker.advance()
        tracker.count("created", 3)
        tracker.item(key="123", outcome="failed", error_class=ErrorClass.NOT_FOUND, message="…")
    tracker.finish()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from reports.models import (
    Approval,
    ApprovalDecision,
    ErrorClass,
    Run,
    RunItem,
    RunKind,
    RunStatus,
)

logger = logging.getLogger(__name__)


def run_create(
    *,
    kind: RunKind | str,
    triggered_by: str,
    user=None,
    dry_run: bool = False,
    subject: str = "",
    params: dict[str, Any] | None = None,
) -> Run:
    return Run.objects.create(
        kind=kind,
        triggered_by=triggered_by[:200],
        user=user if (user is not None and user.is_authenticated) else None,
        dry_run=dry_run,
        subject=subject[:300],
        params=params or {},
    )


def run_claim(*, run_id: int) -> Run | None:
    """Move a queued run to running. Returns None when it was not queued any more, so a
    duplicate delivery of the same task does nothing."""
    now = timezone.now()
    claimed = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    if claimed != 1:
        return None
    return Run.objects.get(pk=run_id)


def runs_stale(*, older_than_seconds: int) -> list[Run]:
    """Runs still marked running whose job stopped reporting (a killed worker)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(Run.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff))


def run_requeue(*, run: Run, max_resumes: int) -> bool:
    """Put a stale run back in the queue to resume it; after `max_resumes`, fail it.

    The conditional update makes two reapers racing over the same run harmless.
    """
    resumes = int(run.params.get("resumes", 0))
    if resumes >= max_resumes:
        updated = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            error_class=ErrorClass.INTERNAL,
            message=f"The worker stopped reporting and the run was resumed {resumes} times.",
        )
        return False
    params = {**run.params, "resumes": resumes + 1}
    updated = Run.objects.filter(
        pk=run.pk, status=RunStatus.RUNNING, heartbeat_at=run.heartbeat_at
    ).update(status=RunStatus.QUEUED, params=params, stage="")
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
        self._items.append(
            RunItem(
                run=self.run,
                seq=seq,
                key=str(key)[:200],
                label=str(label)[:300],
                group=str(group)[:200],
                outcome=outcome,
                error_class=error_class,
                message=message,
                data=data or {},
            )
        )
        if len(self._items) >= self.ITEM_BUFFER:
            self.flush_items()

    def discard_items(self) -> None:
        """Drop the items not yet written (their transaction rolled back)."""
        self._items = []

    def flush_items(self) -> None:
        if self._items:
            RunItem.objects.bulk_create(self._items, batch_size=self.ITEM_BUFFER)
            self._items = []

    # -- persistence ---------------------------------------------------------------
    def _flush(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < self.flush_seconds:
            return
        self._last_flush = now
        run = self.run
        run.heartbeat_at = timezone.now()
        Run.objects.filter(pk=run.pk).update(
            stage=run.stage,
            progress_done=run.progress_done,
            progress_total=run.progress_total,
            progress_unit=run.progress_unit,
            counts=run.counts,
            stage_timings=run.stage_timings,
            heartbeat_at=run.heartbeat_at,
        )
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
        self.flush_items()
        run = self.run
        if status is None:
            failed = run.counts.get("failed", 0)
            status = RunStatus.PARTIAL if failed else RunStatus.SUCCEEDED
        run.status = status
        run.message = message or run.message
        run.error_class = error_class
        run.finished_at = timezone.now()
        run.stage = ""
        run.save()
        if self.on_progress:
            self.on_progress(run)
        return run


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
                moved = Run.objects.filter(
                    pk=run.pk, status=RunStatus.HELD, params__plan_hash=plan_hash
                ).update(
                    status=RunStatus.QUEUED,
                    finished_at=None,
                    stage="",
                    error_class="",
                    heartbeat_at=timezone.now(),
                )
                if moved != 1:
                    raise ApprovalRefused(f"Run {run.pk} was decided meanwhile.")
    except IntegrityError:
        raise ApprovalRefused(
            f"This plan of run {run_id} has already been decided; it is approved at most once."
        ) from None
    return approval


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
