"""Canvas pages for admins: start a pull (courses or filters, a profile) now or on a
schedule, "Sync now" on a Canvas cohort, and retrying one course of a bulk pull."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_q.models import Schedule

from cohorts.models import Cohort, Source
from integrations.canvas.profiles import (
    COURSE_STATES,
    DEFAULT_PROFILE,
    DEFAULT_STATE,
    MAX_COURSES_LIMIT,
    PROFILES,
    params_problems,
)
from integrations.canvas.pull import (
    SUCCESS,
    canvas_params_for,
    canvas_retry_child,
    canvas_run_create,
    canvas_run_for_cohort,
)
from integrations.config import require
from integrations.http import ConfigError
from integrations.tasks import enqueue_run
from reports.access import staff_required
from reports.actions import RunAction
from reports.models import Run, RunKind

SCHEDULE_PREFIX = "classbridge:canvas-pull:"
SCHEDULE_TASK = "integrations.canvas.pull.canvas_scheduled_pull"
RECENT_RUNS = 10


def canvas_run_actions(run: Run) -> list[RunAction]:
    """A failed course of a bulk pull can be pulled again on its own."""
    params = run.params or {}
    if (
        params.get("mode") == "course"
        and params.get("parent_run_id")
        and run.is_finished
        and run.status not in SUCCESS
    ):
        return [
            RunAction(
                "Retry this course",
                reverse("integrations:canvas_retry", args=[run.pk]),
                method="post",
            )
        ]
    return []


@require_POST
@staff_required
def canvas_retry(request, pk: int):
    child = get_object_or_404(Run, pk=pk, kind=RunKind.CANVAS_SYNC)
    parent_id = child.params.get("parent_run_id")
    try:
        run = canvas_retry_child(
            child=child, triggered_by=f"user:{request.user.get_username()}", user=request.user
        )
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("reports:detail", parent_id or child.pk)
    enqueue_run(run.pk)
    messages.success(request, f"{child.subject}: pulled again as run #{run.pk}.")
    return redirect("reports:detail", parent_id or run.pk)


@require_POST
@staff_required
def canvas_sync_now(request, pk: int):
    cohort = get_object_or_404(Cohort, pk=pk, source=Source.CANVAS)
    run = canvas_run_for_cohort(
        cohort_id=cohort.pk, triggered_by=f"user:{request.user.get_username()}", user=request.user
    )
    if run is None:
        messages.info(request, "A pull of this cohort is already under way.")
        return redirect("cohorts:detail", cohort.pk)
    enqueue_run(run.pk)
    messages.success(request, f"Pull of {cohort.name} queued.")
    return redirect("reports:detail", run.pk)


class CanvasPullForm(forms.Form):
    courses = forms.CharField(
        required=False,
        label="Course ids",
        help_text="One or more Canvas course ids (or sis_course_id:CODE), separated by spaces "
        "or commas. Leave empty to pull the account's courses by the filters below.",
    )
    state = forms.ChoiceField(
        choices=[(s, s) for s in COURSE_STATES], initial=DEFAULT_STATE, required=False
    )
    term = forms.CharField(required=False, label="Term id")
    max_courses = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_COURSES_LIMIT, label="At most"
    )
    profile = forms.ChoiceField(
        choices=[(name, f"{name}: {p.description}") for name, p in PROFILES.items()],
        initial=DEFAULT_PROFILE,
    )
    every_hours = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=24 * 30,
        label="Repeat every (hours)",
        help_text="Empty: run once, now. A number: a schedule that pulls this selection.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        ids = [c for c in (data.get("courses") or "").replace(",", " ").split() if c]
        params = canvas_params_for(
            course_ids=ids,
            all_courses=not ids,
            state=data.get("state") or DEFAULT_STATE,
            term=(data.get("term") or "").strip(),
            max_courses=data.get("max_courses"),
            profile=data.get("profile") or DEFAULT_PROFILE,
        )
        for problem in params_problems(params):
            self.add_error(None, problem)
        data["params"] = params
        return data


def _schedule_name(params: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return f"{SCHEDULE_PREFIX}{digest}"


def canvas_schedules() -> list[dict[str, Any]]:
    rows = []
    for schedule in Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).order_by("name"):
        try:
            params = json.loads(json.loads(schedule.args or '""'))
        except (TypeError, ValueError):
            params = {}
        rows.append(
            {"schedule": schedule, "params": params, "hours": (schedule.minutes or 0) // 60}
        )
    return rows


@staff_required
def canvas_page(request):
    form = CanvasPullForm(request.POST or None)
    try:
        require("CANVAS_BASE_URL", "CANVAS_TOKEN")
        config_problem = ""
    except ConfigError as exc:
        config_problem = str(exc)
    if request.method == "POST" and form.is_valid():
        params = form.cleaned_data["params"]
        hours = form.cleaned_data.get("every_hours")
        if hours:
            Schedule.objects.update_or_create(
                name=_schedule_name(params),
                defaults={
                    "func": SCHEDULE_TASK,
                    "args": repr(json.dumps(params, sort_keys=True)),
                    "schedule_type": Schedule.MINUTES,
                    "minutes": hours * 60,
                    "repeats": -1,
                },
            )
            messages.success(request, f"Scheduled: this pull runs every {hours} hours.")
            return redirect("integrations:canvas")
        run = canvas_run_create(
            params=params, triggered_by=f"user:{request.user.get_username()}", user=request.user
        )
        enqueue_run(run.pk)
        messages.success(request, "Canvas pull queued.")
        return redirect("reports:detail", run.pk)
    runs = list(
        Run.objects.filter(kind=RunKind.CANVAS_SYNC)
        .exclude(params__has_key="parent_run_id")
        .order_by("-created_at")[:RECENT_RUNS]
    )
    return render(
        request,
        "integrations/canvas.html",
        {
            "form": form,
            "config_problem": config_problem,
            "runs": runs,
            "schedules": canvas_schedules(),
            "nav": "canvas",
        },
    )


@require_POST
@staff_required
def canvas_schedule_delete(request, pk: int):
    Schedule.objects.filter(pk=pk, name__startswith=SCHEDULE_PREFIX).delete()
    messages.success(request, "Schedule removed.")
    return redirect("integrations:canvas")
