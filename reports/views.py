"""Run pages for staff: the list, a run's live progress and report, its failures as CSV."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from reports import selectors
from reports.access import staff_required
from reports.actions import run_actions
from reports.csvexport import csv_response
from reports.mail import run_failures_filename
from reports.models import Run, RunKind, RunStatus
from reports.render import (
    count_rows,
    counts_summary,
    format_duration,
    item_links,
    run_links,
    run_report,
    run_title,
    status_label,
    subject_url,
)

RUNS_PER_PAGE = 50
ITEMS_PER_PAGE = 100
# With no progress for this long, a running run is probably orphaned by a dead worker.
STALE_AFTER_SECONDS = 120


class RunFilterForm(forms.Form):
    kind = forms.ChoiceField(choices=[("", "Any kind"), *RunKind.choices], required=False)
    status = forms.ChoiceField(choices=[("", "Any status"), *RunStatus.choices], required=False)
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("“From” is after “To”.")
        return data


def _get_run(pk: int) -> Run:
    try:
        return selectors.run_get(pk=pk)
    except Run.DoesNotExist:
        raise Http404("No such run.") from None


@staff_required
def run_list(request):
    form = RunFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_bound:
        form.is_valid()
        # A bad value must not hide every run: filter on the fields that did validate.
        filters = {
            key: value
            for key, value in form.cleaned_data.items()
            if value and key not in form.errors
        }
    page = Paginator(selectors.run_list(**filters), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    for run in page:
        run.duration_text = format_duration(run.duration_seconds)
        run.counts_text = counts_summary(run.counts) if run.counts else ""
        run.subject_url = subject_url(run)
    return render(
        request,
        "reports/list.html",
        {"form": form, "page": page, "filtered": bool(filters), "nav": "runs"},
    )


def _progress_context(run: Run) -> dict[str, Any]:
    now = timezone.now()
    since = run.started_at or run.created_at
    percent = None
    if run.progress_total:
        percent = min(100, round(100 * run.progress_done / run.progress_total))
    quiet_for = (now - run.heartbeat_at).total_seconds() if run.heartbeat_at else None
    return {
        "run": run,
        "status_label": status_label(run),
        "since": since,
        "elapsed": format_duration((now - since).total_seconds()) if since else "",
        "percent": percent,
        "total_known": run.progress_total is not None,
        "title": run_title(run),
        "counts": count_rows(run.counts or {}),
        "stale": (
            run.status == RunStatus.RUNNING
            and quiet_for is not None
            and quiet_for > STALE_AFTER_SECONDS
        ),
        "quiet_for": format_duration(quiet_for),
    }


@staff_required
@never_cache
def run_detail(request, pk: int):
    run = _get_run(pk)
    context: dict[str, Any] = {
        "run": run,
        "nav": "runs",
        "actions": run_actions(run),
        "links": run_links(run, absolute=False),
        **_progress_context(run),
        **_children_context(run),
    }
    if run.is_finished:
        failures_only = request.GET.get("failed") == "1"
        items = selectors.run_items(run=run, failures_only=failures_only)
        items_page = Paginator(items, ITEMS_PER_PAGE).get_page(request.GET.get("page"))
        # The page lists failures in the items table, so the report needs none of its own.
        context.update(run_report(run, failure_limit=0))
        # The page links within the site.
        context["links"] = run_links(run, absolute=False) + item_links(run, absolute=False)
        context.update(
            {
                "failures_only": failures_only,
                "items_page": items_page,
                "items_total": (run.items.count() if failures_only else items_page.paginator.count),
            }
        )
    return render(request, "reports/detail.html", context)


def _children_context(run: Run) -> dict[str, Any]:
    """A parent run (a bulk pull) lists the run of each of its children, with their actions;
    a child links back to its parent."""
    parent_id = run.params.get("parent_run_id") if isinstance(run.params, dict) else None
    children = selectors.run_children(run=run)
    rows = []
    for child in children:
        failure = child.params.get("failure") or {}
        rows.append(
            {
                "run": child,
                "duration": format_duration(child.duration_seconds),
                "failure": failure,
                "actions": run_actions(child),
            }
        )
    stats = selectors.children_stats(children) if children else None
    if stats and stats["average_seconds"] is not None:
        stats["average_text"] = format_duration(stats["average_seconds"])
    return {"children": rows, "children_stats": stats, "parent_id": parent_id}


@staff_required
@never_cache
def run_progress(request, pk: int):
    """The progress fragment the run page polls; says when the run is finished."""
    run = _get_run(pk)
    return render(request, "reports/detail.html#progress", _progress_context(run))


@staff_required
def run_failures_csv(request, pk: int):
    run = _get_run(pk)
    header, rows = selectors.run_failure_table(run=run)
    return csv_response(run_failures_filename(run), header, rows)
