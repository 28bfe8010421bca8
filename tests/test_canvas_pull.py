"""Canvas pulls end to end, against the Canvas simulator over real HTTP."""

from __future__ import annotations

import pytest

from cohorts.models import Assignment, Cohort, Enrollment, Progression, Source, Student
from integrations.canvas.pull import canvas_params_for, canvas_run_create
from integrations.canvas.simulator import BIOLOGY, CHEMISTRY, WORLD_HISTORY
from integrations.jobs import job_execute
from reports.models import Run, RunStatus

pytestmark = pytest.mark.django_db


def pull(*course_ids, **kw) -> Run:
    params = canvas_params_for(course_ids=list(course_ids), **kw)
    run = canvas_run_create(params=params, triggered_by="test")
    return job_execute(run.pk, send_report=False)


def test_a_course_pull_stores_what_the_simulator_serves(canvas):
    sim = canvas()
    expected = sim.course_counts(BIOLOGY)
    run = pull(BIOLOGY)

    assert run.status == RunStatus.SUCCEEDED, run.message
    for key in ("students", "assignments", "modules"):
        assert run.counts[key] == expected[key], key
    # Served: every student's, the test student's and inactive ones' included; stored: the
    # active students' only.
    assert run.counts["submissions"] == expected["submissions_served"]
    assert run.counts["skipped"] >= expected["submissions_served"] - expected["submissions"]
    print(run.stage_timings)
    assert run.counts["course"] == 1 and run.counts["failed"] == 0
    assert run.counts["updated"] == 0 and run.counts["unchanged"] == 0
    assert set(run.stage_timings) >= {
        "course",
        "students",
        "assignments",
        "submissions",
        "modules",
        "store",
    }
    cohort = Cohort.objects.get(source=Source.CANVAS, external_id=BIOLOGY)
    assert cohort.name == "Biology 101" and cohort.last_sync_status == "succeeded"
    assert cohort.students.count() == expected["students"]
    assert Assignment.objects.filter(cohort=cohort).count() == expected["assignments"]
    assert Progression.objects.filter(cohort=cohort).count() == expected["submissions"]


def test_a_rerun_writes_nothing(canvas):
    canvas()
    first = pull(BIOLOGY)
    second = pull(BIOLOGY)
    assert second.status == RunStatus.SUCCEEDED, second.message
    assert second.counts["created"] == 0 and second.counts["updated"] == 0
    assert second.counts["enrollments_updated"] == 0
    # The second pull read only what changed since the first one started: nothing.
    assert second.params["since"]
    assert second.counts["submissions"] < first.counts["submissions"]
    assert second.counts["unchanged"] >= first.counts["students"] + first.counts["assignments"]


def test_a_full_rerun_writes_nothing_either(canvas):
    canvas()
    first = pull(BIOLOGY)
    params = canvas_params_for(course_ids=[BIOLOGY])
    params["full_refresh"] = True
    second = job_execute(canvas_run_create(params=params, triggered_by="t").pk, send_report=False)
    assert second.counts["created"] == 0 and second.counts["updated"] == 0
    assert second.counts["enrollments_updated"] == 0
    assert second.counts["unchanged"] == first.counts["created"]


def test_an_incremental_pull_picks_up_a_changed_grade(canvas):
    sim = canvas()
    pull(BIOLOGY)
    student = sim.active_students(BIOLOGY)[0]
    quiz = next(a for a in sim.course(BIOLOGY).assignments if a.quiz_id)
    sim.set_score(BIOLOGY, quiz.id, student, 5.0)
    run = pull(BIOLOGY)

    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.params["since"]
    assert run.counts["submissions"] < sim.course_counts(BIOLOGY)["submissions"]
    assert run.counts["updated"] == 1 and run.counts["created"] == 0
    assert run.counts["enrollments_updated"] == 1  # the current score moved
    progression = Progression.objects.get(external_id=f"{quiz.id}:{student}")
    assert progression.grade == 5.0 / 20.0 and progression.score == 5.0
    enrollment = Enrollment.objects.get(student=progression.student, cohort=progression.cohort)
    assert enrollment.current_score == next(
        e.current_score for e in sim.course(BIOLOGY).enrollments if e.user_id == student
    )


def test_a_full_refresh_reads_every_submission(canvas):
    sim = canvas()
    pull(BIOLOGY)
    params = canvas_params_for(course_ids=[BIOLOGY])
    params["full_refresh"] = True
    run = job_execute(canvas_run_create(params=params, triggered_by="t").pk, send_report=False)
    assert "since" not in run.params
    assert run.counts["submissions"] == sim.course_counts(BIOLOGY)["submissions_served"]


def test_what_is_stored_follows_the_mapping(canvas):
    sim = canvas()
    pull(CHEMISTRY)
    cohort = Cohort.objects.get(external_id=CHEMISTRY)
    course = sim.course(CHEMISTRY)
    # Modules came without items: each was read on its own, and units follow them.
    assert len(sim.calls("GET", r"/modules/\d+/items$")) == len(course.modules)
    first_module = course.modules[0]
    unit = Assignment.objects.filter(cohort=cohort, unit=first_module.name)
    assert unit.count() == 3 and set(unit.values_list("unit_position", flat=True)) == {1}
    draft = Assignment.objects.get(cohort=cohort, name="Final project (draft)")
    assert not draft.published and draft.unit == ""
    survey = Assignment.objects.get(cohort=cohort, name="Course survey")
    assert survey.points_possible == 0
    assert not Progression.objects.filter(assignment=survey).exclude(grade=None).exists()
    # Canvas has no start times; flags are kept.
    stored = Progression.objects.filter(cohort=cohort)
    assert not stored.exclude(started_at=None).exists()
    served = [s for s in course.submissions if s.user_id in set(sim.active_students(CHEMISTRY))]
    assert stored.filter(missing=True).count() == sum(s.missing for s in served)
    assert stored.filter(late=True).count() == sum(s.late for s in served)
    assert stored.filter(excused=True).count() == sum(s.excused for s in served)
    # Students left out: teachers, TA, test student, invited, inactive, completed.
    names = set(cohort.students.values_list("last_name", flat=True))
    assert not names & {"Teacher", "Assistant", "Invited", "Inactive", "Completed"}
    assert ("Test", "Student") not in set(cohort.students.values_list("first_name", "last_name"))
    # Ids are kept exactly, as text.
    ids = set(Student.objects.filter(source=Source.CANVAS).values_list("external_id", flat=True))
    assert {str(u) for u in sim.active_students(CHEMISTRY)} <= ids


def test_a_permission_403_fails_the_course_with_its_own_class(canvas):
    sim = canvas()
    run = pull(WORLD_HISTORY)
    assert run.status == RunStatus.FAILED
    assert run.error_class == "permission"
    assert "may not read" in run.message
    assert run.params["failure"] == {
        "kind": "permission",
        "label": "Permission denied",
        "retryable": False,
    }
    # Not retried: one request for the submissions.
    assert len(sim.calls("GET", "/students/submissions$")) == 1
    # Nothing of the course is half-stored.
    assert not Cohort.objects.filter(external_id=WORLD_HISTORY).exists()


def test_throttling_and_server_errors_still_give_the_right_counts(canvas, canvas_clock, settings):
    settings.HTTP_MAX_RETRIES = 8
    sim = canvas(
        clock=canvas_clock, request_cost=100.0, leak_rate=10.0, high_water=300.0, fail_rate=0.2
    )
    run = pull(BIOLOGY)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert sim.throttled > 0
    assert any(status == 500 for _, _, status in sim.request_log)
    expected = sim.course_counts(BIOLOGY)
    cohort = Cohort.objects.get(external_id=BIOLOGY)
    assert Progression.objects.filter(cohort=cohort).count() == expected["submissions"]
    assert cohort.students.count() == expected["students"]


def test_the_client_slows_down_before_the_bucket_empties(canvas, canvas_clock, settings):
    sim = canvas(clock=canvas_clock, request_cost=40.0, leak_rate=10.0, high_water=300.0)
    settings.CANVAS_RATE_LIMIT_FLOOR = 150
    run = pull(BIOLOGY)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.params["rate_limit"]["slowdowns"] > 0
    assert sim.throttled == 0


def test_a_worker_killed_mid_pull_resumes(
    canvas, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from integrations.canvas import pull as pull_module
    from integrations.tasks import runs_reap

    sim = canvas()

    class Killed(BaseException):
        pass

    real_store = pull_module.course_store

    def die(tracker, data):
        raise Killed

    monkeypatch.setattr(pull_module, "course_store", die)
    run = canvas_run_create(params=canvas_params_for(course_ids=[BIOLOGY]), triggered_by="t")
    with pytest.raises(Killed):
        job_execute(run.pk, send_report=False)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    monkeypatch.setattr(pull_module, "course_store", real_store)
    stale = timezone.now() - timezone.timedelta(seconds=settings.RUN_STALE_SECONDS + 60)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=stale)
    with django_capture_on_commit_callbacks(execute=True):
        assert runs_reap() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.params["resumes"] == 1
    expected = sim.course_counts(BIOLOGY)
    assert (
        Progression.objects.filter(cohort__external_id=BIOLOGY).count() == expected["submissions"]
    )
    assert run.counts["created"] > 0


def test_a_second_pull_of_a_course_being_pulled_sends_nothing(canvas):
    from django.utils import timezone

    sim = canvas()
    live = canvas_run_create(params=canvas_params_for(course_ids=[BIOLOGY]), triggered_by="t")
    Run.objects.filter(pk=live.pk).update(status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    run = pull(BIOLOGY)
    assert run.status == RunStatus.INVALID and f"run #{live.pk}" in run.message
    assert sim.request_log == []


def test_a_stale_full_read_makes_the_next_pull_read_everything(canvas, settings):
    from django.utils import timezone

    sim = canvas()
    first = pull(BIOLOGY)
    assert first.params["full_read"] is True
    second = pull(BIOLOGY)
    assert second.params["full_read"] is False and second.params["since"]
    # A day later: due dates passed since, and missing flags with them.
    settings.CANVAS_FULL_REFRESH_HOURS = 24
    Run.objects.filter(pk__in=[first.pk, second.pk]).update(
        started_at=timezone.now() - timezone.timedelta(hours=25)
    )
    third = pull(BIOLOGY)
    assert third.params["full_read"] is True and "since" not in third.params
    assert third.counts["submissions"] == sim.course_counts(BIOLOGY)["submissions_served"]
    assert third.counts["created"] == 0 and third.counts["updated"] == 0


def test_a_student_who_leaves_the_course_becomes_inactive_and_can_come_back(canvas):
    sim = canvas()
    pull(BIOLOGY)
    leaver_id = sim.active_students(BIOLOGY)[0]
    enrollment = next(e for e in sim.course(BIOLOGY).enrollments if e.user_id == leaver_id)
    enrollment.state = "inactive"  # dropped at Canvas
    run = pull(BIOLOGY)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.counts["left"] == 1 and run.counts["returned"] == 0
    stored = Enrollment.objects.get(
        cohort__external_id=BIOLOGY, student__external_id=str(leaver_id)
    )
    assert not stored.active and stored.left_at is not None
    # Kept for history; out of every metric.
    assert Progression.objects.filter(student=stored.student, cohort=stored.cohort).exists()
    from cohorts.selectors import cohort_frames

    students, _, _ = cohort_frames(cohort=stored.cohort)
    assert stored.student_id not in set(students["student_id"])
    enrollment.state = "active"
    again = pull(BIOLOGY)
    assert again.counts["returned"] == 1
    stored.refresh_from_db()
    assert stored.active and stored.left_at is None


def test_a_pull_report_says_what_changed_in_the_course(canvas):
    from reports.changes import run_changes

    sim = canvas()
    first = pull(BIOLOGY)
    (joined,) = run_changes(first)
    assert {c["key"]: c["n"] for c in joined["counts"]}["joined"] == len(
        sim.active_students(BIOLOGY)
    )
    student = sim.active_students(BIOLOGY)[0]
    quiz = next(a for a in sim.course(BIOLOGY).assignments if a.quiz_id)
    sim.set_score(BIOLOGY, quiz.id, student, 5.0)
    run = pull(BIOLOGY)

    (cohort,) = run_changes(run)
    assert cohort["name"] == Cohort.objects.get(source=Source.CANVAS, external_id=BIOLOGY).name
    counts = {c["key"]: c["n"] for c in cohort["counts"]}
    assert "joined" not in counts
    assert counts.get("grades", 0) + counts.get("completions", 0) >= 1
