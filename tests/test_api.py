"""The JSON API under /api/: authentication, the access rule, filters, pagination, the
metrics and the OpenAPI description. Data: tests/health_cohort.py in cohort A."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from cohorts.api import api_token_create
from cohorts.models import ApiToken
from tests import health_cohort as hc

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    "api_cohort",
    "api_students",
    "api_assignments",
    "api_progressions",
    "api_progress_summary",
    "api_metrics_completion",
    "api_metrics_blockers",
    "api_metrics_student_health",
    "api_metrics_progress_over_time",
]


@pytest.fixture(autouse=True)
def frozen_now(health_now):
    yield


@pytest.fixture
def key(mentor_a) -> str:
    return api_token_create(user=mentor_a, name="tests")[1]


def url(name: str, *args) -> str:
    return reverse(f"cohorts:{name}", args=args)


def get(client, path: str, key: str | None = None, **params):
    headers = {"Authorization": f"Token {key}"} if key else {}
    return client.get(path, params, headers=headers)


# --- authentication --------------------------------------------------------------------


def test_token_auth_works_and_is_stored_hashed(client, mentor_a, ids, cohort_a, key):
    token = ApiToken.objects.get()
    assert key not in (token.key_hash, token.prefix) and token.key_hash == ApiToken.hash_key(key)
    assert token.last_used_at is None
    response = get(client, url("api_cohorts"), key)
    assert response.status_code == 200
    assert [c["name"] for c in response.json()["results"]] == ["Cohort A"]
    token.refresh_from_db()
    assert token.last_used_at == hc.NOW
    assert response["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize(
    "header",
    ["Token wrong-key", "Token ", "Bearer something", "Basic bWlhOnB3"],
)
def test_a_wrong_token_is_401_even_with_a_session(client, mentor_a, ids, key, header):
    client.force_login(mentor_a)
    response = client.get(url("api_cohorts"), headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
    assert response["WWW-Authenticate"] == 'Token realm="api"'


def test_anonymous_gets_401_json_everywhere(client, cohort_a):
    for path in [url("api_cohorts")] + [url(name, cohort_a.pk) for name in ENDPOINTS]:
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated"


def test_an_inactive_users_token_is_refused(client, mentor_a, key):
    mentor_a.is_active = False
    mentor_a.save()
    assert get(client, url("api_cohorts"), key).status_code == 401


def test_session_auth_works(client, admin_user, ids, cohort_a, cohort_b):
    client.force_login(admin_user)
    names = [c["name"] for c in client.get(url("api_cohorts")).json()["results"]]
    assert names == ["Cohort A", "Cohort B"]


def test_the_api_is_read_only(client, mentor_a, cohort_a, key):
    response = client.post(
        url("api_students", cohort_a.pk), headers={"Authorization": f"Token {key}"}
    )
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_create_api_token_command(mentor_a, capsys):
    call_command("create_api_token", "mia", "--name", "weekly export")
    key = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(name="weekly export")
    assert token.user == mentor_a and token.key_hash == ApiToken.hash_key(key)


# --- access rule -----------------------------------------------------------------------


def test_mentor_of_a_gets_404_on_every_endpoint_of_b(client, mentor_a, cohort_b, key):
    hc.build(cohort_b)
    for name in ENDPOINTS:
        response = get(client, url(name, cohort_b.pk), key)
        assert response.status_code == 404, name
        assert response.json()["error"]["code"] == "not_found"
    listed = get(client, url("api_cohorts"), key).json()["results"]
    assert [c["name"] for c in listed] == ["Cohort A"]


# --- data endpoints --------------------------------------------------------------------


def test_cohort_detail_links_every_endpoint(client, ids, cohort_a, key):
    body = get(client, url("api_cohort", cohort_a.pk), key).json()
    assert body["thresholds"] == {"inactive_days": 7, "behind_fraction": 0.2, "low_grade": 0.6}
    assert body["starts_on"] == "2026-03-02"
    for name in ENDPOINTS[1:]:
        assert any(link.endswith(url(name, cohort_a.pk)) for link in body["links"].values()), name


def test_students_and_assignments(client, ids, cohort_a, key):
    students = get(client, url("api_students", cohort_a.pk), key).json()["results"]
    assert [s["last_name"] for s in students] == ["Archer", "Baker", "Cole", "Dunn", "Evans"]
    assignments = get(client, url("api_assignments", cohort_a.pk), key).json()["results"]
    assert [(a["order"], a["name"]) for a in assignments] == [
        (1, "Intro"),
        (2, "Loops quiz"),
        (3, "Project"),
        (4, "Recursion quiz"),
        (5, "Capstone"),
        (6, "Extra reading"),
    ]


def test_progressions_filters(client, ids, cohort_a, key):
    path = url("api_progressions", cohort_a.pk)
    everything = get(client, path, key).json()
    assert everything["count"] == len(hc.PROGRESSIONS)
    assert everything["next"] is None and everything["previous"] is None
    eve = get(client, path, key, student=ids[5]).json()
    assert eve["count"] == 5  # her duplicate Intro record included: rows, not pairs
    done = get(client, path, key, completed="true").json()["results"]
    # Rows, not pairs: Eve's two Intro records both count here.
    assert all(r["completed_at"] for r in done) and len(done) == 13
    open_ = get(client, path, key, completed="false").json()
    assert open_["count"] == 3  # Ann's and Bob's Recursion quiz, Dan's empty row
    intro = cohort_a.assignments.get(name="Intro").pk
    assert get(client, path, key, assignment=intro, completed="true").json()["count"] == 5
    # Any activity within 03-18..03-19: Ann's and Bob's starts, Eve's quiz.
    window = get(client, path, key, **{"from": "2026-03-18", "to": "2026-03-19"}).json()
    assert window["count"] == 3
    assert window["results"][0]["started_at"].startswith("2026-03-18T12:00")


def test_progressions_paginate_with_links(client, ids, cohort_a, key):
    path = url("api_progressions", cohort_a.pk)
    first = get(client, path, key, page_size=5, completed="true").json()
    assert (first["count"], first["pages"], len(first["results"])) == (13, 3, 5)
    assert first["previous"] is None
    assert "page=2" in first["next"] and "completed=true" in first["next"]
    second = client.get(first["next"], headers={"Authorization": f"Token {key}"}).json()
    assert "page=1" in second["previous"]
    assert {r["id"] for r in first["results"]}.isdisjoint(r["id"] for r in second["results"])
    last = get(client, path, key, page_size=5, completed="true", page=3).json()
    assert len(last["results"]) == 3 and last["next"] is None
    assert get(client, path, key, page=9).status_code == 404


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"student": "x"}, "'student' must be a whole number."),
        ({"completed": "maybe"}, "'completed' must be true or false."),
        ({"from": "03/01/2026"}, "'from' must be a date, YYYY-MM-DD."),
        ({"from": "2026-03-10", "to": "2026-03-01"}, "'from' is after 'to'."),
        ({"page_size": "5000"}, "'page_size' must be 1 to 1000."),
    ],
)
def test_bad_parameters_are_400_with_a_message(client, ids, cohort_a, key, params, message):
    response = get(client, url("api_progressions", cohort_a.pk), key, **params)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        # Past what the database stores: a clear 400, not a 500 (OverflowError).
        ("api_progressions", {"student": "9" * 30}, "'student' is out of range."),
        ("api_progressions", {"assignment": "9" * 30}, "'assignment' is out of range."),
        ("api_metrics_progress_over_time", {"student": "9" * 30}, "'student' is out of range."),
        # Pages are 1-based: page 0 is malformed, not a page past the last.
        ("api_progressions", {"page": "0"}, "'page' must be 1 or more."),
        ("api_progressions", {"page": "-2"}, "'page' must be 1 or more."),
        ("api_metrics_blockers", {"limit": "-1"}, "'limit' must be 0 or more."),
    ],
)
def test_out_of_range_parameters_are_400(client, ids, cohort_a, key, name, params, message):
    response = get(client, url(name, cohort_a.pk), key, **params)
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "invalid_parameter", "message": message}


@pytest.mark.parametrize("name", ENDPOINTS[4:])
@pytest.mark.parametrize(
    ("param", "value"),
    [("to", "9999-12-31"), ("from", "0001-01-01"), ("from", "2025-02-27"), ("to", "2027-03-22")],
)
def test_metric_dates_outside_the_cohort_lifetime_are_400(
    client, ids, cohort_a, key, name, param, value
):
    # Cohort A's lifetime (1 to 20 Mar 2026) plus 366 days either side.
    response = get(client, url(name, cohort_a.pk), key, **{param: value})
    assert response.status_code == 400, response.content
    assert response.json()["error"] == {
        "code": "invalid_parameter",
        "message": f"'{param}' is out of range. Pick a day from 2025-02-28 to 2027-03-21.",
    }


@pytest.mark.parametrize("name", ENDPOINTS[4:])
def test_metric_dates_at_the_lifetime_edges_are_fine(client, ids, cohort_a, key, name):
    response = get(
        client, url(name, cohort_a.pk), key, **{"from": "2025-02-28", "to": "2027-03-21"}
    )
    assert response.status_code == 200, response.content


def test_progressions_dates_are_bounded_too(client, ids, cohort_a, key):
    # A paginated filter costs nothing whatever the range: only nonsense years are refused.
    path = url("api_progressions", cohort_a.pk)
    response = get(client, path, key, **{"from": "2026-03-01", "to": "2199-12-31"})
    assert response.json()["count"] == len(hc.PROGRESSIONS) - 1  # all but Dan's empty row
    for param, value in (("to", "9999-12-31"), ("from", "0001-01-01")):
        response = get(client, path, key, **{param: value})
        assert response.status_code == 400
        assert response.json()["error"]["message"] == (
            f"'{param}' is out of range. Pick a day from 1970-01-01 to 2199-12-31."
        )
    assert get(client, path, key, to="garbage").json()["error"]["message"] == (
        "'to' must be a date, YYYY-MM-DD."
    )


def test_progress_over_time_is_capped(client, ids, cohort_a, key):
    from cohorts.analytics import MAX_CHART_PERIODS
    from cohorts.models import Progression

    record = Progression.objects.filter(cohort=cohort_a).first()
    record.completed_at = record.completed_at.replace(year=2012)
    record.save()
    path = url("api_metrics_progress_over_time", cohort_a.pk)
    body = get(client, path, key, **{"from": "2011-06-01", "freq": "day", "student": ids[1]}).json()
    assert body["freq"] == "week"
    assert len(body["cohort"]) == MAX_CHART_PERIODS
    assert len(body["student"]["series"]) == MAX_CHART_PERIODS


# --- metrics ---------------------------------------------------------------------------


def test_progress_summary(client, ids, cohort_a, key):
    body = get(client, url("api_progress_summary", cohort_a.pk), key).json()
    assert (body["students"], body["assignments"], body["completed"]) == (5, 6, 12)
    assert body["completion"] == 0.4
    assert body["health"] == {"on_track": 1, "watch": 1, "at_risk": 3}
    assert (body["average_completed"], body["expected_completed"]) == (2.4, 6.0)
    assert body["top_blocker"]["name"] == "Recursion quiz"
    assert body["last_activity"].startswith("2026-03-19T12:00")
    assert body["freshness"]["state"] == "never"


def test_metrics_completion(client, ids, cohort_a, key):
    body = get(client, url("api_metrics_completion", cohort_a.pk), key).json()
    assert body["overall"]["completion"] == 0.4
    assert [(u["unit"], u["completed"]) for u in body["units"]] == [("U1", 8), ("U2", 4)]
    assert [a["completed"] for a in body["assignments"]] == [4, 4, 3, 1, 0, 0]
    only_u1 = get(client, url("api_metrics_completion", cohort_a.pk), key, unit="U1").json()
    assert only_u1["filters"]["unit"] == "U1"
    assert [a["name"] for a in only_u1["assignments"]] == ["Intro", "Loops quiz"]
    wrong = get(client, url("api_metrics_completion", cohort_a.pk), key, unit="U9")
    assert wrong.status_code == 400


def test_metrics_blockers(client, ids, cohort_a, key):
    body = get(client, url("api_metrics_blockers", cohort_a.pk), key, limit=2).json()
    assert body["weights"] == {"stuck": 40.0, "slow": 25.0, "grade": 20.0, "review": 15.0}
    first, second = body["results"]
    assert (first["name"], first["rank"], first["score"], first["stuck"]) == (
        "Recursion quiz",
        1,
        50.1,
        2,
    )
    assert first["stuck_at_risk"] == [{"id": ids[2], "name": "Bob Baker"}]
    assert (second["name"], second["waiting_review"], second["median_quiz_grade"]) == (
        "Project",
        1,
        None,
    )


def test_metrics_student_health(client, ids, cohort_a, key):
    body = get(client, url("api_metrics_student_health", cohort_a.pk), key).json()
    assert body["counts"] == {"on_track": 1, "watch": 1, "at_risk": 3}
    rows = {r["name"]: r for r in body["results"]}
    assert rows["Cat Cole"]["reasons"] == ["no activity for 9 days", "quiz average 65%"]
    assert rows["Dan Dunn"]["last_activity"] is None
    assert rows["Eve Evans"]["trend"] == "improving"
    watch = get(client, url("api_metrics_student_health", cohort_a.pk), key, status="watch")
    assert [r["name"] for r in watch.json()["results"]] == ["Cat Cole"]
    assert (
        get(client, url("api_metrics_student_health", cohort_a.pk), key, status="x").status_code
        == 400
    )


def test_metrics_progress_over_time(client, ids, cohort_a, key):
    path = url("api_metrics_progress_over_time", cohort_a.pk)
    body = get(client, path, key, freq="week", student=ids[5]).json()
    assert body["freq"] == "week"
    assert body["pace"]["start"].startswith("2026-03-02T00:00")
    assert body["pace"]["assumed"] is False and body["pace"]["assumption"] == ""
    assert body["pace"]["units"] == [
        {"unit": "U1", "assignments": 2},
        {"unit": "U2", "assignments": 4},
    ]
    assert [p["cumulative"] for p in body["cohort"]] == [1, 10, 11, 12]
    assert [p["expected_per_student"] for p in body["cohort"]] == [0.0, 2.0, 6.0, 6.0]
    assert [p["cumulative"] for p in body["student"]["series"]] == [1, 3, 3, 4]
    trends = {r["student_id"]: r["trend"] for r in body["students"]}
    assert trends[ids[1]] == "worsening"
    assert get(client, path, key, freq="month").status_code == 400
    assert get(client, path, key, student=999999).status_code == 404


def test_metrics_of_an_empty_cohort(client, cohort_a, key):
    for name in ENDPOINTS:
        assert get(client, url(name, cohort_a.pk), key).status_code == 200, name


# --- OpenAPI ---------------------------------------------------------------------------


def test_openapi_describes_every_endpoint(client, cohort_a):
    response = client.get(url("api_openapi"))
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"] == "3.1.0"
    for name in ["api_cohorts", *ENDPOINTS]:
        args = [] if name == "api_cohorts" else [cohort_a.pk]
        path = url(name, *args).replace(str(cohort_a.pk), "{id}") if args else url(name)
        assert path in spec["paths"], path
        assert "get" in spec["paths"][path]
    assert spec["components"]["securitySchemes"]["token"]["name"] == "Authorization"


def test_admin_creates_a_token_and_sees_its_key_once(client, admin_user, mentor_a):
    client.force_login(admin_user)
    response = client.post(
        "/admin/cohorts/apitoken/add/", {"user": mentor_a.pk, "name": "from the admin"}, follow=True
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(name="from the admin")
    key = response.context["key"]  # shown on the response page (tests/test_api_keys.py)
    assert key in response.content.decode()
    assert token.key_hash == ApiToken.hash_key(key)
    assert get(client, url("api_cohorts"), key).status_code == 200
    # Never again: the change page shows the prefix only.
    page = client.get(f"/admin/cohorts/apitoken/{token.pk}/change/").content.decode()
    assert key not in page and token.prefix in page
