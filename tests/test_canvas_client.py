"""The Canvas client at the HTTP edge, against the contract (vendor-contracts.md section 4)."""

from __future__ import annotations

import pytest
import responses
from responses import matchers

from integrations.canvas.client import (
    Bucket,
    CanvasAuthError,
    CanvasClient,
    CanvasPermissionError,
    CanvasThrottled,
    classify,
)
from integrations.http import HttpClient, RetryPolicy, VendorError

BASE = "https://school.instructure.test"
TOKEN = "canvas-token-never-shown-1a2b3c"
COURSE = "10000000000101"


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def slept():
    return []


@pytest.fixture
def client(settings, slept):
    settings.CANVAS_BASE_URL = BASE
    settings.CANVAS_TOKEN = TOKEN
    settings.CANVAS_RATE_LIMIT_FLOOR = 150
    settings.CANVAS_REQUESTS_PER_SECOND = 0
    made = CanvasClient.from_settings()
    made.http.retry = RetryPolicy(max_retries=3, sleep=slept.append)
    made.bucket.sleep = slept.append
    return made


def link(*pairs: tuple[str, str]) -> dict[str, str]:
    return {"Link": ", ".join(f'<{url}>; rel="{rel}"' for url, rel in pairs)}


def test_bearer_token_per_page_100_and_link_paging(client, rsps):
    url = f"{BASE}/api/v1/courses/{COURSE}/assignments"
    second = f"{BASE}/api/v1/courses/{COURSE}/assignments?page=bookmark:WzEwMF0&per_page=100"
    rsps.get(
        url,
        match=[
            matchers.query_param_matcher({"per_page": "100"}),
            matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"}),
        ],
        json=[{"id": 1}],
        headers=link((url, "current"), (second, "next"), (url, "first")),
    )
    rsps.get(
        second,
        match=[matchers.query_param_matcher({"page": "bookmark:WzEwMF0", "per_page": "100"})],
        json=[{"id": 2}],
        headers=link((second, "current"), (url, "first")),  # no rel="last", no next: the end
    )
    assert client.assignments(COURSE) == [{"id": 1}, {"id": 2}]
    assert len(rsps.calls) == 2


def test_a_next_link_to_another_host_is_refused_before_it_is_sent(client, rsps):
    url = f"{BASE}/api/v1/courses/{COURSE}/assignments"
    rsps.get(url, json=[{"id": 1}], headers=link(("https://evil.test/steal?x=1", "next")))
    with pytest.raises(VendorError, match="another host"):
        client.assignments(COURSE)
    assert len(rsps.calls) == 1


def test_the_throttle_403_is_retried_after_a_pause(client, rsps, slept):
    url = f"{BASE}/api/v1/courses/{COURSE}"
    rsps.get(
        url,
        body="403 Forbidden (Rate Limit Exceeded)",
        status=403,
        content_type="text/plain",
        headers={"X-Rate-Limit-Remaining": "0.0", "X-Request-Cost": "0"},
    )
    rsps.get(url, json={"id": int(COURSE), "name": "Biology"})
    assert client.course(COURSE)["name"] == "Biology"
    assert len(rsps.calls) == 2 and client.http.throttled == 1
    assert slept and slept[0] > 0


def test_throttled_to_the_end_raises_its_own_class(client, rsps):
    rsps.get(
        f"{BASE}/api/v1/courses/{COURSE}",
        body="403 Forbidden (Rate Limit Exceeded)",
        status=403,
        content_type="text/plain",
    )
    with pytest.raises(CanvasThrottled) as caught:
        client.course(COURSE)
    assert caught.value.error_class == "throttled" and not caught.value.permanent
    assert len(rsps.calls) == 4  # 1 + 3 retries


def test_a_401_with_www_authenticate_is_a_bad_token(client, rsps):
    rsps.get(
        f"{BASE}/api/v1/courses/{COURSE}",
        json={"errors": [{"message": "Invalid access token."}]},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="canvas-lms"'},
    )
    with pytest.raises(CanvasAuthError) as caught:
        client.course(COURSE)
    assert caught.value.error_class == "auth" and caught.value.permanent
    assert "CANVAS_TOKEN" in caught.value.message and TOKEN not in caught.value.message
    assert len(rsps.calls) == 1


def test_a_json_403_is_a_permission_problem_never_retried(client, rsps):
    rsps.get(
        f"{BASE}/api/v1/courses/{COURSE}/students/submissions",
        json={
            "status": "unauthorized",
            "errors": [{"message": "user not authorized to perform that action"}],
        },
        status=403,
    )
    with pytest.raises(CanvasPermissionError) as caught:
        client.submissions(COURSE)
    assert caught.value.error_class == "permission"
    assert "user not authorized" in caught.value.message
    assert len(rsps.calls) == 1


def test_a_401_without_www_authenticate_is_a_permission_problem(client, rsps):
    rsps.get(
        f"{BASE}/api/v1/courses/{COURSE}",
        json={"status": "unauthorized", "errors": [{"message": "not allowed"}]},
        status=401,
    )
    with pytest.raises(CanvasPermissionError):
        client.course(COURSE)


def test_the_three_refusals_have_three_classes():
    import requests

    def answer(status, body, content_type, headers=None):
        response = requests.Response()
        response.status_code = status
        response._content = body.encode()
        response.headers.update({"Content-Type": content_type, **(headers or {})})
        response.request = requests.Request("GET", f"{BASE}/api/v1/x").prepare()
        return response

    kinds = {
        type(classify(answer(403, "403 Forbidden (Rate Limit Exceeded)", "text/plain"))),
        type(classify(answer(401, "{}", "application/json", {"WWW-Authenticate": "Bearer"}))),
        type(classify(answer(403, '{"errors": []}', "application/json"))),
    }
    assert kinds == {CanvasThrottled, CanvasAuthError, CanvasPermissionError}


def test_the_client_slows_down_when_the_bucket_runs_low(client, rsps, slept):
    url = f"{BASE}/api/v1/courses/{COURSE}"
    rsps.get(
        url,
        json={"id": 1},
        headers={"X-Rate-Limit-Remaining": "40.5", "X-Request-Cost": "12.25"},
    )
    client.course(COURSE)
    assert slept == []  # nothing known before the first answer
    client.course(COURSE)
    assert slept and 0 < slept[0] <= 11.0  # (150 - 40.5) / 10 units a second, at most
    assert client.bucket.slowdowns == 1 and client.bucket.cost == pytest.approx(24.5)


def test_plenty_left_means_no_pause(client, rsps, slept):
    rsps.get(
        f"{BASE}/api/v1/courses/{COURSE}", json={"id": 1}, headers={"X-Rate-Limit-Remaining": "590"}
    )
    client.course(COURSE)
    client.course(COURSE)
    assert slept == []


def test_modules_without_items_get_them_from_their_own_list(client, rsps):
    rsps.get(
        f"{BASE}/api/v1/courses/{COURSE}/modules",
        match=[matchers.query_param_matcher({"include[]": "items", "per_page": "100"})],
        json=[
            {"id": 5, "name": "Week 1", "position": 1, "items": [{"type": "Page"}]},
            {"id": 6, "name": "Week 2", "position": 2, "items_count": 80},
        ],
    )
    rsps.get(
        f"{BASE}/api/v1/courses/{COURSE}/modules/6/items",
        json=[{"type": "Assignment", "content_id": 9}],
    )
    modules = client.modules(COURSE)
    assert modules[1]["items"] == [{"type": "Assignment", "content_id": 9}]
    assert modules[1]["items_fetched_separately"] and "items_fetched_separately" not in modules[0]


def test_incremental_submissions_ask_twice(client, rsps):
    url = f"{BASE}/api/v1/courses/{COURSE}/students/submissions"
    rsps.get(
        url,
        match=[
            matchers.query_param_matcher(
                {
                    "student_ids[]": "all",
                    "submitted_since": "2026-11-01T00:00:00Z",
                    "per_page": "100",
                }
            )
        ],
        json=[{"id": 1}],
    )
    rsps.get(
        url,
        match=[
            matchers.query_param_matcher(
                {"student_ids[]": "all", "graded_since": "2026-11-01T00:00:00Z", "per_page": "100"}
            )
        ],
        json=[{"id": 2}],
    )
    assert client.submissions(COURSE, since="2026-11-01T00:00:00Z") == [{"id": 1}, {"id": 2}]


def test_a_list_that_is_not_a_list_is_malformed(client, rsps):
    from integrations.http import MalformedResponse

    rsps.get(f"{BASE}/api/v1/courses/{COURSE}/assignments", json={"oops": 1})
    with pytest.raises(MalformedResponse):
        client.assignments(COURSE)


def test_bucket_alone():
    waits = []
    bucket = Bucket(floor=100, sleep=waits.append, clock=lambda: 0.0)
    bucket.wait()
    assert waits == []


def test_http_client_is_built_by_the_shared_layer(client):
    assert isinstance(client.http, HttpClient) and client.http.vendor == "Canvas"
