"""A local Canvas LMS that follows ../shared/vendor-contracts.md section 4, quirks included.

Serves one account (id 1) with courses in every state, so single and bulk pulls, tests and
the demo meet what a real Canvas serves:

- `Authorization: Bearer <token>`; a wrong token is a 401 with `WWW-Authenticate`.
- Paging by the `Link` header only: `rel="next"` links are opaque absolute URLs (a
  bookmark, not a page number) and there is never a `rel="last"`; `per_page` is clamped
  to 1..100, default 10.
- The leaky-bucket throttle per token: every request pays 50 units up front (refunded
  when it ends) plus its cost; the bucket leaks `leak_rate` units a second; above the
  high-water mark a request answers `403` with the text body
  `403 Forbidden (Rate Limit Exceeded)`. Every answer carries `X-Request-Cost` and
  `X-Rate-Limit-Remaining`.
- Course `WORLD_HISTORY`'s submissions answer a JSON 403 (the token's user may not see
  them): a permission problem on one course.
- Course `CHEMISTRY`'s modules come without their items even with `include[]=items`
  (Canvas leaves them out when a module is large): they are at `.../modules/:id/items`.
- Enrollments the pull must leave out: teachers, a TA, the test student
  (`StudentViewEnrollment`), an invited, an inactive and a completed student. Their
  submissions are served too, as `student_ids[]=all` does.
- Two students without an email; one student (`SHARED_USER`) is in Biology and Chemistry
  and has the email of an OpenClass demo student (the OpenClass simulator's first user,
  same seed).
- Incremental reads: `submitted_since` / `graded_since` on the submissions list.

Knobs (see `build`): `seed`, `latency_ms`, `fail_rate` (base class; the throttled half
answers Canvas's text 403, the rest 500), `high_water`, `leak_rate`, `request_cost`,
`clock` (seconds; tests pass a virtual clock), `anchor` (the day the data ends),
`bench_students` and `bench_assignments` (one more course, `BENCH_COURSE`, with a submission
per student and assignment: the benchmark's; bench/cases/pulls.py). Test helpers:
`set_score`, `submit`, `course_counts`.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from integrations.simulator import Request, Response, Simulator, route

DEMO_TOKEN = "canvas-demo-token-4f1c9a2e7b"
ACCOUNT_ID = "1"
# Shard-style global ids, as Canvas hands them out (10000000000000 + local id).
SHARD = 10_000_000_000_000

BIOLOGY, CHEMISTRY, WORLD_HISTORY, PHYSICS_DRAFT, ALGEBRA_OLD, ART_DELETED = (
    str(SHARD + n) for n in (101, 102, 103, 104, 105, 106)
)
TERM_FALL, TERM_SPRING, TERM_PAST = 11, 12, 10
_TERMS = {TERM_FALL: "Fall 2026", TERM_SPRING: "Spring 2027", TERM_PAST: "Fall 2025"}

# The benchmark's course (served only when bench_students and bench_assignments are set).
BENCH_COURSE = str(SHARD + 900)

THROTTLE_TEXT = "403 Forbidden (Rate Limit Exceeded)"
UP_FRONT = 50.0
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 10


@dataclass(frozen=True)
class _CourseSpec:
    id: str
    name: str
    code: str
    state: str  # unpublished | available | completed | deleted
    term: int
    roster: tuple[int, int]  # slice of the student pool
    topics: tuple[str, ...]  # one module per topic


_COURSES = (
    _CourseSpec(
        BIOLOGY, "Biology 101", "BIO-101", "available", TERM_FALL, (0, 12),
        ("Cells", "Genetics", "Evolution"),
    ),
    _CourseSpec(
        CHEMISTRY, "Chemistry 201", "CHEM-201", "available", TERM_FALL, (11, 21),
        ("Atoms", "Bonds", "Reactions"),
    ),
    _CourseSpec(
        WORLD_HISTORY, "World History", "HIST-110", "available", TERM_SPRING, (20, 28),
        ("Antiquity", "Middle Ages"),
    ),
    _CourseSpec(
        PHYSICS_DRAFT, "Physics (draft)", "PHYS-150", "unpublished", TERM_SPRING, (0, 0),
        ("Motion",),
    ),
    _CourseSpec(
        ALGEBRA_OLD, "Algebra I (2025)", "ALG-100", "completed", TERM_PAST, (28, 32),
        ("Equations",),
    ),
    _CourseSpec(
        ART_DELETED, "Art Elective", "ART-090", "deleted", TERM_FALL, (0, 0), ("Drawing",),
    ),
)  # fmt: skip

_FIRST = "Ava Ben Cleo Dev Eli Fay Gil Hal Ida Jon Kai Lia Max Noa Oli Pia Ray Sia Teo Uli"
_LAST = "Moss Hart Reid Vance Lowe Frey Nash Cole Pike Ward Sage Ross Kerr Lund Hale Birch"


def openclass_demo_email(seed: int) -> str:
    """The email of the OpenClass simulator's first demo student for the same seed.

    Mirrors integrations/openclass/simulator.py's name draw (two shuffles of its name lists,
    then student 0); a test pins that both simulators agree.
    """
    from integrations.openclass.simulator import _FIRST_NAMES, _LAST_NAMES

    rng = random.Random(seed)
    firsts, lasts = _FIRST_NAMES.split(), _LAST_NAMES.split()
    rng.shuffle(firsts)
    rng.shuffle(lasts)
    return f"{firsts[0]}.{lasts[0]}@students.example.edu".lower()


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SimUser:
    id: int
    name: str
    sortable_name: str
    email: str | None


@dataclass
class SimEnrollment:
    id: int
    user_id: int
    type: str  # StudentEnrollment, TeacherEnrollment, TaEnrollment, StudentViewEnrollment
    state: str  # active, invited, inactive, completed
    last_activity_at: datetime | None = None
    current_score: float | None = None
    final_score: float | None = None


@dataclass
class SimAssignment:
    id: int
    name: str
    points_possible: float
    published: bool
    position: int
    due_at: datetime | None
    submission_types: list[str]
    quiz_id: int | None = None


@dataclass
class SimSubmission:
    id: int
    assignment_id: int
    user_id: int
    score: float | None = None
    submitted_at: datetime | None = None
    graded_at: datetime | None = None
    workflow_state: str = "unsubmitted"
    late: bool = False
    missing: bool = False
    excused: bool = False
    seconds_late: int = 0


@dataclass
class SimModule:
    id: int
    name: str
    position: int
    items: list[dict[str, Any]]
    items_inline: bool = True


@dataclass
class SimCourse:
    spec: _CourseSpec
    enrollments: list[SimEnrollment] = field(default_factory=list)
    assignments: list[SimAssignment] = field(default_factory=list)
    submissions: list[SimSubmission] = field(default_factory=list)
    modules: list[SimModule] = field(default_factory=list)
    submissions_forbidden: bool = False


class CanvasSimulator(Simulator):
    name = "canvas"

    def __init__(
        self,
        *,
        seed: int = 7,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        high_water: float = 600.0,
        leak_rate: float = 10.0,
        request_cost: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        anchor: datetime | None = None,
        token: str = DEMO_TOKEN,
        bench_students: int = 0,
        bench_assignments: int = 0,
    ) -> None:
        super().__init__(seed=seed, latency_ms=latency_ms, fail_rate=fail_rate)
        self.token = token
        self.high_water = high_water
        self.leak_rate = leak_rate
        self.request_cost = request_cost
        self.clock = clock
        self.demo_settings = {"CANVAS_TOKEN": token, "CANVAS_ACCOUNT_ID": ACCOUNT_ID}
        self.anchor = anchor or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self._bucket = 0.0
        self._bucket_at = clock()
        self._bucket_lock = threading.Lock()
        self.throttled = 0
        self.users: dict[int, SimUser] = {}
        self.courses: dict[str, SimCourse] = {}
        self._next_id = 5000
        self._generate(random.Random(seed), seed)
        if bench_students > 0 and bench_assignments > 0:
            self._bench_course(random.Random(seed), bench_students, bench_assignments)

    # -- demo data -----------------------------------------------------------------
    def _id(self) -> int:
        self._next_id += 1
        return SHARD + self._next_id

    def _generate(self, rng: random.Random, seed: int) -> None:
        firsts, lasts = _FIRST.split(), _LAST.split()
        pool: list[int] = []
        for i in range(32):
            first, last = firsts[i % len(firsts)], lasts[(i * 7) % len(lasts)]
            email: str | None = f"{first}.{last}{i}@school.example.edu".lower()
            if i in (3, 14):
                email = None  # no email at Canvas: stays a person of its own
            user = SimUser(SHARD + 2000 + i, f"{first} {last}", f"{last}, {first}", email)
            self.users[user.id] = user
            pool.append(user.id)
        # In Biology and Chemistry (rosters overlap on 11), with an OpenClass demo email
        # typed in another case.
        shared = self.users[pool[11]]
        shared.email = openclass_demo_email(seed).title()
        shared.name, shared.sortable_name = "Shared Student", "Student, Shared"
        self.shared_user = shared.id
        staff = [
            SimUser(SHARD + 1001, "Grace Teacher", "Teacher, Grace", "grace@school.example.edu"),
            SimUser(SHARD + 1002, "Tom Assistant", "Assistant, Tom", "tom@school.example.edu"),
            SimUser(SHARD + 1003, "Test Student", "Student, Test", None),
            SimUser(SHARD + 1004, "Ivy Invited", "Invited, Ivy", "ivy@school.example.edu"),
            SimUser(SHARD + 1005, "Ian Inactive", "Inactive, Ian", "ian@school.example.edu"),
            SimUser(SHARD + 1006, "Cal Completed", "Completed, Cal", "cal@school.example.edu"),
        ]
        for user in staff:
            self.users[user.id] = user
        for spec in _COURSES:
            course = SimCourse(spec=spec, submissions_forbidden=spec.id == WORLD_HISTORY)
            roster = pool[spec.roster[0] : spec.roster[1]]
            self._course_data(rng, course, roster, [u.id for u in staff])
            self.courses[spec.id] = course

    def _bench_course(self, rng: random.Random, students: int, assignments: int) -> None:
        """`BENCH_COURSE`: `students` active students, `assignments` published assignments
        (ten to a module), a submission for each pair."""
        spec = _CourseSpec(
            BENCH_COURSE, "Bench course", "BENCH-1", "available", TERM_FALL, (0, 0), ()
        )
        course = SimCourse(spec=spec)
        start = self.anchor - timedelta(weeks=12)
        for i in range(students):
            user = SimUser(
                SHARD + 100_000 + i, f"Bench {i}", f"{i}, Bench", f"bench{i}@school.example.edu"
            )
            self.users[user.id] = user
            last = self.anchor - timedelta(days=rng.uniform(0, 18))
            course.enrollments.append(
                SimEnrollment(self._id(), user.id, "StudentEnrollment", "active", last)
            )
        items: list[dict[str, Any]] = []
        for n in range(assignments):
            assignment = SimAssignment(
                self._id(),
                f"Bench assignment {n + 1}",
                10.0,
                True,
                n + 1,
                start + timedelta(hours=12 * n),
                ["online_text_entry"],
            )
            course.assignments.append(assignment)
            items.append({"id": self._id(), "type": "Assignment", "content_id": assignment.id})
            if len(items) == 10 or n == assignments - 1:
                m = len(course.modules) + 1
                course.modules.append(SimModule(self._id(), f"Bench module {m}", m, items))
                items = []
        for assignment in course.assignments:
            for enrollment in course.enrollments:
                course.submissions.append(self._submission(rng, assignment, enrollment.user_id))
        self._scores(course)
        self.courses[spec.id] = course

    def _course_data(
        self, rng: random.Random, course: SimCourse, roster: list[int], staff: list[int]
    ) -> None:
        spec = course.spec
        start = self.anchor - timedelta(weeks=6)
        for user_id in roster:
            course.enrollments.append(
                SimEnrollment(
                    self._id(),
                    user_id,
                    "StudentEnrollment",
                    "active",
                    last_activity_at=self.anchor - timedelta(days=rng.uniform(0, 18)),
                )
            )
        teacher, ta, test, invited, inactive, completed = staff
        if roster:
            course.enrollments += [
                SimEnrollment(self._id(), teacher, "TeacherEnrollment", "active"),
                SimEnrollment(self._id(), ta, "TaEnrollment", "active"),
                SimEnrollment(self._id(), test, "StudentViewEnrollment", "active"),
                SimEnrollment(self._id(), invited, "StudentEnrollment", "invited"),
                SimEnrollment(self._id(), inactive, "StudentEnrollment", "inactive"),
                SimEnrollment(self._id(), completed, "StudentEnrollment", "completed"),
            ]
        position = 0
        for m, topic in enumerate(spec.topics, start=1):
            items: list[dict[str, Any]] = [
                {"id": self._id(), "type": "SubHeader", "title": f"About {topic}"},
                {"id": self._id(), "type": "Page", "title": f"{topic} notes", "page_url": "x"},
            ]
            for part, kind in (("Reading check", "online_text_entry"), ("Lab", "online_upload")):
                position += 1
                assignment = SimAssignment(
                    self._id(),
                    f"{topic}: {part}",
                    10.0,
                    True,
                    position,
                    start + timedelta(days=7 * m + position % 3),
                    [kind],
                )
                course.assignments.append(assignment)
                items.append({"id": self._id(), "type": "Assignment", "content_id": assignment.id})
            position += 1
            quiz = SimAssignment(
                self._id(),
                f"Quiz: {topic}",
                20.0,
                True,
                position,
                start + timedelta(days=7 * m + 4),
                ["online_quiz"],
                quiz_id=self._id(),
            )
            course.assignments.append(quiz)
            items.append({"id": self._id(), "type": "Quiz", "content_id": quiz.quiz_id})
            course.modules.append(
                SimModule(self._id(), f"Module {m}: {topic}", m, items, spec.id != CHEMISTRY)
            )
        # Outside every module: a survey worth 0 points, and an unpublished draft.
        position += 1
        course.assignments.append(
            SimAssignment(
                self._id(), "Course survey", 0.0, True, position, None, ["online_text_entry"]
            )
        )
        position += 1
        course.assignments.append(
            SimAssignment(
                self._id(), "Final project (draft)", 50.0, False, position, None, ["online_upload"]
            )
        )
        students = [e.user_id for e in course.enrollments if e.type != "TeacherEnrollment"]
        students = [u for u in students if u != ta]
        for assignment in course.assignments:
            if not assignment.published:
                continue
            for user_id in students:
                course.submissions.append(self._submission(rng, assignment, user_id))
        self._scores(course)

    def _submission(self, rng: random.Random, assignment: SimAssignment, user_id: int):
        sub = SimSubmission(self._id(), assignment.id, user_id)
        due = assignment.due_at
        roll = rng.random()
        if due is not None and due > self.anchor:
            if roll < 0.3:  # early birds
                sub.submitted_at = self.anchor - timedelta(hours=rng.uniform(2, 48))
                sub.workflow_state = "submitted"
            return sub
        if roll < 0.1:
            sub.missing = due is not None
            return sub
        if roll < 0.13:
            sub.excused = True
            sub.workflow_state = "graded"
            sub.graded_at = (due or self.anchor) + timedelta(days=1)
            return sub
        late = roll > 0.9 and due is not None
        base = due or self.anchor - timedelta(days=3)
        sub.submitted_at = base + (
            timedelta(hours=rng.uniform(5, 60)) if late else -timedelta(hours=rng.uniform(1, 72))
        )
        sub.late = late
        sub.seconds_late = int((sub.submitted_at - base).total_seconds()) if late else 0
        if rng.random() < 0.85 and sub.submitted_at + timedelta(days=1) < self.anchor:
            sub.workflow_state = "graded"
            sub.graded_at = sub.submitted_at + timedelta(days=rng.uniform(0.5, 3))
            if sub.graded_at > self.anchor:
                sub.graded_at = self.anchor - timedelta(hours=1)
            share = min(1.0, max(0.2, rng.gauss(0.8, 0.12)))
            sub.score = round(assignment.points_possible * share, 1)
        else:
            sub.workflow_state = "submitted"
        return sub

    def _scores(self, course: SimCourse) -> None:
        points = {a.id: a.points_possible for a in course.assignments if a.published}
        # One pass over the submissions (in their order, so the sums are the same floats).
        earned: dict[int, float] = {}
        possible: dict[int, float] = {}
        for sub in course.submissions:
            if sub.score is not None:
                earned[sub.user_id] = earned.get(sub.user_id, 0.0) + sub.score
                possible[sub.user_id] = possible.get(sub.user_id, 0.0) + points.get(
                    sub.assignment_id, 0.0
                )
        for enrollment in course.enrollments:
            if enrollment.type != "StudentEnrollment":
                continue
            total = possible.get(enrollment.user_id, 0.0)
            score = earned.get(enrollment.user_id, 0.0)
            enrollment.current_score = round(100 * score / total, 2) if total else None
            enrollment.final_score = enrollment.current_score

    # -- helpers for tests and the demo --------------------------------------------
    def course(self, course_id: str) -> SimCourse:
        return self.courses[str(course_id)]

    def active_students(self, course_id: str) -> list[int]:
        return [
            e.user_id
            for e in self.course(course_id).enrollments
            if e.type == "StudentEnrollment" and e.state == "active"
        ]

    def course_counts(self, course_id: str) -> dict[str, int]:
        """What a full pull of the course should store."""
        course = self.course(course_id)
        students = set(self.active_students(course_id))
        return {
            "students": len(students),
            "assignments": len(course.assignments),
            "modules": len(course.modules),
            "submissions": sum(s.user_id in students for s in course.submissions),
            "submissions_served": len(course.submissions),
        }

    def _now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    def _find(self, course_id: str, assignment_id: int, user_id: int) -> SimSubmission:
        for sub in self.course(course_id).submissions:
            if sub.assignment_id == assignment_id and sub.user_id == user_id:
                return sub
        raise KeyError((course_id, assignment_id, user_id))

    def set_score(self, course_id: str, assignment_id: int, user_id: int, score: float) -> None:
        """A teacher (re)grades a submission now."""
        with self.lock:
            sub = self._find(course_id, assignment_id, user_id)
            sub.score = score
            sub.workflow_state = "graded"
            sub.graded_at = self._now()
            self._scores(self.course(course_id))

    def submit(self, course_id: str, assignment_id: int, user_id: int) -> None:
        """A student hands in work now."""
        with self.lock:
            sub = self._find(course_id, assignment_id, user_id)
            sub.submitted_at = self._now()
            sub.workflow_state = "submitted"
            sub.missing = False

    # -- throttle ------------------------------------------------------------------
    def _leak(self) -> None:
        now = self.clock()
        self._bucket = max(0.0, self._bucket - (now - self._bucket_at) * self.leak_rate)
        self._bucket_at = now

    def _throttle_headers(self, cost: float) -> dict[str, str]:
        remaining = max(0.0, self.high_water - self._bucket)
        return {"X-Request-Cost": f"{cost:.4f}", "X-Rate-Limit-Remaining": f"{remaining:.4f}"}

    def throttled_response(self) -> Response:
        with self._bucket_lock:
            self.throttled += 1
            headers = self._throttle_headers(0.0)
        headers["X-Rate-Limit-Remaining"] = "0.0"
        return Response.text(THROTTLE_TEXT, 403, headers)

    def dispatch(self, request: Request) -> Response:
        with self._bucket_lock:
            self._leak()
            if self._bucket > self.high_water:
                over = True
            else:
                over = False
                self._bucket += UP_FRONT  # charged up front, refunded below
        if over:
            return self.throttled_response()
        try:
            response = super().dispatch(request)
        finally:
            with self._bucket_lock:
                self._leak()
                self._bucket = max(0.0, self._bucket - UP_FRONT + self.request_cost)
        with self._bucket_lock:
            response.headers.update(self._throttle_headers(self.request_cost))
        return response

    # -- HTTP ----------------------------------------------------------------------
    def _refused(self, request: Request) -> Response | None:
        if request.header("authorization") != f"Bearer {self.token}":
            return Response.json(
                {"errors": [{"message": "Invalid access token."}]},
                401,
                {"WWW-Authenticate": 'Bearer realm="canvas-lms"'},
            )
        return None

    @staticmethod
    def _not_found() -> Response:
        return Response.json(
            {"errors": [{"message": "The specified resource does not exist."}]}, 404
        )

    def _paged(
        self, request: Request, rows: list[Any], render: Callable[[Any], Any] | None = None
    ) -> Response:
        """One page of `rows` with Canvas's Link header: opaque bookmarks, no rel=last.
        `render` turns each row of the page into its JSON (only the page's rows)."""
        try:
            per_page = int(request.arg("per_page", str(DEFAULT_PER_PAGE)) or DEFAULT_PER_PAGE)
        except ValueError:
            per_page = DEFAULT_PER_PAGE
        per_page = min(MAX_PER_PAGE, max(1, per_page))
        page = request.arg("page", "first") or "first"
        offset = 0
        if page != "first":
            try:
                offset = int(json.loads(base64.urlsafe_b64decode(page[3:] + "==")))
            except (ValueError, TypeError):
                return Response.json({"errors": [{"message": "invalid page"}]}, 400)
        chunk = rows[offset : offset + per_page]
        if render is not None:
            chunk = [render(row) for row in chunk]
        host = request.header("host", "localhost")
        query = [(k, v) for k, values in request.query.items() if k != "page" for v in values]

        def link(position: str, rel: str) -> str:
            q = urlencode([*query, ("page", position)])
            return f'<http://{host}/api/v1{request.path[len("/api/v1") :]}?{q}>; rel="{rel}"'

        def bookmark(at: int) -> str:
            return "bk:" + base64.urlsafe_b64encode(json.dumps(at).encode()).decode().rstrip("=")

        links = [link(page, "current")]
        if offset + per_page < len(rows):
            links.append(link(bookmark(offset + per_page), "next"))
        links.append(link("first", "first"))
        return Response.json(chunk, headers={"Link": ", ".join(links)})

    def _course_or_404(self, request: Request, course_id: str):
        refused = self._refused(request)
        if refused:
            return None, refused
        course = self.courses.get(course_id)
        if course is None or course.spec.state == "deleted":
            return None, self._not_found()
        return course, None

    def _course_json(self, course: SimCourse) -> dict[str, Any]:
        spec = course.spec
        return {
            "id": int(spec.id),
            "name": spec.name,
            "course_code": spec.code,
            "workflow_state": spec.state,
            "account_id": int(ACCOUNT_ID),
            "enrollment_term_id": spec.term,
            "term": {"id": spec.term, "name": _TERMS[spec.term]},
            "total_students": sum(
                e.type == "StudentEnrollment" and e.state == "active" for e in course.enrollments
            ),
            "start_at": None,
            "end_at": None,
        }

    @route("GET", "/api/v1/accounts/{account_id}/courses")
    def account_courses(self, request: Request, account_id: str) -> Response:
        refused = self._refused(request)
        if refused:
            return refused
        if account_id != ACCOUNT_ID:
            return self._not_found()
        states = request.query.get("state[]") or ["unpublished", "available", "completed"]
        term = request.arg("enrollment_term_id")
        rows = [
            self._course_json(c)
            for c in self.courses.values()
            if c.spec.state in states and (not term or str(c.spec.term) == term)
        ]
        return self._paged(request, rows)

    @route("GET", "/api/v1/courses/{course_id}")
    def course_detail(self, request: Request, course_id: str) -> Response:
        course, refused = self._course_or_404(request, course_id)
        return refused or Response.json(self._course_json(course))

    def _enrollment_json(self, e: SimEnrollment, course: SimCourse) -> dict[str, Any]:
        user = self.users[e.user_id]
        return {
            "id": e.id,
            "user_id": e.user_id,
            "course_id": int(course.spec.id),
            "type": e.type,
            "role": e.type,
            "enrollment_state": e.state,
            "last_activity_at": _iso(e.last_activity_at),
            "grades": {
                "current_score": e.current_score,
                "final_score": e.final_score,
                "current_grade": None,
                "final_grade": None,
            },
            "user": {"id": user.id, "name": user.name, "sortable_name": user.sortable_name},
        }

    @route("GET", "/api/v1/courses/{course_id}/enrollments")
    def enrollments(self, request: Request, course_id: str) -> Response:
        course, refused = self._course_or_404(request, course_id)
        if refused:
            return refused
        types = request.query.get("type[]")
        states = request.query.get("state[]")
        rows = [
            self._enrollment_json(e, course)
            for e in course.enrollments
            if (not types or e.type in types) and (not states or e.state in states)
        ]
        return self._paged(request, rows)

    @route("GET", "/api/v1/courses/{course_id}/users")
    def users(self, request: Request, course_id: str) -> Response:
        course, refused = self._course_or_404(request, course_id)
        if refused:
            return refused
        wanted_type = {"student": "StudentEnrollment", "teacher": "TeacherEnrollment"}
        types = {wanted_type.get(t, t) for t in request.query.get("enrollment_type[]", [])}
        states = set(request.query.get("enrollment_state[]", []))
        with_email = "email" in request.query.get("include[]", [])
        seen, rows = set(), []
        for e in course.enrollments:
            if types and e.type not in types:
                continue
            if states and e.state not in states:
                continue
            if e.user_id in seen:
                continue
            seen.add(e.user_id)
            user = self.users[e.user_id]
            row = {"id": user.id, "name": user.name, "sortable_name": user.sortable_name}
            if with_email and user.email is not None:
                row["email"] = user.email
            rows.append(row)
        return self._paged(request, rows)

    @route("GET", "/api/v1/courses/{course_id}/assignments")
    def assignments(self, request: Request, course_id: str) -> Response:
        course, refused = self._course_or_404(request, course_id)
        if refused:
            return refused
        rows = [
            {
                "id": a.id,
                "name": a.name,
                "due_at": _iso(a.due_at),
                "points_possible": a.points_possible,
                "published": a.published,
                "position": a.position,
                "submission_types": a.submission_types,
                "assignment_group_id": SHARD + 900,
                "quiz_id": a.quiz_id,
                "is_quiz_assignment": a.quiz_id is not None,
            }
            for a in course.assignments
        ]
        return self._paged(request, rows)

    @route("GET", "/api/v1/courses/{course_id}/students/submissions")
    def submissions(self, request: Request, course_id: str) -> Response:
        course, refused = self._course_or_404(request, course_id)
        if refused:
            return refused
        if course.submissions_forbidden:
            return Response.json(
                {
                    "status": "unauthorized",
                    "errors": [{"message": "user not authorized to perform that action"}],
                },
                403,
            )
        submitted_since = _parse(request.arg("submitted_since"))
        graded_since = _parse(request.arg("graded_since"))
        rows = course.submissions
        if submitted_since or graded_since:
            rows = [
                s
                for s in rows
                if not (
                    submitted_since and not (s.submitted_at and s.submitted_at >= submitted_since)
                )
                and not (graded_since and not (s.graded_at and s.graded_at >= graded_since))
            ]
        return self._paged(request, rows, _submission_json)

    def _module_json(
        self, module: SimModule, with_items: bool, host: str, course_id: str
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": module.id,
            "name": module.name,
            "position": module.position,
            "items_count": len(module.items),
            "items_url": f"http://{host}/api/v1/courses/{course_id}/modules/{module.id}/items",
        }
        if with_items and module.items_inline:
            row["items"] = [
                {**item, "position": n, "module_id": module.id}
                for n, item in enumerate(module.items, start=1)
            ]
        return row

    @route("GET", "/api/v1/courses/{course_id}/modules")
    def modules(self, request: Request, course_id: str) -> Response:
        course, refused = self._course_or_404(request, course_id)
        if refused:
            return refused
        with_items = "items" in request.query.get("include[]", [])
        host = request.header("host", "localhost")
        rows = [self._module_json(m, with_items, host, course_id) for m in course.modules]
        return self._paged(request, rows)

    @route("GET", "/api/v1/courses/{course_id}/modules/{module_id}/items")
    def module_items(self, request: Request, course_id: str, module_id: str) -> Response:
        course, refused = self._course_or_404(request, course_id)
        if refused:
            return refused
        for module in course.modules:
            if str(module.id) == module_id:
                rows = [
                    {**item, "position": n, "module_id": module.id}
                    for n, item in enumerate(module.items, start=1)
                ]
                return self._paged(request, rows)
        return self._not_found()


def _submission_json(s: SimSubmission) -> dict[str, Any]:
    return {
        "id": s.id,
        "assignment_id": s.assignment_id,
        "user_id": s.user_id,
        "score": s.score,
        "grade": None if s.score is None else str(s.score),
        "submitted_at": _iso(s.submitted_at),
        "graded_at": _iso(s.graded_at),
        "workflow_state": s.workflow_state,
        "late": s.late,
        "missing": s.missing,
        "excused": s.excused,
        "seconds_late": s.seconds_late,
    }


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build(seed: int = 7, latency_ms: int = 0, fail_rate: float = 0.0, **kw: Any):
    return CanvasSimulator(seed=seed, latency_ms=latency_ms, fail_rate=fail_rate, **kw)
