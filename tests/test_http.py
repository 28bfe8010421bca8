"""The one HTTP layer (integrations/http.py): retry policy per call, classifiers that read
the body, absolute URLs only to the configured host, clean vendor strings, redaction."""

from __future__ import annotations

import json
import socket

import pytest
import requests
import responses

from integrations.http import (
    AuthError,
    HttpClient,
    MalformedResponse,
    RetryPolicy,
    ThrottledError,
    TransientError,
    VendorError,
    clean_strings,
    decode_json,
    default_classify,
    register_secret,
)
from reports.constants import ErrorClass

BASE = "https://vendor.test/api"
URL = f"{BASE}/things"


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def client(**kw) -> HttpClient:
    kw.setdefault("retry", RetryPolicy(max_retries=2, sleep=lambda seconds: None))
    return HttpClient(BASE, vendor="Vendor", **kw)


# --- retry policy per call ------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_create_is_sent_once_by_default(rsps, method):
    rsps.add(method, URL, status=503)
    rsps.add(method, URL, status=201)
    http = client()
    with pytest.raises(TransientError, match="503"):
        http.request(method, "/things", json={"name": "x"})
    assert len(rsps.calls) == 1 and http.retries_done == 0


def test_a_create_times_out_once_and_is_not_repeated(rsps):
    rsps.add("POST", URL, body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.add("POST", URL, status=201)
    with pytest.raises(TransientError, match="timed out"):
        client().request("POST", "/things")
    assert len(rsps.calls) == 1


def test_a_create_whose_repeat_is_harmless_is_retried_when_the_caller_says_so(rsps):
    rsps.add("POST", URL, status=503)
    rsps.add("POST", URL, status=429, headers={"Retry-After": "4"})
    rsps.add("POST", URL, status=201)
    http = client()
    assert http.request("POST", "/things", idempotent=True).status_code == 201
    assert len(rsps.calls) == 3 and http.retries_done == 2 and http.throttled == 1
    assert http.slept_seconds >= 4.0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_idempotent_methods_are_retried(rsps, method):
    rsps.add(method, URL, status=502)
    rsps.add(method, URL, status=200)
    http = client()
    assert http.request(method, "/things").status_code == 200
    assert len(rsps.calls) == 2 and http.retries_done == 1


def test_a_get_can_opt_out_of_retries(rsps):
    rsps.add("GET", URL, status=503)
    with pytest.raises(TransientError):
        client().request("GET", "/things", idempotent=False)
    assert len(rsps.calls) == 1


def test_retries_stop_at_the_policy_limit(rsps):
    rsps.add("PUT", URL, status=500)
    with pytest.raises(TransientError):
        client().request("PUT", "/things")
    assert len(rsps.calls) == 3  # one call and max_retries=2


# --- classifiers ----------------------------------------------------------------------
def canvas_like(response: requests.Response) -> VendorError | None:
    """Throttles with a 403 whose body says so; any other 403 is a permission denial."""
    if response.status_code == 403:
        if "rate limit exceeded" in response.text.lower():
            return ThrottledError("throttled (403)", status=403, retry_after=2.0)
        return AuthError("forbidden", status=403)
    if response.status_code == 200 and '"errors"' in response.text:
        return VendorError("an error dressed as a success", status=200, body=response.text)
    return default_classify(response, "Canvas-like")


def test_the_classifier_reads_the_body_a_throttling_403_is_retried(rsps):
    rsps.add("GET", URL, status=403, body="403 Forbidden (Rate Limit Exceeded)")
    rsps.add("GET", URL, json={"ok": True})
    http = client(classify=canvas_like)
    assert http.request("GET", "/things").json() == {"ok": True}
    assert http.throttled == 1 and http.retries_done == 1 and http.slept_seconds == 2.0


def test_the_classifier_reads_the_body_a_plain_403_is_permanent(rsps):
    rsps.add("GET", URL, status=403, body='{"errors": [{"message": "user not authorized"}]}')
    rsps.add("GET", URL, json={"ok": True})
    with pytest.raises(AuthError):
        client(classify=canvas_like).request("GET", "/things")
    assert len(rsps.calls) == 1


def test_the_classifier_sees_successful_statuses_too(rsps):
    rsps.add("GET", URL, status=200, json={"errors": ["nope"]})
    with pytest.raises(VendorError, match="dressed as a success"):
        client(classify=canvas_like).request("GET", "/things")


def test_without_a_classifier_other_statuses_come_back_to_the_caller(rsps):
    rsps.add("GET", URL, status=404)
    assert client().request("GET", "/things").status_code == 404


def test_default_classify_reads_retry_after_on_429_and_503(rsps):
    rsps.add("GET", URL, status=503, headers={"Retry-After": "9"})
    rsps.add("GET", URL, status=200)
    http = client()
    http.request("GET", "/things")
    assert http.slept_seconds == 9.0


# --- absolute URLs --------------------------------------------------------------------
@pytest.mark.parametrize(
    "link",
    [
        "https://elsewhere.test/api/things?page=2",
        "http://vendor.test/api/things?page=2",  # another scheme
        "https://vendor.test:8443/api/things?page=2",  # another port
        "https://vendor.test.evil.test/api/things",
        "https://vendor.test@evil.test/api/things",
        "//evil.test/api/things",
    ],
)
def test_a_link_to_another_host_is_refused_before_anything_is_sent(rsps, link):
    rsps.add("GET", link if not link.startswith("//") else "https:" + link, json={})
    http = client(headers={"Authorization": "Bearer tok"})
    with pytest.raises(VendorError) as refused:
        http.request("GET", link)
    assert refused.value.permanent and refused.value.error_class == ErrorClass.MALFORMED
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    "link", ["https://vendor.test/api/things?page=2", "HTTPS://Vendor.Test/api/things?page=2"]
)
def test_a_link_to_the_configured_host_is_followed(rsps, link):
    rsps.add("GET", "https://vendor.test/api/things?page=2", json={"page": 2})
    assert client().request("GET", link).json() == {"page": 2}


def test_redirects_are_never_followed(rsps):
    rsps.add("GET", URL, status=302, headers={"Location": "https://elsewhere.test/x"})
    rsps.add("GET", "https://elsewhere.test/x", json={})
    assert client().request("GET", "/things", allow_redirects=True).status_code == 302
    assert len(rsps.calls) == 1


# --- clean vendor strings -------------------------------------------------------------
def test_nul_and_control_characters_are_stripped_from_nested_strings_and_keys(rsps):
    body = {
        "na\u0000me": "Jo\u0000hn\u0007",
        "list": [{"deep": ["a\u0001b", "keep\ttab\nnewline\rcr"]}, 3, None, True],
        "bad\ud800": "lone \udfff surrogate",
    }
    rsps.add("GET", URL, body=json.dumps(body), content_type="application/json")
    data = decode_json(client().request("GET", "/things"), "Vendor")
    assert data == {
        "name": "John",
        "list": [{"deep": ["ab", "keep\ttab\nnewline\rcr"]}, 3, None, True],
        "bad\ufffd": "lone \ufffd surrogate",
    }
    # What PostgreSQL stores must encode as UTF-8 and hold no NUL.
    json.dumps(data, ensure_ascii=False).encode("utf-8")


def test_clean_strings_leaves_other_values_alone():
    assert clean_strings({"n": 1.5, "b": False, "x": None}) == {"n": 1.5, "b": False, "x": None}


def test_a_body_that_is_not_json_is_malformed(rsps):
    rsps.add("GET", URL, body="<html>oops</html>", status=200)
    with pytest.raises(MalformedResponse, match="GET /api/things"):
        decode_json(client().request("GET", "/things"), "Vendor")


# --- secrets and settings -------------------------------------------------------------
def test_errors_never_carry_a_registered_secret(rsps):
    register_secret("sekret-token-value")
    rsps.add("GET", URL, status=500, body="trace: sekret-token-value\x00")
    with pytest.raises(TransientError) as failed:
        client(retry=RetryPolicy(max_retries=0)).request("GET", "/things")
    for text in (str(failed.value), failed.value.body, failed.value.message):
        assert "sekret-token-value" not in text and "\x00" not in text
    assert VendorError("x sekret-token-value").message == "x [redacted]"


def test_from_settings_takes_the_retry_policy_and_timeout_from_settings(settings):
    settings.HTTP_MAX_RETRIES = 7
    settings.HTTP_TIMEOUT_SECONDS = 4.5
    http = HttpClient.from_settings(vendor="V", base_url=BASE + "/", rate_per_second=2)
    assert http.retry.max_retries == 7 and http.timeout == 4.5
    assert http.base_url == BASE and http.limiter.interval == 0.5
    assert HttpClient.from_settings(vendor="V", base_url=BASE, timeout=1).timeout == 1


def test_the_default_port_is_the_same_origin():
    assert client().url("https://vendor.test:443/api/x") == "https://vendor.test:443/api/x"
    assert client().url("/x") == f"{BASE}/x"


@pytest.mark.django_db
def test_a_pull_with_nul_in_vendor_strings_is_stored_clean(openclass):
    # PostgreSQL refuses NUL in text: without clean strings the whole pull would fail there.
    from cohorts.models import Assignment, Student
    from integrations.jobs import job_execute
    from integrations.openclass.pull import openclass_run_create
    from integrations.openclass.simulator import WEB
    from reports.models import RunStatus

    sim = openclass()
    user_id = sim.progressions(WEB)[0].user_id
    sim.users[user_id]["first_name"] = "Ja\x00ne\x1b"
    sim_class = sim.classes[WEB]
    assignment_id = sim.progressions(WEB)[0].assignment_id
    name, kind = sim_class.assignments[assignment_id]
    sim_class.assignments[assignment_id] = (f"Bring\x00 It {name}", kind)
    run = openclass_run_create(class_id=WEB, cohort_name="", triggered_by="test")
    run = job_execute(run.pk, send_report=False)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert Student.objects.get(external_id=user_id).first_name == "Jane"
    assert Assignment.objects.get(external_id=assignment_id).name == f"Bring It {name}"


def test_a_create_whose_connection_was_never_made_is_retried():
    # Nothing of the request left this host, so repeating it cannot create anything twice.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: connections are refused
    http = HttpClient(
        f"http://127.0.0.1:{port}",
        vendor="V",
        retry=RetryPolicy(max_retries=2, sleep=lambda seconds: None),
    )
    with pytest.raises(TransientError, match="could not connect"):
        http.request("POST", "/things")
    assert http.retries_done == 2


def test_a_create_whose_connect_timed_out_is_retried(rsps):
    rsps.add("POST", URL, body=requests.exceptions.ConnectTimeout("connect timed out"))
    rsps.add("POST", URL, status=201)
    http = client()
    assert http.request("POST", "/things").status_code == 201
    assert http.retries_done == 1


def test_raw_control_characters_and_bad_bytes_are_cleaned_not_refused(rsps):
    # Strict JSON refuses a raw control character inside a string; a vendor's still is
    # read, without it. Bytes that are not UTF-8 become U+FFFD.
    rsps.add("GET", URL, body=b'{"name": "Jo\x00hn\x07", "city": "Mo\xffnt"}')
    data = decode_json(client().request("GET", "/things"), "Vendor")
    assert data == {"name": "John", "city": "Mo\ufffdnt"}


def test_a_clean_text_is_returned_as_parsed():
    from integrations.http import loads_clean

    text = json.dumps({"a": ["caf\u00e9", "tab\there"], "b": {"c": 1}})
    assert loads_clean(text) == json.loads(text)
    assert loads_clean(text.encode("utf-16")) == json.loads(text)
