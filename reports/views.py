"""Run pages (placeholder until the reports UI lands)."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from reports.models import Run


@staff_member_required
def run_list(request):
    return render(request, "reports/list.html", {"runs": Run.objects.all()[:100], "nav": "runs"})


@staff_member_required
def run_detail(request, pk: int):
    run = get_object_or_404(Run, pk=pk)
    return render(request, "reports/detail.html", {"run": run, "nav": "runs"})


@staff_member_required
def run_progress(request, pk: int):
    run = get_object_or_404(Run, pk=pk)
    return HttpResponse(run.status)


@staff_member_required
def run_failures_csv(request, pk: int):
    get_object_or_404(Run, pk=pk)
    return HttpResponse("", content_type="text/csv")
