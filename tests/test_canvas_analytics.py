"""Health metrics that fit both sources: Canvas has no start times but flags work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from cohorts import analytics
from cohorts.models import Cohort, Source
from cohorts.selectors import cohort_frames, cohort_list_rows
from integrations.canvas.pull import canvas_params_for, canvas_run_create
from integrations.canvas.simulator import BIOLOGY
from integrations.jobs import job_execute

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def frames(flags_rows, vendor_activity=None):
    students = analytics.students_frame(
        [(1, "s1", "Ada", "A", ""), (2, "s2", "Bo", "B", ""), (3, "s3", "Cy", "C", "")]
    )
    if vendor_activity is not None:
        students["vendor_last_activity"] = analytics._utc(vendor_activity)
    assignments = analytics.assignments_frame(
        [(10 + i, f"a{i}", f"A{i}", "assignment", "U", 1, i) for i in range(4)]
    )
    done = NOW - timedelta(days=1)
    rows = [
        # student, assignment, grade, started, completed, reviewed, missing, late
        (1, 10, 0.9, None, done, done, False, False),
        (2, 10, 0.8, None, done, None, False, True),
        (3, 10, 0.7, None, done, None, False, True),
        *flags_rows,
    ]
    return students, assignments, analytics.progressions_frame(rows)


def test_signals_are_said_in_words():
    canvas = analytics.signals_for("canvas").words
    assert "no start times" in canvas and "missing" in canvas
    openclass = analytics.signals_for("openclass").words
    assert "start times" in openclass and "no missing or late" in openclass


def test_missing_work_puts_students_on_watch_then_at_risk():
    flags = [(1, a, None, None, None, None, True, False) for a in (11, 12, 13)]
    flags.append((2, 11, None, None, None, None, True, False))
    students, assignments, progressions = frames(flags)
    health = analytics.CohortHealth(
        students,
        assignments,
        progressions,
        thresholds=analytics.Thresholds(inactive_days=30, behind_fraction=1.0, low_grade=0),
        now=NOW,
        source="canvas",
    ).health.set_index("student_id")
    assert health.loc[1, "status"] == analytics.AT_RISK
    assert "3 missing submissions" in health.loc[1, "reasons"]
    assert health.loc[2, "status"] == analytics.WATCH
    assert "1 missing submission" in health.loc[2, "reasons"]
    assert health.loc[3, "status"] == analytics.ON_TRACK


def test_the_sources_last_activity_counts_as_activity():
    old = NOW - timedelta(days=40)
    students, assignments, progressions = frames([], vendor_activity=[NOW, old, None])
    summary = analytics.student_summary(students, assignments, progressions)
    assert summary.loc[0, "last_activity"] == pd.Timestamp(NOW)
    # Their own work (a day ago) is later than the source's 40 days.
    assert summary.loc[1, "last_activity"] == pd.Timestamp(NOW - timedelta(days=1))


def test_without_start_times_stuck_counts_missing_work_and_slow_late_work():
    flags = [(s, 11, None, None, None, None, True, False) for s in (1, 2)]
    students, assignments, progressions = frames(flags)
    health = analytics.CohortHealth(
        students,
        assignments,
        progressions,
        thresholds=analytics.Thresholds(),
        now=NOW,
        source="canvas",
    )
    blockers = health.blockers.set_index("assignment_id")
    assert blockers.loc[11, "stuck"] == 2 and blockers.loc[11, "basis"] == "missing"
    assert blockers.loc[10, "late_share"] == pytest.approx(2 / 3)
    assert blockers.loc[10, "part_slow"] == 1.0
    assert analytics.blocker_reason(blockers.loc[11]) == "2 students missing it (past due)"
    # The same data read as a source with start times: nothing is "stuck".
    plain = analytics.CohortHealth(
        students, assignments, progressions, thresholds=analytics.Thresholds(), now=NOW
    )
    assert plain.blockers["stuck"].sum() == 0


@pytest.mark.django_db
def test_a_pulled_canvas_cohort_has_stuck_work_signals_and_agreeing_pages(
    canvas, client, admin_user
):
    sim = canvas()
    run = canvas_run_create(params=canvas_params_for(course_ids=[BIOLOGY]), triggered_by="t")
    job_execute(run.pk, send_report=False)
    cohort = Cohort.objects.get(source=Source.CANVAS, external_id=BIOLOGY)
    students, assignments, progressions = cohort_frames(cohort=cohort)
    course = sim.course(BIOLOGY)
    assert len(students) == len(sim.active_students(BIOLOGY))
    assert len(assignments) == sum(a.published for a in course.assignments)
    assert students["vendor_last_activity"].notna().all()

    client.force_login(admin_user)
    page = client.get(f"/cohorts/{cohort.pk}/").content.decode()
    assert "no start times" in page
    from django.utils import timezone

    health = analytics.CohortHealth(
        students,
        assignments,
        progressions,
        thresholds=analytics.Thresholds.of(cohort),
        now=timezone.now(),
        source=cohort.source,
    )
    assert health.blockers["stuck"].sum() == sum(
        s.missing for s in course.submissions if s.user_id in set(sim.active_students(BIOLOGY))
    )
    assert health.blockers["stuck"].sum() > 0
    row = next(
        r for r in cohort_list_rows(user=admin_user, now=timezone.now()) if r["cohort"] == cohort
    )
    assert row["at_risk"] == health.health_counts[analytics.AT_RISK]
    assert row["watch"] == health.health_counts[analytics.WATCH]
    assert row["assignments"] == len(assignments)
