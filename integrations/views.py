"""Admin actions that start vendor jobs from the web UI."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from cohorts.models import Cohort, Source
from integrations.openclass.pull import openclass_run_for_cohort
from integrations.tasks import enqueue_run
from reports.models import RunKind
from reports.services import run_active_for


@require_POST
@staff_member_required
def openclass_sync_now(request, pk: int):
    cohort = get_object_or_404(Cohort, pk=pk, source=Source.OPENCLASS)
    run = openclass_run_for_cohort(
        cohort_id=cohort.pk, triggered_by=f"user:{request.user.get_username()}", user=request.user
    )
    if run is None:
        active = run_active_for(
            kind=RunKind.OPENCLASS_SYNC, subject_key="class_id", value=cohort.external_id
        )
        messages.info(request, "A pull of this cohort is already under way.")
        return (
            redirect("reports:detail", active.pk)
            if active
            else redirect("cohorts:detail", cohort.pk)
        )
    enqueue_run(run.pk)
    messages.success(request, f"Pull of {cohort.name} queued.")
    return redirect("reports:detail", run.pk)
