"""From Canvas's JSON to the records `cohorts.services` stores. Pure functions, no I/O.

The rules (docs/canvas.md):

- students: users with an *active* `StudentEnrollment` only. Teachers, TAs, the test
  student (`StudentViewEnrollment`) and invited, inactive or completed enrollments are left
  out. Names come from `sortable_name` ("Last, First"). Ids are kept exactly, as text.
- assignments: unit = the module that holds the assignment (a quiz item points at the
  assignment's `quiz_id`), unit position = the module's position, position = the order
  across the modules in turn; assignments in no module come last, by their own position.
  Unpublished assignments are kept with `published=False`.
- submissions become progressions: grade = score / points possible (0..1), empty when the
  assignment is worth 0 points or has no score; completed = submitted (or graded without a
  submission time); reviewed = graded. Canvas has no start time. Score, late, missing and
  excused are kept as they come.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cohorts.services import (
    AssignmentRecord,
    EnrollmentDetail,
    ProgressionRecord,
    StudentRecord,
)

MAX_ID_LENGTH = 100
STUDENT_ENROLLMENT = "StudentEnrollment"


class BadRecord(Exception):
    """One Canvas record that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Skipped:
    kind: str  # student, assignment, submission
    key: str
    reason: str
    invalid: bool = False  # True: bad data (a failure); False: left out on purpose


def canvas_id(value: Any, field_name: str) -> str:
    """A Canvas id as text, exactly: 10000000000123 stays "10000000000123".

    JSON numbers arrive as Python ints (never floats, so shard-style ids stay exact); the
    `application/json+canvas-string-ids` form sends strings, kept as they are.
    """
    if isinstance(value, bool) or value is None:
        raise BadRecord(f"{field_name} is missing")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
    else:
        raise BadRecord(f"{field_name} is not an id ({type(value).__name__})")
    if len(text) > MAX_ID_LENGTH:
        raise BadRecord(f"{field_name} is longer than {MAX_ID_LENGTH} characters")
    return text


def parse_time(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    if type(value) is str and value:
        # Canvas's own form ("2026-11-02T09:30:00Z"): Python reads it as is, in UTC.
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is UTC:
                return parsed
    if value == "":
        return None
    if not isinstance(value, str):
        raise BadRecord(f"{field_name} is not a date")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRecord(f"{field_name} is not a date ({value[:40]!r})") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _number(value: Any, field_name: str) -> float | None:
    if value is None or value == "":
        return None
    if type(value) is float and math.isfinite(value):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRecord(f"{field_name} is not a number")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise BadRecord(f"{field_name} is not a number")
    return number


def _text(value: Any, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def split_name(user: dict[str, Any]) -> tuple[str, str]:
    """(first, last) from `sortable_name` "Last, First", else from `name`."""
    sortable = _text(user.get("sortable_name"), 300)
    if "," in sortable:
        last, first = (part.strip() for part in sortable.split(",", 1))
        return first[:150], last[:150]
    name = _text(user.get("name"), 300) or sortable
    if " " in name:
        first, last = name.rsplit(" ", 1)
        return first[:150], last[:150]
    return name[:150], ""


# --- Students ---------------------------------------------------------------------------


@dataclass
class StudentsMapped:
    records: list[StudentRecord] = field(default_factory=list)
    details: dict[str, EnrollmentDetail] = field(default_factory=dict)  # by user id
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        return {r.external_id for r in self.records}


def map_students(
    users: Iterable[dict[str, Any]], enrollments: Iterable[dict[str, Any]]
) -> StudentsMapped:
    out = StudentsMapped()
    active: dict[str, dict[str, Any]] = {}
    for enrollment in enrollments:
        try:
            user_id = canvas_id(enrollment.get("user_id"), "user_id")
        except BadRecord as exc:
            out.skipped.append(Skipped("student", "?", f"enrollment: {exc}", invalid=True))
            continue
        kind = enrollment.get("type") or enrollment.get("role")
        state = enrollment.get("enrollment_state")
        if kind != STUDENT_ENROLLMENT or state != "active":
            out.skipped.append(Skipped("student", user_id, f"{kind} enrollment, {state}"))
            continue
        active.setdefault(user_id, enrollment)
    for user in users:
        try:
            user_id = canvas_id(user.get("id"), "id")
        except BadRecord as exc:
            out.skipped.append(Skipped("student", "?", f"user: {exc}", invalid=True))
            continue
        enrollment = active.pop(user_id, None)
        if enrollment is None:
            continue  # not an active student of this course (already listed, or staff)
        first, last = split_name(user)
        email = _text(user.get("email"), 254)
        out.records.append(
            StudentRecord(external_id=user_id, first_name=first, last_name=last, email=email)
        )
        grades = enrollment.get("grades") or {}
        try:
            out.details[user_id] = EnrollmentDetail(
                current_score=_number(grades.get("current_score"), "grades.current_score"),
                final_score=_number(grades.get("final_score"), "grades.final_score"),
                last_activity_at=parse_time(enrollment.get("last_activity_at"), "last_activity_at"),
            )
        except BadRecord as exc:
            out.details[user_id] = EnrollmentDetail()
            out.skipped.append(Skipped("student", user_id, f"enrollment: {exc}", invalid=True))
    # Active enrollments whose user the users list did not return (a race): kept without
    # names rather than dropped.
    for user_id, enrollment in active.items():
        user = enrollment.get("user") or {}
        first, last = split_name(user)
        out.records.append(StudentRecord(external_id=user_id, first_name=first, last_name=last))
        out.details[user_id] = EnrollmentDetail()
    return out


# --- Assignments ------------------------------------------------------------------------


def assignment_kind(assignment: dict[str, Any]) -> str:
    types = assignment.get("submission_types") or []
    if assignment.get("is_quiz_assignment") or "online_quiz" in types:
        return "quiz"
    if "discussion_topic" in types:
        return "discussion"
    return "assignment"


@dataclass
class AssignmentsMapped:
    records: list[AssignmentRecord] = field(default_factory=list)
    points: dict[str, float | None] = field(default_factory=dict)  # by assignment id
    skipped: list[Skipped] = field(default_factory=list)


def map_assignments(
    assignments: Iterable[dict[str, Any]], modules: Iterable[dict[str, Any]] | None = None
) -> AssignmentsMapped:
    """Assignments with their unit (module) and order. `modules` None: no module data
    (a lighter profile); each assignment then keeps Canvas's own position, no unit."""
    out = AssignmentsMapped()
    by_id: dict[str, dict[str, Any]] = {}
    quiz_to_assignment: dict[str, str] = {}
    for raw in assignments:
        try:
            assignment_id = canvas_id(raw.get("id"), "id")
        except BadRecord as exc:
            out.skipped.append(Skipped("assignment", "?", str(exc), invalid=True))
            continue
        by_id[assignment_id] = raw
        if raw.get("quiz_id") is not None:
            with contextlib.suppress(BadRecord):
                quiz_to_assignment[canvas_id(raw["quiz_id"], "quiz_id")] = assignment_id
    placed: dict[str, tuple[str, int, int]] = {}  # id -> (unit, unit position, position)
    ordered_modules = sorted(
        (m for m in modules or () if isinstance(m, dict)),
        key=lambda m: (m.get("position") or 0, str(m.get("id"))),
    )
    position = 0
    for unit_position, module in enumerate(ordered_modules, start=1):
        unit = _text(module.get("name"), 200)
        items = sorted(
            (i for i in module.get("items") or () if isinstance(i, dict)),
            key=lambda i: i.get("position") or 0,
        )
        for item in items:
            content = item.get("content_id")
            if content is None or isinstance(content, bool):
                continue
            content = str(content)
            if item.get("type") == "Assignment":
                target = content
            elif item.get("type") == "Quiz":
                target = quiz_to_assignment.get(content, "")
            else:
                continue
            if target in by_id and target not in placed:
                position += 1
                placed[target] = (unit, unit_position, position)
    last_unit = len(ordered_modules) + 1
    rest = sorted(
        (a for a in by_id if a not in placed),
        key=lambda a: (by_id[a].get("position") or 0, a),
    )
    for assignment_id in rest:
        position += 1
        placed[assignment_id] = ("", last_unit if ordered_modules else 0, position)
    for assignment_id, raw in by_id.items():
        unit, unit_position, order = placed[assignment_id]
        try:
            points = _number(raw.get("points_possible"), "points_possible")
            due_at = parse_time(raw.get("due_at"), "due_at")
        except BadRecord as exc:
            out.skipped.append(Skipped("assignment", assignment_id, str(exc), invalid=True))
            points, due_at = None, None
        out.points[assignment_id] = points
        out.records.append(
            AssignmentRecord(
                external_id=assignment_id,
                name=_text(raw.get("name"), 300) or assignment_id,
                kind=assignment_kind(raw),
                unit=unit,
                unit_position=unit_position,
                position=order,
                published=raw.get("published") is not False,
                points_possible=points,
                due_at=due_at,
            )
        )
    out.records.sort(key=lambda r: r.position or 0)
    return out


# --- Submissions ------------------------------------------------------------------------


def progression_key(assignment_id: str, user_id: str) -> str:
    """A submission's progression id: one per student and assignment (Canvas keeps one
    submission per pair; assignment ids are unique across the instance)."""
    return f"{assignment_id}:{user_id}"


def grade_of(score: float | None, points_possible: float | None) -> float | None:
    """score / points possible in 0..1; empty for a 0-point assignment or no score."""
    if score is None or not points_possible or points_possible <= 0:
        return None
    return min(1.0, max(0.0, score / points_possible))


def map_submission(
    raw: dict[str, Any],
    points_possible: float | None,
    assignment_id: str | None = None,
    user_id: str | None = None,
) -> ProgressionRecord:
    """One submission as a progression (`assignment_id` and `user_id`: already read)."""
    if assignment_id is None:
        assignment_id = canvas_id(raw.get("assignment_id"), "assignment_id")
    if user_id is None:
        user_id = canvas_id(raw.get("user_id"), "user_id")
    score = _number(raw.get("score"), "score")
    submitted_at = parse_time(raw.get("submitted_at"), "submitted_at")
    graded_at = parse_time(raw.get("graded_at"), "graded_at")
    graded = raw.get("workflow_state") == "graded" and graded_at is not None
    return ProgressionRecord(
        external_id=progression_key(assignment_id, user_id),
        student_external_id=user_id,
        assignment_external_id=assignment_id,
        grade=grade_of(score, points_possible),
        started_at=None,  # Canvas has no start time
        completed_at=submitted_at or (graded_at if graded else None),
        reviewed_at=graded_at if graded else None,
        score=score,
        late=raw.get("late") is True,
        missing=raw.get("missing") is True,
        excused=raw.get("excused") is True,
    )


@dataclass
class SubmissionsMapped:
    records: list[ProgressionRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def map_submissions(
    submissions: Iterable[dict[str, Any]],
    *,
    points: dict[str, float | None],
    student_ids: set[str],
) -> SubmissionsMapped:
    """Progressions of the course's active students on its known assignments. Others
    (the test student, inactive students) are skipped on purpose, bad records as invalid."""
    out = SubmissionsMapped()
    seen: dict[str, int] = {}
    for raw in submissions:
        raw_user, raw_assignment = raw.get("user_id"), raw.get("assignment_id")
        key = f"{raw_assignment}:{raw_user}"
        try:
            if type(raw_user) is int and type(raw_assignment) is int:
                user_id, assignment_id = str(raw_user), str(raw_assignment)  # the usual ids
                if len(user_id) > MAX_ID_LENGTH or len(assignment_id) > MAX_ID_LENGTH:
                    user_id = canvas_id(raw_user, "user_id")
                    assignment_id = canvas_id(raw_assignment, "assignment_id")
            else:
                user_id = canvas_id(raw_user, "user_id")
                assignment_id = canvas_id(raw_assignment, "assignment_id")
            if user_id not in student_ids:
                out.skipped.append(Skipped("submission", key, "not an active student"))
                continue
            if assignment_id not in points:
                out.skipped.append(Skipped("submission", key, "unknown assignment"))
                continue
            record = map_submission(raw, points[assignment_id], assignment_id, user_id)
        except BadRecord as exc:
            out.skipped.append(Skipped("submission", key, str(exc), invalid=True))
            continue
        # Two answers for one pair (a submitted_since and a graded_since read): the later
        # read wins, which is the same record.
        if record.external_id in seen:
            out.records[seen[record.external_id]] = record
        else:
            seen[record.external_id] = len(out.records)
            out.records.append(record)
    return out
