"""Bulk Canvas pulls: a parent run with one child run per course, against the simulator."""

from __future__ import annotations

import pytest

from cohorts.models import Cohort, Progression, Source
from integrations.canvas.pull import canvas_params_for, canvas_run_create
from integrations.canvas.simulator import (
    ALGEBRA_OLD,
    BIOLOGY,
    CHEMISTRY,
    TERM_SPRING,
    WORLD_HISTORY,
)
from integrations.jobs import job_execute
from reports.models import Run, RunStatus
from reports.selectors import run_children

pytestmark = pytest.mark.django_db


def bulk(**kw) -> Run:
    kw.setdefault("all_courses", True)
    run = canvas_run_create(params=canvas_params_for(**kw), triggered_by="test")
    return job_execute(run.pk, send_report=False)


def by_course(parent: Run) -> dict[str, Run]:
    return {c.params["course_id"]: c for c in run_children(run=parent)}


def test_a_failing_course_does_not_stop_the_others(canvas):
    sim = canvas()
    parent = bulk()
    assert parent.status == RunStatus.PARTIAL, parent.message
    children = by_course(parent)
    assert set(children) == {BIOLOGY, CHEMISTRY, WORLD_HISTORY}  # available, the default
    assert parent.counts["courses"] == 3 and parent.counts["fetched"] > 0
    assert parent.counts["succeeded"] == 2 and parent.counts["failed"] == 1
    assert "2 of 3 courses pulled" in parent.message and "success rate 67%" in parent.message
    failed = children[WORLD_HISTORY]
    assert failed.status == RunStatus.FAILED and failed.error_class == "permission"
    assert failed.params["failure"] == {
        "kind": "permission",
        "label": "Permission denied",
        "retryable": False,
    }
    for course_id in (BIOLOGY, CHEMISTRY):
        child = children[course_id]
        assert child.status == RunStatus.SUCCEEDED, child.message
        assert set(child.stage_timings) >= {"course", "students", "submissions", "store"}
        cohort = Cohort.objects.get(source=Source.CANVAS, external_id=course_id)
        expected = sim.course_counts(course_id)
        assert Progression.objects.filter(cohort=cohort).count() == expected["submissions"]
        assert cohort.last_sync_run_id == child.pk


def test_filters_state_term_and_max_courses(canvas):
    canvas()
    assert set(by_course(bulk(state="completed"))) == {ALGEBRA_OLD}
    assert set(by_course(bulk(term=str(TERM_SPRING)))) == {WORLD_HISTORY}
    assert len(by_course(bulk(max_courses=2, profile="lightweight"))) == 2


def test_listed_courses_and_a_lightweight_profile(canvas):
    sim = canvas()
    parent = bulk(all_courses=False, course_ids=[BIOLOGY, CHEMISTRY], profile="lightweight")
    assert parent.status == RunStatus.SUCCEEDED, parent.message
    assert not sim.calls("GET", "/assignments$") and not sim.calls("GET", "/submissions$")
    cohort = Cohort.objects.get(external_id=CHEMISTRY)
    assert cohort.students.count() == sim.course_counts(CHEMISTRY)["students"]
    assert not cohort.assignments.exists()
    scores = cohort.enrollments.exclude(current_score=None)
    assert scores.count() == cohort.students.count()


def test_a_failed_course_is_retried_alone_from_the_parent_page(
    canvas, client, admin_user, django_capture_on_commit_callbacks
):
    sim = canvas()
    parent = bulk()
    failed = by_course(parent)[WORLD_HISTORY]
    client.force_login(admin_user)
    page = client.get(f"/runs/{parent.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Runs of this pull" in html and "Permission denied" in html
    assert f"/integrations/canvas/runs/{failed.pk}/retry/" in html
    biology_calls = len(sim.calls("GET", f"/courses/{BIOLOGY}$"))

    sim.course(WORLD_HISTORY).submissions_forbidden = False  # the admin fixed the token's role
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/integrations/canvas/runs/{failed.pk}/retry/")
    assert response.status_code == 302 and response.url == f"/runs/{parent.pk}/"
    retry = by_course(parent)[WORLD_HISTORY]
    assert retry.pk != failed.pk and retry.params["retry_of"] == failed.pk
    assert retry.status == RunStatus.SUCCEEDED, retry.message
    assert len(sim.calls("GET", f"/courses/{BIOLOGY}$")) == biology_calls  # only that course
    parent.refresh_from_db()
    assert parent.status == RunStatus.SUCCEEDED
    assert parent.counts["succeeded"] == 3 and parent.counts["failed"] == 0


def test_a_refused_token_fails_the_bulk_run(canvas, settings):
    canvas()
    settings.CANVAS_TOKEN = "not-the-token-5b1e"
    parent = bulk(all_courses=False, course_ids=[BIOLOGY, CHEMISTRY])
    assert parent.status == RunStatus.FAILED and parent.error_class == "auth"
    assert "not-the-token-5b1e" not in parent.message


def test_a_worker_killed_mid_bulk_resumes_and_keeps_finished_courses(
    canvas, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from integrations.canvas import pull as pull_module
    from integrations.tasks import runs_reap

    sim = canvas()
    settings.CANVAS_CONCURRENCY = 1

    class Killed(BaseException):
        pass

    real_store = pull_module.course_store
    stored = []

    def store_then_die(tracker, data):
        if stored:
            raise Killed
        stored.append(tracker.run.pk)
        real_store(tracker, data)

    monkeypatch.setattr(pull_module, "course_store", store_then_die)
    params = canvas_params_for(course_ids=[BIOLOGY, CHEMISTRY, ALGEBRA_OLD])
    parent = canvas_run_create(params=params, triggered_by="t")
    with pytest.raises(Killed):
        job_execute(parent.pk, send_report=False)
    monkeypatch.setattr(pull_module, "course_store", real_store)
    first = Run.objects.get(pk=stored[0])
    assert first.status == RunStatus.SUCCEEDED
    stale = timezone.now() - timezone.timedelta(seconds=settings.RUN_STALE_SECONDS + 60)
    Run.objects.filter(status=RunStatus.RUNNING).update(heartbeat_at=stale)
    with django_capture_on_commit_callbacks(execute=True):
        assert runs_reap() >= 1
    parent.refresh_from_db()
    assert parent.status == RunStatus.SUCCEEDED, parent.message
    children = by_course(parent)
    assert len(children) == 3 and all(c.status == RunStatus.SUCCEEDED for c in children.values())
    assert children[BIOLOGY].pk == first.pk  # kept, not pulled again
    for course_id in (BIOLOGY, CHEMISTRY, ALGEBRA_OLD):
        expected = sim.course_counts(course_id)["submissions"]
        assert Progression.objects.filter(cohort__external_id=course_id).count() == expected


def test_throttling_and_server_errors_in_a_bulk_run(canvas, canvas_clock, settings):
    settings.HTTP_MAX_RETRIES = 8
    sim = canvas(clock=canvas_clock, fail_rate=0.2, high_water=300.0, request_cost=100.0)
    settings.CANVAS_RATE_LIMIT_FLOOR = 150  # slow down before the bucket empties
    parent = bulk(all_courses=False, course_ids=[BIOLOGY, CHEMISTRY, ALGEBRA_OLD])
    assert parent.status == RunStatus.SUCCEEDED, parent.message
    assert any(status == 500 for _, _, status in sim.request_log)
    assert any(status == 403 for _, _, status in sim.request_log)
    for course_id in (BIOLOGY, CHEMISTRY, ALGEBRA_OLD):
        expected = sim.course_counts(course_id)["submissions"]
        assert Progression.objects.filter(cohort__external_id=course_id).count() == expected
