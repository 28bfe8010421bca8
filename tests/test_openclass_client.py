"""The OpenClass client at the HTTP edge, against the contract (vendor-contracts.md section 2)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
import requests
import responses
from responses import matchers

from integrations.http import (
    AuthError,
    ConfigError,
    MalformedResponse,
    NotFoundError,
    RetryPolicy,
    TransientError,
    VendorError,
)
from integrations.openclass.client import OpenClassClient

BASE = "https://api.openclass.test"
LOGIN = f"{BASE}/v1/auth/login"
CLASS_ID = "68e594f320442cbbe62a18dc"
PASSWORD = "Pa55-word-never-shown"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtZW50b3IifQ.first-token-signature"
TOKEN_2 = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtZW50b3IifQ.second-token-signature"
APP_ID = "ab" * 32


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def make_client(max_retries: int = 2) -> OpenClassClient:
    return OpenClassClient(
        BASE,
        email="mentor@school.test",
        password=PASSWORD,
        app_id=APP_ID,
        origin="https://app.openclass.ai",
        retry=RetryPolicy(max_retries=max_retries, sleep=lambda seconds: None),
    )


def double(payload: dict, *, in_list: bool = False) -> dict:
    """The contract's double encoding: the payload as a JSON string in result.objects."""
    text = json.dumps(payload)
    return {"result": {"objects": [text] if in_list else text}}


def add_login(rsps, token: str = TOKEN) -> None:
    user = json.dumps({"_id": {"$oid": "1" * 24}, "email": "mentor@school.test"})
    rsps.add(responses.POST, LOGIN, json={"result": {"objects": [user], "token": token}})


def progression(
    pid="p1", *, oid=True, user_id="u1", grade=0.5, started="2025-12-11T23:02:51.781Z"
) -> dict:
    return {
        "_id": {"$oid": pid} if oid else pid,
        "user": {"id": user_id, "first_name": "Jane", "last_name": "Doe", "email": "j@x.test"},
        "assignment": {"id": "a1", "name": "Bring It Into Focus", "type": "quiz"},
        "grade": grade,
        "started_assignment_at": started,
        "completed_assignment_at": started,
        "reviewed_at": None,
    }


def page_body(data, *, page=0, total=None, per_page=2, more=False) -> dict:
    metadata = {
        "total": len(data) if total is None else total,
        "page": page,
        "results_per_page": per_page,
        "can_load_more": more,
    }
    return {"metadata": metadata, "data": data}


PROGRESSIONS = f"{BASE}/v1/classes/{CLASS_ID}/progressions"
DETAIL = f"{BASE}/v1/classes/{CLASS_ID}"
CLASSES = f"{BASE}/v1/classes"


# --- login and headers ----------------------------------------------------------------
def test_login_posts_a_form_with_the_web_app_headers(rsps):
    add_login(rsps)
    client = make_client()
    client.login()
    request = rsps.calls[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body, keep_blank_values=True) == {
        "email": ["mentor@school.test"],
        "password": [PASSWORD],
        "invite_code": [""],
        "instructor_invite_code": [""],
        "mentor_invite_code": [""],
    }
    assert request.headers["Origin"] == "https://app.openclass.ai"
    assert request.headers["X-OpenClass-App-Id"] == APP_ID
    assert "bearer" not in request.headers
    assert client.logins == 1


def test_calls_send_the_token_in_a_header_named_bearer(rsps):
    add_login(rsps)
    rsps.add(responses.GET, CLASSES, json=double({"data": []}, in_list=True))
    make_client().list_classes()
    request = rsps.calls[1].request
    assert request.headers["bearer"] == TOKEN
    assert "Authorization" not in request.headers


def test_a_redirect_is_not_followed_so_the_token_stays_home(rsps):
    add_login(rsps)
    elsewhere = "https://elsewhere.example/v1/classes"
    rsps.add(responses.GET, CLASSES, status=302, headers={"Location": elsewhere})
    rsps.add(responses.GET, elsewhere, json=double({"data": []}, in_list=True))
    with pytest.raises(VendorError, match="answered 302"):
        make_client().list_classes()
    assert [c.request.url for c in rsps.calls] == [LOGIN, CLASSES]


def test_login_is_retried_on_a_server_error(rsps):
    rsps.add(responses.POST, LOGIN, status=503)
    add_login(rsps)
    client = make_client()
    client.login()
    assert client.http.retries_done == 1 and client.logins == 1


def test_refused_login_raises_auth_error(rsps):
    rsps.add(responses.POST, LOGIN, status=401, json={"error": "Invalid email or password"})
    with pytest.raises(AuthError, match="OPENCLASS_PASSWORD"):
        make_client().login()


def test_login_refused_with_403_points_at_the_app_id_too(rsps):
    # The web app's app id is checked at login: a wrong one is refused with 403.
    rsps.add(responses.POST, LOGIN, status=403, json={"error": "Unknown app"})
    with pytest.raises(AuthError, match="OPENCLASS_APP_ID"):
        make_client().login()


def test_login_without_token_is_malformed(rsps):
    rsps.add(responses.POST, LOGIN, json={"result": {"objects": ["{}"]}})
    with pytest.raises(MalformedResponse, match="token"):
        make_client().login()


# --- response shapes ------------------------------------------------------------------
DETAIL_PAYLOAD = {
    "data": {
        "_id": {"$oid": CLASS_ID},
        "name": "Software Development 1",
        "units": [
            {"name": "Week 1", "assignments": ["a1", "a2"]},
            {"name": "Week 2", "assignments": ["a3", {"$oid": "a4"}]},
        ],
    }
}


@pytest.mark.parametrize(
    "body",
    [double(DETAIL_PAYLOAD), double(DETAIL_PAYLOAD, in_list=True), DETAIL_PAYLOAD],
    ids=["objects-string", "objects-0", "plain"],
)
def test_class_detail_in_every_shape_gives_the_curriculum(rsps, body):
    add_login(rsps)
    rsps.add(responses.GET, DETAIL, json=body)
    detail = make_client().class_detail(CLASS_ID)
    assert detail.name == "Software Development 1"
    assert [(i.assignment_id, i.unit, i.unit_position, i.position) for i in detail.curriculum] == [
        ("a1", "Week 1", 1, 1),
        ("a2", "Week 1", 1, 2),
        ("a3", "Week 2", 2, 3),
        ("a4", "Week 2", 2, 4),
    ]


def test_class_list_reads_both_id_shapes(rsps):
    add_login(rsps)
    data = [{"_id": {"$oid": "c1"}, "name": "One"}, {"_id": "c2", "name": "Two"}]
    rsps.add(responses.GET, CLASSES, json=double({"metadata": {}, "data": data}, in_list=True))
    classes = make_client().list_classes()
    assert [(c.id, c.name) for c in classes] == [("c1", "One"), ("c2", "Two")]


def test_progressions_parse_both_id_shapes_and_null_timestamps(rsps):
    add_login(rsps)
    data = [
        progression("p1", oid=True),
        progression("p2", oid=False, grade=None, started=None),
    ]
    rsps.add(responses.GET, PROGRESSIONS, json=double(page_body(data)))
    page = make_client().progression_page(CLASS_ID, 0, 2)
    first, second = page.progressions
    assert (first.id, second.id) == ("p1", "p2")
    assert first.started_at == datetime(2025, 12, 11, 23, 2, 51, 781000, tzinfo=UTC)
    assert first.grade == 0.5 and first.user.id == "u1" and first.assignment.type == "quiz"
    assert second.grade is None
    assert second.started_at is None and second.completed_at is None
    assert second.reviewed_at is None
    assert page.invalid == ()


def test_a_record_without_user_id_is_reported_and_the_rest_kept(rsps):
    add_login(rsps)
    broken = progression("p2")
    del broken["user"]["id"]
    bad_grade = progression("p3", grade="A+")
    rsps.add(
        responses.GET,
        PROGRESSIONS,
        json=double(page_body([progression("p1"), broken, bad_grade])),
    )
    page = make_client().progression_page(CLASS_ID, 0, 3)
    assert [p.id for p in page.progressions] == ["p1"]
    assert [(r.key, r.field) for r in page.invalid] == [("p2", "user.id"), ("p3", "grade")]
    assert "user.id" in page.invalid[0].message
    assert page.fetched == 3


def test_paging_follows_can_load_more(rsps):
    add_login(rsps)
    for number, more in ((0, True), (1, True), (2, False)):
        rsps.add(
            responses.GET,
            PROGRESSIONS,
            match=[
                matchers.query_param_matcher(
                    {"page": str(number), "return_count": "2", "sort_by_completed_at": "-1"}
                )
            ],
            json=double(
                page_body([progression(f"p{number}")], page=number, total=5, more=more),
                in_list=number % 2 == 1,
            ),
        )
    pages = list(make_client().iter_progression_pages(CLASS_ID, 2))
    assert [p.page for p in pages] == [0, 1, 2]
    assert [p.progressions[0].id for p in pages] == ["p0", "p1", "p2"]
    assert pages[0].page_count == 3
    assert len(rsps.calls) == 4  # login + three pages, none after can_load_more is false


def test_paging_is_lazy(rsps):
    add_login(rsps)
    rsps.add(responses.GET, PROGRESSIONS, json=double(page_body([progression()], more=True)))
    pages = make_client().iter_progression_pages(CLASS_ID, 2)
    next(pages)
    assert len(rsps.calls) == 2  # the second page is not asked for until it is wanted


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-12-11T23:02:51.781Z", datetime(2025, 12, 11, 23, 2, 51, 781000, tzinfo=UTC)),
        ("2025-12-12T01:02:51+02:00", datetime(2025, 12, 11, 23, 2, 51, tzinfo=UTC)),
        ("2025-12-11T23:02:51.781+0000", datetime(2025, 12, 11, 23, 2, 51, 781000, tzinfo=UTC)),
        ("2025-12-11T23:02:51", datetime(2025, 12, 11, 23, 2, 51, tzinfo=UTC)),  # naive: UTC
        (1765494171781, datetime(2025, 12, 11, 23, 2, 51, 781000, tzinfo=UTC)),  # epoch ms
    ],
    ids=["z", "offset", "offset-no-colon", "naive", "epoch-ms"],
)
def test_timestamps_keep_their_instant_in_utc(rsps, raw, expected):
    add_login(rsps)
    rsps.add(responses.GET, PROGRESSIONS, json=double(page_body([progression(started=raw)])))
    [parsed] = make_client().progression_page(CLASS_ID, 0, 2).progressions
    assert parsed.started_at == expected
    assert parsed.started_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "started",
    [1e20, "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "yesterday"],
    ids=["epoch-overflow", "before-year-1-utc", "after-year-9999-utc", "text"],
)
def test_a_date_out_of_range_skips_the_record_instead_of_failing_the_page(rsps, started):
    add_login(rsps)
    rsps.add(
        responses.GET,
        PROGRESSIONS,
        json=double(page_body([progression("p1"), progression("p2", started=started)])),
    )
    page = make_client().progression_page(CLASS_ID, 0, 2)
    assert [p.id for p in page.progressions] == ["p1"]
    assert [(r.key, r.field) for r in page.invalid] == [("p2", "started_assignment_at")]


@pytest.mark.parametrize("grade", [1.5, -0.1, 85, True, float("nan")])
def test_a_grade_outside_0_to_1_skips_the_record(rsps, grade):
    add_login(rsps)
    body = json.dumps(
        double(page_body([progression("p1", grade=1), progression("p2", grade=grade)]))
    )
    rsps.add(responses.GET, PROGRESSIONS, body=body, content_type="application/json")
    page = make_client().progression_page(CLASS_ID, 0, 2)
    assert [(p.id, p.grade) for p in page.progressions] == [("p1", 1.0)]
    assert [(r.key, r.field) for r in page.invalid] == [("p2", "grade")]


# --- authentication during a sync -----------------------------------------------------
def test_401_mid_sync_signs_in_once_more_and_repeats_the_call(rsps):
    add_login(rsps, TOKEN)
    rsps.add(responses.GET, DETAIL, status=401, json={"error": "Unauthorized"})
    add_login(rsps, TOKEN_2)
    rsps.add(responses.GET, DETAIL, json=double(DETAIL_PAYLOAD))
    client = make_client()
    detail = client.class_detail(CLASS_ID)
    assert len(detail.curriculum) == 4
    assert client.logins == 2
    assert [c.request.headers.get("bearer") for c in rsps.calls] == [None, TOKEN, None, TOKEN_2]


def test_a_second_401_raises_auth_error(rsps):
    add_login(rsps, TOKEN)
    rsps.add(responses.GET, DETAIL, status=401)
    add_login(rsps, TOKEN_2)
    rsps.add(responses.GET, DETAIL, status=401)
    client = make_client()
    with pytest.raises(AuthError):
        client.class_detail(CLASS_ID)
    assert client.logins == 2
    assert len(rsps.calls) == 4


def test_unknown_class_raises_not_found_naming_it(rsps):
    add_login(rsps)
    rsps.add(responses.GET, DETAIL, status=404, json={"error": "Class not found"})
    with pytest.raises(NotFoundError, match=CLASS_ID):
        make_client().class_detail(CLASS_ID)


# --- retries and failures -------------------------------------------------------------
def test_429_waits_as_long_as_retry_after_says(rsps):
    add_login(rsps)
    rsps.add(responses.GET, DETAIL, status=429, headers={"Retry-After": "7"})
    rsps.add(responses.GET, DETAIL, json=double(DETAIL_PAYLOAD))
    client = make_client()
    client.class_detail(CLASS_ID)
    assert client.http.throttled == 1 and client.http.retries_done == 1
    assert client.http.slept_seconds == 7.0
    assert len(rsps.calls) == 3


def test_retry_after_is_capped_at_120_seconds(rsps):
    add_login(rsps)
    rsps.add(responses.GET, DETAIL, status=429, headers={"Retry-After": "3600"})
    rsps.add(responses.GET, DETAIL, status=503, headers={"Retry-After": "1e999"})
    rsps.add(responses.GET, DETAIL, json=double(DETAIL_PAYLOAD))
    client = make_client()
    client.class_detail(CLASS_ID)
    assert client.http.retries_done == 2
    assert client.http.slept_seconds == 240.0


def test_retry_after_as_an_http_date(rsps):
    from datetime import timedelta
    from email.utils import format_datetime

    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    add_login(rsps)
    rsps.add(responses.GET, DETAIL, status=429, headers={"Retry-After": when})
    rsps.add(responses.GET, DETAIL, json=double(DETAIL_PAYLOAD))
    client = make_client()
    client.class_detail(CLASS_ID)
    assert 25 <= client.http.slept_seconds <= 30


def test_a_connection_dropped_mid_body_is_retried(rsps):
    add_login(rsps)
    broken = requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")
    rsps.add(responses.GET, DETAIL, body=broken)
    rsps.add(responses.GET, DETAIL, json=double(DETAIL_PAYLOAD))
    client = make_client()
    assert client.class_detail(CLASS_ID).name == "Software Development 1"
    assert client.http.retries_done == 1


def test_a_connection_dropping_every_time_is_a_transient_error(rsps):
    add_login(rsps)
    broken = requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")
    rsps.add(responses.GET, DETAIL, body=broken)
    with pytest.raises(TransientError):
        make_client(max_retries=1).class_detail(CLASS_ID)


def test_500_is_retried(rsps):
    add_login(rsps)
    rsps.add(responses.GET, DETAIL, status=500)
    rsps.add(responses.GET, DETAIL, json=double(DETAIL_PAYLOAD))
    client = make_client()
    assert client.class_detail(CLASS_ID).name == "Software Development 1"
    assert client.http.retries_done == 1


def test_retries_run_out_as_a_transient_error(rsps):
    add_login(rsps)
    rsps.add(responses.GET, DETAIL, status=502)
    client = make_client(max_retries=2)
    with pytest.raises(TransientError, match="502"):
        client.class_detail(CLASS_ID)
    assert len(rsps.calls) == 1 + 3


def test_timeout_is_a_transient_error(rsps):
    add_login(rsps)
    rsps.add(responses.GET, DETAIL, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(TransientError, match="timed out"):
        make_client().class_detail(CLASS_ID)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"body": "<html>Bad gateway</html>", "content_type": "text/html"},
        {"json": {"result": {"objects": "{not json"}}},
        {"json": {"result": {"objects": []}}},
        {"json": double({"metadata": {"total": 1}, "data": []})},  # no can_load_more
        {"json": double({"metadata": {"can_load_more": False}})},  # no data
    ],
    ids=["html", "inner-not-json", "empty-objects", "no-can-load-more", "no-data"],
)
def test_malformed_bodies_raise_malformed_response(rsps, kwargs):
    add_login(rsps)
    rsps.add(responses.GET, PROGRESSIONS, **kwargs)
    with pytest.raises(MalformedResponse):
        make_client().progression_page(CLASS_ID, 0, 2)


# --- secrets --------------------------------------------------------------------------
def test_password_and_token_never_reach_logs_or_errors(rsps, caplog):
    caplog.set_level(logging.DEBUG)
    add_login(rsps, TOKEN)
    rsps.add(responses.GET, DETAIL, status=401, body=f"token {TOKEN} expired")
    rsps.add(responses.POST, LOGIN, status=401, body=f"bad password {PASSWORD}")
    client = make_client()
    with pytest.raises(AuthError) as refused:
        client.class_detail(CLASS_ID)
    rsps.add(responses.GET, CLASSES, status=500, body=f"crash near {TOKEN}")
    client._token = TOKEN
    with pytest.raises(TransientError) as crashed:
        client.list_classes()
    texts = [caplog.text]
    for exc in (refused.value, crashed.value):
        texts += [str(exc), exc.message, exc.body]
    for text in texts:
        assert PASSWORD not in text
        assert TOKEN not in text


# --- settings -------------------------------------------------------------------------
def test_from_settings_names_a_missing_setting_before_any_call(settings, rsps):
    settings.OPENCLASS_BASE_URL = BASE
    settings.OPENCLASS_EMAIL = "mentor@school.test"
    settings.OPENCLASS_PASSWORD = ""
    with pytest.raises(ConfigError, match="OPENCLASS_PASSWORD"):
        OpenClassClient.from_settings()
    assert len(rsps.calls) == 0


def test_from_settings_reads_the_connection(settings, rsps):
    settings.OPENCLASS_BASE_URL = BASE + "/"
    settings.OPENCLASS_EMAIL = "mentor@school.test"
    settings.OPENCLASS_PASSWORD = PASSWORD
    settings.OPENCLASS_APP_ID = ""
    settings.HTTP_TIMEOUT_SECONDS = 12.5
    settings.HTTP_MAX_RETRIES = 1
    add_login(rsps)
    client = OpenClassClient.from_settings()
    assert client.http.timeout == 12.5 and client.http.retry.max_retries == 1
    client.login()
    assert "X-OpenClass-App-Id" not in rsps.calls[0].request.headers  # optional


def test_control_characters_are_stripped_inside_the_double_encoded_payload(rsps):
    # The payload is a JSON string inside JSON: its escapes only become characters when it
    # is decoded a second time, so it is cleaned again there.
    add_login(rsps)
    record = progression()
    record["user"]["first_name"] = "Ja\u0000ne\u001b"
    record["assignment"]["name\u0000"] = "ignored key"
    rsps.add(responses.GET, PROGRESSIONS, json=double(page_body([record])))
    page = make_client().progression_page(CLASS_ID, 0, 2)
    assert page.progressions[0].user.first_name == "Jane"


def test_login_is_sent_once_when_it_is_refused(rsps):
    rsps.add(responses.POST, LOGIN, status=401, json={"error": "Invalid email or password"})
    add_login(rsps)
    with pytest.raises(AuthError):
        make_client().login()
    assert len(rsps.calls) == 1


# --- parsing helpers: the common shapes take a short path, with the same results ---------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-12-11T23:02:51.781Z", datetime(2025, 12, 11, 23, 2, 51, 781000, tzinfo=UTC)),
        (" 2025-12-11T23:02:51.781Z\n", datetime(2025, 12, 11, 23, 2, 51, 781000, tzinfo=UTC)),
        ("2025-12-11T23:02:51+00:00", datetime(2025, 12, 11, 23, 2, 51, tzinfo=UTC)),
        ("2025-12-12T01:02:51+02:00", datetime(2025, 12, 11, 23, 2, 51, tzinfo=UTC)),
        ("2025-12-11T23:02:51", datetime(2025, 12, 11, 23, 2, 51, tzinfo=UTC)),
        ("", None),
        (None, None),
        ({"$date": "2025-12-11T23:02:51Z"}, datetime(2025, 12, 11, 23, 2, 51, tzinfo=UTC)),
    ],
)
def test_parse_time_gives_utc_whatever_path_it_takes(raw, expected):
    from integrations.openclass.client import parse_time

    parsed = parse_time(raw, "started_assignment_at")
    assert parsed == expected
    if expected is not None:
        assert parsed.tzinfo is UTC


@pytest.mark.parametrize("raw", ["  ", "yesterday", "2025-13-01T00:00:00Z", True, [1]])
def test_parse_time_refuses_what_is_no_date(raw):
    from integrations.openclass.client import _BadField, parse_time

    with pytest.raises(_BadField):
        parse_time(raw, "reviewed_at")


@pytest.mark.parametrize(("raw", "expected"), [(0.5, 0.5), (1, 1.0), (0, 0.0), (None, None)])
def test_parse_grade_gives_a_float_in_0_to_1(raw, expected):
    from integrations.openclass.client import parse_grade

    grade = parse_grade(raw)
    assert grade == expected and (grade is None or type(grade) is float)


@pytest.mark.parametrize("raw", [1.0000001, -0.0001, float("nan"), float("inf"), True, "0.5"])
def test_parse_grade_refuses_what_is_no_grade(raw):
    from integrations.openclass.client import _BadField, parse_grade

    with pytest.raises(_BadField):
        parse_grade(raw)


def test_the_record_cache_hands_the_same_object_for_equal_raw_fields_only():
    from integrations.openclass.client import RecordCache, _BadField

    cache = RecordCache()
    raw = {"id": "u1", "first_name": "Ada", "last_name": "L", "email": "ada@x.edu"}
    first = cache.user(dict(raw))
    assert cache.user(dict(raw)) is first  # a new dict with equal fields (the next page)
    renamed = cache.user({**raw, "email": "ada@new.edu"})
    assert renamed.email == "ada@new.edu" and renamed.id == "u1"
    assert cache.user({**raw, "email": "ada@new.edu"}) is renamed
    # Only an int is an id: True and 1.0 equal 1, but are no id.
    assert cache.user({"id": 1, "first_name": "One"}).id == "1"
    for not_an_id in (True, 1.0):
        with pytest.raises(_BadField):
            cache.user({"id": not_an_id, "first_name": "One"})
    # An {"$oid"} id cannot be a key: parsed every time, alike.
    oid = {"_id": {"$oid": "a9"}, "name": "Quiz", "type": "QUIZ"}
    one, two = cache.assignment(dict(oid)), cache.assignment(dict(oid))
    assert one == two and one is not two and (one.id, one.type) == ("a9", "quiz")


def test_the_record_cache_is_bounded():
    from integrations.openclass.client import RecordCache

    cache = RecordCache(limit=2)
    users = [cache.user({"id": f"u{n}"}) for n in range(3)]
    assert len(cache.users) == 1  # emptied at the limit, then the third kept
    assert cache.user({"id": "u2"}) is users[2]
    assert cache.user({"id": "u0"}) is not users[0]
