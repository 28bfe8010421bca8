"""Decisions on Titan plans: apply or discard a preview, undo a finished sync, and the
run page's actions. The approval of a held run itself is generic
(reports.services.approval_decide)."""

from __future__ import annotations

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from integrations.jobs import InvalidInput
from integrations.models import RosterUpload
from integrations.titan.sync import (
    DONE_OUTCOMES,
    FINISHED_APPLIED,
    KIND,
    TitanBusy,
    run_params_update,
    titan_run_create,
)
from reports.actions import RunAction
from reports.models import Run, RunStatus


def titan_undo_problem(run: Run) -> str | None:
    """Why this run cannot be undone, or None."""
    if run.kind != KIND:
        return f"Run {run.pk} is not a Titan sync."
    if run.dry_run:
        return f"Run {run.pk} is a dry run: it changed nothing."
    if run.status not in (*FINISHED_APPLIED, RunStatus.FAILED):
        status = run.get_status_display().lower()
        return f"Run {run.pk} is {status}: only a finished sync can be undone."
    if not run.items.filter(data__has_key="op", outcome__in=DONE_OUTCOMES).exists():
        if any(run.counts.get(outcome) for outcome in DONE_OUTCOMES):
            # The retention prune deleted its items: what it replaced is no longer known.
            return f"Run {run.pk}'s items were pruned (retention), so it can no longer be undone."
        return f"Run {run.pk} changed nothing in Titan."
    return None


def titan_undo_preview(*, run_id: int, triggered_by: str, user=None) -> Run:
    """A dry run planning the undo of a finished sync: its own preview, then apply."""
    with transaction.atomic():
        original = Run.objects.select_for_update().get(pk=run_id)
        problem = titan_undo_problem(original)
        if problem:
            raise InvalidInput(problem)
        return titan_run_create(
            upload=None,
            dry_run=True,
            triggered_by=triggered_by,
            user=user,
            subject=f"undo of run #{original.pk}",
            extra={"undo_of": original.pk},
        )


class ApplyRefused(Exception):
    """A preview cannot be applied; the message says why."""


def titan_apply_from_preview(
    *, preview_id: int, triggered_by: str, user=None, approve_reason: str = ""
) -> Run:
    """The run that applies a dry run's plan, if Titan still gives the same plan. With a
    reason, it also lets that plan through its guardrail (recorded as an approval)."""
    with transaction.atomic():
        preview = Run.objects.select_for_update().get(pk=preview_id)
        problem = titan_apply_problem(preview)
        if problem:
            raise ApplyRefused(problem)
        verdict = preview.params.get("verdict") or {}
        if verdict.get("held") and not approve_reason.strip():
            raise ApplyRefused(
                "This plan trips the guardrail: approve it with a reason to apply it."
            )
        extra = {
            "preview_of": preview.pk,
            "expected_hash": preview.params["plan_hash"],
        }
        if approve_reason.strip():
            extra["approve"] = {"by": triggered_by, "reason": approve_reason.strip()}
        for key in ("undo_of",):
            if preview.params.get(key):
                extra[key] = preview.params[key]
        upload = RosterUpload.objects.filter(pk=preview.params.get("roster_id")).first()
        try:
            run = titan_run_create(
                upload=upload,
                dry_run=False,
                triggered_by=triggered_by,
                user=user,
                subject=preview.subject,
                extra=extra,
            )
        except TitanBusy as exc:
            raise ApplyRefused(str(exc)) from None
        run_params_update(preview, applied_as=run.pk)
    return run


def titan_apply_problem(preview: Run) -> str | None:
    if preview.kind != KIND or not preview.dry_run:
        return f"Run {preview.pk} is not a Titan preview."
    if preview.status != RunStatus.SUCCEEDED or not preview.params.get("plan_hash"):
        return f"Run {preview.pk} has no plan to apply."
    if preview.params.get("applied_as"):
        return f"This plan was already sent to be applied as run #{preview.params['applied_as']}."
    if preview.params.get("discarded"):
        return "This plan was discarded."
    return None


def titan_preview_discard(*, preview_id: int, triggered_by: str) -> None:
    with transaction.atomic():
        preview = Run.objects.select_for_update().get(pk=preview_id)
        problem = titan_apply_problem(preview)
        if problem:
            raise ApplyRefused(problem)
        run_params_update(preview, discarded={"by": triggered_by, "at": timezone.now().isoformat()})


def titan_run_actions(run: Run) -> list[RunAction]:
    """The run page's Titan actions: the plan (with approve/apply/discard) and Undo."""
    actions = []
    if run.is_finished and run.params.get("plan_hash"):
        undecided = not run.approvals.filter(plan_hash=run.params["plan_hash"]).exists()
        decide = (run.status == RunStatus.HELD and undecided) or (titan_apply_problem(run) is None)
        actions.append(
            RunAction(
                "Review the plan" + (" and decide" if decide else ""),
                reverse("integrations:titan_plan", args=[run.pk]),
                primary=decide,
            )
        )
    if run.is_finished and titan_undo_problem(run) is None:
        actions.append(
            RunAction(
                "Undo this sync…",
                reverse("integrations:titan_undo", args=[run.pk]),
                method="post",
            )
        )
    return actions
