"""Error answers: JSON for everything under /api/ (and GET /api/ lists the endpoints), the
site's layout for the 404, 403 and 500 pages, and no URL credentials on the technical 500
page."""

from __future__ import annotations

import sys

import pytest
from django.test import Client, RequestFactory
from django.urls import get_resolver, reverse
from django.views import debug
from django.views.debug import technical_500_response

from cohorts import api
from cohorts.api import api_token_create
from config import errors
from config.debug import credentials_scrub

# --- the API answers JSON --------------------------------------------------------------


def error_of(response) -> dict:
    assert response["Content-Type"] == "application/json", response.content[:200]
    return response.json()["error"]


@pytest.mark.django_db
def test_an_unknown_api_url_is_a_json_404(client):
    for path in ("/api/nope", "/api/cohorts/1/nothing", "/api/cohorts/x"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert error_of(response) == {
            "code": "not_found",
            "message": "No such endpoint: GET /api/ lists them.",
        }


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_a_crash_under_the_api_is_a_json_500(client, mentor_a, monkeypatch, settings, debug):
    settings.DEBUG = debug  # DEBUG's technical page is HTML: it becomes JSON too
    key = api_token_create(user=mentor_a, name="t")[1]

    def crash(**kwargs):
        raise RuntimeError("postgres://cb:s3cret@db/cb is unreachable")

    monkeypatch.setattr(api, "cohort_list_rows", crash)
    client.raise_request_exception = False
    response = client.get(reverse("cohorts:api_cohorts"), headers={"Authorization": f"Token {key}"})
    assert response.status_code == 500
    assert error_of(response) == {
        "code": "server_error",
        "message": "Something went wrong on our side; it has been logged.",
    }
    assert b"s3cret" not in response.content


@pytest.mark.django_db
def test_a_csrf_failure_under_the_api_is_json(mentor_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(mentor_a)
    response = client.post(reverse("cohorts:api_cohorts"))
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "csrf_failed" and "read-only: send GET" in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["api_index", "api_openapi", "api_cohorts"])
@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_other_methods_are_a_json_405(client, mentor_a, name, method):
    client.force_login(mentor_a)
    response = getattr(client, method)(reverse(f"cohorts:{name}"))
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert error_of(response) == {
        "code": "method_not_allowed",
        "message": "The API is read-only: use GET.",
    }


@pytest.mark.django_db
def test_a_non_api_error_stays_a_page(client):
    response = client.get("/apix/nope")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


# --- GET /api/ -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_index_lists_every_endpoint(client):
    response = client.get("/api/")  # public, like the OpenAPI description
    assert response.status_code == 200
    body = response.json()
    endpoints = {e["name"]: e for e in body["endpoints"]}
    # Every API route is listed, under its URL name, and agrees with /api/openapi.json.
    routes = {
        p.name
        for p in get_resolver().url_patterns[-1].url_patterns
        if p.name and p.name.startswith("api_")
    }
    assert set(endpoints) == routes
    spec = client.get(reverse("cohorts:api_openapi")).json()
    assert {op["get"]["operationId"] for op in spec["paths"].values()} == routes
    health = endpoints["api_metrics_student_health"]
    assert health["method"] == "GET"
    assert health["url"] == "http://testserver/api/cohorts/{id}/metrics/student-health"
    assert health["authentication"] == "token or session"
    assert {p["name"] for p in health["parameters"]} == {"id", "to", "status"}
    assert endpoints["api_index"]["authentication"] == "none"
    assert body["openapi"] == "http://testserver/api/openapi.json"
    students = {p["name"]: p for p in endpoints["api_students"]["parameters"]}
    assert students["include_left"]["type"] == "boolean"


# --- error pages -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_404_page_uses_the_layout_and_offers_a_way_back(client, mentor_a):
    client.force_login(mentor_a)
    response = client.get("/cohorts/999999/")
    page = response.content.decode()
    assert response.status_code == 404
    assert 'class="topbar"' in page and "Page not found" in page
    assert f'href="{reverse("cohorts:list")}">Back to the cohorts' in page
    assert "Sign out" in page  # the layout knows who is signed in


@pytest.mark.django_db
def test_the_403_page_uses_the_layout_and_says_why(client, mentor_a, cohort_a):
    client.force_login(mentor_a)
    response = client.post(reverse("cohorts:thresholds", args=[cohort_a.pk]), {})
    page = response.content.decode()
    assert response.status_code == 403
    assert 'class="topbar"' in page and "Only an admin changes thresholds." in page
    assert "Back to the cohorts" in page


@pytest.mark.django_db
def test_a_csrf_failure_on_a_page_is_the_403_page(mentor_a, cohort_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(mentor_a)
    response = client.post(reverse("cohorts:student", args=[cohort_a.pk, 1]), {"body": "x"})
    assert response.status_code == 403
    page = response.content.decode()
    assert 'class="topbar"' in page and "security check failed" in page


def test_the_500_page_needs_no_database_or_request():
    # No django_db mark: any query would raise here (and the view would fall back).
    response = errors.server_error(RequestFactory().get("/cohorts/1/"))
    page = response.content.decode()
    assert response.status_code == 500
    assert 'class="topbar"' in page and "Something went wrong" in page
    assert 'href="/">Back to the cohorts' in page
    assert "Sign out" not in page


def test_the_500_page_falls_back_when_its_template_fails(monkeypatch):
    def broken(name):
        raise ValueError("Missing staticfiles manifest entry for 'css/app.css'")

    monkeypatch.setattr(errors.loader, "get_template", broken)
    response = errors.server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert response.content.decode() == errors.FALLBACK_500


@pytest.mark.django_db
def test_a_crash_on_a_page_shows_the_500_page(client, mentor_a, monkeypatch):
    from cohorts import views

    def crash(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views, "cohort_list_rows", crash)
    client.force_login(mentor_a)
    client.raise_request_exception = False
    response = client.get(reverse("cohorts:list"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


# --- credentials never reach the technical 500 page ------------------------------------

SECRETS = {
    "DATABASE_URL": ("postgres://cb:pg-s3cret@db.example:5432/cb", "pg-s3cret"),
    "REDIS_URL": ("redis://:r3dis-pw@cache:6379/0", "r3dis-pw"),
    "EMAIL_URL": ("smtp+tls://mailer:m4il-pw@smtp.example:587", "m4il-pw"),
    "BACKUP_TARGET": ("https://uploader:upl0ad-pw@backup.example/x", "upl0ad-pw"),
}


def technical_500(**meta) -> str:
    request = RequestFactory().get("/cohorts/", **meta)
    # Built, so that the page's source excerpt does not show it: only the variable could.
    dsn = "postgres://local:" + "l0cal" + "-pw@db/cb"  # noqa: F841
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return technical_500_response(request, *sys.exc_info()).content.decode()


def test_the_technical_500_page_hides_url_credentials(settings):
    settings.DEBUG = True
    for name, (value, _) in SECRETS.items():
        setattr(settings, name, value)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": SECRETS["REDIS_URL"][0]}
    settings.MAILERS = {
        "default": {"BACKEND": "smtp", "OPTIONS": {"host": "smtp", "password": "m4il-pw"}}
    }
    page = technical_500(DATABASE_URL=SECRETS["DATABASE_URL"][0])  # as in os.environ
    for _, secret in SECRETS.values():
        assert secret not in page
    assert "l0cal-pw" not in page and "postgres://local:********@db/cb" in page
    # The rest of each URL still helps debugging.
    assert "postgres://cb:********@db.example:5432/cb" in page
    assert "redis://:********@cache:6379/0" in page
    # Django's own filter alone would have shown them (it is cached once per process).
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = "django.views.debug.SafeExceptionReporterFilter"
    debug.get_default_exception_reporter_filter.cache_clear()
    try:
        assert "pg-s3cret" in technical_500()
    finally:
        debug.get_default_exception_reporter_filter.cache_clear()


def test_the_technical_500_page_and_error_mail_hide_credentials_in_messages(settings):
    """A driver or HTTP error quoting its URL: message, notes and chained cause."""
    settings.DEBUG = True
    request = RequestFactory().get("/cohorts/")
    leak = "redis://:" + "msg" + "-s3cret@cache:6379/0"
    try:
        try:
            raise ConnectionError(f"cannot reach {leak}")
        except ConnectionError as cause:
            error = RuntimeError(f"queue down: {leak}")
            error.add_note(f"while connecting to {leak}")
            raise error from cause
    except RuntimeError:
        info = sys.exc_info()
    page = technical_500_response(request, *info).content.decode()
    reporter = debug.get_exception_reporter_class(request)(request, *info, is_email=True)
    mail = reporter.get_traceback_text()
    for shown in (page, mail):
        assert "msg-s3cret" not in shown
        assert "redis://:********@cache:6379/0" in shown
        assert "queue down" in shown and "while connecting to" in shown


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("postgres://u:p@h/db", "postgres://u:********@h/db"),
        ("redis://:p@h:6379", "redis://:********@h:6379"),
        ("https://tok3n@api.example/x", "https://********@api.example/x"),
        ("a=postgres://u:p@ss@h/db b", "a=postgres://u:********@h/db b"),
        ("sqlite:////var/db.sqlite3", "sqlite:////var/db.sqlite3"),
        ("https://example.org/a@b", "https://example.org/a@b"),
        ("mailto:x@example.org", "mailto:x@example.org"),
    ],
)
def test_credentials_scrub(text, scrubbed):
    assert credentials_scrub(text) == scrubbed
