"""The read-only JSON API under /api/: the Cohort Tracker's endpoints, on our data.

Plain Django views returning JsonResponse. A caller is the signed-in session user, or the
owner of the key in an `Authorization: Token <key>` header (keys are stored hashed, see
`ApiToken`). The access rule is the pages' (`cohorts.selectors`): an admin sees every
cohort, a mentor their own; any other cohort is a 404, as if it did not exist. Errors are
JSON too: {"error": {"code": ..., "message": ...}}. Documented in docs/api.md and served
as OpenAPI 3.1 at /api/openapi.json.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.paginator import EmptyPage, Paginator
from django.db.models import F, Q
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone

from cohorts import analytics
from cohorts.forms import date_out_of_range
from cohorts.health_store import health_narrowed, health_served
from cohorts.models import ApiToken, Assignment, Cohort, Student
from cohorts.selectors import (
    cohort_frames,
    cohort_freshness,
    cohort_get_for_user,
    cohort_list_rows,
    progressions_filtered,
    student_progressions,
)

PAGE_SIZE = 100
PAGE_SIZE_MAX = 1000
# Recording every use would write on every request; a minute is precise enough to audit.
LAST_USED_PRECISION = timedelta(minutes=1)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Token realm="api"'
    return response


def api_token_user(key: str):
    """The active user a raw API key belongs to, or None. Records when it was used."""
    token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns it with the raw key, which is never stored."""
    key = ApiToken.new_key()
    token = ApiToken(user=user, name=name)
    token.set_key(key)
    token.save()
    return token, key


def _caller(request: HttpRequest):
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "token" or not key.strip():
            raise ApiError(401, "invalid_token", "Use the header 'Authorization: Token <key>'.")
        user = api_token_user(key.strip())
        if user is None:
            raise ApiError(401, "invalid_token", "The API token is not valid.")
        return user
    if request.user.is_authenticated:
        return request.user
    raise ApiError(401, "not_authenticated", "Sign in, or send 'Authorization: Token <key>'.")


def _read_only() -> JsonResponse:
    """405 for anything but GET and HEAD."""
    response = _error(405, "method_not_allowed", "The API is read-only: use GET.")
    response["Allow"] = "GET, HEAD"
    return response


def api_view(view):
    """GET only, authenticated, errors as JSON, never cached by a shared cache."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return _read_only()
        try:
            user = _caller(request)
            response = view(request, user, *args, **kwargs)
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message)
        except Http404:
            return _error(404, "not_found", "No such cohort, student or resource.")
        response["Cache-Control"] = "private, no-store"
        return response

    return wrapper


# --- parameters ------------------------------------------------------------------------


# Ids are 64-bit in every database we run on: a larger number cannot name anything, and
# would reach the database driver as an OverflowError (a 500).
INT_MAX = 2**63 - 1


def _int(
    request: HttpRequest, name: str, default: int | None = None, *, minimum: int | None = None
) -> int | None:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"'{name}' must be a whole number.") from None
    if not -INT_MAX <= value <= INT_MAX:
        raise ApiError(400, "invalid_parameter", f"'{name}' is out of range.")
    if minimum is not None and value < minimum:
        raise ApiError(400, "invalid_parameter", f"'{name}' must be {minimum} or more.")
    return value


def _bool(request: HttpRequest, name: str) -> bool | None:
    raw = request.GET.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise ApiError(400, "invalid_parameter", f"'{name}' must be true or false.")


def _date(request: HttpRequest, name: str) -> date | None:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"'{name}' must be a date, YYYY-MM-DD.") from None


def _range(
    request: HttpRequest,
    bounds: tuple[date, date] = (analytics.EARLIEST_DATE, analytics.LATEST_DATE),
) -> tuple[date | None, date | None]:
    """`from` and `to`, each within `bounds` (by default the widest any cohort allows)."""
    first, last = _date(request, "from"), _date(request, "to")
    for name, value in (("from", first), ("to", last)):
        if value is not None and (problem := date_out_of_range(value, bounds)):
            raise ApiError(400, "invalid_parameter", f"'{name}' is out of range. {problem}")
    if first and last and first > last:
        raise ApiError(400, "invalid_parameter", "'from' is after 'to'.")
    return first, last


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _end_of(day: date) -> datetime | None:
    """The start of the next day (an exclusive bound); None after the last possible day."""
    return None if day == date.max else _start_of(day + timedelta(days=1))


def _url(request: HttpRequest, name: str, *args) -> str:
    return request.build_absolute_uri(reverse(f"cohorts:{name}", args=args))


# --- shared bodies ---------------------------------------------------------------------


def _cohort_body(request: HttpRequest, row: dict[str, Any]) -> dict[str, Any]:
    cohort: Cohort = row["cohort"]
    return {
        "id": cohort.pk,
        "name": cohort.name,
        "source": cohort.source,
        "external_id": cohort.external_id,
        "students": row["students"],
        "assignments": row["assignments"],
        "completion": round(row["completion"], 4),
        "at_risk": row["at_risk"],
        "watch": row["watch"],
        "freshness": row["freshness"],
        "url": _url(request, "api_cohort", cohort.pk),
        "page": _url(request, "detail", cohort.pk),
    }


def _health(request: HttpRequest, cohort: Cohort) -> analytics.CohortHealth:
    """The metrics under the request's filters. `from` and `to` must fall within the
    cohort's lifetime plus a margin (`analytics.date_bounds`), else 400."""
    _date(request, "from"), _date(request, "to")  # malformed: refused before any read
    freq = {"day": "D", "week": "W", "": None}.get(request.GET.get("freq", "").strip().lower())
    if request.GET.get("freq") and freq is None:
        raise ApiError(400, "invalid_parameter", "'freq' must be day or week.")
    unit = request.GET.get("unit")
    if not request.GET.get("to"):
        # The stored default view (cohorts.health_store), as the health page serves it;
        # narrowed as of its moment by a unit, a first day or a frequency.
        served = health_served(cohort)
        base = served.health
        first, _ = _range(
            request,
            analytics.date_bounds(
                None,
                today=timezone.localdate(),
                starts_on=cohort.starts_on,
                ends_on=cohort.ends_on,
                tz=timezone.get_current_timezone_name(),
                stamps=base.stamps,
            ),
        )
        if unit is not None and unit not in base.units:
            raise ApiError(400, "invalid_parameter", f"No unit named {unit!r} in this cohort.")
        if unit is None and first is None and freq is None:
            return base
        return health_narrowed(cohort, served, unit=unit, date_from=first, freq=freq)
    students, assignments, progressions = cohort_frames(cohort=cohort)
    first, last = _range(
        request,
        analytics.date_bounds(
            progressions,
            today=timezone.localdate(),
            starts_on=cohort.starts_on,
            ends_on=cohort.ends_on,
            tz=timezone.get_current_timezone_name(),
        ),
    )
    if unit is not None and unit not in analytics.unit_names(assignments):
        raise ApiError(400, "invalid_parameter", f"No unit named {unit!r} in this cohort.")
    return analytics.CohortHealth(
        students,
        assignments,
        progressions,
        thresholds=analytics.Thresholds.of(cohort),
        now=timezone.now(),
        tz=timezone.get_current_timezone_name(),
        starts_on=cohort.starts_on,
        ends_on=cohort.ends_on,
        unit=unit,
        date_from=first,
        date_to=last,
        freq=freq,
        source=cohort.source,
    )


def _filters_echo(health: analytics.CohortHealth) -> dict[str, Any]:
    return {"unit": health.unit, "from": health.date_from, "to": health.date_to}


def _pace_body(health: analytics.CohortHealth) -> dict[str, Any]:
    pace = health.pace
    return {
        "start": None if pace.start is None else pace.start.to_pydatetime(),
        "end": None if pace.end is None else pace.end.to_pydatetime(),
        "units": [{"unit": name, "assignments": n} for name, n in pace.units],
        # Without course dates the pace is an assumption: true here, and `assumption`
        # says how it was made (empty when the dates set it).
        "assumed": pace.assumed,
        "assumption": pace.assumption(health.tz),
    }


# --- endpoints -------------------------------------------------------------------------


@api_view
def cohorts_list(request, user):
    rows = cohort_list_rows(user=user, now=timezone.now())
    return JsonResponse({"results": [_cohort_body(request, row) for row in rows]})


@api_view
def cohort_detail(request, user, pk: int):
    cohort = cohort_get_for_user(user=user, pk=pk)
    links = {
        name: _url(request, f"api_{name.replace('-', '_')}", cohort.pk)
        for name in (
            "students",
            "assignments",
            "progressions",
            "progress-summary",
        )
    }
    links.update(
        {
            f"metrics/{name}": _url(request, f"api_metrics_{name.replace('-', '_')}", cohort.pk)
            for name in ("completion", "blockers", "student-health", "progress-over-time")
        }
    )
    return JsonResponse(
        {
            "id": cohort.pk,
            "name": cohort.name,
            "source": cohort.source,
            "external_id": cohort.external_id,
            "thresholds": {
                "inactive_days": cohort.inactive_days,
                "behind_fraction": cohort.behind_fraction,
                "low_grade": cohort.low_grade,
            },
            "starts_on": cohort.starts_on,
            "ends_on": cohort.ends_on,
            "freshness": cohort_freshness(cohort=cohort, now=timezone.now()),
            "links": links,
        }
    )


@api_view
def students_list(request, user, pk: int):
    """The enrolled students; `include_left=true` adds those who left (history)."""
    cohort = cohort_get_for_user(user=user, pk=pk)
    enrolled = Q(enrollments__cohort=cohort)
    if not _bool(request, "include_left"):
        enrolled &= Q(enrollments__active=True)
    students = (
        Student.objects.filter(enrolled)
        .order_by("last_name", "first_name", "id")
        .values(
            "id",
            "external_id",
            "first_name",
            "last_name",
            "email",
            active=F("enrollments__active"),
            left_at=F("enrollments__left_at"),
        )
    )
    return JsonResponse({"results": list(students)})


@api_view
def assignments_list(request, user, pk: int):
    cohort = cohort_get_for_user(user=user, pk=pk)
    rows = list(
        Assignment.objects.filter(cohort=cohort)
        .order_by("unit_position", "position", "id")
        .values("id", "external_id", "name", "kind", "unit", "unit_position", "position")
    )
    for order, row in enumerate(rows, start=1):
        row["order"] = order
    return JsonResponse({"results": rows})


@api_view
def progressions_list(request, user, pk: int):
    cohort = cohort_get_for_user(user=user, pk=pk)
    first, last = _range(request)
    size = _int(request, "page_size", PAGE_SIZE)
    if not 1 <= size <= PAGE_SIZE_MAX:
        raise ApiError(400, "invalid_parameter", f"'page_size' must be 1 to {PAGE_SIZE_MAX}.")
    number = _int(request, "page", 1, minimum=1)
    qs = progressions_filtered(
        cohort=cohort,
        student_id=_int(request, "student"),
        assignment_id=_int(request, "assignment"),
        completed=_bool(request, "completed"),
        since=_start_of(first) if first else None,
        until=_end_of(last) if last else None,
    ).values(
        "id",
        "external_id",
        "student_id",
        "assignment_id",
        "grade",
        "started_at",
        "completed_at",
        "reviewed_at",
        "synced_at",
    )
    paginator = Paginator(qs, size)
    try:
        page = paginator.page(number)
    except EmptyPage:
        raise ApiError(404, "not_found", f"There is no page {number}.") from None

    def link(n: int) -> str:
        params = request.GET.copy()
        params["page"] = str(n)
        return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")

    return JsonResponse(
        {
            "count": paginator.count,
            "page": page.number,
            "pages": paginator.num_pages,
            "next": link(page.next_page_number()) if page.has_next() else None,
            "previous": link(page.previous_page_number()) if page.has_previous() else None,
            "results": list(page.object_list),
        }
    )


@api_view
def progress_summary(request, user, pk: int):
    cohort = cohort_get_for_user(user=user, pk=pk)
    health = _health(request, cohort)
    headline = health.headline
    stamps = health.last_activity
    return JsonResponse(
        {
            "cohort": {"id": cohort.pk, "name": cohort.name},
            "filters": _filters_echo(health),
            "students": headline["students"],
            "assignments": headline["assignments"],
            "progressions": health.progressions_count,
            "completed": headline["completed"],
            "possible": headline["possible"],
            "completion": round(headline["completion"], 4),
            "students_finished": health.overall["students_finished"],
            "health": health.health_counts,
            "average_completed": round(headline["average_completed"], 2),
            "expected_completed": analytics.plain(headline["expected_completed"]),
            "pace_gap": analytics.plain(headline["pace_gap"]),
            "top_blocker": headline["top_blocker"],
            "last_activity": analytics.plain(stamps),
            "freshness": cohort_freshness(cohort=cohort, now=timezone.now()),
        }
    )


@api_view
def metrics_completion(request, user, pk: int):
    cohort = cohort_get_for_user(user=user, pk=pk)
    health = _health(request, cohort)
    return JsonResponse(
        {
            "filters": _filters_echo(health),
            "overall": health.overall,
            "units": analytics.records(health.completion_units),
            "assignments": analytics.records(health.completion),
        }
    )


@api_view
def metrics_blockers(request, user, pk: int):
    cohort = cohort_get_for_user(user=user, pk=pk)
    limit = _int(request, "limit", minimum=0)
    health = _health(request, cohort)
    frame = health.blockers
    if limit is not None:
        frame = frame.head(limit)
    rows = analytics.records(frame.drop(columns=["stuck_at_risk_names"]))
    names = dict(zip(health.health["student_id"], health.health["name"], strict=True))
    for row in rows:
        row["stuck_at_risk"] = [{"id": i, "name": names.get(i, "")} for i in row["stuck_at_risk"]]
    return JsonResponse(
        {
            "filters": _filters_echo(health),
            "weights": analytics.BLOCKER_WEIGHTS,
            # Which signals the cohort's source gives, in words (no start times: "stuck"
            # counts missing work).
            "signals": health.signals.words,
            "results": rows,
        }
    )


@api_view
def metrics_student_health(request, user, pk: int):
    cohort = cohort_get_for_user(user=user, pk=pk)
    status = request.GET.get("status", "").strip()
    if status and status not in analytics.STATUS_LABELS:
        raise ApiError(400, "invalid_parameter", "'status' must be on_track, watch or at_risk.")
    health = _health(request, cohort)
    frame = health.health.sort_values(
        ["severity", "behind", "name", "student_id"],
        ascending=[False, False, True, True],
        kind="stable",
    )
    if status:
        frame = frame.loc[frame["status"] == status]
    columns = [
        "student_id",
        "name",
        "email",
        "external_id",
        "status",
        "reasons",
        "completed",
        "median_completed",
        "behind",
        "vs_pace",
        "last_activity",
        "days_inactive",
        "quiz_average",
        "quizzes_graded",
        "this_week",
        "last_week",
        "trend",
    ]
    return JsonResponse(
        {
            "filters": {"to": health.date_to},
            "thresholds": {
                "inactive_days": health.thresholds.inactive_days,
                "behind_fraction": health.thresholds.behind_fraction,
                "low_grade": health.thresholds.low_grade,
            },
            "counts": health.health_counts,
            "results": analytics.records(frame[columns]),
        }
    )


@api_view
def metrics_progress_over_time(request, user, pk: int):
    cohort = cohort_get_for_user(user=user, pk=pk)
    student_id = _int(request, "student")
    health = _health(request, cohort)
    body: dict[str, Any] = {
        "filters": _filters_echo(health),
        "freq": {"D": "day", "W": "week"}[health.freq],
        "pace": _pace_body(health),
        "cohort": analytics.records(health.progress),
        "students": analytics.records(health.trend),
    }
    if student_id is not None:
        if student_id not in set(health.students["student_id"]):
            raise Http404
        rows = None
        if not health.has_rows:  # stored: the student's own rows, read now
            rows = student_progressions(cohort=cohort, student_id=student_id)
        series = health.student_progress(student_id, rows)
        body["student"] = {
            "id": student_id,
            "series": [
                {"period_end": r["period_end"], "cumulative": r.get("student")}
                for r in analytics.records(series)
            ],
        }
    return JsonResponse(body)


def public_view(view):
    """GET only (JSON 405 otherwise), no sign-in: for what holds no data."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return _read_only()
        return view(request, *args, **kwargs)

    return wrapper


@public_view
def openapi(request):
    """The OpenAPI 3.1 description. Public: it holds no data, and tools fetch it unsigned."""
    return JsonResponse(openapi_document(request.build_absolute_uri("/")))


@public_view
def index(request):
    """GET /api/: every endpoint with its URL and what it takes, read from the OpenAPI
    description so the two never disagree. Public, like it."""
    server = request.build_absolute_uri("/").rstrip("/")
    document = openapi_document(server)
    endpoints = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            endpoints.append(
                {
                    "name": op["operationId"],
                    "method": method.upper(),
                    "url": server + path,
                    "summary": op["summary"],
                    "authentication": "none" if op.get("security") == [] else "token or session",
                    "parameters": [
                        {
                            "name": param["name"],
                            "in": param["in"],
                            "required": param["required"],
                            "type": param["schema"].get("type"),
                            "description": param["description"],
                        }
                        for param in op["parameters"]
                    ],
                }
            )
    return JsonResponse(
        {
            "name": document["info"]["title"],
            "description": document["info"]["description"],
            "openapi": server + reverse("cohorts:api_openapi"),
            "authentication": "Send 'Authorization: Token <key>' (manage.py create_api_token), "
            "or sign in and send the session cookie.",
            "errors": 'Every error is JSON: {"error": {"code": ..., "message": ...}}.',
            "endpoints": endpoints,
        }
    )


# --- OpenAPI ---------------------------------------------------------------------------


def _param(name: str, schema: dict, description: str, where: str = "query") -> dict:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


_COHORT_ID = _param("id", {"type": "integer"}, "The cohort's id.", "path")
_FILTERS = [
    _param("unit", {"type": "string"}, "Only this unit's assignments (not for student health)."),
    _param(
        "from",
        {"type": "string", "format": "date"},
        "Start of the charted range. Dates must fall within the cohort's lifetime plus "
        f"{analytics.DATE_MARGIN.days} days either side (400 otherwise).",
    ),
    _param(
        "to",
        {"type": "string", "format": "date"},
        "The cohort as it stood at the end of this day (same bounds as from).",
    ),
]
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def _results(item: dict[str, Any]) -> dict[str, Any]:
    return _object({"results": {"type": "array", "items": item}})


def _op(
    name: str, summary: str, params: list, schema: dict[str, Any], description: str = ""
) -> dict:
    return {
        "get": {
            "operationId": name,
            "summary": summary,
            "description": description,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"$ref": "#/components/responses/NotFound"},
                "405": {"$ref": "#/components/responses/MethodNotAllowed"},
                "500": {"$ref": "#/components/responses/ServerError"},
            },
        }
    }


def _public(item: dict) -> dict:
    """An operation that needs no sign-in (and so never answers 401 or 404)."""
    op = item["get"]
    op["security"] = []
    op["responses"] = {
        "200": op["responses"]["200"],
        "405": {"$ref": "#/components/responses/MethodNotAllowed"},
    }
    return item


def openapi_document(server: str) -> dict[str, Any]:
    freshness = _object(
        {
            "state": {"type": "string", "enum": ["fresh", "stale", "failing", "never"]},
            "stale": {"type": "boolean"},
            "label": {"type": "string"},
            "last_synced_at": _NULLABLE_TIME,
            "age_hours": _NULLABLE_NUMBER,
            "sync_interval_hours": {"type": ["integer", "null"]},
            "last_sync_status": {"type": "string"},
        }
    )
    cohort = _object(
        {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "source": {"type": "string", "enum": ["openclass", "canvas"]},
            "external_id": {"type": "string"},
            "students": {"type": "integer"},
            "assignments": {"type": "integer"},
            "completion": {"type": "number", "description": "0..1"},
            "at_risk": {"type": "integer"},
            "watch": {"type": "integer"},
            "freshness": freshness,
            "url": {"type": "string", "format": "uri"},
            "page": {"type": "string", "format": "uri"},
        }
    )
    student = _object(
        {
            "id": {"type": "integer"},
            "external_id": {"type": "string"},
            "first_name": {"type": "string"},
            "last_name": {"type": "string"},
            "email": {"type": "string"},
            "active": {"type": "boolean", "description": "false: the student left"},
            "left_at": _NULLABLE_TIME,
        }
    )
    assignment = _object(
        {
            "id": {"type": "integer"},
            "external_id": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "unit": {"type": "string"},
            "unit_position": {"type": "integer"},
            "position": {"type": "integer"},
            "order": {"type": "integer", "description": "1.. in curriculum order"},
        }
    )
    progression = _object(
        {
            "id": {"type": "integer"},
            "external_id": {"type": "string"},
            "student_id": {"type": "integer"},
            "assignment_id": {"type": "integer"},
            "grade": _NULLABLE_NUMBER,
            "started_at": _NULLABLE_TIME,
            "completed_at": _NULLABLE_TIME,
            "reviewed_at": _NULLABLE_TIME,
            "synced_at": {"type": "string", "format": "date-time"},
        }
    )
    error = _object({"error": _object({"code": {"type": "string"}, "message": {"type": "string"}})})
    generic = {"type": "object", "additionalProperties": True}
    paths = {
        "/api/": _public(
            _op(
                "api_index",
                "This index: every endpoint, its URL and parameters",
                [],
                generic,
            )
        ),
        "/api/openapi.json": _public(
            _op("api_openapi", "This OpenAPI 3.1 description", [], generic)
        ),
        "/api/cohorts": _op("api_cohorts", "Cohorts you may see", [], _results(cohort)),
        "/api/cohorts/{id}": _op(
            "api_cohort", "One cohort, its thresholds and links", [_COHORT_ID], generic
        ),
        "/api/cohorts/{id}/students": _op(
            "api_students",
            "Enrolled students (those who left with include_left=true)",
            [
                _COHORT_ID,
                _param(
                    "include_left",
                    {"type": "boolean"},
                    "true: also the students who left (active false, left_at set).",
                ),
            ],
            _results(student),
        ),
        "/api/cohorts/{id}/assignments": _op(
            "api_assignments", "The curriculum, in order", [_COHORT_ID], _results(assignment)
        ),
        "/api/cohorts/{id}/progressions": _op(
            "api_progressions",
            "Progressions, filtered and paginated",
            [
                _COHORT_ID,
                _param("student", {"type": "integer"}, "A student's id."),
                _param("assignment", {"type": "integer"}, "An assignment's id."),
                _param("completed", {"type": "boolean"}, "true: completed; false: not."),
                _param(
                    "from",
                    {"type": "string", "format": "date"},
                    "Any activity (start, completion or review) on or after this day "
                    f"({analytics.EARLIEST_DATE} to {analytics.LATEST_DATE}).",
                ),
                _param(
                    "to",
                    {"type": "string", "format": "date"},
                    "Any activity on or before this day.",
                ),
                _param("page", {"type": "integer", "minimum": 1}, "1-based page."),
                _param(
                    "page_size",
                    {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX},
                    f"Default {PAGE_SIZE}.",
                ),
            ],
            _object(
                {
                    "count": {"type": "integer"},
                    "page": {"type": "integer"},
                    "pages": {"type": "integer"},
                    "next": {"type": ["string", "null"], "format": "uri"},
                    "previous": {"type": ["string", "null"], "format": "uri"},
                    "results": {"type": "array", "items": progression},
                }
            ),
        ),
        "/api/cohorts/{id}/progress-summary": _op(
            "api_progress_summary", "Headline figures", [_COHORT_ID, *_FILTERS], generic
        ),
        "/api/cohorts/{id}/metrics/completion": _op(
            "api_metrics_completion",
            "Completion per assignment, per unit and overall",
            [_COHORT_ID, *_FILTERS],
            _object(
                {
                    "overall": generic,
                    "units": {"type": "array", "items": generic},
                    "assignments": {"type": "array", "items": generic},
                }
            ),
        ),
        "/api/cohorts/{id}/metrics/blockers": _op(
            "api_metrics_blockers",
            "Assignments ranked by how much they hold students back",
            [
                _COHORT_ID,
                *_FILTERS,
                _param("limit", {"type": "integer", "minimum": 0}, "At most this many."),
            ],
            _results(generic),
            "score = 40 stuck + 25 slow + 20 grade + 15 review, each part 0..1 "
            "(docs/cohort-health.md).",
        ),
        "/api/cohorts/{id}/metrics/student-health": _op(
            "api_metrics_student_health",
            "Each student on track, watch or at risk, with reasons",
            [
                _COHORT_ID,
                _FILTERS[2],
                _param(
                    "status",
                    {"type": "string", "enum": ["on_track", "watch", "at_risk"]},
                    "Only students with this status.",
                ),
            ],
            _results(generic),
        ),
        "/api/cohorts/{id}/metrics/progress-over-time": _op(
            "api_metrics_progress_over_time",
            "Cumulative completions against the pace, and each student's weekly trend",
            [
                _COHORT_ID,
                *_FILTERS,
                _param("freq", {"type": "string", "enum": ["day", "week"]}, "Default: auto."),
                _param("student", {"type": "integer"}, "Add this student's own series."),
            ],
            generic,
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Classbridge API",
            "version": "1",
            "description": "Read-only cohort data and health metrics. See docs/api.md.",
        },
        "servers": [{"url": server.rstrip("/")}],
        "security": [{"token": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "'Token <key>'; create one with manage.py create_api_token.",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
            },
            "responses": {
                name: {
                    "description": description,
                    "content": {"application/json": {"schema": error}},
                }
                for name, description in (
                    ("BadRequest", "A parameter is not valid."),
                    ("Unauthorized", "No session and no token, or a wrong token."),
                    ("NotFound", "No such cohort, or not one you may see."),
                    ("MethodNotAllowed", "Anything but GET or HEAD."),
                    ("ServerError", "Something broke on our side; it was logged."),
                )
            },
        },
    }
