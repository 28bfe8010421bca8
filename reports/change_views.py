"""The full list of what a pull changed (the report shows the top items and links here)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render

from reports import selectors
from reports.access import staff_required
from reports.changes import run_changes
from reports.models import Run
from reports.render import run_title


@staff_required
def run_changes_list(request, pk: int):
    try:
        run = selectors.run_get(pk=pk)
    except Run.DoesNotExist:
        raise Http404("No such run.") from None
    return render(
        request,
        "reports/changes.html",
        {"run": run, "title": run_title(run), "changes": run_changes(run, top=None), "nav": "runs"},
    )
