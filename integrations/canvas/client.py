"""Canvas LMS REST client (../shared/vendor-contracts.md section 4).

- Auth: `Authorization: Bearer <CANVAS_TOKEN>`; the token is registered as a secret, so it
  is redacted from every log line, error and report.
- Paging: the `Link` header only. `rel="next"` URLs are opaque and followed as given (the
  HTTP layer refuses one that points at another host); there may be no `rel="last"`.
  Every list asks for `per_page=100`, Canvas's maximum.
- Throttling, the Canvas way: a leaky bucket per token. Each answer says what the request
  cost (`X-Request-Cost`) and what is left (`X-Rate-Limit-Remaining`); the shared
  `Bucket` slows every thread down *before* the bucket empties. A throttled request gets a
  text/plain `403 Forbidden (Rate Limit Exceeded)`: retried after a pause.
- Three refusals told apart, each with its own class: the throttle 403
  (`CanvasThrottled`, retried), a 401 with `WWW-Authenticate` (`CanvasAuthError`: a bad or
  expired token, the whole run fails) and a JSON 403 or a 401 without the header
  (`CanvasPermissionError`: this token may not read that course's data; never retried).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
from django.conf import settings

from integrations.config import require
from integrations.http import (
    AuthError,
    HttpClient,
    MalformedResponse,
    NotFoundError,
    PermissionDenied,
    ThrottledError,
    VendorError,
    decode_json,
    default_classify,
    describe,
)

logger = logging.getLogger("integrations.canvas")

VENDOR = "Canvas"
PER_PAGE = 100
THROTTLE_TEXT = "rate limit exceeded"
# Canvas's default leak rate (units a second): how fast a low bucket refills.
LEAK_PER_SECOND = 10.0
MAX_SLOWDOWN_SECONDS = 30.0
MAX_PAGES = 10_000  # a Link loop guard: no course needs a million submissions pages


class CanvasThrottled(ThrottledError):
    """403 `Rate Limit Exceeded` (text/plain): the token's leaky bucket overflowed."""


class CanvasAuthError(AuthError):
    """401 with `WWW-Authenticate`: the token is wrong, expired or revoked."""


class CanvasPermissionError(PermissionDenied):
    """A JSON 403 (or a 401 without `WWW-Authenticate`): the token may not read this."""


def _messages(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            texts = [e.get("message", "") for e in errors if isinstance(e, dict)]
            return "; ".join(t for t in texts if isinstance(t, str) and t)[:300]
        if isinstance(body.get("message"), str):
            return body["message"][:300]
    return ""


def classify(response: requests.Response) -> VendorError | None:
    """Canvas's answers as errors (None: a usable answer)."""
    status = response.status_code
    where = describe(response)
    if status == 403 and THROTTLE_TEXT in response.text[:200].lower():
        return CanvasThrottled(
            f"Canvas: throttled (403 Rate Limit Exceeded) on {where}", status=403
        )
    if status == 401 and response.headers.get("WWW-Authenticate"):
        return CanvasAuthError(
            "Canvas refused the token (401): check CANVAS_TOKEN; it may be wrong, expired "
            "or revoked",
            status=401,
        )
    if status in (401, 403):
        detail = _messages(response) or "not allowed"
        return CanvasPermissionError(
            f"Canvas: the token may not read this ({status} on {where}: {detail})",
            status=status,
        )
    if status == 404:
        return NotFoundError(f"Canvas: not found (404 on {where})", status=404)
    error = default_classify(response, VENDOR)
    if error is not None:
        return error
    if status >= 400:
        detail = _messages(response)
        return VendorError(
            f"Canvas API error {status} on {where}" + (f": {detail}" if detail else ""),
            status=status,
        )
    return None


@dataclass
class Bucket:
    """What Canvas last said of the token's bucket, shared by every thread of a pull.

    Before each request, `wait()` sleeps while the estimated remaining capacity (the last
    `X-Rate-Limit-Remaining`, plus what leaked since) is under `floor`, so parallel
    requests (each charged up front) never drain it. `sleep` is the retry policy's (no
    real sleeping in tests; the delays are still counted).
    """

    floor: float = 150.0
    leak_per_second: float = LEAK_PER_SECOND
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    remaining: float | None = None
    seen_at: float = 0.0
    slowdowns: int = 0
    slowed_seconds: float = 0.0
    cost: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait(self) -> None:
        with self._lock:
            if self.remaining is None:
                return
            estimate = self.remaining + (self.clock() - self.seen_at) * self.leak_per_second
            if estimate >= self.floor:
                return
            delay = min(MAX_SLOWDOWN_SECONDS, (self.floor - estimate) / self.leak_per_second)
            self.slowdowns += 1
            self.slowed_seconds += delay
            # Assume it refills while we wait, so other threads do not all wait again.
            self.remaining, self.seen_at = self.floor, self.clock() + delay
        self.sleep(delay)

    def observe(self, response: requests.Response) -> None:
        remaining = _header_float(response, "X-Rate-Limit-Remaining")
        cost = _header_float(response, "X-Request-Cost")
        with self._lock:
            if remaining is not None:
                self.remaining, self.seen_at = remaining, self.clock()
            if cost is not None:
                self.cost += cost


def _header_float(response: requests.Response, name: str) -> float | None:
    try:
        return float(response.headers.get(name, ""))
    except ValueError:
        return None


class CanvasClient:
    def __init__(self, http: HttpClient, *, bucket: Bucket | None = None) -> None:
        self.http = http
        self.bucket = bucket or Bucket(sleep=http.retry.sleep)
        self.requests = 0

    @classmethod
    def from_settings(cls, *, bucket: Bucket | None = None) -> CanvasClient:
        """A client on CANVAS_BASE_URL with CANVAS_TOKEN. Missing or empty settings raise
        ConfigError naming the variable, before anything is sent."""
        values = require("CANVAS_BASE_URL", "CANVAS_TOKEN", secret=("CANVAS_TOKEN",))
        http = HttpClient.from_settings(
            vendor=VENDOR,
            base_url=values["CANVAS_BASE_URL"],
            rate_per_second=float(settings.CANVAS_REQUESTS_PER_SECOND),
            headers={
                "Authorization": f"Bearer {values['CANVAS_TOKEN']}",
                "Accept": "application/json",
            },
            classify=classify,
        )
        if bucket is None:
            bucket = Bucket(floor=float(settings.CANVAS_RATE_LIMIT_FLOOR), sleep=http.retry.sleep)
        return cls(http, bucket=bucket)

    # -- transport -----------------------------------------------------------------
    def _get(self, path: str, params: Any = None) -> requests.Response:
        self.bucket.wait()
        self.requests += 1
        response = self.http.request("GET", path, params=params)
        self.bucket.observe(response)
        return response

    def get(self, path: str, params: Any = None) -> Any:
        return decode_json(self._get(path, params), VENDOR)

    def pages(self, path: str, params: list[tuple[str, str]] | None = None) -> Iterator[list]:
        """Each page of a list, following `Link: rel="next"` to the end."""
        params = [*(params or []), ("per_page", str(PER_PAGE))]
        response = self._get(path, params)
        for _ in range(MAX_PAGES):
            data = decode_json(response, VENDOR)
            if not isinstance(data, list):
                raise MalformedResponse(
                    f"Canvas: {describe(response)} answered {type(data).__name__}, not a list",
                    status=response.status_code,
                )
            yield [row for row in data if isinstance(row, dict)]
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            response = self._get(next_url)  # opaque: sent as given, to our host only
        raise MalformedResponse(f"Canvas: more than {MAX_PAGES} pages of {path}: a Link loop?")

    def all(self, path: str, params: list[tuple[str, str]] | None = None) -> list[dict]:
        rows: list[dict] = []
        for page in self.pages(path, params):
            rows.extend(page)
        return rows

    # -- endpoints -----------------------------------------------------------------
    def course(self, course_id: str) -> dict[str, Any]:
        data = self.get(f"/api/v1/courses/{course_id}", [("include[]", "term")])
        if not isinstance(data, dict) or "id" not in data:
            raise MalformedResponse(f"Canvas: course {course_id} came without an id")
        return data

    def account_courses(
        self, account_id: str, *, state: str, term: str = ""
    ) -> Iterator[list[dict]]:
        params = [("state[]", state), ("include[]", "term"), ("include[]", "total_students")]
        if term:
            params.append(("enrollment_term_id", term))
        return self.pages(f"/api/v1/accounts/{account_id}/courses", params)

    def students(self, course_id: str) -> list[dict]:
        return self.all(
            f"/api/v1/courses/{course_id}/users",
            [
                ("enrollment_type[]", "student"),
                ("enrollment_state[]", "active"),
                ("include[]", "email"),
            ],
        )

    def enrollments(self, course_id: str) -> list[dict]:
        return self.all(
            f"/api/v1/courses/{course_id}/enrollments",
            [("type[]", "StudentEnrollment"), ("state[]", "active")],
        )

    def assignments(self, course_id: str) -> list[dict]:
        return self.all(f"/api/v1/courses/{course_id}/assignments")

    def submissions(self, course_id: str, *, since: str = "") -> list[dict]:
        """Every student's submissions; with `since` (ISO time), only those submitted or
        graded since then (two reads, as Canvas filters each separately)."""
        return [row for page in self.submission_pages(course_id, since=since) for row in page]

    def submission_pages(self, course_id: str, *, since: str = "") -> Iterator[list[dict]]:
        """`submissions` a page at a time, as Canvas sends them (nothing is asked before
        the first page is wanted). With `since`, the submitted-since pages, then the
        graded-since ones: a submission may be in both."""
        path = f"/api/v1/courses/{course_id}/students/submissions"
        base = [("student_ids[]", "all")]
        if not since:
            yield from self.pages(path, base)
            return
        yield from self.pages(path, [*base, ("submitted_since", since)])
        yield from self.pages(path, [*base, ("graded_since", since)])

    def modules(self, course_id: str) -> list[dict]:
        """Modules with their items; a module whose items Canvas left out (large modules)
        has them fetched from its own items list."""
        modules = self.all(f"/api/v1/courses/{course_id}/modules", [("include[]", "items")])
        for module in modules:
            if isinstance(module.get("items"), list):
                continue
            module_id = module.get("id")
            if isinstance(module_id, bool) or not isinstance(module_id, int | str):
                raise MalformedResponse(f"Canvas: a module of course {course_id} has no id")
            module["items"] = self.all(f"/api/v1/courses/{course_id}/modules/{module_id}/items")
            module["items_fetched_separately"] = True
        return modules
