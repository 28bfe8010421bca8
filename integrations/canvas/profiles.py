"""What a Canvas pull reads (profiles) and the checks its parameters pass before anything
is sent. Problems are collected and reported together, each naming its parameter."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Profile:
    """Which entities a pull reads. The course and its active students (with their scores
    and last activity) are always read."""

    name: str
    assignments: bool
    submissions: bool
    modules: bool
    concurrency: int  # courses pulled at once in a bulk pull (capped by CANVAS_CONCURRENCY)
    description: str


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "lightweight",
            False,
            False,
            False,
            3,
            "course and active students with their current and final scores and last "
            "activity; no assignments, submissions or modules",
        ),
        Profile(
            "analytics",
            True,
            True,
            False,
            2,
            "adds assignments and every submission (grades, submitted/graded times, "
            "late, missing, excused); no modules, so assignments have no unit",
        ),
        Profile(
            "full",
            True,
            True,
            True,
            2,
            "everything: adds modules and their items, which give each assignment its "
            "unit and place in the curriculum",
        ),
    )
}
DEFAULT_PROFILE = "full"
COURSE_STATES = ("unpublished", "available", "completed", "deleted")
DEFAULT_STATE = "available"
MAX_COURSES_LIMIT = 10_000
MAX_COURSE_IDS = 500

# A Canvas id, or an SIS id in Canvas's `sis_course_id:` form (no slashes or spaces, so it
# stays one path segment).
_COURSE_ID = re.compile(r"^(?:\d{1,30}|sis_course_id:[A-Za-z0-9._:-]{1,80})$")
_TERM_ID = re.compile(r"^(?:\d{1,30}|sis_term_id:[A-Za-z0-9._:-]{1,80})$")


class ParamsInvalid(ValueError):
    """The pull's parameters cannot be used; the message lists every problem."""


def profile_get(name: str) -> Profile:
    return PROFILES[name]


def params_problems(params: dict[str, Any]) -> list[str]:
    """Every problem with a pull's parameters, in words (empty: usable)."""
    problems: list[str] = []
    profile = params.get("profile", DEFAULT_PROFILE)
    if profile not in PROFILES:
        problems.append(f"profile must be one of {', '.join(PROFILES)}; got {str(profile)[:40]!r}")
    mode = params.get("mode")
    if mode == "course":
        course_id = str(params.get("course_id") or "")
        if not _COURSE_ID.match(course_id):
            problems.append(_course_problem(course_id))
        return problems
    if mode != "bulk":
        return [*problems, "mode must be 'course' or 'bulk'"]
    course_ids = params.get("course_ids") or []
    if course_ids:
        if not isinstance(course_ids, list) or len(course_ids) > MAX_COURSE_IDS:
            problems.append(f"course ids: give at most {MAX_COURSE_IDS}")
        else:
            problems += [_course_problem(str(c)) for c in course_ids if not _good_course(c)]
        if len(set(map(str, course_ids))) != len(course_ids):
            problems.append("course ids: a course is listed twice")
    state = params.get("state", DEFAULT_STATE)
    if state not in COURSE_STATES:
        problems.append(f"state must be one of {', '.join(COURSE_STATES)}; got {str(state)[:40]!r}")
    term = str(params.get("term") or "")
    if term and not _TERM_ID.match(term):
        problems.append(
            f"term must be a Canvas term id (digits) or sis_term_id:CODE; got {term[:40]!r}"
        )
    max_courses = params.get("max_courses")
    if max_courses is not None and (
        isinstance(max_courses, bool)
        or not isinstance(max_courses, int)
        or not 1 <= max_courses <= MAX_COURSES_LIMIT
    ):
        problems.append(
            f"max courses must be a whole number from 1 to {MAX_COURSES_LIMIT}; "
            f"got {str(max_courses)[:20]!r}"
        )
    if not course_ids and not params.get("all"):
        problems.append("give course ids or ask for all courses of the account")
    return problems


def _good_course(value: Any) -> bool:
    return (
        isinstance(value, str | int)
        and not isinstance(value, bool)
        and bool(_COURSE_ID.match(str(value)))
    )


def _course_problem(value: str) -> str:
    return (
        f"course id must be a Canvas course id (digits) or sis_course_id:CODE; got {value[:40]!r}"
    )


def params_validate(params: dict[str, Any]) -> None:
    problems = params_problems(params)
    if problems:
        raise ParamsInvalid("; ".join(problems))
