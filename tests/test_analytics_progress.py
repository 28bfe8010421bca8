"""Progress over time, the pace, week-over-week trends, the as-of filter and freshness,
pinned on the hand-built cohort in tests/health_cohort.py."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from cohorts import analytics
from cohorts.analytics import AT_RISK, ON_TRACK, Thresholds
from tests import health_cohort as hc

# Completions per day (UTC), from the spec (Eve's duplicate Intro counts once, on 03-01):
# 01:1  02:2  03:2  04:2  05:1  06:1  08:1  11:1  19:1  -> cumulative 12 by 03-19.
CUMULATIVE = {
    1: 1, 2: 3, 3: 5, 4: 7, 5: 8, 6: 9, 7: 9, 8: 10, 9: 10, 10: 10,
    11: 11, 12: 11, 13: 11, 14: 11, 15: 11, 16: 11, 17: 11, 18: 11, 19: 12, 20: 12,
}  # fmt: skip


@pytest.fixture
def frames():
    return hc.frames()


def pace(frames, **kw):
    _, assignments, progressions = frames
    return analytics.pace_for(assignments, progressions, **kw)


def test_pace_spreads_units_evenly_between_the_course_dates(frames):
    p = pace(frames, starts_on=hc.STARTS_ON, ends_on=hc.ENDS_ON)
    assert p.start == pd.Timestamp("2026-03-02", tz="UTC")
    assert p.end == pd.Timestamp("2026-03-16", tz="UTC")  # the end of 03-15
    assert p.units == (("U1", 2), ("U2", 4))
    # Two units, a week each. U1's 2 assignments are due by 03-09, U2's 4 by 03-16.
    expected = p.expected(
        [
            pd.Timestamp("2026-03-01", tz="UTC"),
            pd.Timestamp("2026-03-06", tz="UTC"),
            pd.Timestamp("2026-03-09", tz="UTC"),
            pd.Timestamp("2026-03-13", tz="UTC"),
            pd.Timestamp("2026-03-30", tz="UTC"),
        ]
    )
    assert list(expected) == pytest.approx([0, 2 * 4 / 7, 2, 2 + 4 * 4 / 7, 6])
    # One unit alone is due in its own week.
    only_u2 = p.expected([pd.Timestamp("2026-03-06", tz="UTC")], unit="U2")
    assert list(only_u2) == [0]


def test_pace_defaults_to_first_activity_and_a_week_per_unit(frames):
    p = pace(frames)
    assert p.start == pd.Timestamp("2026-03-01", tz="UTC")  # Ann and Eve began 03-01
    assert p.end == p.start + pd.Timedelta(weeks=2)


def test_no_activity_and_no_start_means_no_pace():
    p = analytics.pace_for(
        analytics.assignments_frame([(1, "a", "A", "lesson", "", 0, 1)]),
        analytics.progressions_frame([]),
    )
    assert not p.defined
    assert all(pd.isna(p.expected([pd.Timestamp("2026-03-01", tz="UTC")])))


def test_cumulative_completions_per_day(frames):
    p = pace(frames, starts_on=hc.STARTS_ON, ends_on=hc.ENDS_ON)
    table = analytics.progress_over_time(
        *frames, pace=p, first=date(2026, 3, 3), last=date(2026, 3, 20), freq="D"
    )
    assert list(table["period_end"]) == [date(2026, 3, d) for d in range(3, 21)]
    assert list(table["cumulative"]) == [CUMULATIVE[d] for d in range(3, 21)]
    # The first period's completions exclude those before the window (3 by 03-02).
    assert list(table["completions"][:4]) == [2, 2, 1, 1]
    assert table["completions"].sum() == 12 - 3
    assert table["per_student"].iloc[-1] == pytest.approx(12 / 5)
    assert table["share"].iloc[-1] == pytest.approx(12 / 5 / 6)
    # End of 03-05 is 4 days into U1: 2 x 4/7 expected per student.
    assert table.loc[table["period_end"] == date(2026, 3, 5), "expected_per_student"].item() == (
        pytest.approx(8 / 7)
    )
    assert table["expected_per_student"].iloc[-1] == 6
    assert table["expected_share"].iloc[-1] == 1


def test_cumulative_completions_per_week(frames):
    p = pace(frames, starts_on=hc.STARTS_ON, ends_on=hc.ENDS_ON)
    table = analytics.progress_over_time(
        *frames, pace=p, first=date(2026, 3, 2), last=date(2026, 3, 20), freq="W"
    )
    # Weeks end on Sunday; the last period ends today.
    assert list(table["period_end"]) == [date(2026, 3, 8), date(2026, 3, 15), date(2026, 3, 20)]
    assert list(table["cumulative"]) == [10, 11, 12]
    assert list(table["completions"]) == [9, 1, 1]  # Eve's 03-01 Intro came before
    assert list(table["expected_per_student"]) == pytest.approx([2, 6, 6])


def test_each_students_own_series(frames):
    table = analytics.progress_by_student(
        *frames, first=date(2026, 3, 2), last=date(2026, 3, 20), freq="W", student_ids=[5, 4]
    )
    series = {
        sid: list(group["cumulative"]) for sid, group in table.groupby("student_id", sort=True)
    }
    # Eve: 03-01 and 03-02 and 03-04 by the first Sunday, then 03-19; Dan: nothing.
    assert series == {4: [0, 0, 0], 5: [3, 3, 4]}


def test_week_over_week_trend(frames):
    table = analytics.weekly_trend(*frames, now=hc.NOW)
    rows = {r["student_id"]: r for r in analytics.records(table)}
    # Last 7 days: (03-13 12:00, 03-20 12:00]; the 7 before: (03-06 12:00, 03-13 12:00].
    assert (rows[5]["this_week"], rows[5]["last_week"], rows[5]["trend"]) == (1, 0, "improving")
    assert (rows[1]["this_week"], rows[1]["last_week"], rows[1]["trend"]) == (0, 1, "worsening")
    assert rows[3]["trend"] == "worsening"  # Cat's Project on 03-11
    # Bob's Loops quiz at 03-06 10:00 falls just before the earlier window.
    assert (rows[2]["this_week"], rows[2]["last_week"], rows[2]["trend"]) == (0, 0, "steady")
    assert rows[4]["trend"] == "steady"


def test_progress_window_runs_from_the_pace_start_to_today(frames):
    p = pace(frames, starts_on=hc.STARTS_ON, ends_on=hc.ENDS_ON)
    # The first completion (03-01) comes before the course start (03-02).
    assert analytics.progress_window(frames[2], pace=p, now=hc.NOW) == (
        date(2026, 3, 1),
        date(2026, 3, 20),
    )
    assert analytics.choose_freq(date(2026, 3, 1), date(2026, 3, 20)) == "D"
    assert analytics.choose_freq(date(2026, 1, 1), date(2026, 3, 20)) == "W"


# --- the page's composition and filters ------------------------------------------------


def cohort_health(frames, **kw):
    return analytics.CohortHealth(
        *frames,
        thresholds=Thresholds(),
        now=hc.NOW,
        **{"starts_on": hc.STARTS_ON, "ends_on": hc.ENDS_ON, **kw},
    )


def test_headline_figures(frames):
    h = cohort_health(frames)
    headline = h.headline
    assert (headline["students"], headline["assignments"]) == (5, 6)
    assert headline["completion"] == pytest.approx(0.4)
    assert (headline["on_track"], headline["watch"], headline["at_risk"]) == (1, 1, 3)
    # 12 completions over 5 students, against all 6 due by now.
    assert headline["average_completed"] == pytest.approx(2.4)
    assert headline["expected_completed"] == 6
    assert headline["pace_gap"] == pytest.approx(-3.6)
    assert headline["top_blocker"] == {
        "name": "Recursion quiz",
        "stuck": 2,
        "score": 50.1,
        "reason": "2 students stuck on it",
    }
    # In the last 7 days: Eve's Recursion quiz.
    assert headline["completions_in_range"] == 1
    assert h.freq == "D"


def test_unit_filter_narrows_completion_but_not_health(frames):
    h = cohort_health(frames, unit="U1")
    assert list(h.completion["name"]) == ["Intro", "Loops quiz"]
    assert h.overall["completion"] == pytest.approx(8 / 10)
    assert list(h.blockers["name"]) == ["Loops quiz", "Intro"]
    assert h.health_counts == cohort_health(frames).health_counts
    # U1 alone: 2 per student by now, 8 completions over 5 students.
    assert h.headline["pace_gap"] == pytest.approx(8 / 5 - 2)
    assert cohort_health(frames, unit="No such unit").unit is None


def test_date_to_shows_the_cohort_as_it_stood(frames):
    h = cohort_health(frames, date_to=date(2026, 3, 8))
    assert h.now == pd.Timestamp("2026-03-08 23:59:59.999999", tz="UTC")
    # Eve's Recursion quiz (03-19) and both Recursion starts are in the future.
    recursion = h.completion.loc[h.completion["name"] == "Recursion quiz"].iloc[0]
    assert (recursion["started"], recursion["completed"]) == (0, 0)
    assert h.overall["completed"] == 10
    rows = {r["name"]: r for r in analytics.records(h.health)}
    # On 03-08 Cat was active (03-06 start) and Eve had no graded quiz yet.
    assert rows["Eve Evans"]["quiz_average"] is None
    assert rows["Cat Cole"]["days_inactive"] == 2
    assert rows["Ann Archer"]["status"] == ON_TRACK
    # Ann's Project, completed 03-08 10:00, was reviewed only on 03-09: that evening it
    # was waiting (and Cat's was not completed yet).
    project = h.blockers.loc[h.blockers["name"] == "Project"].iloc[0]
    assert project["waiting_review"] == 1
    assert project["median_waiting_days"] == pytest.approx(14 / 24, abs=1e-6)
    assert h.window == (date(2026, 3, 1), date(2026, 3, 8))


def test_date_from_bounds_the_chart_and_the_range_figure(frames):
    h = cohort_health(frames, date_from=date(2026, 3, 10))
    assert h.window == (date(2026, 3, 10), date(2026, 3, 20))
    assert h.progress["cumulative"].iloc[0] == CUMULATIVE[10]
    # Completions on or after 03-10: Cat's Project (03-11) and Eve's quiz (03-19).
    assert h.headline["completions_in_range"] == 2
    assert h.headline["completions_since"] == date(2026, 3, 10)


def test_a_students_progress_beside_the_cohort(frames):
    h = cohort_health(frames, freq="W")
    series = h.student_progress(5)
    # The window starts with the first completion, Sunday 03-01; weeks end on Sundays.
    ends = [date(2026, 3, 1), date(2026, 3, 8), date(2026, 3, 15), date(2026, 3, 20)]
    assert list(series["period_end"]) == ends
    # Eve: Intro 03-01; Loops 03-02 and Project 03-04; Recursion 03-19.
    assert list(series["student"]) == [1, 3, 3, 4]
    assert list(series["cumulative"]) == [1, 10, 11, 12]


def test_empty_cohort_has_every_figure():
    h = analytics.CohortHealth(
        analytics.students_frame([]),
        analytics.assignments_frame([]),
        analytics.progressions_frame([]),
        thresholds=Thresholds(),
        now=hc.NOW,
    )
    assert h.window is None
    assert h.progress.empty
    assert h.headline["students"] == 0
    assert h.headline["top_blocker"] is None
    assert h.headline["pace_gap"] is None
    assert h.health.empty


def test_students_with_nothing_are_at_risk_even_in_a_quiet_cohort():
    h = analytics.CohortHealth(
        analytics.students_frame([(1, "a", "A", "", "")]),
        analytics.assignments_frame([(1, "x", "X", "lesson", "", 0, 1)]),
        analytics.progressions_frame([]),
        thresholds=Thresholds(),
        now=hc.NOW,
    )
    assert list(h.health["status"]) == [AT_RISK]


# --- freshness -------------------------------------------------------------------------


def fresh(last=None, status="", interval=None):
    return analytics.freshness(
        last_synced_at=last, last_sync_status=status, sync_interval_hours=interval, now=hc.NOW
    )


def test_freshness_states():
    assert fresh()["state"] == "never"
    assert fresh()["stale"] is False
    recent = fresh(hc.NOW - timedelta(hours=5), "succeeded", 6)
    assert (recent["state"], recent["stale"], recent["age_hours"]) == ("fresh", False, 5.0)
    # Interval plus 30 minutes of grace for the queue.
    assert fresh(hc.NOW - timedelta(hours=6, minutes=29), "succeeded", 6)["state"] == "fresh"
    late = fresh(hc.NOW - timedelta(hours=6, minutes=31), "succeeded", 6)
    assert (late["state"], late["stale"], late["label"]) == (
        "stale",
        True,
        "scheduled pull overdue",
    )
    # Without a schedule an old pull is not overdue: nobody promised a newer one.
    assert fresh(hc.NOW - timedelta(days=30), "succeeded")["state"] == "fresh"
    assert fresh(None, "", 6)["label"] == "never pulled"
    assert fresh(None, "", 6)["state"] == "stale"


def test_a_failed_pull_is_failing_even_when_recent():
    failing = fresh(hc.NOW - timedelta(minutes=5), "failed", 6)
    assert (failing["state"], failing["stale"], failing["label"]) == (
        "failing",
        True,
        "last pull failed",
    )


# --- review notes: edge cases --------------------------------------------------------


def test_a_far_future_to_date_is_today():
    # date.max + a day overflows: the page, CSV and API must not fail on ?to=9999-12-31.
    frames = hc.frames()
    h = cohort_health(frames, date_to=date.max)
    assert h.now == pd.Timestamp(hc.NOW)
    assert h.headline["completed"] == cohort_health(frames).headline["completed"]
    assert h.window == (date(2026, 3, 1), date(2026, 3, 20))


def test_days_start_at_local_midnight_even_when_dst_skips_it(frames):
    # Chile moves its clocks from 00:00 to 01:00 on Sunday 2026-09-06: that day has no
    # midnight. The day still starts (at 01:00 local, UTC-3: 04:00 UTC) and nothing fails.
    tz = "America/Santiago"
    assert analytics._local_midnight(date(2026, 9, 6), tz) == pd.Timestamp(
        "2026-09-06 04:00", tz="UTC"
    )
    h = analytics.CohortHealth(
        *frames,
        thresholds=Thresholds(),
        now=pd.Timestamp("2026-09-10 12:00", tz="UTC"),
        tz=tz,
        starts_on=date(2026, 9, 6),
        date_from=date(2026, 9, 1),
        freq="D",
    )
    assert h.pace.start == pd.Timestamp("2026-09-06 04:00", tz="UTC")
    assert list(h.progress["period_end"])[:2] == [date(2026, 9, 1), date(2026, 9, 2)]
    assert h.progress["cumulative"].iloc[-1] == 12


def test_date_to_keeps_a_record_that_only_has_a_review():
    # A progression counts once it has a start, a completion or a review: as of a later
    # day, a review-only record is still activity.
    students = analytics.students_frame([(1, "a", "Ann", "", "")])
    assignments = analytics.assignments_frame([(1, "x", "X", "project", "", 0, 1)])
    progressions = analytics.progressions_frame([(1, 1, None, None, None, hc.at(5))])
    kw = {"thresholds": Thresholds(), "now": hc.NOW}
    now = analytics.CohortHealth(students, assignments, progressions, **kw)
    then = analytics.CohortHealth(
        students, assignments, progressions, date_to=date(2026, 3, 10), **kw
    )
    assert now.health["reason"].iloc[0] == "no activity for 15 days"
    assert then.health["last_activity"].iloc[0] == pd.Timestamp(hc.at(5))
    assert (then.health["days_inactive"].iloc[0], then.health["status"].iloc[0]) == (5, ON_TRACK)


def test_a_unit_filter_does_not_change_what_waits_for_review():
    # Projects get reviewed in U2 only; Ann's U1 warm-up project waits all the same, with
    # or without the unit filter (the filter narrows the rows, not the figures).
    students, assignments, progressions = hc.frames()
    assignments = analytics.assignments_frame(
        [*hc.ASSIGNMENTS, (107, "a-warm", "Warm-up project", "project", "U1", 1, 3)]
    )
    progressions = analytics.progressions_frame(
        [*hc.PROGRESSIONS, (1, 107, None, hc.at(10), hc.at(12), None)]
    )
    frames = (students, assignments, progressions)
    everything = cohort_health(frames).blockers.set_index("name")
    only_u1 = cohort_health(frames, unit="U1").blockers.set_index("name")
    assert everything.loc["Warm-up project", "waiting_review"] == 1
    assert only_u1.loc["Warm-up project", "waiting_review"] == 1
    assert only_u1.loc["Warm-up project", "score"] == everything.loc["Warm-up project", "score"]


def test_a_pull_refused_as_invalid_is_failing():
    # A pull that stopped on its configuration (status "invalid", exit 2) failed too: the
    # figures are not being refreshed, schedule or not.
    assert fresh(hc.NOW - timedelta(minutes=5), "invalid", 6)["state"] == "failing"
    assert fresh(hc.NOW - timedelta(minutes=5), "invalid")["stale"] is True
    assert fresh(hc.NOW - timedelta(minutes=5), "partial", 6)["state"] == "fresh"


def test_pace_with_course_dates_is_not_an_assumption(frames):
    h = cohort_health(frames)
    assert not h.pace.assumed and h.headline["pace_assumed"] == ""


def test_pace_without_course_dates_says_it_is_assumed_and_how(frames):
    h = cohort_health(frames, starts_on=None, ends_on=None)
    assert h.pace.assumed
    text = h.headline["pace_assumed"]
    assert text.startswith("The pace is assumed, because no course dates are set:")
    assert "first activity" in text and "1 week per unit (2 units" in text
    only_end = cohort_health(frames, ends_on=None).headline["pace_assumed"]
    assert "no end date is set" in only_end and "first activity" not in only_end
