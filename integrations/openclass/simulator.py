"""A local OpenClass.ai that follows ../shared/vendor-contracts.md section 2, quirks included.

Serves a deterministic school (three classes, about fifty students, thousands of
progressions over the last weeks) so pulls, tests and the demo have something realistic to
chew on: students at risk for different reasons, a blocker quiz in every class, one class
well behind the pace its curriculum implies, completed work waiting for review.

Quirks served as the contract describes them: double-encoded responses (the payload as a
JSON string in `result.objects`, or in `result.objects[0]`), `_id` as `{"$oid": ...}` or a
plain string, null timestamps, a form-encoded login only, the token in a header named
`bearer`, 0-based paging with `metadata.can_load_more`.

Knobs (see `build`): `seed`, `latency_ms`, `fail_rate` (base class), `token_lifetime`
(seconds), `encoding` ("double" or "plain"), `broken_progressions` (per class, served
without a user id), `anchor` (the day the data ends; default today, UTC),
`bench_students` and `bench_assignments` (a fourth class, `BENCH`, with one progression per
student and assignment: the benchmark's 100,000 rows; bench/cases/pulls.py). Test helpers:
`set_grade`, `break_progression`, `expire_tokens`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.simulator import Request, Response, Simulator, route

DEMO_EMAIL = "mentor@openclass.test"
DEMO_PASSWORD = "openclass-demo-pass"
DEMO_APP_ID = hashlib.sha256(b"classbridge openclass simulator").hexdigest()

SOFTWARE, DATA, WEB = (
    "6650a1b2c3d4e5f6a7b8c901",
    "6650a1b2c3d4e5f6a7b8c902",
    "6650a1b2c3d4e5f6a7b8c903",
)
# The benchmark's class (served only when `bench_students` and `bench_assignments` are set).
BENCH = "6650a1b2c3d4e5f6a7b8c9ff"
BENCH_UNIT_SIZE = 10

DEMO_CLASSES: list[tuple[str, str]] = [
    (SOFTWARE, "Software Development 1"),
    (DATA, "Data Analysis 1"),
    (WEB, "Web Foundations"),
]

# The contract leaves the maximum open (docs say 100, the old tool used 200).
MAX_RETURN_COUNT = 200
DEFAULT_RETURN_COUNT = 30

_LESSON_PARTS = (
    "Overview",
    "Reading",
    "Walkthrough",
    "Practice",
    "Lab",
    "Deep Dive",
    "Exercises",
    "Mini Project",
)


@dataclass(frozen=True)
class _Curriculum:
    topics: tuple[str, ...]  # one unit (a week) per topic
    lessons_per_unit: int
    weeks_ago: int  # when the class started, before the anchor day
    pace: float  # 1.0: one unit a week, the pace the curriculum implies
    blocker: int  # index of the unit whose quiz most students get stuck on
    roster: tuple[int, int]  # slice of the shared student list


_CURRICULA: dict[str, _Curriculum] = {
    SOFTWARE: _Curriculum(
        topics=(
            "Command Line & Git",
            "Python Basics",
            "Control Flow",
            "Functions",
            "Data Structures",
            "Recursion",
            "Object-Oriented Python",
            "Testing",
            "Web & HTTP",
            "Databases & SQL",
        ),
        lessons_per_unit=8,
        weeks_ago=9,
        pace=1.1,
        blocker=5,
        roster=(0, 18),
    ),
    DATA: _Curriculum(
        topics=(
            "Spreadsheets",
            "Descriptive Statistics",
            "SQL Basics",
            "SQL Joins",
            "Python for Data",
            "pandas",
            "Data Cleaning",
            "Visualisation",
            "Storytelling with Data",
        ),
        lessons_per_unit=8,
        weeks_ago=9,
        pace=0.5,  # the class that is clearly behind
        blocker=3,
        roster=(16, 33),  # shares two students with Software Development 1
    ),
    WEB: _Curriculum(
        topics=(
            "HTML",
            "CSS Basics",
            "Flexbox & Grid",
            "JavaScript Basics",
            "The DOM",
            "Events",
            "Fetch & APIs",
            "Accessibility",
        ),
        lessons_per_unit=6,
        weeks_ago=7,
        pace=1.1,
        blocker=2,
        roster=(32, 48),  # shares one student with Data Analysis 1
    ),
}

_FIRST_NAMES = (
    "Amara Ben Carla Dmitri Elena Farah Gus Hana Ivan Jada Kofi Lena Marco Nia Omar "
    "Priya Quinn Rosa Sam Tariq Uma Viktor Wen Xavier Yara Zane Aisha Bruno Chloe Diego "
    "Esme Felix Grace Hugo Imani Jonas Keiko Liam Maya Noah Olga Pablo Rhea Soren Tess "
    "Ugo Vera Will"
)
_LAST_NAMES = (
    "Adams Baker Chen Diaz Evans Fischer Garcia Haddad Ito Jones Kim Lopez Moreau Nguyen "
    "Okafor Patel Quist Rossi Silva Tanaka Ueda Varga Walsh Xu Young Zhou Abbott Brooks "
    "Costa Dubois Ekwueme Flores Gupta Hansen Ibrahim Jensen Kowalski Larsen Mensah "
    "Novak Ortiz Park Reyes Schmidt Torres Umar Vasquez Weber"
)

# Per profile: pace factor range, quiz mean range, days since last activity.
_PROFILES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "steady": ((0.85, 1.1), (0.78, 0.94), (0.0, 2.5)),
    "ahead": ((1.15, 1.3), (0.88, 0.97), (0.0, 1.5)),
    "behind": ((0.35, 0.5), (0.68, 0.8), (0.0, 3.0)),  # far behind the median
    "low_quiz": ((0.85, 1.0), (0.45, 0.55), (0.0, 2.5)),  # quiz average about 50%
    "inactive": ((0.8, 1.0), (0.7, 0.85), (11.0, 21.0)),  # nothing for 10+ days
}


def _oid(rng: random.Random, when: datetime) -> str:
    """A 24-hex id shaped like a MongoDB ObjectId (seconds first, then random bytes)."""
    return f"{int(when.timestamp()) & 0xFFFFFFFF:08x}{rng.getrandbits(64):016x}"


def _ms(when: datetime) -> datetime:
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class SimProgression:
    id: str
    user_id: str
    assignment_id: str
    grade: float | None
    started_at: datetime | None
    completed_at: datetime | None
    reviewed_at: datetime | None
    plain_id: bool = False  # served as "_id": "..." instead of {"$oid": ...}
    broken: bool = False  # served without user.id
    # The three times as served, with the times they were made from: strftime was half
    # of rendering a page (tests change the times in place, so they are compared).
    _served_times: tuple | None = field(default=None, repr=False, compare=False)

    def served_times(self) -> tuple[str | None, str | None, str | None]:
        times = (self.started_at, self.completed_at, self.reviewed_at)
        served = self._served_times
        if served is None or served[0] != times:
            served = self._served_times = (times, tuple(_iso(t) for t in times))
        return served[1]


@dataclass
class SimClass:
    id: str
    name: str
    units: list[tuple[str, list[str]]]
    assignments: dict[str, tuple[str, str]]  # id -> (name, type)
    blocker_id: str
    progressions: list[SimProgression] = field(default_factory=list)  # served order


class OpenClassSimulator(Simulator):
    name = "openclass"

    def __init__(
        self,
        *,
        seed: int = 7,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        token_lifetime: float = 3600,
        encoding: str = "double",
        broken_progressions: int = 0,
        anchor: datetime | None = None,
        clock: Callable[[], float] = time.monotonic,
        bench_students: int = 0,
        bench_assignments: int = 0,
    ) -> None:
        super().__init__(seed=seed, latency_ms=latency_ms, fail_rate=fail_rate)
        if encoding not in ("double", "plain"):
            raise ValueError("encoding must be 'double' or 'plain'")
        self.token_lifetime = token_lifetime
        self.encoding = encoding
        self.clock = clock
        self.email = DEMO_EMAIL
        self.password = DEMO_PASSWORD
        self.app_id = DEMO_APP_ID
        self.demo_settings = {
            "OPENCLASS_EMAIL": DEMO_EMAIL,
            "OPENCLASS_PASSWORD": DEMO_PASSWORD,
            "OPENCLASS_APP_ID": DEMO_APP_ID,
        }
        self.tokens: dict[str, float] = {}  # token -> clock() it expires at
        self.anchor = anchor or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self.users: dict[str, dict[str, str]] = {}
        self.classes: dict[str, SimClass] = {}
        self._progressions: dict[str, SimProgression] = {}
        self._generate(random.Random(seed))
        if bench_students > 0 and bench_assignments > 0:
            self._bench_class(random.Random(seed), bench_students, bench_assignments)
        for sim_class in self.classes.values():
            for progression in sim_class.progressions[:broken_progressions]:
                progression.broken = True

    # -- demo data -----------------------------------------------------------------
    def _generate(self, rng: random.Random) -> None:
        start_of_school = self.anchor - timedelta(weeks=12)
        people = []
        firsts, lasts = _FIRST_NAMES.split(), _LAST_NAMES.split()
        rng.shuffle(firsts)
        rng.shuffle(lasts)
        for i in range(max(c.roster[1] for c in _CURRICULA.values())):
            first, last = firsts[i % len(firsts)], lasts[i % len(lasts)]
            user_id = _oid(rng, start_of_school + timedelta(minutes=i))
            self.users[user_id] = {
                "id": user_id,
                "first_name": first,
                "last_name": last,
                "email": f"{first}.{last}@students.example.edu".lower(),
            }
            people.append(user_id)
        for class_id, class_name in DEMO_CLASSES:
            curriculum = _CURRICULA[class_id]
            sim_class = self._curriculum(rng, class_id, class_name, curriculum)
            roster = people[curriculum.roster[0] : curriculum.roster[1]]
            profiles = ["inactive"] * 2 + ["behind"] * 2 + ["low_quiz"] * 2 + ["ahead"]
            profiles += ["steady"] * (len(roster) - len(profiles))
            rng.shuffle(profiles)
            for user_id, profile in zip(roster, profiles, strict=True):
                self._student_progressions(rng, sim_class, curriculum, user_id, profile)
            sim_class.progressions.sort(
                key=lambda p: (
                    p.completed_at is None,
                    -(p.completed_at.timestamp() if p.completed_at else 0.0),
                    p.id,
                )
            )
            self.classes[class_id] = sim_class
            self._progressions.update((p.id, p) for p in sim_class.progressions)

    def _bench_class(self, rng: random.Random, students: int, assignments: int) -> None:
        """`BENCH`: every student has a progression on every assignment (a tenth of them
        quizzes), served newest completion first like the others; cheap to generate."""
        start = self.anchor - timedelta(weeks=12)
        sim_class = SimClass(BENCH, "Bench class", [], {}, "")
        ids = []
        for n in range(assignments):
            assignment_id = _oid(rng, start)
            quiz = n % BENCH_UNIT_SIZE == BENCH_UNIT_SIZE - 1
            sim_class.assignments[assignment_id] = (
                f"Bench {'quiz' if quiz else 'lesson'} {n + 1}",
                "quiz" if quiz else "lesson",
            )
            ids.append(assignment_id)
        for first in range(0, assignments, BENCH_UNIT_SIZE):
            unit = first // BENCH_UNIT_SIZE + 1
            sim_class.units.append((f"Bench unit {unit}", ids[first : first + BENCH_UNIT_SIZE]))
        for i in range(students):
            user_id = _oid(rng, start + timedelta(minutes=i))
            self.users[user_id] = {
                "id": user_id,
                "first_name": f"Bench{i}",
                "last_name": "Student",
                "email": f"bench{i}@students.example.edu",
            }
            for n, assignment_id in enumerate(ids):
                started = _ms(start + timedelta(hours=n * 12, minutes=i % 600))
                done = rng.random() < 0.8
                completed = _ms(started + timedelta(hours=rng.uniform(1, 48))) if done else None
                quiz = sim_class.assignments[assignment_id][1] == "quiz"
                grade = round(rng.uniform(0.3, 1.0), 2) if quiz and done else None
                reviewed = completed + timedelta(days=1) if done and rng.random() < 0.5 else None
                self._add(
                    rng, sim_class, user_id, assignment_id, grade, started, completed, reviewed
                )
        sim_class.progressions.sort(
            key=lambda p: (p.completed_at is None, -(p.completed_at or start).timestamp(), p.id)
        )
        self.classes[BENCH] = sim_class
        self._progressions.update((p.id, p) for p in sim_class.progressions)

    def _curriculum(
        self, rng: random.Random, class_id: str, class_name: str, curriculum: _Curriculum
    ) -> SimClass:
        created = self.anchor - timedelta(weeks=curriculum.weeks_ago + 2)
        units: list[tuple[str, list[str]]] = []
        assignments: dict[str, tuple[str, str]] = {}
        blocker_id = ""
        for week, topic in enumerate(curriculum.topics, start=1):
            ids = []
            for part in _LESSON_PARTS[: curriculum.lessons_per_unit]:
                assignment_id = _oid(rng, created)
                assignments[assignment_id] = (f"{topic}: {part}", "lesson")
                ids.append(assignment_id)
            quiz_id = _oid(rng, created)
            assignments[quiz_id] = (f"Quiz: {topic}", "quiz")
            ids.append(quiz_id)
            if week - 1 == curriculum.blocker:
                blocker_id = quiz_id
            units.append((f"Week {week}: {topic}", ids))
        return SimClass(class_id, class_name, units, assignments, blocker_id)

    def _student_progressions(
        self,
        rng: random.Random,
        sim_class: SimClass,
        curriculum: _Curriculum,
        user_id: str,
        profile: str,
    ) -> None:
        pace_range, quiz_range, idle_range = _PROFILES[profile]
        pace = curriculum.pace * rng.uniform(*pace_range)
        quiz_mean = rng.uniform(*quiz_range)
        last_active = self.anchor - timedelta(days=rng.uniform(*idle_range))
        per_unit = curriculum.lessons_per_unit + 1
        gap_days = 7.0 / per_unit / pace
        moment = self.anchor - timedelta(weeks=curriculum.weeks_ago, days=-rng.uniform(0, 2))
        order = [aid for _, ids in sim_class.units for aid in ids]
        for assignment_id in order:
            gap = timedelta(days=gap_days * rng.uniform(0.6, 1.4))
            if moment > last_active:
                # Some students have the next item unlocked but not opened: all nulls.
                if rng.random() < 0.3:
                    self._add(rng, sim_class, user_id, assignment_id, None, None, None)
                return
            kind = sim_class.assignments[assignment_id][1]
            started = _ms(moment)
            if assignment_id == sim_class.blocker_id:
                # The blocker: most start it, few finish, and those who do take days.
                done = rng.random() < 0.3
                completed = started + timedelta(days=rng.uniform(5, 10)) if done else None
                grade_mean = quiz_mean - 0.3
                gap += timedelta(days=2)
            else:
                share = rng.uniform(0.1, 0.9) if kind == "lesson" else rng.uniform(0.05, 0.4)
                completed = started + gap * share
                grade_mean = quiz_mean
            if completed is not None and completed > last_active:
                completed = None  # still working on it
            completed = _ms(completed) if completed else None
            grade = None
            if kind == "quiz" and completed is not None:
                grade = round(min(1.0, max(0.05, rng.gauss(grade_mean, 0.08))), 2)
            reviewed = None
            if completed is not None:
                waited = (self.anchor - completed).total_seconds() / 86400
                if rng.random() < (0.85 if waited > 3 else 0.1):
                    reviewed = min(
                        completed + timedelta(days=rng.uniform(0.5, 3)),
                        self.anchor - timedelta(hours=1),
                    )
                    reviewed = _ms(max(reviewed, completed))
            if kind == "lesson" and completed is not None and rng.random() < 0.03:
                started = None  # marked done without ever being opened
            self._add(rng, sim_class, user_id, assignment_id, grade, started, completed, reviewed)
            moment += gap

    def _add(
        self,
        rng: random.Random,
        sim_class: SimClass,
        user_id: str,
        assignment_id: str,
        grade: float | None,
        started: datetime | None,
        completed: datetime | None,
        reviewed: datetime | None = None,
    ) -> None:
        sim_class.progressions.append(
            SimProgression(
                id=_oid(rng, started or completed or self.anchor),
                user_id=user_id,
                assignment_id=assignment_id,
                grade=grade,
                started_at=started,
                completed_at=completed,
                reviewed_at=reviewed,
                plain_id=rng.random() < 0.35,
            )
        )

    # -- helpers for tests and the demo --------------------------------------------
    def progressions(self, class_id: str) -> list[SimProgression]:
        return list(self.classes[class_id].progressions)

    def student_ids(self, class_id: str) -> set[str]:
        return {p.user_id for p in self.classes[class_id].progressions}

    def assignment_ids(self, class_id: str) -> set[str]:
        return set(self.classes[class_id].assignments)

    def set_grade(self, progression_id: str, grade: float | None) -> None:
        with self.lock:
            self._progressions[progression_id].grade = grade

    def break_progression(self, progression_id: str) -> None:
        """Serve this progression without its user id (an invalid record)."""
        with self.lock:
            self._progressions[progression_id].broken = True

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (401)."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, float("-inf"))

    # -- HTTP ----------------------------------------------------------------------
    def _payload(self, payload: dict[str, Any], *, in_list: bool) -> Response:
        if self.encoding == "plain":
            return Response.json(payload)
        # Contract section 2: the payload is a JSON string inside result.objects,
        # sometimes as result.objects[0].
        text = json.dumps(payload)
        return Response.json({"result": {"objects": [text] if in_list else text}})

    def _issue_token(self) -> str:
        now = self.clock()
        claims = {"sub": DEMO_EMAIL, "n": len(self.tokens) + 1, "lifetime": self.token_lifetime}
        header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        token = f"{header.decode()}.{body.decode()}.{secrets.token_urlsafe(32)}"
        self.tokens[token] = now + self.token_lifetime
        return token

    def _refused(self, request: Request) -> Response | None:
        token = request.header("bearer")
        expires = self.tokens.get(token)
        if not token or expires is None or self.clock() >= expires:
            return Response.json({"error": "Unauthorized"}, status=401)
        return None

    def _class(self, class_id: str) -> SimClass | None:
        return self.classes.get(class_id)

    @route("POST", "/v1/auth/login")
    def login(self, request: Request) -> Response:
        if not request.header("content-type").startswith("application/x-www-form-urlencoded"):
            return Response.json({"error": "Expected a form-encoded body"}, status=400)
        app_id = request.header("x-openclass-app-id")
        if app_id and app_id != self.app_id:
            return Response.json({"error": "Unknown app"}, status=403)
        form = request.form()
        if form.get("email") != self.email or form.get("password") != self.password:
            return Response.json({"error": "Invalid email or password"}, status=401)
        user = {
            "_id": {"$oid": "6650a1b2c3d4e5f6a7b8c000"},
            "first_name": "Morgan",
            "last_name": "Mentor",
            "email": DEMO_EMAIL,
            "role": "mentor",
        }
        token = self._issue_token()
        return Response.json({"result": {"objects": [json.dumps(user)], "token": token}})

    @route("GET", "/v1/classes")
    def class_list(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused:
            return refused
        data = [
            {
                "_id": {"$oid": c.id},
                "id": c.id,
                "name": c.name,
                "student_count": len({p.user_id for p in c.progressions}),
            }
            for c in self.classes.values()
        ]
        metadata = {"total": len(data), "page": 0, "results_per_page": len(data)}
        metadata["can_load_more"] = False
        return self._payload({"metadata": metadata, "data": data}, in_list=True)

    @staticmethod
    def _missing(sim_class) -> Response | None:
        if sim_class is None:
            return Response.json({"error": "Class not found"}, status=404)
        return None

    @route("GET", "/v1/classes/{class_id}")
    def class_detail(self, request: Request, class_id: str) -> Response:
        sim_class = self._class(class_id)
        refused = self._refused(request) or self._missing(sim_class)
        if refused:
            return refused
        data = {
            "_id": {"$oid": sim_class.id},
            "id": sim_class.id,
            "name": sim_class.name,
            "units": [{"name": name, "assignments": ids} for name, ids in sim_class.units],
        }
        return self._payload({"data": data}, in_list=False)

    @route("GET", "/v1/classes/{class_id}/progressions")
    def progression_list(self, request: Request, class_id: str) -> Response:
        sim_class = self._class(class_id)
        refused = self._refused(request) or self._missing(sim_class)
        if refused:
            return refused
        try:
            page = int(request.arg("page", "0") or 0)
            count = int(request.arg("return_count", str(DEFAULT_RETURN_COUNT)) or 0)
        except ValueError:
            return Response.json({"error": "page and return_count must be numbers"}, 400)
        if page < 0 or count <= 0:
            return Response.json({"error": "page must be >= 0, return_count > 0"}, 400)
        count = min(count, MAX_RETURN_COUNT)
        rows = sim_class.progressions
        if request.arg("sort_by_completed_at") == "1":
            rows = rows[::-1]
        total = len(rows)
        chunk = rows[page * count : (page + 1) * count]
        payload = {
            "metadata": {
                "total": total,
                "page": page,
                "results_per_page": count,
                "can_load_more": (page + 1) * count < total,
            },
            "data": [self._render(p, sim_class) for p in chunk],
        }
        return self._payload(payload, in_list=page % 2 == 1)

    def _render(self, progression: SimProgression, sim_class: SimClass) -> dict[str, Any]:
        user = self.users[progression.user_id]  # only read (encoded): no copy
        if progression.broken:
            user = {k: v for k, v in user.items() if k != "id"}
        name, kind = sim_class.assignments[progression.assignment_id]
        started, completed, reviewed = progression.served_times()
        return {
            "_id": progression.id if progression.plain_id else {"$oid": progression.id},
            "user": user,
            "assignment": {"id": progression.assignment_id, "name": name, "type": kind},
            "grade": progression.grade,
            "started_assignment_at": started,
            "completed_assignment_at": completed,
            "reviewed_at": reviewed,
        }


def build(
    seed: int = 7,
    latency_ms: int = 0,
    fail_rate: float = 0.0,
    token_lifetime: float = 3600,
    **kw: Any,
) -> OpenClassSimulator:
    return OpenClassSimulator(
        seed=seed,
        latency_ms=latency_ms,
        fail_rate=fail_rate,
        token_lifetime=token_lifetime,
        **kw,
    )
