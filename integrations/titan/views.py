"""Titan sync pages: upload → plan preview → apply, approve with a reason, or discard;
undo of a finished sync. Pages read stored runs and plans; only jobs talk to Titan."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from integrations.forms import TitanDecisionForm, TitanUploadForm
from integrations.jobs import InvalidInput
from integrations.rosters import RosterRefused, roster_store
from integrations.tasks import enqueue_run
from integrations.titan import decisions, sync
from integrations.titan.plan import ADD, CREATE, OP_LABELS, REMOVE, ROLES, UPDATE
from integrations.titan.store import plan_load
from reports.access import staff_required
from reports.csvexport import csv_response
from reports.models import ApprovalDecision, Run, RunKind, RunStatus
from reports.services import ApprovalRefused, approval_decide

RECENT_RUNS = 10
# Each table of the preview shows this many operations; the CSV has them all.
TABLE_LIMIT = 500
PROBLEM_LIMIT = 200


def _who(request) -> str:
    return f"user:{request.user.get_username()}"


def _titan_run(pk: int) -> Run:
    return get_object_or_404(Run, pk=pk, kind=RunKind.TITAN_SYNC)


@staff_required
def titan_upload(request):
    form = TitanUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        file = form.cleaned_data["file"]
        try:
            upload = roster_store(file, name=file.name, user=request.user, origin="web")
        except RosterRefused as exc:
            form.add_error("file", str(exc))
        else:
            with transaction.atomic():
                run = sync.titan_run_create(
                    upload=upload, dry_run=True, triggered_by=_who(request), user=request.user
                )
                enqueue_run(run.pk)
            messages.success(
                request,
                f"Planning the sync of {upload.original_name}: nothing is sent until you "
                "apply the plan.",
            )
            return redirect("reports:detail", run.pk)
    runs = Run.objects.filter(kind=RunKind.TITAN_SYNC).order_by("-created_at")[:RECENT_RUNS]
    return render(
        request, "integrations/titan_upload.html", {"form": form, "runs": runs, "nav": "titan"}
    )


NO_PLAN = (
    "This run's plan is not stored: it made none, or retention deleted it with the run's "
    "items (RETENTION_RUN_ITEMS_DAYS)."
)


@staff_required
def titan_plan(request, pk: int):
    run = _titan_run(pk)
    plan = plan_load(run.params.get("plan_hash"))
    if plan is None:
        # Say why on the run's own page, rather than a bare "not found".
        messages.warning(request, NO_PLAN)
        return redirect("reports:detail", pk=run.pk)
    tables = []
    for kind in (CREATE, UPDATE, ADD, ROLES, REMOVE):
        ops = [op for op in plan["ops"] if op["op"] == kind]
        limit = None if kind == REMOVE else TABLE_LIMIT  # every removal is listed
        tables.append(
            {
                "kind": kind,
                "title": OP_LABELS[kind].capitalize(),
                "total": len(ops),
                "ops": ops[:limit] if limit else ops,
                "more": max(0, len(ops) - limit) if limit else 0,
            }
        )
    current_hash = run.params.get("plan_hash")
    context = {
        "run": run,
        "plan": plan,
        "verdict": run.params.get("verdict") or {},
        "since_last": run.params.get("since_last"),
        "tables": tables,
        "problems": list(run.items.filter(outcome=sync.INVALID_OUTCOME)[:PROBLEM_LIMIT]),
        "approvals": list(run.approvals.select_related("user")),
        "can_apply": run.dry_run and decisions.titan_apply_problem(run) is None,
        "can_decide": (
            not run.dry_run
            and run.status == RunStatus.HELD
            and not run.approvals.filter(plan_hash=current_hash).exists()
        ),
        "form": TitanDecisionForm(initial={"plan_hash": current_hash}),
        "nav": "titan",
    }
    return render(request, "integrations/titan_plan.html", context)


@staff_required
def titan_plan_csv(request, pk: int):
    run = _titan_run(pk)
    plan = plan_load(run.params.get("plan_hash"))
    if plan is None:
        raise Http404(NO_PLAN)
    header = ("action", "external_id", "site", "before", "after")

    def rows():
        for op in plan["ops"]:
            if op["op"] == CREATE:
                before, after = "", "; ".join(op["fields"].values())
            elif op["op"] == UPDATE:
                before = "; ".join(f"{k}={v[0]}" for k, v in op["changes"].items())
                after = "; ".join(f"{k}={v[1]}" for k, v in op["changes"].items())
            else:
                before = "; ".join(op.get("before") or [])
                after = "; ".join(op.get("roles") or [])
            yield (op["op"], op["external_id"], op.get("site", ""), before, after)

    return csv_response(f"titan-run-{run.pk}-plan.csv", header, rows())


@staff_required  # first: sign-in for anonymous users, 404 for non-staff, before the 405
@require_POST
def titan_apply(request, pk: int):
    """Apply a preview's plan (approving it with the reason when it trips the guardrail)."""
    form = TitanDecisionForm(request.POST)
    reason = form.data.get("reason", "") if form.is_valid() else ""
    try:
        with transaction.atomic():
            run = decisions.titan_apply_from_preview(
                preview_id=pk, triggered_by=_who(request), user=request.user, approve_reason=reason
            )
            enqueue_run(run.pk)
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except decisions.ApplyRefused as exc:
        messages.error(request, str(exc))
        return redirect("integrations:titan_plan", pk)
    messages.success(request, f"Applying the plan as run #{run.pk}.")
    return redirect("reports:detail", run.pk)


@staff_required
@require_POST
def titan_decide(request, pk: int):
    """Approve (once, with a reason) or discard a held run's plan; or discard a preview."""
    run = _titan_run(pk)
    form = TitanDecisionForm(request.POST)
    decision = request.POST.get("decision", "")
    if not form.is_valid():
        messages.error(request, "Give a reason: it is recorded with the decision.")
        return redirect("integrations:titan_plan", pk)
    if run.dry_run:
        try:
            decisions.titan_preview_discard(preview_id=run.pk, triggered_by=_who(request))
        except decisions.ApplyRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Plan discarded; nothing was sent.")
        return redirect("integrations:titan_plan", pk)
    try:
        with transaction.atomic():
            approval_decide(
                run_id=run.pk,
                plan_hash=form.cleaned_data["plan_hash"],
                decision=(
                    ApprovalDecision.APPROVED
                    if decision == "approve"
                    else ApprovalDecision.DISCARDED
                ),
                decided_by=_who(request),
                reason=form.cleaned_data["reason"],
                user=request.user,
            )
            if decision == "approve":
                enqueue_run(run.pk)
    except ApprovalRefused as exc:
        messages.error(request, str(exc))
        return redirect("integrations:titan_plan", pk)
    if decision == "approve":
        messages.success(request, "Approved; the run applies this plan now.")
        return redirect("reports:detail", run.pk)
    messages.success(request, "Discarded; nothing was sent.")
    return redirect("integrations:titan_plan", pk)


@staff_required
@require_POST
def titan_undo(request, pk: int):
    try:
        with transaction.atomic():
            run = decisions.titan_undo_preview(
                run_id=pk, triggered_by=_who(request), user=request.user
            )
            enqueue_run(run.pk)
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except InvalidInput as exc:
        messages.error(request, str(exc))
        return redirect("reports:detail", pk)
    messages.success(request, f"Planning the undo of run #{pk}: review the plan, then apply it.")
    return redirect("reports:detail", run.pk)
