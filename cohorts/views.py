"""Cohort pages: the list a user may see, a cohort's health, a student, and their CSVs.

Every page reads through `cohorts.selectors` (access rule, fixed queries) and computes
with `cohorts.analytics.CohortHealth`; the CSV of each table is built from the same
frames as the page, under the same filters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST

from cohorts import charts
from cohorts.analytics import (
    BLOCKER_WEIGHTS,
    MAX_CHART_PERIODS,
    STUDENT_COLUMNS,
    CohortHealth,
    Thresholds,
    date_bounds,
    plain,
    records,
    scoped,
    student_names,
    student_standing,
    unit_names,
)
from cohorts.forms import (
    SORT_COLUMNS,
    CohortThresholdsForm,
    HealthFilterForm,
    MentorNoteForm,
)
from cohorts.health_store import Served, health_narrowed, health_served, max_age
from cohorts.models import Cohort, MentorNote
from cohorts.notes import mentor_note_marks
from cohorts.selectors import (
    cohort_frames_with_leavers,
    cohort_freshness,
    cohort_get_for_user,
    cohort_list_rows,
    cohort_student_get,
    mentor_notes_for,
    person_cohorts,
    student_progressions,
)
from reports.csvexport import csv_response

BLOCKERS_SHOWN = 10
STUCK_NAMES_SHOWN = 6
# A phone scrolls a hundred rows comfortably; the CSV has them all.
STUDENTS_PER_PAGE = 100


# --- helpers ---------------------------------------------------------------------------


def _chart_assets() -> dict[str, str | None]:
    """URLs of plotly.js and charts.js. plotly.js is None when it was never vendored: the
    manifest storage would raise, and a page must not fail for want of a chart (charts.js
    then says how to install it)."""
    try:
        plotly = staticfiles_storage.url("vendor/plotly.min.js")
    except ValueError:
        plotly = None
    return {"plotly": plotly, "charts": staticfiles_storage.url("js/charts.js")}


def _tz() -> str:
    return timezone.get_current_timezone_name()


def _health(cohort: Cohort, request: HttpRequest | None = None, frames=None):
    """The cohort's metrics under the request's filters: (filter form, values, health,
    served).

    - No filter: the stored default view (`cohorts.health_store`: one query while valid).
    - A unit, a first day or a chart frequency: the stored view narrowed as of its moment,
      reading only the rows they need (`health_store.health_narrowed`: one more query).
    - A last day ("to": the cohort as it stood then), or `frames` given: computed live
      from every row (`served.live`, its leavers None when `frames` were given).
    A narrowed or live view's charts are drawn by the caller: `served.charts` is None, or
    (narrowed by dates alone) holds the stored completion and blocker charts.

    Dates outside the cohort's lifetime plus a margin (`analytics.date_bounds`) are
    refused by the form (`form.date_errors`) and left out of `values`.
    """
    params = request.GET if request is not None else {}
    if frames is None and not params.get("date_to"):
        served = health_served(cohort)
        form, values = _filter_form(cohort, params, served.health.units, None, served.health)
        narrow = {"unit": values.get("unit") or None, "date_from": values.get("date_from")}
        narrow["freq"] = values.get("freq") or None
        if not any(narrow.values()):
            return form, values, served.health, served
        health = health_narrowed(cohort, served, **narrow)
        # Without a unit, completion and blockers are the stored ones: so are their charts.
        figures = None if health.unit is not None else dict(served.charts, progress=None)
        narrowed = Served(health, served.leavers, figures, served.computed_at, False, live=True)
        return form, values, health, narrowed
    leavers = None
    if frames is None:
        *frames, leavers = cohort_frames_with_leavers(cohort=cohort)
    students, assignments, progressions = frames
    form, values = _filter_form(cohort, params, unit_names(assignments), progressions, None)
    health = CohortHealth(
        students,
        assignments,
        progressions,
        thresholds=Thresholds.of(cohort),
        now=timezone.now(),
        tz=_tz(),
        starts_on=cohort.starts_on,
        ends_on=cohort.ends_on,
        unit=values.get("unit") or None,
        date_from=values.get("date_from"),
        date_to=values.get("date_to"),
        freq=values.get("freq") or None,
        source=cohort.source,
    )
    live = Served(health, leavers, None, health.now.to_pydatetime(), stored=False, live=True)
    return form, values, health, live


def _filter_form(cohort: Cohort, params, units, progressions, stored):
    form = HealthFilterForm(
        params if params else None,
        units=units,
        bounds=date_bounds(
            progressions,
            today=timezone.localdate(),
            starts_on=cohort.starts_on,
            ends_on=cohort.ends_on,
            tz=_tz(),
            stamps=None if stored is None else stored.stamps,
        ),
    )
    values = form.values() if form.is_bound else {name: None for name in form.fields}
    return form, values


def _student_rows(health: pd.DataFrame, values: dict[str, Any]) -> pd.DataFrame:
    frame = health
    if values.get("status"):
        frame = frame.loc[frame["status"] == values["status"]]
    query = (values.get("q") or "").strip().lower()
    if query:
        haystack = (frame["name"] + " " + frame["email"] + " " + frame["external_id"]).str.lower()
        frame = frame.loc[haystack.str.contains(query, regex=False)]
    sort = values.get("sort")
    if sort in SORT_COLUMNS:
        column = SORT_COLUMNS[sort]
        ascending = values.get("dir") != "desc"
        keys = [column, "name", "student_id"]
        if column == "name":
            keys = ["name", "student_id"]
        return frame.sort_values(
            keys,
            ascending=[ascending] + [True] * (len(keys) - 1),
            na_position="last",
            kind="stable",
            key=lambda s: s.str.lower() if s.name == "name" else s,
        )
    # Default: worst first, then furthest behind, then by name.
    return frame.sort_values(
        ["severity", "behind", "name", "student_id"],
        ascending=[False, False, True, True],
        kind="stable",
    )


def _sort_links(request: HttpRequest, values: dict[str, Any]) -> dict[str, dict[str, str]]:
    links = {}
    for key in SORT_COLUMNS:
        active = values.get("sort") == key
        direction = "desc" if active and values.get("dir") != "desc" else "asc"
        params = request.GET.copy()
        params.pop("page", None)  # a new order starts from its first page
        params["sort"], params["dir"] = key, direction
        links[key] = {
            "url": "?" + params.urlencode() + "#students",
            "aria": ("descending" if values.get("dir") == "desc" else "ascending")
            if active
            else "none",
            "arrow": ("▼" if values.get("dir") == "desc" else "▲") if active else "",
        }
    return links


# --- table definitions (page and CSV share them) ---------------------------------------


def _pct(value: Any) -> Any:
    value = plain(value)
    return None if value is None else round(float(value), 4)


def _days(value: Any) -> Any:
    value = plain(value)
    return None if value is None else round(float(value), 1)


def students_table(health: CohortHealth, rows: pd.DataFrame) -> tuple[list, Iterable]:
    header = [
        "Student",
        "Email",
        "External id",
        "Status",
        "Reasons",
        "Completed",
        "Assignments",
        "Behind cohort median",
        "Ahead of pace (+) / behind (-)",
        "Days inactive",
        "Last activity",
        "Quiz average (0-1)",
        "Completions last 7 days",
        "Completions 7 days before",
        "Trend",
    ]
    total = len(health.all_assignments)
    body = (
        [
            r["name"],
            r["email"],
            r["external_id"],
            r["status_label"],
            r["reason"],
            r["completed"],
            total,
            _days(r["behind"]),
            _days(r["vs_pace"]),
            r["days_inactive"],
            r["last_activity"],
            _pct(r["quiz_average"]),
            r["this_week"],
            r["last_week"],
            r["trend"],
        ]
        for r in records(rows)
    )
    return header, body


def blockers_table(health: CohortHealth) -> tuple[list, Iterable]:
    header = [
        "Rank",
        "Assignment",
        "Unit",
        "Kind",
        "Score (0-100)",
        "Students stuck",
        "Share of cohort stuck",
        "Median days to complete",
        "Median quiz grade",
        "Waiting for review",
        "Median days waiting",
        "Points: stuck",
        "Points: slow",
        "Points: grade",
        "Points: review",
        "At-risk students stuck",
    ]
    w = BLOCKER_WEIGHTS
    body = (
        [
            r["rank"],
            r["name"],
            r["unit"],
            r["kind"],
            r["score"],
            r["stuck"],
            _pct(r["stuck_share"]),
            _days(r["median_days_to_complete"]),
            _pct(r["median_quiz_grade"]),
            r["waiting_review"],
            _days(r["median_waiting_days"]),
            round(r["part_stuck"] * w["stuck"], 1),
            round(r["part_slow"] * w["slow"], 1),
            round(r["part_grade"] * w["grade"], 1),
            round(r["part_review"] * w["review"], 1),
            "; ".join(r["stuck_at_risk_names"]),
        ]
        for r in records(health.blockers)
    )
    return header, body


def completion_table(health: CohortHealth) -> tuple[list, Iterable]:
    header = [
        "Order",
        "Assignment",
        "External id",
        "Unit",
        "Kind",
        "Students",
        "Started",
        "In progress",
        "Completed",
        "Completion (0-1)",
    ]
    body = (
        [
            r["order"],
            r["name"],
            r["external_id"],
            r["unit"],
            r["kind"],
            r["students"],
            r["started"],
            r["in_progress"],
            r["completed"],
            _pct(r["completion"]),
        ]
        for r in records(health.completion)
    )
    return header, body


def units_table(health: CohortHealth) -> tuple[list, Iterable]:
    header = ["Unit", "Assignments", "Students", "Completed", "Possible", "Completion (0-1)"]
    body = (
        [
            r["unit"],
            r["assignments"],
            r["students"],
            r["completed"],
            r["possible"],
            _pct(r["completion"]),
        ]
        for r in records(health.completion_units)
    )
    return header, body


def progress_table(health: CohortHealth) -> tuple[list, Iterable]:
    header = [
        "Period end",
        "Completions",
        "Cumulative completions",
        "Per student",
        "Expected per student (pace)",
        "Share of curriculum (0-1)",
        "Expected share (0-1)",
    ]
    body = (
        [
            r["period_end"],
            r["completions"],
            r["cumulative"],
            _days(r["per_student"]),
            _days(r["expected_per_student"]),
            _pct(r["share"]),
            _pct(r["expected_share"]),
        ]
        for r in records(health.progress)
    )
    return header, body


TABLES: dict[str, Callable[[CohortHealth], tuple[list, Iterable]]] = {
    "blockers": blockers_table,
    "completion": completion_table,
    "units": units_table,
    "progress": progress_table,
}


# --- pages -----------------------------------------------------------------------------


@login_required
def cohort_list(request):
    rows = cohort_list_rows(user=request.user, now=timezone.now())
    return render(request, "cohorts/list.html", {"rows": rows, "nav": "cohorts"})


@login_required
def cohort_list_csv(request):
    rows = cohort_list_rows(user=request.user, now=timezone.now())
    header = [
        "Cohort",
        "Source",
        "External id",
        "Students",
        "Assignments",
        "Completion (0-1)",
        "At risk",
        "Watch",
        "Last pulled",
        "Freshness",
    ]
    body = (
        [
            r["cohort"].name,
            r["cohort"].get_source_display(),
            r["cohort"].external_id,
            r["students"],
            r["assignments"],
            _pct(r["completion"]),
            r["at_risk"],
            r["watch"],
            r["cohort"].last_synced_at,
            r["freshness"]["label"],
        ]
        for r in rows
    )
    return csv_response("cohorts.csv", header, body)


def _students_page(request: HttpRequest, students: pd.DataFrame) -> dict[str, Any]:
    """One page of the (filtered, sorted) students table, with links to the others."""
    pages = max(1, math.ceil(len(students) / STUDENTS_PER_PAGE))
    try:
        number = min(max(int(request.GET.get("page", "1")), 1), pages)
    except ValueError:
        number = 1
    start = (number - 1) * STUDENTS_PER_PAGE
    rows = records(students.iloc[start : start + STUDENTS_PER_PAGE])
    # One reverse() for the table rather than one per row: "/cohorts/<pk>/students/0/" less "0/".
    base = reverse("cohorts:student", args=[request.resolver_match.kwargs["pk"], 0])[:-2]
    marks = mentor_note_marks(
        cohort_id=request.resolver_match.kwargs["pk"], student_ids=[r["student_id"] for r in rows]
    )
    for row in rows:
        row["url"] = f"{base}{row['student_id']}/"
        row["notes"] = marks.get(row["student_id"])  # the marker: notes written about them

    def link(n: int) -> str:
        params = request.GET.copy()
        params["page"] = str(n)
        return f"?{params.urlencode()}#students"

    return {
        "students": rows,
        "students_matching": len(students),
        "students_page": {
            "number": number,
            "pages": pages,
            "first": start + 1 if rows else 0,
            "last": start + len(rows),
            "previous": link(number - 1) if number > 1 else None,
            "next": link(number + 1) if number < pages else None,
        },
    }


def _blocker_rows(blockers: pd.DataFrame) -> list[dict[str, Any]]:
    rows = records(blockers.loc[blockers["score"] > 0].head(BLOCKERS_SHOWN))
    for row in rows:
        people = [
            {"id": i, "name": n}
            for i, n in zip(row["stuck_at_risk"], row["stuck_at_risk_names"], strict=True)
        ]
        row["people"], row["more"] = people[:STUCK_NAMES_SHOWN], len(people[STUCK_NAMES_SHOWN:])
    return rows


def _health_context(request, cohort: Cohort, thresholds_form=None) -> dict[str, Any]:
    form, values, health, served = _health(cohort, request)
    leavers, as_of = served.leavers, served.computed_at
    figures = dict(served.charts or {})
    # Filtered: what the filter changed is drawn now.
    draw = {
        "completion": lambda: charts.completion_figure(health.completion),
        "blockers": lambda: charts.blockers_figure(health.blockers, limit=BLOCKERS_SHOWN),
        "progress": lambda: charts.progress_figure(health.progress),
    }
    for name, figure in draw.items():
        if figures.get(name) is None:
            figures[name] = figure()
    students = _student_rows(health.health, values)
    blockers = health.blockers
    query = request.GET.urlencode()
    return {
        "cohort": cohort,
        "nav": "cohorts",
        "freshness": cohort_freshness(cohort=cohort, now=timezone.now()),
        "health": health,
        "as_of": as_of,
        "health_max_age_minutes": round(max_age().total_seconds() / 60),
        "form": form,
        "values": values,
        "query": f"?{query}" if query else "",
        "filtered": any(values.get(k) for k in ("unit", "date_from", "date_to")),
        "headline": health.headline,
        "units": records(health.completion_units),
        "completion": records(health.completion),
        "blockers": _blocker_rows(blockers),
        "blockers_total": int((blockers["score"] > 0).sum()),
        **_students_page(request, students),
        "students_total": len(health.health),
        "leavers": records(
            leavers.assign(name=student_names(leavers))[["student_id", "name", "left_at"]]
        ),
        "max_chart_periods": MAX_CHART_PERIODS,
        "sort_links": _sort_links(request, values),
        "progress": records(health.progress),
        "pace": health.pace,
        "charts": figures,
        "chart_assets": _chart_assets(),
        "thresholds_form": thresholds_form
        or (CohortThresholdsForm(instance=cohort) if request.user.is_staff else None),
    }


@login_required
def cohort_detail(request, pk: int):
    cohort = cohort_get_for_user(user=request.user, pk=pk)
    return render(request, "cohorts/detail.html", _health_context(request, cohort))


def _refused_dates(form: HealthFilterForm) -> HttpResponse | None:
    """A 400 naming each refused date parameter: a CSV cannot show a form error, and a
    download silently without its filter would mislead."""
    if not form.date_errors:
        return None
    text = "".join(f"{name}: {problem}\n" for name, problem in form.date_errors.items())
    return HttpResponse(text, status=400, content_type="text/plain; charset=utf-8")


@login_required
def cohort_table_csv(request, pk: int, table: str):
    cohort = cohort_get_for_user(user=request.user, pk=pk)
    form, values, health, _served = _health(cohort, request)
    if (refused := _refused_dates(form)) is not None:
        return refused
    if table == "students":
        header, body = students_table(health, _student_rows(health.health, values))
    elif table in TABLES:
        header, body = TABLES[table](health)
    else:
        raise Http404("No such table.")
    stamp = timezone.localdate().isoformat()
    return csv_response(f"{slugify(cohort.name) or 'cohort'}-{table}-{stamp}.csv", header, body)


@require_POST
@login_required
def cohort_thresholds(request, pk: int):
    cohort = cohort_get_for_user(user=request.user, pk=pk)
    if not request.user.is_staff:
        raise PermissionDenied("Only an admin changes thresholds.")
    form = CohortThresholdsForm(request.POST, instance=cohort)
    if form.is_valid():
        form.save()
        messages.success(request, "Thresholds saved: students are classified with them now.")
        return redirect("cohorts:detail", cohort.pk)
    cohort.refresh_from_db()
    messages.error(request, "The thresholds were not saved: see the form below.")
    context = _health_context(request, cohort, thresholds_form=form)
    context["thresholds_open"] = True
    return render(request, "cohorts/detail.html", context, status=400)


# --- student page ----------------------------------------------------------------------


def _timeline(health: CohortHealth, mine: pd.DataFrame) -> list[dict[str, Any]]:
    """The student's progressions (`mine`: their counted rows, as `analytics.scoped`
    gives them), latest activity first, with their state in words."""
    plan = health.completion[["assignment_id", "order", "name", "unit", "kind"]]
    frame = plan.merge(mine, on="assignment_id", how="inner")
    frame["last"] = frame[["started_at", "completed_at", "reviewed_at"]].max(axis=1)
    frame["days_to_complete"] = (frame["completed_at"] - frame["started_at"]) / pd.Timedelta(days=1)
    frame = frame.sort_values(["last", "order"], ascending=[False, True], na_position="last")
    reviewed_kinds = health.reviewed_kinds
    rows = []
    for row in records(frame):
        if row["reviewed_at"]:
            state = "reviewed"
        elif row["completed_at"]:
            state = "waiting for review" if row["kind"] in reviewed_kinds else "completed"
        elif row["started_at"]:
            state = "in progress"
        else:
            continue
        row["state"] = state
        rows.append(row)
    return rows


def timeline_table(rows: list[dict[str, Any]]) -> tuple[list, Iterable]:
    header = [
        "Assignment",
        "Unit",
        "Kind",
        "State",
        "Started",
        "Completed",
        "Reviewed",
        "Grade (0-1)",
        "Days to complete",
    ]
    body = (
        [
            r["name"],
            r["unit"],
            r["kind"],
            r["state"],
            r["started_at"],
            r["completed_at"],
            r["reviewed_at"],
            _pct(r["grade"]),
            _days(r["days_to_complete"]),
        ]
        for r in rows
    )
    return header, body


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def cohort_student(request, pk: int, student_id: int):
    cohort = cohort_get_for_user(user=request.user, pk=pk)
    student = cohort_student_get(cohort=cohort, student_id=student_id)
    note_form = MentorNoteForm()
    if request.method == "POST":
        # Whoever may see the cohort (its mentors and admins) may add to the log.
        note_form = MentorNoteForm(request.POST)
        if note_form.is_valid():
            MentorNote.objects.create(
                cohort=cohort,
                student=student,
                author=request.user,
                author_name=request.user.get_full_name() or request.user.get_username(),
                body=note_form.cleaned_data["body"],
            )
            messages.success(request, "Note added.")
            return redirect("cohorts:student", cohort.pk, student.pk)
    context = _student_context(cohort, student)
    context["notes"] = list(mentor_notes_for(cohort=cohort, student=student))
    context["note_form"] = note_form
    context["person_cohorts"] = person_cohorts(user=request.user, student=student)
    return render(request, "cohorts/student.html", context, status=400 if note_form.errors else 200)


@dataclass
class _StudentView:
    health: CohortHealth
    left: dict | None  # {"at": when} if they left
    mine: pd.DataFrame  # their counted progressions (`analytics.scoped`)
    rows: pd.DataFrame | None  # their raw rows, for a stored health's progress chart
    as_of: Any = None  # the moment the health is as of


def _student_health(cohort: Cohort, student_id: int) -> _StudentView:
    """The health a student's page reads. An enrolled student: the cohort's stored default
    view and their own rows (one query). A student who left counts in none of the cohort's
    figures: their page reads their own history alone, computed live. Decided from the
    stored view's students (or the frames), so a pull between two reads cannot leave the
    page without its student."""
    served = health_served(cohort)
    health = served.health
    if (health.students["student_id"] == student_id).any():
        rows = student_progressions(cohort=cohort, student_id=student_id)
        mine = scoped(health.students, health.all_assignments, rows)
        return _StudentView(health, None, mine, rows, served.computed_at)
    students, assignments, progressions, leavers = cohort_frames_with_leavers(cohort=cohort)
    left = None
    if not (students["student_id"] == student_id).any():
        mine = leavers.loc[leavers["student_id"] == student_id]
        if mine.empty:  # unenrolled since the access check
            raise Http404("No such student in this cohort.")
        left = {"at": plain(mine["left_at"].iloc[0])}
        students = mine[list(STUDENT_COLUMNS)]
    health = _health(cohort, frames=(students, assignments, progressions))[2]
    own = health.all_progressions
    return _StudentView(
        health, left, own.loc[own["student_id"] == student_id], None, health.now.to_pydatetime()
    )


def _student_context(cohort: Cohort, student) -> dict[str, Any]:
    view = _student_health(cohort, student.pk)
    health, left = view.health, view.left
    record = records(health.health.loc[health.health["student_id"] == student.pk])[0]
    timeline = _timeline(health, view.mine)
    context = {
        "cohort": cohort,
        "student": student,
        "nav": "cohorts",
        "row": record,
        "left": left is not None,
        "left_at": left and left["at"],
        "assignments_total": len(health.all_assignments),
        "not_started": len(health.all_assignments) - len(timeline),
        "timeline": timeline,
        "chart_assets": _chart_assets(),
        "has_progress": False,
        "pace_assumed": health.pace.assumption(health.tz),
        "as_of": view.as_of,
    }
    if left is None:
        progress = health.student_progress(student.pk, view.rows)
        context.update(
            {
                "standing": student_standing(health.health, student.pk),
                "chart": charts.progress_figure(
                    progress, student=progress.get("student"), student_name=record["name"]
                ),
                "has_progress": not progress.empty,
            }
        )
    return context


@login_required
def cohort_student_csv(request, pk: int, student_id: int, table: str):
    cohort = cohort_get_for_user(user=request.user, pk=pk)
    student = cohort_student_get(cohort=cohort, student_id=student_id)
    name = slugify(str(student)) or f"student-{student.pk}"
    if table == "timeline":
        view = _student_health(cohort, student.pk)
        header, body = timeline_table(_timeline(view.health, view.mine))
    elif table == "notes":
        header = ["When", "Author", "Note"]
        body = (
            [n.created_at, n.author_name, n.body]
            for n in mentor_notes_for(cohort=cohort, student=student)
        )
    else:
        raise Http404("No such table.")
    return csv_response(f"{name}-{table}.csv", header, body)
