"""A small hand-built cohort whose metrics the tests work out by hand.

Five students, six assignments in two units, "now" = Friday 2026-03-20 12:00 UTC.
Assignment ids are not in curriculum order, so ordering by id would show.

    curriculum  id   name             kind     unit
    1           104  Intro            lesson   U1
    2           101  Loops quiz       quiz     U1
    3           103  Project          project  U2  (projects get reviewed)
    4           102  Recursion quiz   quiz     U2
    5           105  Capstone         lesson   U2  (nobody started)
    6           106  Extra reading    lesson   U2  (nobody started)

    student  story
    1 Ann    steady; stuck on Recursion quiz since 03-18; quiz 0.9 -> on track
    2 Bob    1 behind the median; Loops quiz 0.4; stuck on Recursion quiz -> at risk
    3 Cat    last active 03-11 (9 days); Loops quiz 0.65; Project waiting review -> watch
    4 Dan    nothing but an empty row with a stray grade -> at risk (no activity)
    5 Eve    4 done; one quiz ungraded (null), Recursion quiz 0.5; a duplicate
             Intro record -> at risk (quiz average 50%)
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from cohorts import analytics

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=UTC)


STUDENTS = [
    # student_id, external_id, first, last, email
    (1, "s-ann", "Ann", "Archer", "ann@example.com"),
    (2, "s-bob", "Bob", "Baker", "bob@example.com"),
    (3, "s-cat", "Cat", "Cole", "cat@example.com"),
    (4, "s-dan", "Dan", "Dunn", "dan@example.com"),
    (5, "s-eve", "Eve", "Evans", "eve@example.com"),
]
ASSIGNMENTS = [
    # assignment_id, external_id, name, kind, unit, unit_position, position
    (101, "a-loops", "Loops quiz", "quiz", "U1", 1, 2),
    (102, "a-rec", "Recursion quiz", "quiz", "U2", 2, 2),
    (103, "a-proj", "Project", "project", "U2", 2, 1),
    (104, "a-intro", "Intro", "lesson", "U1", 1, 1),
    (105, "a-cap", "Capstone", "lesson", "U2", 2, 3),
    (106, "a-extra", "Extra reading", "lesson", "U2", 2, 4),
]
PROGRESSIONS = [
    # student_id, assignment_id, grade, started_at, completed_at, reviewed_at
    (1, 104, 1.0, at(1), at(2), None),
    (1, 101, 0.9, at(3), at(3, 22), None),
    (1, 103, 0.8, at(5), at(8), at(9)),
    (1, 102, None, at(18, 12), None, None),
    (2, 104, None, at(1), at(4), None),
    (2, 101, 0.4, at(5), at(6), None),
    (2, 102, None, at(19), None, None),
    (3, 104, 1.0, at(2), at(3), None),
    (3, 101, 0.65, at(4), at(5), None),
    (3, 103, None, at(6), at(11), None),
    (4, 104, 0.3, None, None, None),
    (5, 104, 1.0, at(1), at(1, 22), None),
    (5, 104, 1.0, at(1, 12), at(2), None),
    (5, 101, None, at(2), at(2, 12), None),
    (5, 103, 0.9, at(3), at(4), at(5)),
    (5, 102, 0.5, at(19), at(19, 12), None),
]
STARTS_ON = date(2026, 3, 2)
ENDS_ON = date(2026, 3, 15)


def frames():
    return (
        analytics.students_frame(STUDENTS),
        analytics.assignments_frame(ASSIGNMENTS),
        analytics.progressions_frame(PROGRESSIONS),
    )


def build(cohort) -> dict[int, int]:
    """Store the cohort in the database under `cohort`; returns spec student id -> pk.

    Assignment pks differ from the spec's ids, but curriculum positions are the same.
    """
    from cohorts.models import Assignment, Enrollment, Progression, Student

    students = {}
    for sid, ext, first, last, email in STUDENTS:
        student = Student.objects.create(
            source=cohort.source,
            external_id=f"{cohort.external_id}-{ext}",
            first_name=first,
            last_name=last,
            email=email,
        )
        Enrollment.objects.create(cohort=cohort, student=student)
        students[sid] = student
    assignments = {}
    for aid, ext, name, kind, unit, unit_position, position in ASSIGNMENTS:
        assignments[aid] = Assignment.objects.create(
            cohort=cohort,
            external_id=ext,
            name=name,
            kind=kind,
            unit=unit,
            unit_position=unit_position,
            position=position,
        )
    for index, (sid, aid, grade, started, completed, reviewed) in enumerate(PROGRESSIONS):
        Progression.objects.create(
            cohort=cohort,
            student=students[sid],
            assignment=assignments[aid],
            source=cohort.source,
            external_id=f"{cohort.external_id}-p{index}",
            grade=grade,
            started_at=started,
            completed_at=completed,
            reviewed_at=reviewed,
            synced_at=NOW,
        )
    return {sid: s.pk for sid, s in students.items()}
