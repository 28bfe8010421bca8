"""Cohort pages: the list a user may see, and a cohort's students."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from cohorts.selectors import cohort_get_for_user, cohort_list_with_counts, cohort_student_rows


@login_required
def cohort_list(request):
    cohorts = cohort_list_with_counts(user=request.user)
    return render(request, "cohorts/list.html", {"cohorts": cohorts, "nav": "cohorts"})


@login_required
def cohort_detail(request, pk: int):
    cohort = cohort_get_for_user(user=request.user, pk=pk)
    rows = cohort_student_rows(cohort=cohort)
    return render(
        request,
        "cohorts/detail.html",
        {"cohort": cohort, "rows": rows, "nav": "cohorts"},
    )
