"""The APEX client against the contract (shared/vendor-contracts.md §1), with `responses`."""

from __future__ import annotations

import base64
import json
import logging
import threading

import pytest
import responses
from responses import matchers

from integrations.apex.client import (
    ApexClient,
    ClassroomNotFound,
    Outcome,
    Student,
)
from integrations.http import (
    AuthError,
    MalformedResponse,
    TransientError,
    redact,
    retry_policy_from_settings,
)
from reports.constants import ErrorClass

BASE = "https://apex.test"
CLIENT_ID = "cb-client"
SECRET = "s3cret-apex-value"
TOKEN_URL = f"{BASE}/token"
ENROLL_URL = f"{BASE}/classrooms/ALG-101/students"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(clock) -> ApexClient:
    return ApexClient(
        base_url=BASE,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        retry=retry_policy_from_settings(),
        clock=clock,
    )


def students(*ids: str) -> list[Student]:
    return [Student(i, "ORG-DEMO") for i in ids]


def token(rsps, value: str = "tok-1", expire_in: int = 300, **kw) -> responses.BaseResponse:
    return rsps.post(TOKEN_URL, json={"access_token": value, "expire_in": expire_in}, **kw)


def bearer(rsps_call) -> str:
    return rsps_call.request.headers["Authorization"]


@responses.activate
def test_token_request_shape_and_bearer_on_calls(client):
    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    responses.post(
        TOKEN_URL,
        json={"access_token": "tok-1", "expire_in": 300},
        match=[
            matchers.json_params_matcher(
                {
                    "grant_type": "client_credentials",
                    "client_id": CLIENT_ID,
                    "client_secret": SECRET,
                }
            ),
            matchers.header_matcher({"Authorization": f"Basic {basic}"}),
        ],
    )
    responses.post(
        ENROLL_URL,
        status=201,
        match=[
            matchers.json_params_matcher(
                {"studentUsers": [{"ImportUserId": "S1", "ImportOrgId": "ORG-DEMO"}]}
            ),
            matchers.header_matcher(
                {"Authorization": "Bearer tok-1", "Accept": "application/json"}
            ),
        ],
    )
    result = client.enroll("ALG-101", students("S1"))
    assert [r.outcome for r in result.results] == [Outcome.ENROLLED]
    assert client.token_requests == 1


@responses.activate
def test_classroom_ids_are_quoted_in_the_path(client):
    token(responses)
    responses.post(f"{BASE}/classrooms/Algebra%201%2FP3/students", status=201)
    assert client.enroll("Algebra 1/P3", students("S1")).results[0].outcome is Outcome.ENROLLED


@responses.activate
def test_token_is_reused_then_renewed_a_little_before_expire_in(client, clock):
    token(responses, "tok-1", expire_in=100)
    token(responses, "tok-2", expire_in=100)
    enroll = responses.post(ENROLL_URL, status=201)
    client.enroll("ALG-101", students("S1"))
    clock.now += 85  # still well inside the lifetime
    client.enroll("ALG-101", students("S2"))
    assert client.token_requests == 1
    clock.now += 6  # 91 s: inside the renewal margin (10 % of 100 s), before expiry
    client.enroll("ALG-101", students("S3"))
    assert client.token_requests == 2
    assert [c.request.headers["Authorization"] for c in enroll.calls] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


@responses.activate
def test_expires_in_is_not_the_contract_key_but_is_tolerated(client, clock):
    responses.post(TOKEN_URL, json={"access_token": "tok-1", "expires_in": 20})
    responses.post(ENROLL_URL, status=201)
    client.enroll("ALG-101", students("S1"))
    clock.now += 19
    client.enroll("ALG-101", students("S1"))
    assert client.token_requests == 2


@responses.activate
def test_a_401_renews_the_token_once_and_retries(client):
    token(responses, "tok-1")
    token(responses, "tok-2")
    responses.post(ENROLL_URL, status=401, json={"Message": "Authorization has been denied"})
    responses.post(ENROLL_URL, status=201)
    result = client.enroll("ALG-101", students("S1"))
    assert result.results[0].outcome is Outcome.ENROLLED
    assert client.token_requests == 2
    enroll_calls = [c for c in responses.calls if c.request.url == ENROLL_URL]
    assert [bearer(c) for c in enroll_calls] == ["Bearer tok-1", "Bearer tok-2"]


@responses.activate
def test_a_second_401_is_an_auth_error_not_a_loop(client):
    token(responses, "tok-1")
    token(responses, "tok-2")
    responses.post(ENROLL_URL, status=401)
    with pytest.raises(AuthError):
        client.enroll("ALG-101", students("S1"))
    assert client.token_requests == 2
    assert len([c for c in responses.calls if c.request.url == ENROLL_URL]) == 2


@responses.activate
@pytest.mark.parametrize("status", [400, 401, 403])
def test_refused_credentials_are_an_auth_error(client, status):
    responses.post(TOKEN_URL, status=status, json={"error": "invalid_client"})
    with pytest.raises(AuthError, match="APEX_CLIENT_SECRET"):
        client.authenticate()


@responses.activate
def test_a_token_answer_without_access_token_is_malformed(client):
    responses.post(TOKEN_URL, json={"token": "x", "expire_in": 300})
    with pytest.raises(MalformedResponse):
        client.authenticate()


@responses.activate
def test_every_per_student_outcome(client):
    token(responses)
    responses.post(
        ENROLL_URL,
        status=400,
        json={
            "studentUsers": [
                {"ImportUserId": "S1", "Code": 200, "Message": "Success"},
                {"ImportUserId": "S2", "Code": 409, "Message": "Enrollment already exists"},
                {"ImportUserId": "S3", "Code": 409, "Message": "enrollment ALREADY exists for S3"},
                {"ImportUserId": "S4", "Code": 404, "Message": "User doesn't exist"},
                {"ImportUserId": "S5", "Code": 402, "Message": "No available Order"},
                {"ImportUserId": "S6", "Code": 409, "Message": "Duplicate user"},
                {"ImportUserId": "s7", "Code": "200", "Message": ""},
                {"ImportUserId": "S8", "Code": 500},
            ]
        },
    )
    result = client.enroll("ALG-101", students("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8"))
    got = [(r.user_id, r.outcome, r.error_class, r.message) for r in result.results]
    assert got == [
        ("S1", Outcome.ENROLLED, "", "Success"),
        ("S2", Outcome.ALREADY_ENROLLED, "", "Enrollment already exists"),
        ("S3", Outcome.ALREADY_ENROLLED, "", "enrollment ALREADY exists for S3"),
        ("S4", Outcome.FAILED, ErrorClass.NOT_FOUND, "User doesn't exist"),
        ("S5", Outcome.FAILED, ErrorClass.VENDOR_ERROR, "No available Order"),
        ("S6", Outcome.FAILED, ErrorClass.CONFLICT, "Duplicate user"),
        ("S7", Outcome.ENROLLED, "", ""),  # ids matched regardless of case, code as text
        ("S8", Outcome.FAILED, ErrorClass.VENDOR_ERROR, "APEX error (code 500)"),
    ]
    assert [r.code for r in result.results][:3] == [200, 409, 409]


@responses.activate
def test_a_student_missing_from_an_error_answer_fails_as_malformed(client):
    token(responses)
    responses.post(
        ENROLL_URL,
        status=400,
        json={"studentUsers": [{"ImportUserId": "S1", "Code": 200, "Message": "Success"}]},
    )
    result = client.enroll("ALG-101", students("S1", "S2"))
    assert result.results[1].outcome is Outcome.FAILED
    assert result.results[1].error_class == ErrorClass.MALFORMED


@responses.activate
@pytest.mark.parametrize("body", [b"", b"null", b"{}", b"<html>ok</html>"])
def test_a_2xx_means_the_whole_batch_went_through(client, body):
    token(responses)
    responses.post(ENROLL_URL, status=200, body=body)
    result = client.enroll("ALG-101", students("S1", "S2"))
    assert [r.outcome for r in result.results] == [Outcome.ENROLLED, Outcome.ENROLLED]


@responses.activate
def test_a_2xx_with_student_users_is_read_too(client):
    token(responses)
    responses.post(
        ENROLL_URL,
        status=200,
        json={
            "studentUsers": [
                {"ImportUserId": "S1", "Code": 200, "Message": "Success"},
                {"ImportUserId": "S2", "Code": 409, "Message": "Enrollment Already Exists"},
            ]
        },
    )
    result = client.enroll("ALG-101", students("S1", "S2", "S3"))
    assert [r.outcome for r in result.results] == [
        Outcome.ENROLLED,
        Outcome.ALREADY_ENROLLED,
        Outcome.ENROLLED,
    ]


@responses.activate
def test_unknown_classroom_is_not_found(client):
    token(responses)
    responses.post(ENROLL_URL, status=404, json={"Message": "Classroom not found"})
    with pytest.raises(ClassroomNotFound, match="ALG-101") as caught:
        client.enroll("ALG-101", students("S1"))
    assert caught.value.error_class == ErrorClass.NOT_FOUND


@responses.activate
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, b'{"Message": "The request is invalid."}'),
        (400, b"not json at all"),
        (409, b'{"studentUsers": "nope"}'),
        (422, b"[]"),
    ],
)
def test_an_error_without_student_users_is_malformed(client, status, body):
    token(responses)
    responses.post(ENROLL_URL, status=status, body=body)
    with pytest.raises(MalformedResponse) as caught:
        client.enroll("ALG-101", students("S1"))
    assert caught.value.error_class == ErrorClass.MALFORMED
    assert caught.value.status == status


@responses.activate
def test_429_with_retry_after_is_retried_then_succeeds(client):
    token(responses)
    responses.post(ENROLL_URL, status=429, headers={"Retry-After": "7"})
    responses.post(ENROLL_URL, status=503)
    responses.post(ENROLL_URL, status=201)
    result = client.enroll("ALG-101", students("S1"))
    assert result.results[0].outcome is Outcome.ENROLLED
    assert client.http.throttled == 1 and client.http.retries_done == 2
    # Retry-After is honoured (recorded, not slept in tests), the 503 got a short backoff.
    assert 7.0 <= client.http.slept_seconds < 8.0


@responses.activate
def test_server_errors_until_retries_run_out_are_transient(client, settings):
    token(responses)
    responses.post(ENROLL_URL, status=500)
    with pytest.raises(TransientError):
        client.enroll("ALG-101", students("S1"))
    posts = [c for c in responses.calls if c.request.url == ENROLL_URL]
    assert len(posts) == settings.HTTP_MAX_RETRIES + 1


@responses.activate
def test_concurrent_threads_share_one_token(client):
    token(responses, "tok-1")
    responses.post(ENROLL_URL, status=201)
    errors = []

    def work():
        try:
            client.enroll("ALG-101", students("S1"))
        except Exception as exc:  # collected: an assert in a thread would go unseen
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert client.token_requests == 1


@responses.activate
def test_after_a_shared_401_the_threads_renew_once(client):
    token(responses, "tok-1")
    token(responses, "tok-2")
    client.authenticate()
    # Every call with the old token is refused; with the new one accepted.
    responses.post(
        ENROLL_URL, status=401, match=[matchers.header_matcher({"Authorization": "Bearer tok-1"})]
    )
    responses.post(
        ENROLL_URL, status=201, match=[matchers.header_matcher({"Authorization": "Bearer tok-2"})]
    )
    outcomes, errors = [], []

    def work():
        try:
            outcomes.append(client.enroll("ALG-101", students("S1")).results[0].outcome)
        except Exception as exc:  # an exception in a thread is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and outcomes == [Outcome.ENROLLED] * 6
    assert client.token_requests == 2


@responses.activate
def test_classroom_info_and_withdraw(client):
    token(responses)
    responses.get(
        f"{BASE}/classrooms/ALG-101",
        json={"ClassroomName": "Algebra", "PrimaryTeacher": "G. Hopper"},
    )
    responses.delete(f"{BASE}/classrooms/ALG-101/students/S1", status=204)
    responses.delete(f"{BASE}/classrooms/ALG-101/students/S2", status=404)
    assert client.classroom("ALG-101")["PrimaryTeacher"] == "G. Hopper"
    assert client.withdraw("ALG-101", "S1") is True
    assert client.withdraw("ALG-101", "S2") is False


@responses.activate
def test_secret_and_token_never_reach_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    token(responses, "tok-very-secret-123")
    responses.post(ENROLL_URL, status=401)
    token(responses, "tok-very-secret-456")
    responses.post(ENROLL_URL, status=201)
    client.enroll("ALG-101", students("S1"))
    text = caplog.text
    for secret in (SECRET, "tok-very-secret-123", "tok-very-secret-456"):
        assert secret not in text
        assert secret not in redact(f"token {secret}")


@responses.activate
@pytest.mark.parametrize("classroom", [".", ".."])
def test_a_dot_segment_classroom_id_is_never_sent(client, classroom):
    # requests/urllib3 resolve dot segments: /classrooms/../students would be POST /students.
    token(responses)
    with pytest.raises(ValueError, match="import id"):
        client.enroll(classroom, students("S1"))
    with pytest.raises(ValueError, match="import id"):
        client.withdraw("ALG-101", classroom)
    assert not [c for c in responses.calls if "/token" not in c.request.url]


@responses.activate
def test_the_token_request_is_retried_on_a_server_error(client):
    # A client-credentials grant only issues another token: repeating it is harmless.
    responses.post(TOKEN_URL, status=503)
    token(responses)
    client.authenticate()
    assert client.token_requests == 1 and client.http.retries_done == 1


@responses.activate
def test_the_enroll_post_is_retried_because_a_repeat_answers_already_exists(client):
    token(responses)
    responses.post(ENROLL_URL, status=502)
    responses.post(
        ENROLL_URL,
        json={
            "studentUsers": [
                {"ImportUserId": "S1", "Code": 409, "Message": "Enrollment already exists"}
            ]
        },
    )
    result = client.enroll("ALG-101", students("S1"))
    assert result.results[0].outcome is Outcome.ALREADY_ENROLLED


@responses.activate
def test_control_characters_in_vendor_messages_are_stripped(client):
    token(responses)
    responses.post(
        ENROLL_URL,
        status=400,
        body=json.dumps(
            {
                "studentUsers": [
                    {
                        "ImportUserId": "S\u00001",
                        "Code": 404,
                        "Message": "User\u0000 doesn't\u0007 exist",
                    }
                ]
            }
        ),
        content_type="application/json",
    )
    result = client.enroll("ALG-101", students("S1"))
    assert result.results[0].message == "User doesn't exist"
    assert result.results[0].error_class == ErrorClass.NOT_FOUND


@responses.activate
def test_a_classroom_404_and_a_withdraw_404_are_told_apart(client):
    token(responses)
    responses.get(f"{BASE}/classrooms/NOPE", status=404)
    responses.delete(f"{BASE}/classrooms/ALG-101/students/S9", status=404)
    with pytest.raises(ClassroomNotFound, match="NOPE"):
        client.classroom("NOPE")
    assert client.withdraw("ALG-101", "S9") is False
