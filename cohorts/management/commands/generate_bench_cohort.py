"""manage.py generate_bench_cohort: a large, realistic cohort to measure the health pages.

Defaults give the issue's case: 500 students x 400 assignments, one progression row per
pair (200,000; rows nobody started have no timestamps, as OpenClass returns them), and
`--total-progressions 1000000` pads the database with further cohorts of the same shape.

The data is shaped so every chart means something: the cohort runs behind the pace the
curriculum implies, one assignment is a clear blocker (slow, hard quiz, students stuck on
it), some students stalled weeks ago, some struggle with quizzes, a few never started, and
projects wait for review. The same shape works small, e.g. `--students 24 --assignments 40`.

It also makes a mentor of the cohort who can sign in: `bench-mentor`, password
`bench-mentor-password` (`--bench-mentor`), for load tests. Generating is deterministic for
a seed (relative to the day it runs: the course started `--elapsed` of its length ago).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from cohorts.models import Assignment, Cohort, Enrollment, Progression, Source, Student

BATCH = 5000
# The load test signs in as this mentor of the bench cohort (bench/cases/health.py too).
BENCH_MENTOR = "bench-mentor"
BENCH_MENTOR_PASSWORD = "bench-mentor-password"
_FIRST = (
    "Ada Ben Cleo Dev Emi Finn Gia Hugo Ines Jon Kai Lena Milo Nia Omar Pia Quin Rosa Sam "
    "Tara Uma Vik Wen Xavi Yara Zed"
)
_LAST = (
    "Abara Brook Chen Diaz Evans Fox Garcia Hale Ito Jensen Khan Lopez Moreau Nakamura Okafor "
    "Patel Quist Rossi Silva Tanaka Usman Varga Weber Xu Young Zhou"
)
FIRST_NAMES, LAST_NAMES = _FIRST.split(), _LAST.split()


@dataclass
class Shape:
    students: int
    assignments: int
    units: int
    elapsed: float  # share of the planned course time that has passed


class Command(BaseCommand):
    help = "Create a benchmark cohort (default 500 students x 400 assignments)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--students", type=int, default=500)
        parser.add_argument("--assignments", type=int, default=400)
        parser.add_argument(
            "--units", type=int, default=0, help="Default: one unit per 20 assignments."
        )
        parser.add_argument(
            "--elapsed",
            type=float,
            default=0.6,
            help="Share of the planned course time already passed (default 0.6).",
        )
        parser.add_argument("--name", default="", help="Default: 'Bench SxA'.")
        parser.add_argument("--external-id", default="", help="Default: bench-SxA.")
        parser.add_argument(
            "--total-progressions",
            type=int,
            default=0,
            help="Pad the database with further cohorts up to this many progressions.",
        )
        parser.add_argument(
            "--mentor", action="append", default=[], help="An existing username; repeat."
        )
        parser.add_argument(
            "--bench-mentor",
            default=BENCH_MENTOR,
            help=(
                f"Create (or reset) this mentor of the cohort, not staff, with the password "
                f"{BENCH_MENTOR_PASSWORD!r}, for load tests that sign in (default "
                f"{BENCH_MENTOR!r}; '' for none). A benchmark database only: never run "
                "this command against one that people use."
            ),
        )
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--replace", action="store_true", help="Delete a cohort with the same id first."
        )

    def handle(self, *args, **options) -> None:
        students, assignments = options["students"], options["assignments"]
        if students < 1 or assignments < 1:
            raise CommandError("--students and --assignments must be at least 1.")
        if not 0 <= options["elapsed"] <= 2:
            raise CommandError("--elapsed must be between 0 and 2.")
        units = options["units"] or max(1, round(assignments / 20))
        shape = Shape(students, assignments, min(units, assignments), options["elapsed"])
        external_id = options["external_id"] or f"bench-{students}x{assignments}"
        name = options["name"] or f"Bench {students}x{assignments}"
        mentors = list(get_user_model().objects.filter(username__in=options["mentor"]))
        missing = set(options["mentor"]) - {m.get_username() for m in mentors}
        if missing:
            raise CommandError(f"No such user: {', '.join(sorted(missing))}")

        now = timezone.now()
        started = time.monotonic()
        cohort = self._create(shape, external_id, name, options, now, seed=options["seed"])
        if options["bench_mentor"]:
            mentor, _ = get_user_model().objects.get_or_create(username=options["bench_mentor"])
            mentor.is_staff = mentor.is_superuser = False
            mentor.is_active = True
            mentor.set_password(BENCH_MENTOR_PASSWORD)
            mentor.save()
            mentors.append(mentor)
        cohort.mentors.add(*mentors)
        made = Progression.objects.filter(cohort=cohort).count()
        self.stderr.write(
            f"{cohort.name} (id {cohort.pk}): {made} progressions "
            f"in {time.monotonic() - started:.1f}s"
        )
        target = options["total_progressions"]
        pad = 0
        while (total := Progression.objects.count()) < target:
            pad += 1
            remaining = target - total
            pad_students = max(1, min(500, -(-remaining // 400)))
            pad_shape = Shape(pad_students, 400, 20, 0.6)
            pad_id = f"{external_id}-pad-{pad}"
            self._create(
                pad_shape, pad_id, f"{name} padding {pad}", options, now, seed=options["seed"] + pad
            )
            self.stderr.write(f"  padding cohort {pad_id}: {pad_students} students")
        self.stdout.write(
            f"cohort {cohort.pk} ready; {Progression.objects.count()} progressions in the "
            f"database ({time.monotonic() - started:.1f}s)"
        )

    def _create(
        self, shape: Shape, external_id: str, name: str, options, now: datetime, *, seed: int
    ) -> Cohort:
        existing = Cohort.objects.filter(source=Source.OPENCLASS, external_id=external_id)
        if existing.exists():
            if not options["replace"]:
                raise CommandError(f"Cohort {external_id} exists; pass --replace to rebuild it.")
            existing.delete()
            Student.objects.filter(
                source=Source.OPENCLASS, external_id__startswith=f"{external_id}:"
            ).delete()
        plan = _plan(shape, now, np.random.default_rng(seed))
        with transaction.atomic():
            cohort = Cohort.objects.create(
                name=name,
                source=Source.OPENCLASS,
                external_id=external_id,
                starts_on=plan.starts_on,
                ends_on=plan.ends_on,
                last_synced_at=now - timedelta(hours=2),
                last_sync_status="succeeded",
            )
            students = Student.objects.bulk_create(
                [
                    Student(
                        source=Source.OPENCLASS,
                        external_id=f"{external_id}:s{i}",
                        first_name=FIRST_NAMES[i % len(FIRST_NAMES)],
                        last_name=f"{LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)]}"
                        + (f" {i // 676 + 1}" if i >= 676 else ""),
                        email=f"s{i}.{external_id}@example.test",
                    )
                    for i in range(shape.students)
                ],
                batch_size=BATCH,
            )
            Enrollment.objects.bulk_create(
                [Enrollment(cohort=cohort, student=s) for s in students], batch_size=BATCH
            )
            assignments = Assignment.objects.bulk_create(
                [
                    Assignment(
                        cohort=cohort,
                        external_id=f"a{k}",
                        name=plan.names[k],
                        kind=plan.kinds[k],
                        unit=f"Week {plan.unit_of[k] + 1}",
                        unit_position=int(plan.unit_of[k]) + 1,
                        position=k + 1,
                    )
                    for k in range(shape.assignments)
                ],
                batch_size=BATCH,
            )
            if not all(s.pk for s in students) or not all(a.pk for a in assignments):
                # Backends without RETURNING on bulk inserts: read the ids back.
                students = list(
                    Student.objects.filter(enrollments__cohort=cohort).order_by("external_id")
                )
                students.sort(key=lambda s: int(s.external_id.rsplit(":s", 1)[1]))
                assignments = list(Assignment.objects.filter(cohort=cohort).order_by("position"))
            self._progressions(cohort, plan, students, assignments, now)
        return cohort

    def _progressions(self, cohort, plan, students, assignments, now: datetime) -> None:
        """One row per student x assignment, inserted with executemany: building a
        million model instances took most of the time (about 3.5 minutes in all, now
        about one). Values are adapted as Django adapts them for this database."""
        stamp = _stamps_sqlite if connection.vendor == "sqlite" else _to_datetimes
        synced = connection.ops.adapt_datetimefield_value(now)
        assignment_ids = [a.pk for a in assignments]
        columns = (
            "cohort_id",
            "student_id",
            "assignment_id",
            "source",
            "external_id",
            "grade",
            "started_at",
            "completed_at",
            "reviewed_at",
            "late",
            "missing",
            "excused",
            "synced_at",
        )
        table = connection.ops.quote_name(Progression._meta.db_table)
        names = ", ".join(connection.ops.quote_name(c) for c in columns)
        sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
        batch: list[tuple] = []
        with connection.cursor() as cursor:
            for i, student in enumerate(students):
                started = stamp(plan.started[i])
                completed = stamp(plan.completed[i])
                reviewed = stamp(plan.reviewed[i])
                grades = [None if np.isnan(g) else float(g) for g in plan.grades[i]]
                prefix = f"{cohort.external_id}:{i}:"
                batch.extend(
                    (
                        cohort.pk,
                        student.pk,
                        assignment_id,
                        Source.OPENCLASS,
                        f"{prefix}{k}",
                        grades[k],
                        started[k],
                        completed[k],
                        reviewed[k],
                        False,
                        False,
                        False,
                        synced,
                    )
                    for k, assignment_id in enumerate(assignment_ids)
                )
                if len(batch) >= BATCH:
                    cursor.executemany(sql, batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)


@dataclass
class Plan:
    starts_on: object
    ends_on: object
    names: list[str]
    kinds: list[str]
    unit_of: np.ndarray
    started: np.ndarray  # seconds since the epoch, NaN when not (yet) happened
    completed: np.ndarray
    reviewed: np.ndarray
    grades: np.ndarray


def _to_datetimes(seconds: np.ndarray) -> list[datetime | None]:
    base = datetime(1970, 1, 1, tzinfo=timezone.get_fixed_timezone(0))
    return [None if np.isnan(s) else base + timedelta(seconds=float(s)) for s in seconds]


def _stamps_sqlite(seconds: np.ndarray) -> list[str | None]:
    """Epoch seconds as Django stores an aware datetime in SQLite (UTC, "YYYY-MM-DD
    HH:MM:SS[.ffffff]"), the whole row at once."""
    micros = np.round(np.nan_to_num(seconds) * 1e6).astype("int64").astype("datetime64[us]")
    whole = micros.astype("datetime64[s]") == micros
    text = np.where(
        whole,
        np.datetime_as_string(micros.astype("datetime64[s]"), unit="s"),
        np.datetime_as_string(micros, unit="us"),
    )
    missing = np.isnan(seconds).tolist()
    return [None if gap else t.replace("T", " ") for gap, t in zip(missing, text, strict=True)]


def _plan(shape: Shape, now: datetime, rng: np.random.Generator) -> Plan:
    """Timestamps for every (student, assignment), as arrays of epoch seconds."""
    S, A, U = shape.students, shape.assignments, shape.units
    day = 86400.0
    course_days = 7.0 * U
    today = now.date()
    starts_on = today - timedelta(days=round(course_days * shape.elapsed))
    ends_on = starts_on + timedelta(days=int(course_days) - 1)
    start = datetime.combine(starts_on, datetime.min.time(), tzinfo=now.tzinfo).timestamp()
    now_s = now.timestamp()

    unit_of = np.minimum((np.arange(A) * U) // A, U - 1)
    kinds = []
    for k in range(A):
        last_in_unit = k == A - 1 or unit_of[k + 1] != unit_of[k]
        kinds.append("project" if last_in_unit else "quiz" if k % 5 == 4 else "lesson")
    # The clear blocker: a quiz a fifth of the way in, slow, hard, and where a quarter of
    # the students give up (they stay stuck on it, and so go quiet and fall behind).
    blocker = min(A - 1, max(0, int(A * 0.2)))
    kinds[blocker] = "quiz"
    names = [f"{kind.title()} {k + 1}" for k, kind in enumerate(kinds)]
    names[blocker] = "Recursion checkpoint"
    difficulty = rng.lognormal(0.0, 0.35, A)
    difficulty[blocker] = 6.0
    hardness = rng.uniform(0.0, 0.08, A)
    hardness[blocker] = 0.3

    # A student on pace spends course_days / A days per assignment; most run slower.
    speed = np.clip(rng.lognormal(np.log(0.85), 0.25, S), 0.3, 1.6)
    per_assignment = course_days * day / A
    work = per_assignment * difficulty[None, :] / speed[:, None] * rng.uniform(0.5, 1.5, (S, A))
    active_share = rng.uniform(0.3, 0.7, (S, A))  # the rest is the gap before the next one
    duration = work * active_share
    span = np.cumsum(work, axis=1)
    first_start = start + rng.uniform(0, 2 * day, S)
    begin = first_start[:, None] + span - work
    end = begin + duration

    stop = np.full(S, now_s)
    persona = rng.random(S)
    stalled = persona < 0.08
    latest_stall = max(start + 6 * day, now_s - 15 * day)
    stop[stalled] = rng.uniform(start + 5 * day, latest_stall, stalled.sum())
    never = (persona >= 0.08) & (persona < 0.1)
    stop[never] = start - day
    # Idle for a week or two but not gone: the "watch" students.
    idle = (persona >= 0.1) & (persona < 0.16)
    stop[idle] = now_s - rng.uniform(7, 13, idle.sum()) * day
    skill = np.clip(rng.normal(0.9, 0.05, S), 0.6, 1.0)
    weak = (persona >= 0.16) & (persona < 0.24)
    skill[weak] = rng.uniform(0.45, 0.58, weak.sum())

    started = np.where(begin <= stop[:, None], begin, np.nan)
    completed = np.where(end <= stop[:, None], end, np.nan)
    gave_up = rng.random(S) < 0.25
    if A > 1:
        completed[gave_up, blocker:] = np.nan
        started[gave_up, blocker + 1 :] = np.nan
    # Sequential work: nothing starts after an assignment left unfinished.
    unfinished = np.isnan(completed)
    first_open = np.where(unfinished.any(axis=1), unfinished.argmax(axis=1), A)
    cols = np.arange(A)[None, :]
    started[cols > first_open[:, None]] = np.nan
    completed[cols >= first_open[:, None]] = np.nan

    review_delay = rng.exponential(2.0, (S, A)) * day
    reviewed = completed + review_delay
    is_project = np.array([k == "project" for k in kinds])
    reviewed[:, ~is_project] = np.nan
    reviewed[reviewed > now_s] = np.nan

    is_quiz = np.array([k == "quiz" for k in kinds])
    quiz_grades = np.clip(
        np.round(rng.normal(skill[:, None] - hardness[None, :], 0.1, (S, A)), 2), 0, 1
    )
    grades = np.full((S, A), np.nan)
    grades[:, is_quiz] = quiz_grades[:, is_quiz]
    grades[:, ~is_quiz & ~is_project] = 1.0
    project_grades = np.clip(np.round(rng.normal(0.85, 0.1, (S, A)), 2), 0, 1)
    grades[:, is_project] = np.where(
        np.isnan(reviewed[:, is_project]), np.nan, project_grades[:, is_project]
    )
    grades[np.isnan(completed)] = np.nan
    return Plan(
        starts_on=starts_on,
        ends_on=ends_on,
        names=names,
        kinds=kinds,
        unit_of=unit_of,
        started=started,
        completed=completed,
        reviewed=reviewed,
        grades=grades,
    )
