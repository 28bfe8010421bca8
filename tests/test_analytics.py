"""Completion, student health and blockers, pinned on the hand-built cohort in
tests/health_cohort.py (the right answers are worked out beside each assertion)."""

from __future__ import annotations

import pandas as pd
import pytest

from cohorts import analytics
from cohorts.analytics import AT_RISK, ON_TRACK, WATCH, Thresholds
from tests import health_cohort as hc

DEFAULTS = Thresholds()  # 7 days, 0.2 of the curriculum, 0.6


@pytest.fixture
def frames():
    return hc.frames()


def by_name(frame: pd.DataFrame, column: str = "name") -> dict:
    return {row[column]: row for row in analytics.records(frame)}


# --- completion ------------------------------------------------------------------------


def test_completion_per_assignment_in_curriculum_order(frames):
    table = analytics.completion_by_assignment(*frames)
    # unit_position, then position: not the ids' order (101..106).
    assert list(table["assignment_id"]) == [104, 101, 103, 102, 105, 106]
    assert list(table["order"]) == [1, 2, 3, 4, 5, 6]
    rows = by_name(table)
    # Intro: Ann, Bob, Cat, Eve (once, despite two records); Dan's empty row is no start.
    assert (rows["Intro"]["started"], rows["Intro"]["completed"]) == (4, 4)
    assert rows["Intro"]["completion"] == pytest.approx(4 / 5)
    assert rows["Loops quiz"]["completed"] == 4
    assert (rows["Project"]["started"], rows["Project"]["completed"]) == (3, 3)
    # Recursion quiz: Ann and Bob started, only Eve finished.
    rec = rows["Recursion quiz"]
    assert (rec["started"], rec["in_progress"], rec["completed"]) == (3, 2, 1)
    assert rec["completion"] == pytest.approx(0.2)
    # Nobody started these two.
    for name in ("Capstone", "Extra reading"):
        assert (rows[name]["started"], rows[name]["completed"], rows[name]["completion"]) == (
            0,
            0,
            0.0,
        )
    assert set(table["students"]) == {5}


def test_completion_per_unit_and_overall(frames):
    units = analytics.completion_by_unit(analytics.completion_by_assignment(*frames))
    assert list(units["unit"]) == ["U1", "U2"]
    u1, u2 = analytics.records(units)
    # U1: Intro 4 + Loops 4 of 2 x 5.
    assert (u1["assignments"], u1["completed"], u1["possible"]) == (2, 8, 10)
    assert u1["completion"] == pytest.approx(0.8)
    # U2: Project 3 + Recursion 1 of 4 x 5.
    assert (u2["assignments"], u2["completed"], u2["possible"]) == (4, 4, 20)
    assert u2["completion"] == pytest.approx(0.2)
    overall = analytics.completion_overall(*frames)
    assert overall == {
        "students": 5,
        "assignments": 6,
        "completed": 12,
        "possible": 30,
        "completion": pytest.approx(0.4),
        "students_finished": 0,
    }


# --- student health --------------------------------------------------------------------


def health(frames, thresholds=DEFAULTS, now=hc.NOW):
    students, assignments, progressions = frames
    summary = analytics.student_summary(students, assignments, progressions)
    return analytics.student_health(
        summary, assignment_count=len(assignments), thresholds=thresholds, now=now
    )


def test_summary_counts_activity_and_quiz_average(frames):
    rows = by_name(analytics.student_summary(*frames))
    ann, bob, cat, dan, eve = (
        rows[n] for n in ("Ann Archer", "Bob Baker", "Cat Cole", "Dan Dunn", "Eve Evans")
    )
    assert (ann["started"], ann["completed"], ann["in_progress"]) == (4, 3, 1)
    # Activity: the latest of any start, completion or review.
    assert ann["last_activity"] == hc.at(18, 12)
    assert bob["last_activity"] == hc.at(19)
    assert cat["last_activity"] == hc.at(11)
    assert eve["last_activity"] == hc.at(19, 12)
    # Quizzes only, graded only: Ann's Recursion quiz has no grade, Eve's Loops quiz is null.
    assert ann["quiz_average"] == pytest.approx(0.9)
    assert bob["quiz_average"] == pytest.approx(0.4)
    assert cat["quiz_average"] == pytest.approx(0.65)
    assert (eve["quiz_average"], eve["quizzes_graded"]) == (pytest.approx(0.5), 1)
    # Dan's only row has no timestamp: his stray grade counts for nothing.
    assert (dan["completed"], dan["last_activity"], dan["quiz_average"]) == (0, None, None)


def test_health_classifies_with_reasons_in_words(frames):
    rows = by_name(health(frames))
    # Completions 3, 2, 3, 0, 4: the median is 3. At-risk gap 0.2 x 6 = 1.2, watch 0.6.
    assert {name: r["status"] for name, r in rows.items()} == {
        "Ann Archer": ON_TRACK,
        "Bob Baker": AT_RISK,
        "Cat Cole": WATCH,
        "Dan Dunn": AT_RISK,
        "Eve Evans": AT_RISK,
    }
    assert rows["Ann Archer"]["reasons"] == []
    # At-risk reasons come before watch ones.
    assert rows["Bob Baker"]["reasons"] == [
        "quiz average 40%",
        "1 assignment behind the cohort median",
    ]
    # 03-11 10:00 to 03-20 12:00 is 9 days and 2 hours.
    assert rows["Cat Cole"]["reasons"] == ["no activity for 9 days", "quiz average 65%"]
    assert rows["Cat Cole"]["days_inactive"] == 9
    assert rows["Dan Dunn"]["reasons"] == [
        "no activity recorded",
        "3 assignments behind the cohort median",
    ]
    assert rows["Eve Evans"]["reasons"] == ["quiz average 50%"]
    assert rows["Eve Evans"]["behind"] == -1
    assert rows["Bob Baker"]["reason"] == "quiz average 40%; 1 assignment behind the cohort median"
    assert analytics.health_counts(health(frames)) == {ON_TRACK: 1, WATCH: 1, AT_RISK: 3}


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        # A week of inactivity halved: Cat's 9 days pass twice 4.
        (Thresholds(inactive_days=4), {"Cat Cole": AT_RISK}),
        # Gap 0.1 x 6 = 0.6: Bob's 1 behind is now at-risk on its own.
        (Thresholds(behind_fraction=0.1), {"Bob Baker": AT_RISK}),
        # Low grade 0.45: Eve's 50% is within 10 points (watch), Cat's 65% is fine.
        (Thresholds(low_grade=0.45), {"Eve Evans": WATCH, "Cat Cole": WATCH}),
        # Low grade 0.3: only Cat's inactivity is left of her watch reasons.
        (Thresholds(low_grade=0.3), {"Bob Baker": WATCH, "Eve Evans": ON_TRACK}),
    ],
)
def test_threshold_edits_change_classifications(frames, thresholds, expected):
    rows = by_name(health(frames, thresholds))
    assert {name: rows[name]["status"] for name in expected} == expected


def test_threshold_edit_changes_reasons(frames):
    rows = by_name(health(frames, Thresholds(behind_fraction=0.1, low_grade=0.3)))
    assert rows["Bob Baker"]["reasons"] == ["1 assignment behind the cohort median"]
    assert rows["Bob Baker"]["status"] == AT_RISK
    assert rows["Cat Cole"]["reasons"] == ["no activity for 9 days"]


def test_thresholds_read_from_a_cohort():
    class Cohort:
        inactive_days, behind_fraction, low_grade = 3, 0.5, 0.75

    assert Thresholds.of(Cohort()) == Thresholds(3, 0.5, 0.75)


def test_half_a_median_reads_naturally():
    students = analytics.students_frame([(1, "a", "A", "", ""), (2, "b", "B", "", "")])
    assignments = analytics.assignments_frame([(10, "x", "X", "lesson", "", 0, 1)])
    progressions = analytics.progressions_frame([(1, 10, None, hc.at(19), hc.at(19), None)])
    summary = analytics.student_summary(students, assignments, progressions)
    rows = by_name(
        analytics.student_health(summary, assignment_count=1, thresholds=Thresholds(), now=hc.NOW)
    )
    # Completions 1 and 0: the median is 0.5, so B is half an assignment behind it.
    assert rows["B"]["behind"] == 0.5
    assert "0.5 assignments behind the cohort median" in rows["B"]["reasons"]


@pytest.mark.parametrize(
    ("grade", "status", "words"),
    [
        # Under 60% is at risk: the reason must not read "60%" (0.598 rounds to 60).
        (0.598, AT_RISK, "quiz average 59.8%"),
        (0.5999, AT_RISK, "quiz average 59.99%"),
        (0.52, AT_RISK, "quiz average 52%"),
        # Under 70% is watch: 0.695 would round to 70.
        (0.695, WATCH, "quiz average 69.5%"),
        (0.65, WATCH, "quiz average 65%"),
    ],
)
def test_a_quiz_reason_never_reads_as_the_threshold_it_is_under(grade, status, words):
    students = analytics.students_frame([(1, "a", "A", "", "")])
    assignments = analytics.assignments_frame([(10, "q", "Q", "quiz", "", 0, 1)])
    progressions = analytics.progressions_frame([(1, 10, grade, hc.at(19), hc.at(19), None)])
    summary = analytics.student_summary(students, assignments, progressions)
    (row,) = analytics.records(
        analytics.student_health(summary, assignment_count=1, thresholds=DEFAULTS, now=hc.NOW)
    )
    assert (row["status"], row["reasons"]) == (status, [words])


def test_standing_against_the_cohort(frames):
    table = health(frames)
    standing = analytics.student_standing(table, 3)  # Cat: 3 completed
    assert standing["completed"] == 3
    assert standing["median_completed"] == 3
    assert standing["rank"] == 2  # only Eve has more; Ann ties with her
    assert standing["percentile"] == pytest.approx(2 / 5)  # Bob and Dan have fewer
    assert standing["cohort_quiz_average"] == pytest.approx((0.9 + 0.4 + 0.65 + 0.5) / 4)


# --- blockers --------------------------------------------------------------------------


def test_blockers_parts_rank_and_ties(frames):
    at_risk = [2, 4, 5]
    table = analytics.blockers(*frames, now=hc.NOW, at_risk_ids=at_risk)
    assert list(table["name"]) == [
        "Recursion quiz",
        "Project",
        "Loops quiz",
        "Intro",
        "Capstone",
        "Extra reading",
    ]
    rows = by_name(table)

    rec = rows["Recursion quiz"]
    # Ann and Bob stuck: 2 of 5 = 40% of the cohort, past the 25% that scores the part full.
    assert (rec["stuck"], rec["stuck_share"], rec["part_stuck"]) == (2, 0.4, 1.0)
    # Only Eve finished, in 2 hours; her 0.5 is the only grade.
    assert rec["median_days_to_complete"] == pytest.approx(2 / 24)
    assert rec["median_quiz_grade"] == 0.5
    assert rec["part_grade"] == 0.5
    # Quizzes are never reviewed in this cohort: nothing waits.
    assert (rec["waiting_review"], rec["part_review"]) == (0, 0.0)
    # 40 x 1 + 25 x (2/24)/14 + 20 x 0.5 = 50.15
    assert rec["score"] == 50.1
    # Of the stuck, only Bob is at risk (Ann is on track).
    assert rec["stuck_at_risk"] == [2]
    assert rec["stuck_at_risk_names"] == ["Bob Baker"]

    proj = rows["Project"]
    # Ann 3 days, Cat 5, Eve 1: median 3. Projects get reviewed (Ann, Eve), so Cat's,
    # completed 03-11 10:00, has waited 9 days 2 hours: past the full week.
    assert proj["median_days_to_complete"] == 3
    assert (proj["waiting_review"], proj["part_review"]) == (1, 1.0)
    assert proj["median_waiting_days"] == pytest.approx(9 + 2 / 24)
    assert proj["median_quiz_grade"] is None  # not a quiz
    assert proj["score"] == pytest.approx(round(25 * 3 / 14 + 15, 1))  # 20.4

    loops = rows["Loops quiz"]
    # Durations 0.5, 1, 1, 1/12: median 0.75. Grades 0.9, 0.4, 0.65 (Eve's is null): 0.65.
    assert loops["median_days_to_complete"] == pytest.approx(0.75)
    assert loops["median_quiz_grade"] == pytest.approx(0.65)
    assert loops["score"] == pytest.approx(round(25 * 0.75 / 14 + 20 * 0.35, 1))  # 8.3

    # Intro: durations 1, 3, 1 and Eve's 0.5 (her earliest start and completion): median 1.
    assert rows["Intro"]["median_days_to_complete"] == 1
    assert rows["Intro"]["score"] == 1.8
    # Lessons are never reviewed here, so none waits.
    assert rows["Intro"]["waiting_review"] == 0

    # Nobody started the last two: both score 0 and share rank 5, in curriculum order.
    assert list(table["rank"]) == [1, 2, 3, 4, 5, 5]
    assert rows["Capstone"]["score"] == 0 and rows["Capstone"]["stuck"] == 0

    # The heaviest part, in words.
    reasons = {r["name"]: analytics.blocker_reason(r) for r in analytics.records(table)}
    assert reasons["Recursion quiz"] == "2 students stuck on it"
    assert reasons["Project"] == "1 submission waiting for review, 9 days on the median"
    assert reasons["Loops quiz"] == "a median quiz grade of 65%"
    assert reasons["Intro"] == "a median of 1.0 days to complete"


def test_blockers_of_an_empty_cohort():
    empty = (
        analytics.students_frame([]),
        analytics.assignments_frame([]),
        analytics.progressions_frame([]),
    )
    assert analytics.blockers(*empty, now=hc.NOW).empty
    assert analytics.completion_by_assignment(*empty).empty
    assert analytics.completion_by_unit(analytics.completion_by_assignment(*empty)).empty
    assert analytics.completion_overall(*empty)["completion"] == 0.0
    summary = analytics.student_summary(*empty)
    assert analytics.student_health(
        summary, assignment_count=0, thresholds=DEFAULTS, now=hc.NOW
    ).empty


def test_students_without_assignments_are_only_judged_on_activity():
    students = analytics.students_frame([(1, "a", "A", "", "")])
    empty_assignments = analytics.assignments_frame([])
    summary = analytics.student_summary(
        students, empty_assignments, analytics.progressions_frame([])
    )
    rows = analytics.records(
        analytics.student_health(summary, assignment_count=0, thresholds=DEFAULTS, now=hc.NOW)
    )
    assert rows[0]["reasons"] == ["no activity recorded"]
