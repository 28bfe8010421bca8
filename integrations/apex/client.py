"""APEX Learning API client (shared/vendor-contracts.md section 1), on integrations.http.

Typed records at the edge: `Student` in, `BatchResult` of `StudentResult`s out. The
access token is shared by every thread of a run behind one lock, renewed a little before
`expire_in` runs out and once more when a call answers 401; it is registered with the
redactor and never printed or logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from integrations.config import require
from integrations.http import (
    AuthError,
    HttpClient,
    MalformedResponse,
    NotFoundError,
    RetryPolicy,
    VendorError,
    decode_json,
    default_classify,
    describe,
    loads_clean,
    redact,
    register_secret,
)
from reports.constants import ErrorClass

logger = logging.getLogger(__name__)

VENDOR = "APEX"
# A token is renewed this share of its lifetime before it runs out (at most a minute).
RENEW_SHARE = 0.1
RENEW_MAX_SECONDS = 60.0
DEFAULT_TOKEN_SECONDS = 300.0
ALREADY_ENROLLED = "enrollment already exists"


class Outcome(StrEnum):
    ENROLLED = "enrolled"
    ALREADY_ENROLLED = "already_enrolled"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Student:
    user_id: str  # ImportUserId
    org_id: str  # ImportOrgId


@dataclass(frozen=True, slots=True)
class StudentResult:
    user_id: str
    outcome: Outcome
    code: int | None = None
    message: str = ""
    error_class: str = ""


@dataclass(frozen=True, slots=True)
class BatchResult:
    classroom_id: str
    status: int
    results: tuple[StudentResult, ...]


class ClassroomNotFound(NotFoundError):
    """The classroom's import id is unknown to APEX: every row for it fails."""


# Known per-student messages and the error class they belong to (lower-case prefixes).
_MESSAGE_CLASSES = (
    ("user doesn't exist", ErrorClass.NOT_FOUND),
    ("user does not exist", ErrorClass.NOT_FOUND),
    ("duplicate user", ErrorClass.CONFLICT),
)


def classify(code: int | None, message: str) -> tuple[Outcome, str]:
    """A per-student entry's outcome and, for a failure, its error class."""
    text = message.strip().lower()
    # vendor-contracts.md §1: "Enrollment already exists" in any case means done, not failed.
    if text.startswith(ALREADY_ENROLLED):
        return Outcome.ALREADY_ENROLLED, ""
    if code == 200:
        return Outcome.ENROLLED, ""
    for prefix, error_class in _MESSAGE_CLASSES:
        if text.startswith(prefix):
            return Outcome.FAILED, error_class
    return Outcome.FAILED, ErrorClass.VENDOR_ERROR


def _json(body: bytes) -> Any:
    """The body's JSON with its strings cleaned (integrations.http.loads_clean), or None.

    Lenient on purpose: a 2xx enroll answer without a JSON body means the whole batch went
    through (vendor-contracts.md §1)."""
    try:
        return loads_clean(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None


_CLASSROOM_PATH = re.compile(r"/classrooms/([^/]+)(/students(/[^/]+)?)?$")


def classify_response(response: requests.Response) -> VendorError | None:
    """APEX's response classifier (vendor-contracts.md §1), used on every call.

    429 and 5xx are retried (default_classify). A refused token request names the
    settings; a 401 on a call is an AuthError with status 401, on which the client renews
    its token once. An answer carrying per-student results (`studentUsers`) is handed back
    whatever its status: parse_enroll_response reads each student's outcome. A 404 on a
    classroom is ClassroomNotFound; any other non-2xx is a malformed response.
    """
    error = default_classify(response, VENDOR)
    status = response.status_code
    if error is not None or 200 <= status < 300:
        return error
    call = describe(response)
    body = response.content[:500].decode("utf-8", "replace")
    if call.endswith("/token"):
        if status in (400, 401, 403):
            return AuthError(
                f"APEX refused the client credentials (HTTP {status}); "
                "check APEX_CLIENT_ID and APEX_CLIENT_SECRET",
                status=status,
            )
        return MalformedResponse(
            f"APEX token response (HTTP {status}) has no access_token", status=status, body=body
        )
    if status == 401:  # the client renews its token once on this
        return AuthError("APEX refused the access token (HTTP 401)", status=401)
    data = _json(response.content)
    if isinstance(data, dict) and isinstance(data.get("studentUsers"), list):
        return None
    if status == 403:
        return AuthError("APEX refused the request (HTTP 403)", status=403)
    match = _CLASSROOM_PATH.search(call)
    if status == 404 and match:
        classroom = unquote(match.group(1))
        if match.group(3):  # DELETE .../students/{id}: that student is not enrolled
            return NotFoundError(f"APEX: {call} was not found (HTTP 404)", status=404, body=body)
        return ClassroomNotFound(
            f"Classroom {classroom!r} does not exist in APEX (HTTP 404); check the "
            "ClassroomName (its ImportClassroomId).",
            status=404,
            body=body,
        )
    if match and match.group(2) and response.request.method == "POST":
        # vendor-contracts.md §1: an error body without studentUsers is a malformed response.
        return MalformedResponse(
            f"APEX answered HTTP {status} without per-student results (studentUsers)",
            status=status,
            body=body,
        )
    return MalformedResponse(f"APEX answered HTTP {status} to {call}", status=status, body=body)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_enroll_response(
    classroom_id: str, students: Sequence[Student], status: int, body: bytes
) -> BatchResult:
    """Per-student outcomes of one enroll call, or a typed error for the whole batch."""
    data = _json(body)
    entries = data.get("studentUsers") if isinstance(data, dict) else None
    ok = 200 <= status < 300
    if not isinstance(entries, list):
        if ok:
            results = tuple(StudentResult(s.user_id, Outcome.ENROLLED, status) for s in students)
            return BatchResult(classroom_id, status, results)
        snippet = redact(body[:500].decode("utf-8", "replace"))
        if status in (401, 403):
            raise AuthError(f"APEX refused the request (HTTP {status})", status=status)
        if status == 404:
            raise ClassroomNotFound(
                f"Classroom {classroom_id!r} does not exist in APEX (HTTP 404); check the "
                "ClassroomName (its ImportClassroomId).",
                status=404,
                body=snippet,
            )
        # vendor-contracts.md §1: an error body without studentUsers is a malformed response.
        raise MalformedResponse(
            f"APEX answered HTTP {status} without per-student results (studentUsers)",
            status=status,
            body=snippet,
        )

    by_id: dict[str, dict] = {}
    by_folded: dict[str, dict] = {}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("ImportUserId") is not None:
            user_id = str(entry["ImportUserId"]).strip()
            by_id.setdefault(user_id, entry)
            by_folded.setdefault(user_id.casefold(), entry)
    results = []
    for student in students:
        entry = by_id.get(student.user_id) or by_folded.get(student.user_id.casefold())
        if entry is None:
            if ok:
                results.append(StudentResult(student.user_id, Outcome.ENROLLED, status))
            else:
                results.append(
                    StudentResult(
                        student.user_id,
                        Outcome.FAILED,
                        None,
                        f"APEX answered HTTP {status} without a result for this student",
                        ErrorClass.MALFORMED,
                    )
                )
            continue
        code = _int(entry.get("Code"))
        message = str(entry.get("Message") or "").strip()
        outcome, error_class = classify(code, message)
        if outcome is Outcome.FAILED and not message:
            message = f"APEX error (code {code if code is not None else 'missing'})"
        results.append(StudentResult(student.user_id, outcome, code, message, error_class))
    return BatchResult(classroom_id, status, tuple(results))


class ApexClient:
    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        rate_per_second: float = 0.0,
        pool_size: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        register_secret(client_secret)
        self._client_id = client_id
        self._client_secret = client_secret
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(pool_size, 2))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.http = HttpClient.from_settings(
            vendor=VENDOR,
            base_url=base_url,
            rate_per_second=rate_per_second,
            headers={"Accept": "application/json"},
            classify=classify_response,
            timeout=timeout,
            retry=retry,
            session=session,
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.token_requests = 0

    @classmethod
    def from_settings(cls) -> ApexClient:
        values = require(
            "APEX_BASE_URL", "APEX_CLIENT_ID", "APEX_CLIENT_SECRET", secret=("APEX_CLIENT_SECRET",)
        )
        return cls(
            base_url=values["APEX_BASE_URL"],
            client_id=values["APEX_CLIENT_ID"],
            client_secret=values["APEX_CLIENT_SECRET"],
            rate_per_second=settings.APEX_REQUESTS_PER_SECOND,
            pool_size=settings.APEX_CONCURRENCY + 2,
        )

    def close(self) -> None:
        self.http.session.close()

    # -- token ---------------------------------------------------------------------
    def authenticate(self) -> None:
        """Get a token now (the run's `authenticate` stage), so a refusal fails early."""
        self._current_token()

    def _current_token(self) -> str:
        # One lock for the whole check-and-fetch, so threads that find the token stale
        # together wait for a single renewal instead of each asking for their own.
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _discard_token(self, stale: str) -> None:
        with self._lock:
            if self._token == stale:
                self._token = None

    def _fetch_token(self) -> None:
        self.token_requests += 1
        # idempotent=True: a client-credentials grant only issues one more short-lived token;
        # a repeat creates nothing in APEX and changes no state a later call depends on.
        # Refused credentials (400/401/403) are permanent and sent once.
        response = self.http.request(
            "POST",
            "/token",
            idempotent=True,
            json={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            # vendor-contracts.md §1: the known live client sends the pair as Basic auth too.
            auth=(self._client_id, self._client_secret),
        )
        data = _json(response.content)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise MalformedResponse(
                f"APEX token response (HTTP {response.status_code}) has no access_token",
                status=response.status_code,
            )
        register_secret(token)
        # vendor-contracts.md §1: the lifetime key is `expire_in`, not `expires_in`.
        lifetime = _int(data.get("expire_in"))
        if lifetime is None:
            lifetime = _int(data.get("expires_in"))
        seconds = float(lifetime) if lifetime and lifetime > 0 else DEFAULT_TOKEN_SECONDS
        margin = min(RENEW_MAX_SECONDS, seconds * RENEW_SHARE)
        self._token = token
        self._renew_at = self._clock() + seconds - margin
        logger.info("APEX token obtained, valid for %ss", int(seconds))

    # -- calls ---------------------------------------------------------------------
    def _call(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> requests.Response:
        token = self._current_token()
        try:
            return self._send(method, path, token, idempotent, kwargs)
        except AuthError as exc:
            if exc.status != 401:
                raise
        logger.info("APEX answered 401; renewing the token once")
        self._discard_token(token)
        token = self._current_token()
        try:
            return self._send(method, path, token, idempotent, kwargs)
        except AuthError as exc:
            if exc.status != 401:
                raise
            raise AuthError(
                "APEX refused a freshly issued access token (HTTP 401)", status=401
            ) from None

    def _send(
        self, method: str, path: str, token: str, idempotent: bool | None, kwargs: dict
    ) -> requests.Response:
        return self.http.request(
            method, path, idempotent=idempotent, headers=self._headers(token), **kwargs
        )

    @staticmethod
    def _headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def enroll(self, classroom_id: str, students: Sequence[Student]) -> BatchResult:
        """Enroll one batch of students into one classroom."""
        body = {
            "studentUsers": [{"ImportUserId": s.user_id, "ImportOrgId": s.org_id} for s in students]
        }
        # idempotent=True: retrying this POST (429/5xx, lost responses) is safe only because
        # APEX answers a repeated enrollment with "Enrollment already exists"
        # (vendor-contracts.md §1), which counts as done: a retry cannot enroll anyone twice.
        response = self._call(
            "POST", f"/classrooms/{_segment(classroom_id)}/students", idempotent=True, json=body
        )
        return parse_enroll_response(classroom_id, students, response.status_code, response.content)

    def classroom(self, classroom_id: str) -> dict[str, Any]:
        response = self._call("GET", f"/classrooms/{_segment(classroom_id)}")
        data = decode_json(response, VENDOR)
        if not isinstance(data, dict):
            raise MalformedResponse(
                f"APEX classroom response (HTTP {response.status_code}) is not an object",
                status=response.status_code,
            )
        return data

    def withdraw(self, classroom_id: str, user_id: str) -> bool:
        """Withdraw a student; False when they were not enrolled."""
        try:
            self._call(
                "DELETE", f"/classrooms/{_segment(classroom_id)}/students/{_segment(user_id)}"
            )
        except NotFoundError:
            return False
        return True


def _segment(value: str) -> str:
    # quote() leaves "." alone and requests resolves dot segments: /classrooms/../students
    # would go out as POST /students.
    if value in (".", ".."):
        raise ValueError(f"{value!r} is not a usable APEX import id")
    return quote(value, safe="")
