"""Students who leave: a complete pull that no longer sees a student makes their enrollment
inactive; they count in no metric, page, CSV or API figure, their page says they left and
when, and a later pull that sees them again brings them back."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse

from cohorts import analytics
from cohorts.api import api_token_create
from cohorts.models import Cohort, Enrollment, Source, Student
from cohorts.selectors import cohort_frames, cohort_list_rows
from cohorts.services import enrollments_reconcile
from integrations.jobs import job_execute
from integrations.openclass import pull
from integrations.openclass.pull import openclass_run_create
from integrations.openclass.simulator import WEB
from integrations.simulator import Response
from reports.models import RunStatus
from tests import health_cohort as hc

pytestmark = pytest.mark.django_db

LEFT_AT = hc.NOW - timedelta(days=2)  # 18 Mar 2026


@pytest.fixture
def eve_left(ids, cohort_a, health_now):
    """Eve (student 5, at risk) no longer seen by a complete pull."""
    result = enrollments_reconcile(
        cohort=cohort_a, seen_student_ids=[ids[s] for s in (1, 2, 3, 4)], at=LEFT_AT
    )
    assert (result.left, result.returned) == (1, 0)
    return ids[5]


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body[1:])))


# --- the service -----------------------------------------------------------------------


def test_reconcile_marks_leavers_and_brings_them_back(ids, cohort_a, cohort_b, eve_left):
    enrollment = Enrollment.objects.get(cohort=cohort_a, student_id=eve_left)
    assert (enrollment.active, enrollment.left_at) == (False, LEFT_AT)
    # Another cohort's enrollments are never touched.
    other = Enrollment.objects.create(cohort=cohort_b, student_id=eve_left)
    # Seen again: active, no leaving date; an unchanged second call changes nothing.
    everyone = list(ids.values())
    result = enrollments_reconcile(cohort=cohort_a, seen_student_ids=everyone)
    assert (result.left, result.returned) == (0, 1)
    enrollment.refresh_from_db()
    assert (enrollment.active, enrollment.left_at) == (True, None)
    result = enrollments_reconcile(cohort=cohort_a, seen_student_ids=everyone)
    assert (result.left, result.returned) == (0, 0)
    other.refresh_from_db()
    assert other.active


# --- every figure leaves them out ------------------------------------------------------


def test_the_metrics_leave_a_leaver_out(mentor_a, ids, cohort_a, eve_left):
    students, assignments, progressions = cohort_frames(cohort=cohort_a)
    assert eve_left not in set(students["student_id"])
    health = analytics.CohortHealth(
        students,
        assignments,
        progressions,
        thresholds=analytics.Thresholds.of(cohort_a),
        now=hc.NOW,
    )
    # Eve's four completions and her seat are gone from every denominator.
    assert health.overall["students"] == 4 and health.overall["possible"] == 24
    assert health.overall["completed"] == 8
    assert health.health_counts == {"on_track": 1, "watch": 1, "at_risk": 2}
    assert (health.progress["per_student"].iloc[-1]) == 8 / 4
    row = cohort_list_rows(user=mentor_a, now=hc.NOW)[0]
    assert (row["students"], row["completed"], row["at_risk"]) == (4, 8, 2)


def test_pages_and_csvs_leave_a_leaver_out(client, mentor_a, ids, cohort_a, eve_left):
    client.force_login(mentor_a)
    listing = client.get(reverse("cohorts:list")).content.decode()
    assert "33%" in listing and "2 at risk" in listing  # 8 of 24
    rows = csv_rows(client.get(reverse("cohorts:list_csv")))
    assert rows[1][3] == "4"
    page = client.get(reverse("cohorts:detail", args=[cohort_a.pk])).content.decode()
    table = page.split('id="students-table"')[1].split("</table>")[0]
    assert "Eve Evans" not in table
    # Listed apart, linked to her page.
    leavers = page.split('id="leavers"')[1].split("</details>")[0]
    assert "1 student left the cohort" in leavers and "Eve Evans" in leavers
    assert "left 18 Mar 2026" in leavers
    students_csv = csv_rows(
        client.get(reverse("cohorts:table_csv", args=[cohort_a.pk, "students"]))
    )
    assert "Eve Evans" not in [r[0] for r in students_csv]
    completion = csv_rows(
        client.get(reverse("cohorts:table_csv", args=[cohort_a.pk, "completion"]))
    )
    assert {r[5] for r in completion[1:]} == {"4"}  # students per assignment


def test_the_student_page_says_they_left_and_when(
    client, mentor_a, ids, cohort_a, eve_left, django_assert_num_queries
):
    client.force_login(mentor_a)
    url = reverse("cohorts:student", args=[cohort_a.pk, eve_left])
    client.get(url)  # computes the cohort's stored health
    # As for any student (10), but her history is read live: the three frames, not her rows.
    with django_assert_num_queries(12):
        response = client.get(url)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Eve Evans left this cohort on" in page and "18 Mar 2026" in page
    assert "count in none of the cohort" in page
    assert "Left the cohort" in page and "At risk" not in page
    assert "Recursion quiz" in page  # her history stays
    timeline = csv_rows(
        client.get(reverse("cohorts:student_csv", args=[cohort_a.pk, eve_left, "timeline"]))
    )
    assert len(timeline) == 5  # header + four assignments
    # Notes can still be added.
    response = client.post(url, {"body": "Moved to the evening class."})
    assert response.status_code == 302
    # An active student's page says nothing of leaving.
    other = client.get(reverse("cohorts:student", args=[cohort_a.pk, ids[1]])).content.decode()
    assert "left this cohort" not in other


def test_the_api_leaves_a_leaver_out(client, mentor_a, ids, cohort_a, eve_left):
    key = api_token_create(user=mentor_a, name="t")[1]
    headers = {"Authorization": f"Token {key}"}

    def get(name, **params):
        response = client.get(
            reverse(f"cohorts:{name}", args=[cohort_a.pk]), params, headers=headers
        )
        assert response.status_code == 200, response.content
        return response.json()

    assert (
        client.get(reverse("cohorts:api_cohorts"), headers=headers).json()["results"][0]["students"]
        == 4
    )
    summary = get("api_progress_summary")
    assert summary["students"] == 4 and summary["possible"] == 24
    assert summary["health"] == {"on_track": 1, "watch": 1, "at_risk": 2}
    health = get("api_metrics_student_health")
    assert eve_left not in [r["student_id"] for r in health["results"]]
    assert get("api_metrics_completion")["overall"]["students"] == 4
    blockers = get("api_metrics_blockers")["results"]
    assert all(p["id"] != eve_left for b in blockers for p in b["stuck_at_risk"])
    progress = get("api_metrics_progress_over_time")
    assert eve_left not in [s["student_id"] for s in progress["students"]]
    # The students list: active ones, or everyone with include_left, saying who left.
    assert eve_left not in [s["id"] for s in get("api_students")["results"]]
    everyone = {s["id"]: s for s in get("api_students", include_left="true")["results"]}
    assert everyone[eve_left]["active"] is False
    assert everyone[eve_left]["left_at"] == "2026-03-18T12:00:00Z"
    assert everyone[ids[1]]["active"] is True and everyone[ids[1]]["left_at"] is None


def test_a_leaver_active_elsewhere_stays_in_that_cohort(
    client, admin_user, ids, cohort_a, cohort_b, eve_left
):
    # Each cohort reads its own enrollment of the student, never the other's.
    Enrollment.objects.create(cohort=cohort_b, student_id=eve_left)
    assert eve_left in set(cohort_frames(cohort=cohort_b)[0]["student_id"])
    assert eve_left not in set(cohort_frames(cohort=cohort_a)[0]["student_id"])
    client.force_login(admin_user)
    page_b = client.get(reverse("cohorts:student", args=[cohort_b.pk, eve_left]))
    assert "left this cohort" not in page_b.content.decode()
    page_a = client.get(reverse("cohorts:student", args=[cohort_a.pk, eve_left]))
    assert "left this cohort" in page_a.content.decode()
    for cohort, active in ((cohort_a, False), (cohort_b, True)):
        results = client.get(
            reverse("cohorts:api_students", args=[cohort.pk]), {"include_left": "true"}
        ).json()["results"]
        assert [s["active"] for s in results if s["id"] == eve_left] == [active]


# --- the OpenClass pull ----------------------------------------------------------------


def pull_run(class_id: str = WEB):
    run = openclass_run_create(class_id=class_id, triggered_by="test")
    return job_execute(run.pk, send_report=False)


def _serve_without(sim, user_id: str) -> list:
    kept = sim.classes[WEB].progressions
    with sim.lock:
        sim.classes[WEB].progressions = [p for p in kept if p.user_id != user_id]
    return kept


def _enrollment(user_id: str) -> Enrollment:
    return Enrollment.objects.get(
        cohort__external_id=WEB, student__source=Source.OPENCLASS, student__external_id=user_id
    )


def test_a_pull_that_no_longer_sees_a_student_marks_them_left_then_back(openclass):
    sim = openclass()
    first = pull_run()
    assert first.status == RunStatus.SUCCEEDED
    assert "left" not in first.counts and "returned" not in first.counts
    gone = sorted(sim.student_ids(WEB))[0]
    everyone = _serve_without(sim, gone)

    run = pull_run()
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.counts["left"] == 1
    enrollment = _enrollment(gone)
    assert not enrollment.active and enrollment.left_at is not None
    cohort = Cohort.objects.get(external_id=WEB)
    assert len(cohort_frames(cohort=cohort)[0]) == len(sim.student_ids(WEB))

    with sim.lock:
        sim.classes[WEB].progressions = everyone
    run = pull_run()
    assert run.counts["returned"] == 1 and "left" not in run.counts
    enrollment.refresh_from_db()
    assert enrollment.active and enrollment.left_at is None


def test_a_pull_that_dies_midway_marks_nobody_left(openclass, settings, monkeypatch):
    sim = openclass()
    pull_run()
    # The student served last is only on the last page, which the broken pull never reads.
    last = sim.progressions(WEB)[-1].user_id
    settings.HTTP_MAX_RETRIES = 0
    real_upsert = pull.progressions_upsert

    def upsert_then_break(**kwargs):
        result = real_upsert(**kwargs)
        sim.fail_next("GET", r"/progressions$", Response.json({"error": "down"}, 500), times=5)
        return result

    monkeypatch.setattr(pull, "progressions_upsert", upsert_then_break)
    run = pull_run()
    assert run.status == RunStatus.FAILED
    assert not Enrollment.objects.filter(cohort__external_id=WEB, active=False).exists()
    assert _enrollment(last).active


def test_a_pull_with_skipped_records_marks_nobody_left(openclass):
    sim = openclass(broken_progressions=1)
    gone = sorted(sim.student_ids(WEB))[0]
    # Stored before, now unseen; but a skipped record may be theirs: nobody leaves.
    Student.objects.create(source=Source.OPENCLASS, external_id="s-old")
    pull_run()
    cohort = Cohort.objects.get(external_id=WEB)
    Enrollment.objects.create(cohort=cohort, student=Student.objects.get(external_id="s-old"))
    _serve_without(sim, gone)
    run = pull_run()
    assert run.status == RunStatus.PARTIAL
    assert not Enrollment.objects.filter(cohort=cohort, active=False).exists()


def test_a_listing_that_ends_early_marks_nobody_left(openclass, monkeypatch):
    sim = openclass()
    pull_run()
    # The vendor promises more, then serves an empty page: the client stops there.
    real_page = pull.OpenClassClient.progression_page

    def short(self, class_id, page, page_size):
        result = real_page(self, class_id, page, page_size)
        if page >= 1:
            return type(result)(
                page=result.page,
                total=result.total,
                results_per_page=result.results_per_page,
                can_load_more=True,
                progressions=(),
                invalid=(),
            )
        return result

    monkeypatch.setattr(pull.OpenClassClient, "progression_page", short)
    run = pull_run()
    assert run.status == RunStatus.SUCCEEDED
    cohort = Cohort.objects.get(external_id=WEB)
    assert not Enrollment.objects.filter(cohort=cohort, active=False).exists()
    assert len(sim.progressions(WEB)) > 100  # so page 1 was needed
