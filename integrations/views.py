"""Admin actions that start vendor jobs from the web UI."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cohorts.models import Cohort, Source
from integrations.apex.enroll import (
    ERROR_LOG_HEADER,
    ResumeRefused,
    apex_error_log_rows,
    apex_resume_problem,
    apex_run_resume,
    apex_run_start,
)
from integrations.apex.roster import RosterRefused, roster_read
from integrations.config import require
from integrations.forms import EnrollConfirmForm, RosterUploadForm
from integrations.http import ConfigError
from integrations.models import RosterUpload
from integrations.openclass.pull import openclass_lock_key, openclass_run_for_cohort
from integrations.rosters import roster_store
from integrations.tasks import enqueue_run
from reports.access import staff_required
from reports.csvexport import csv_response
from reports.models import Run, RunKind, RunStatus
from reports.services import run_active_for, run_live_for

PREVIEW_PROBLEMS = 200
RECENT_RUNS = 10


@require_POST
@staff_required
def openclass_sync_now(request, pk: int):
    cohort = get_object_or_404(Cohort, pk=pk, source=Source.OPENCLASS)
    run = openclass_run_for_cohort(
        cohort_id=cohort.pk, triggered_by=f"user:{request.user.get_username()}", user=request.user
    )
    if run is None:
        active = run_live_for(lock_key=openclass_lock_key(cohort.external_id))
        messages.info(request, "A pull of this cohort is already under way.")
        return (
            redirect("reports:detail", active.pk)
            if active
            else redirect("cohorts:detail", cohort.pk)
        )
    enqueue_run(run.pk)
    messages.success(request, f"Pull of {cohort.name} queued.")
    return redirect("reports:detail", run.pk)


# --- APEX enrollment: upload → preview → confirm ---------------------------------------
def _user_label(request) -> str:
    return f"user:{request.user.get_username()}"


@staff_required
def apex_upload(request):
    form = RosterUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        file = form.cleaned_data["file"]
        try:
            upload = roster_store(file, name=file.name, user=request.user, origin="web")
        except RosterRefused as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("integrations:apex_preview", upload.pk)
    runs = list(Run.objects.filter(kind=RunKind.APEX_ENROLL).order_by("-created_at")[:RECENT_RUNS])
    for run in runs:
        run.resumable = apex_resume_problem(run) is None
        run.failed_rows = (run.counts or {}).get("failed", 0)
    return render(
        request, "integrations/apex_upload.html", {"form": form, "runs": runs, "nav": "apex"}
    )


@staff_required
def apex_preview(request, pk: int):
    """What the roster holds and what would be sent. Sends nothing."""
    upload = get_object_or_404(RosterUpload, pk=pk)
    roster, refusal = None, ""
    try:
        roster = roster_read(upload.path)
    except FileNotFoundError:
        refusal = "The stored copy of this file is gone; upload it again."
    except (RosterRefused, ConfigError) as exc:
        refusal = str(exc)
    try:
        require("APEX_BASE_URL", "APEX_CLIENT_ID", "APEX_CLIENT_SECRET")
        config_problem = ""
    except ConfigError as exc:
        config_problem = str(exc)
    batch_size = settings.APEX_BATCH_SIZE
    context = {
        "upload": upload,
        "roster": roster,
        "refusal": refusal,
        "config_problem": config_problem,
        "batch_size": batch_size,
        "form": EnrollConfirmForm(),
        "active": run_active_for(kind=RunKind.APEX_ENROLL, subject_key="roster_id", value=pk),
        "nav": "apex",
    }
    if roster is not None:
        context.update(
            {
                "classrooms": [
                    (name, len(rows), -(-len(rows) // batch_size))
                    for name, rows in roster.classrooms.items()
                ],
                "problems": roster.problems[:PREVIEW_PROBLEMS],
                "more_problems": max(0, len(roster.problems) - PREVIEW_PROBLEMS),
                "requests": roster.batches(batch_size),
                "sample": _sample_request(roster, batch_size),
                "org_mismatches": roster.org_mismatches(),
                "same_content_run": _same_content_run(upload),
            }
        )
    return render(request, "integrations/apex_preview.html", context)


def _same_content_run(upload: RosterUpload) -> Run | None:
    """The newest run of a file with these very bytes, uploaded before under any name."""
    return (
        Run.objects.filter(kind=RunKind.APEX_ENROLL, params__sha256=upload.sha256)
        .exclude(status=RunStatus.QUEUED)
        .order_by("-created_at", "-id")
        .first()
    )


def _sample_request(roster, batch_size: int) -> dict[str, str] | None:
    """The first request the run would send, shortened for the page."""
    for classroom, rows in roster.classrooms.items():
        first = rows[:batch_size]
        shown = [{"ImportUserId": r.student, "ImportOrgId": r.org} for r in first[:3]]
        body = json.dumps({"studentUsers": shown}, indent=2, ensure_ascii=False)
        more = len(first) - len(shown)
        if more:
            body += f"\n… and {more} more student{'' if more == 1 else 's'} in this request"
        return {"classroom": classroom, "body": body}
    return None


@staff_required  # first: sign-in for anonymous users, 404 for non-staff, before the 405
@require_POST
def apex_confirm(request, pk: int):
    upload = get_object_or_404(RosterUpload, pk=pk)
    form = EnrollConfirmForm(request.POST)
    dry_run = bool(form.is_valid() and form.cleaned_data["dry_run"])
    with transaction.atomic():
        run, created = apex_run_start(
            upload=upload, dry_run=dry_run, triggered_by=_user_label(request), user=request.user
        )
        if not created:
            messages.info(request, f"Run #{run.pk} of this file is already under way.")
            return redirect("reports:detail", run.pk)
        enqueue_run(run.pk)
    what = "Dry run" if dry_run else "Enrollment"
    messages.success(request, f"{what} of {upload.original_name} queued.")
    return redirect("reports:detail", run.pk)


@staff_required  # first: sign-in for anonymous users, 404 for non-staff, before the 405
@require_POST
def apex_resume(request, pk: int):
    try:
        with transaction.atomic():
            run = apex_run_resume(run_id=pk, triggered_by=_user_label(request))
            enqueue_run(run.pk)
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    except ResumeRefused as exc:
        messages.error(request, str(exc))
        return redirect("integrations:apex_upload")
    messages.success(
        request, f"Run #{run.pk} queued again; the rows it already got through are not resent."
    )
    return redirect("reports:detail", run.pk)


@staff_required
def apex_error_log(request, pk: int):
    """The seed tool's error_log.csv for one run: classroom, student, code, message."""
    run = get_object_or_404(Run, pk=pk, kind=RunKind.APEX_ENROLL)
    return csv_response(
        f"apex-run-{run.pk}-error_log.csv", ERROR_LOG_HEADER, apex_error_log_rows(run)
    )
