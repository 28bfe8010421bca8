"""A local APEX Learning API (shared/vendor-contracts.md section 1), quirks included.

- `POST /token` (JSON client credentials, HTTP Basic accepted too) answers `expire_in`
  (not `expires_in`); a token stops working after `token_lifetime` seconds (401).
- `POST /classrooms/{id}/students` answers 201 when every student went through, else
  `partial_status` (400) with one `studentUsers` entry per student: Code 200, or a
  message: "User doesn't exist", "No available Order", "Duplicate user",
  "Enrollment already exists". An unknown classroom is a 404 without `studentUsers`.
- `GET /classrooms/{id}`, `GET /classrooms/{id}/students` (header `page`, answer header
  `total-pages`), `DELETE /classrooms/{id}/students/{user}`.
- Throttling: more than `rate_limit` requests in a second answer 429 with Retry-After.
- `GET /_simulator/arrivals` (not APEX's: the bench reads it from another process) lists
  every request as `[seconds since the simulator started, method, path]`, taken when the
  request arrived, before any latency or throttling: what a rate limit judges.

Data is lazy so 500 classrooms x 50,000 students stay small: a classroom exists when it
is in the demo catalogue or looks like `CLS-<digits>`; a user exists when it looks like
`S<4-9 digits>`, unless listed in `missing_users`. Only enrollments are stored.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import math
import re
import secrets
import time
import zlib
from dataclasses import dataclass, replace

from integrations.simulator import Request, Response, Simulator, route

DEMO_CLIENT_ID = "classbridge-demo"
DEMO_CLIENT_SECRET = "apex-demo-secret-7f3a9c"
DEMO_ORG = "ORG-DEMO"
OTHER_ORG = "ORG-NORTH"

GENERATED_CLASSROOM = re.compile(r"^CLS-\d{1,6}$")
EXISTING_USER = re.compile(r"^S\d{4,9}$")
PAGE_SIZE = 100
ARRIVALS_PATH = "/_simulator/arrivals"


@dataclass
class Classroom:
    import_id: str
    name: str
    teacher: str
    start_date: str
    orders: int | None = None  # seats the school bought; None: unlimited


DEMO_CLASSROOMS = (
    Classroom("ALG-101", "Algebra I (period 1)", "Grace Hopper", "2026-08-24"),
    Classroom("BIO-110", "Biology", "Rosalind Franklin", "2026-08-24"),
    Classroom("CHEM-201", "Chemistry (3 seats left)", "Marie Curie", "2026-08-24", orders=3),
    Classroom("ENG-090", "English Composition", "Toni Morrison", "2026-09-07"),
)
# Already enrolled before any run: the demo roster's "already enrolled" rows.
DEMO_ENROLLMENTS = {"ALG-101": ("S100010", "S100011"), "BIO-110": ("S100020",)}
DEMO_MISSING_USERS = frozenset({"S999404", "S999405"})
DEMO_DUPLICATE_USERS = frozenset({"S100666"})


def _teacher(classroom_id: str) -> str:
    names = ("Ada Lovelace", "Alan Turing", "Katherine Johnson", "Edsger Dijkstra")
    return names[zlib.crc32(classroom_id.encode()) % len(names)]


class APEXSimulator(Simulator):
    name = "apex"

    def __init__(
        self,
        *,
        seed: int = 7,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        token_lifetime: int = 300,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str = DEMO_CLIENT_SECRET,
        orgs: tuple[str, ...] = (DEMO_ORG, OTHER_ORG),
        rate_limit: float = 0.0,
        partial_status: int = 400,
        missing_users: frozenset[str] = DEMO_MISSING_USERS,
        duplicate_users: frozenset[str] = DEMO_DUPLICATE_USERS,
        demo_data: bool = True,
    ) -> None:
        super().__init__(seed=seed, latency_ms=latency_ms, fail_rate=fail_rate)
        self.token_lifetime = token_lifetime
        self.client_id = client_id
        self.client_secret = client_secret
        self.orgs = frozenset(orgs)
        self.rate_limit = rate_limit
        self.partial_status = partial_status
        self.missing_users = frozenset(missing_users)
        self.duplicate_users = frozenset(duplicate_users)
        # Copies: seats are used up per simulator, never in the shared demo catalogue.
        self.catalogue = {c.import_id: replace(c) for c in DEMO_CLASSROOMS} if demo_data else {}
        self.enrollments: dict[str, set[str]] = collections.defaultdict(set)
        if demo_data:
            for classroom_id, users in DEMO_ENROLLMENTS.items():
                self.enrollments[classroom_id].update(users)
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.already_exists_answers = 0
        self._recent: collections.deque[float] = collections.deque()
        self._started = time.monotonic()
        # (arrival, method, path) of every request, in arrival order (GET /_simulator/arrivals)
        self.arrivals: list[tuple[float, str, str]] = []
        self._lose_responses: dict[str | None, int] = {}

    @property
    def demo_settings(self) -> dict[str, str]:
        return {
            "APEX_CLIENT_ID": self.client_id,
            "APEX_CLIENT_SECRET": self.client_secret,
            "APEX_ORG_ID": DEMO_ORG,
        }

    # -- knobs used by tests -------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every token issued so far stops working (the next call gets a 401)."""
        with self.lock:
            self.tokens.clear()

    def lose_next_responses(self, times: int = 1, *, classroom: str | None = None) -> None:
        """The next enroll calls (to `classroom`, or to any) are carried out, then answered
        502 (a lost response)."""
        with self.lock:
            self._lose_responses[classroom] = self._lose_responses.get(classroom, 0) + times

    def enrolled(self, classroom_id: str) -> set[str]:
        with self.lock:
            return set(self.enrollments.get(classroom_id, ()))

    def enrollment_count(self) -> int:
        with self.lock:
            return sum(len(users) for users in self.enrollments.values())

    # -- plumbing ------------------------------------------------------------------
    def max_per_window(self, seconds: float = 1.0) -> int:
        """The most requests that arrived within any `seconds` (a half-open window)."""
        with self.lock:
            times = [t for t, _method, _path in self.arrivals]
        return max_in_window(times, seconds)

    def dispatch(self, request: Request) -> Response:
        if request.path == ARRIVALS_PATH and request.method == "GET":
            with self.lock:
                return Response.json({"arrivals": self.arrivals})
        with self.lock:
            self.arrivals.append(
                (round(time.monotonic() - self._started, 6), request.method, request.path)
            )
        if self.rate_limit and self._over_rate():
            return self.throttled_response()
        return super().dispatch(request)

    def _over_rate(self) -> bool:
        now = time.monotonic()
        with self.lock:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                return True
            self._recent.append(now)
            return False

    def throttled_response(self) -> Response:
        return Response.json(
            {"Message": "API calls quota exceeded! Maximum admitted per second."},
            429,
            {"Retry-After": "1"},
        )

    def _unauthorized(self, request: Request) -> Response | None:
        header = request.header("authorization")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        expires = self.tokens.get(token)
        if expires is None or time.monotonic() >= expires:
            self.tokens.pop(token, None)
            return Response.json(
                {"Message": "Authorization has been denied for this request."}, 401
            )
        return None

    def _classroom(self, classroom_id: str) -> Classroom | None:
        known = self.catalogue.get(classroom_id)
        if known is not None:
            return known
        if GENERATED_CLASSROOM.match(classroom_id):
            number = int(classroom_id.split("-")[1])
            return Classroom(
                classroom_id,
                f"Generated classroom {number}",
                _teacher(classroom_id),
                (dt.date(2026, 8, 24) + dt.timedelta(days=number % 14)).isoformat(),
            )
        return None

    def _user_exists(self, user_id: str) -> bool:
        return bool(EXISTING_USER.match(user_id)) and user_id not in self.missing_users

    # -- routes --------------------------------------------------------------------
    @route("POST", "/token")
    def token(self, request: Request) -> Response:
        try:
            data = request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("grant_type") != "client_credentials":
            return Response.json({"error": "unsupported_grant_type"}, 400)
        pair = (data.get("client_id"), data.get("client_secret"))
        basic = request.header("authorization")
        if basic[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                return Response.json({"error": "invalid_client"}, 401)
            if (user, password) != pair:
                return Response.json({"error": "invalid_client"}, 401)
        if pair != (self.client_id, self.client_secret):
            return Response.json({"error": "invalid_client"}, 401)
        now = time.monotonic()
        for stale in [t for t, expires in self.tokens.items() if expires <= now]:
            del self.tokens[stale]
        token = secrets.token_urlsafe(24)
        self.tokens[token] = now + self.token_lifetime
        self.tokens_issued += 1
        # vendor-contracts.md §1: the key is `expire_in`.
        return Response.json(
            {"access_token": token, "token_type": "bearer", "expire_in": self.token_lifetime}
        )

    @route("GET", "/classrooms/{classroom_id}")
    def classroom_info(self, request: Request, classroom_id: str) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        classroom = self._classroom(_path_text(classroom_id))
        if classroom is None:
            return Response.json({"Message": "Classroom not found"}, 404)
        return Response.json(
            {
                "ImportClassroomId": classroom.import_id,
                "ClassroomName": classroom.name,
                "PrimaryTeacher": classroom.teacher,
                "ClassroomStartDate": classroom.start_date,
            }
        )

    @route("GET", "/classrooms/{classroom_id}/students")
    def classroom_students(self, request: Request, classroom_id: str) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        classroom_id = _path_text(classroom_id)
        if self._classroom(classroom_id) is None:
            return Response.json({"Message": "Classroom not found"}, 404)
        users = sorted(self.enrollments.get(classroom_id, ()))
        pages = max(1, math.ceil(len(users) / PAGE_SIZE))
        try:
            page = max(1, int(request.header("page", "1")))
        except ValueError:
            page = 1
        chunk = users[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        return Response.json(
            {"studentUsers": [{"ImportUserId": u} for u in chunk]},
            headers={"total-pages": str(pages)},
        )

    @route("POST", "/classrooms/{classroom_id}/students")
    def enroll(self, request: Request, classroom_id: str) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        classroom_id = _path_text(classroom_id)
        classroom = self._classroom(classroom_id)
        if classroom is None:
            return Response.json({"Message": "Classroom not found"}, 404)
        try:
            data = request.json()
        except ValueError:
            data = None
        students = data.get("studentUsers") if isinstance(data, dict) else None
        if not isinstance(students, list) or not students:
            return Response.json({"Message": "The request is invalid."}, 400)
        enrolled = self.enrollments[classroom_id]
        seen: set[str] = set()
        answers = []
        for student in students:
            user_id = str((student or {}).get("ImportUserId") or "")
            org_id = str((student or {}).get("ImportOrgId") or "")
            code, message = self._enroll_one(classroom, enrolled, user_id, org_id, seen)
            seen.add(user_id)
            answers.append({"ImportUserId": user_id, "Code": code, "Message": message})
        for target in (classroom_id, None):
            if self._lose_responses.get(target):
                self._lose_responses[target] -= 1
                return Response.json({"error": "bad gateway"}, 502)
        if all(a["Code"] == 200 for a in answers):
            return Response(status=201)
        return Response.json({"studentUsers": answers}, self.partial_status)

    def _enroll_one(
        self,
        classroom: Classroom,
        enrolled: set[str],
        user_id: str,
        org_id: str,
        seen: set[str],
    ) -> tuple[int, str]:
        if org_id not in self.orgs:
            return 404, f"Organization {org_id or '(empty)'} not found"
        if user_id in seen or user_id in self.duplicate_users:
            return 409, "Duplicate user"
        if not self._user_exists(user_id):
            return 404, "User doesn't exist"
        if user_id in enrolled:
            self.already_exists_answers += 1
            return 409, f"Enrollment already exists for user {user_id}"
        if classroom.orders is not None:
            if classroom.orders <= 0:
                return 402, "No available Order"
            classroom.orders -= 1
        enrolled.add(user_id)
        return 200, "Success"

    @route("DELETE", "/classrooms/{classroom_id}/students/{user_id}")
    def withdraw(self, request: Request, classroom_id: str, user_id: str) -> Response:
        denied = self._unauthorized(request)
        if denied:
            return denied
        classroom_id, user_id = _path_text(classroom_id), _path_text(user_id)
        enrolled = self.enrollments.get(classroom_id)
        if self._classroom(classroom_id) is None or not enrolled or user_id not in enrolled:
            return Response.json({"Message": "Enrollment not found"}, 404)
        enrolled.discard(user_id)
        classroom = self.catalogue.get(classroom_id)
        if classroom is not None and classroom.orders is not None:
            classroom.orders += 1
        return Response(status=204)


def max_in_window(times: list[float], seconds: float = 1.0) -> int:
    """The most of `times` (any order) that fall within one window [t, t + seconds)."""
    ordered = sorted(times)
    most = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


def _path_text(segment: str) -> str:
    """WSGI hands the decoded path over as Latin-1 text; ids are UTF-8."""
    try:
        return segment.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return segment


def build(
    seed: int = 7,
    latency_ms: int = 0,
    fail_rate: float = 0.0,
    token_lifetime: int = 300,
    **kw,
) -> APEXSimulator:
    """The sandbox's APEX. Throttles above 20 requests a second unless `rate_limit` says
    otherwise (0: never); the client's default APEX_REQUESTS_PER_SECOND stays below it."""
    kw.setdefault("rate_limit", 20.0)
    return APEXSimulator(
        seed=seed, latency_ms=latency_ms, fail_rate=fail_rate, token_lifetime=token_lifetime, **kw
    )
