"""Canvas JSON into cohort records, on hand-built records (integrations/canvas/mapping.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from integrations.canvas.mapping import (
    BadRecord,
    canvas_id,
    grade_of,
    map_assignments,
    map_students,
    map_submission,
    map_submissions,
)

BIG = 10000000000000123  # shard-style, beyond a float's exact integers


def enrollment(user_id, kind="StudentEnrollment", state="active", **kw):
    return {"user_id": user_id, "type": kind, "enrollment_state": state, **kw}


def test_ids_are_kept_exactly_as_text():
    assert canvas_id(BIG, "id") == "10000000000000123"
    assert canvas_id(" 0042 ", "id") == "0042"
    with pytest.raises(BadRecord, match="user_id is missing"):
        canvas_id(None, "user_id")
    with pytest.raises(BadRecord, match="not an id"):
        canvas_id(1.5, "id")
    with pytest.raises(BadRecord):
        canvas_id(True, "id")


def test_only_active_student_enrollments_become_students():
    users = [
        {"id": 1, "sortable_name": "Lovelace, Ada", "email": "Ada@Example.edu"},
        {"id": 2, "name": "Grace Teacher"},
        {"id": 3, "name": "Test Student"},
        {"id": 4, "name": "Ivy Invited"},
        {"id": 5, "name": "Ian Inactive"},
        {"id": 6, "name": "Cal Completed"},
        {"id": BIG, "name": "No Email Person"},
    ]
    enrollments = [
        enrollment(
            1,
            last_activity_at="2026-11-20T10:00:00Z",
            grades={"current_score": 88.5, "final_score": 70.0},
        ),
        enrollment(2, "TeacherEnrollment"),
        enrollment(2, "TaEnrollment"),
        enrollment(3, "StudentViewEnrollment"),
        enrollment(4, state="invited"),
        enrollment(5, state="inactive"),
        enrollment(6, state="completed"),
        enrollment(BIG),
    ]
    mapped = map_students(users, enrollments)
    assert [r.external_id for r in mapped.records] == ["1", str(BIG)]
    ada = mapped.records[0]
    assert (ada.first_name, ada.last_name, ada.email) == ("Ada", "Lovelace", "Ada@Example.edu")
    nobody = mapped.records[1]
    assert (nobody.first_name, nobody.last_name, nobody.email) == ("No Email", "Person", "")
    detail = mapped.details["1"]
    assert detail.current_score == 88.5 and detail.final_score == 70.0
    assert detail.last_activity_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert {s.key for s in mapped.skipped} == {"2", "3", "4", "5", "6"}
    assert not any(s.invalid for s in mapped.skipped)


def test_assignments_take_unit_and_order_from_modules():
    assignments = [
        {"id": 10, "name": "Lab", "points_possible": 10, "position": 1, "published": True},
        {
            "id": 11,
            "name": "Quiz 1",
            "points_possible": 20,
            "position": 2,
            "submission_types": ["online_quiz"],
            "quiz_id": 900,
        },
        {"id": 12, "name": "Loose", "points_possible": 5, "position": 3},
        {"id": 13, "name": "Draft", "points_possible": 5, "position": 4, "published": False},
        {"id": 14, "name": "Reading", "points_possible": 0, "position": 0},
    ]
    modules = [
        {
            "id": 2,
            "name": "Week 2",
            "position": 2,
            "items": [
                {"type": "Quiz", "content_id": 900, "position": 2},
                {"type": "SubHeader", "position": 1},
            ],
        },
        {
            "id": 1,
            "name": "Week 1",
            "position": 1,
            "items": [
                {"type": "Page", "position": 1},
                {"type": "Assignment", "content_id": 14, "position": 2},
                {"type": "Assignment", "content_id": 10, "position": 3},
            ],
        },
    ]
    mapped = map_assignments(assignments, modules)
    rows = [(r.external_id, r.unit, r.unit_position, r.position) for r in mapped.records]
    assert rows == [
        ("14", "Week 1", 1, 1),
        ("10", "Week 1", 1, 2),
        ("11", "Week 2", 2, 3),
        ("12", "", 3, 4),
        ("13", "", 3, 5),
    ]
    kinds = {r.external_id: (r.kind, r.published) for r in mapped.records}
    assert kinds["11"] == ("quiz", True) and kinds["13"] == ("assignment", False)
    assert mapped.points == {"10": 10.0, "11": 20.0, "12": 5.0, "13": 5.0, "14": 0.0}


def test_without_modules_assignments_keep_canvas_order_and_no_unit():
    mapped = map_assignments([{"id": 2, "position": 2}, {"id": 1, "position": 1}], None)
    assert [(r.external_id, r.unit, r.unit_position) for r in mapped.records] == [
        ("1", "", 0),
        ("2", "", 0),
    ]


@pytest.mark.parametrize(
    ("score", "points", "grade"),
    [(8, 10, 0.8), (None, 10, None), (5, 0, None), (5, None, None), (12, 10, 1.0), (-1, 10, 0.0)],
)
def test_grade_is_score_over_points(score, points, grade):
    assert grade_of(score, points) == grade


def test_a_graded_late_submission():
    record = map_submission(
        {
            "assignment_id": 10,
            "user_id": BIG,
            "score": 7.5,
            "submitted_at": "2026-11-01T09:00:00Z",
            "graded_at": "2026-11-03T12:00:00Z",
            "workflow_state": "graded",
            "late": True,
            "missing": False,
            "excused": False,
        },
        10.0,
    )
    assert record.external_id == f"10:{BIG}" and record.student_external_id == str(BIG)
    assert record.grade == 0.75 and record.score == 7.5 and record.late
    assert record.started_at is None
    assert record.completed_at == datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert record.reviewed_at == datetime(2026, 11, 3, 12, tzinfo=UTC)


def test_submitted_not_graded_is_completed_not_reviewed():
    record = map_submission(
        {
            "assignment_id": 1,
            "user_id": 2,
            "submitted_at": "2026-11-01T09:00:00Z",
            "workflow_state": "submitted",
        },
        10,
    )
    assert record.completed_at is not None and record.reviewed_at is None and record.grade is None


def test_missing_unsubmitted_is_neither_and_keeps_the_flag():
    record = map_submission(
        {"assignment_id": 1, "user_id": 2, "workflow_state": "unsubmitted", "missing": True}, 10
    )
    assert record.completed_at is None and record.reviewed_at is None and record.missing


def test_graded_without_submission_counts_as_completed_when_graded():
    record = map_submission(
        {
            "assignment_id": 1,
            "user_id": 2,
            "workflow_state": "graded",
            "graded_at": "2026-11-02T00:00:00Z",
            "excused": True,
        },
        10,
    )
    assert record.completed_at == record.reviewed_at and record.excused


def test_submissions_of_others_are_skipped_and_bad_ones_are_invalid():
    mapped = map_submissions(
        [
            {"assignment_id": 1, "user_id": 2, "workflow_state": "unsubmitted"},
            {"assignment_id": 1, "user_id": 99, "workflow_state": "submitted"},  # test student
            {"assignment_id": 7, "user_id": 2},  # unknown assignment
            {"assignment_id": 1, "user_id": 3, "score": "lots"},
            {"assignment_id": 1, "user_id": 2, "workflow_state": "submitted"},  # repeat
        ],
        points={"1": 10.0},
        student_ids={"2", "3"},
    )
    assert [r.external_id for r in mapped.records] == ["1:2"]
    assert mapped.records[0].completed_at is None  # the repeat had no submitted_at either
    reasons = {(s.key, s.invalid) for s in mapped.skipped}
    assert reasons == {("1:99", False), ("7:2", False), ("1:3", True)}
