"""The OpenClass pull end to end, against the OpenClass simulator over real HTTP."""

from __future__ import annotations

import json

import pytest
import requests

from cohorts.models import Assignment, Cohort, Enrollment, Progression, Source, Student
from integrations.jobs import job_execute
from integrations.openclass import pull
from integrations.openclass.pull import openclass_run_create, openclass_run_for_cohort
from integrations.openclass.simulator import DATA, SOFTWARE, WEB
from integrations.simulator import Response
from reports.models import Run, RunStatus

pytestmark = pytest.mark.django_db


def pull_run(class_id: str, cohort_name: str = "") -> Run:
    run = openclass_run_create(class_id=class_id, cohort_name=cohort_name, triggered_by="test")
    return job_execute(run.pk, send_report=False)


def logins(sim) -> int:
    return len(sim.calls("POST", r"^/v1/auth/login$"))


def page_requests(sim) -> int:
    return len(sim.calls("GET", r"/progressions$"))


def test_full_pull_stores_what_the_simulator_serves(openclass):
    sim = openclass()
    served = sim.progressions(WEB)
    run = pull_run(WEB)

    assert run.status == RunStatus.SUCCEEDED, run.message
    pages = -(-len(served) // 100)
    assert run.counts == {
        "fetched": len(served),
        "created": len(served),
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
        "students": len(sim.student_ids(WEB)),
        "assignments": len(sim.assignment_ids(WEB)),
    }
    assert (run.progress_done, run.progress_total, run.progress_unit) == (pages, pages, "pages")
    assert set(run.stage_timings) >= {"authenticate", "fetch", "store"}
    assert list(run.items.filter(outcome="page").values_list("key", flat=True)) == [
        str(n) for n in range(pages)
    ]

    cohort = Cohort.objects.get(source=Source.OPENCLASS, external_id=WEB)
    assert cohort.name == "Web Foundations"
    assert run.params["cohort_id"] == cohort.pk
    assert cohort.last_sync_run_id == run.pk and cohort.last_sync_status == "succeeded"
    assert Progression.objects.filter(cohort=cohort).count() == len(served)
    assert cohort.students.count() == len(sim.student_ids(WEB))
    assert Assignment.objects.filter(cohort=cohort).count() == len(sim.assignment_ids(WEB))


def test_pull_keeps_the_curriculum_order_names_and_nulls(openclass):
    sim = openclass()
    pull_run(WEB)
    sim_class = sim.classes[WEB]
    unit_name, unit_ids = sim_class.units[1]
    second_unit = Assignment.objects.filter(cohort__external_id=WEB, unit=unit_name)
    assert list(second_unit.values_list("external_id", flat=True)) == unit_ids
    first = second_unit.get(external_id=unit_ids[0])
    assert first.unit_position == 2 and first.position == len(sim_class.units[0][1]) + 1
    assert (first.name, first.kind) == sim_class.assignments[unit_ids[0]]

    served = sim.progressions(WEB)
    stored = Progression.objects.filter(cohort__external_id=WEB)
    assert stored.filter(started_at=None).count() == sum(p.started_at is None for p in served)
    assert stored.filter(reviewed_at=None).count() == sum(p.reviewed_at is None for p in served)
    assert not stored.filter(assignment__kind="lesson").exclude(grade=None).exists()
    sample = next(p for p in served if p.grade is not None and p.reviewed_at is not None)
    row = stored.get(external_id=sample.id)
    assert row.grade == sample.grade
    assert (row.started_at, row.completed_at, row.reviewed_at) == (
        sample.started_at,
        sample.completed_at,
        sample.reviewed_at,
    )
    assert row.student.external_id == sample.user_id


def test_rerun_creates_nothing_and_updates_nothing(openclass):
    sim = openclass()
    pull_run(WEB)
    synced = dict(Progression.objects.values_list("external_id", "synced_at"))
    again = pull_run(WEB)
    assert again.status == RunStatus.SUCCEEDED
    assert again.counts["created"] == 0 and again.counts["updated"] == 0
    assert again.counts["unchanged"] == len(sim.progressions(WEB))
    assert dict(Progression.objects.values_list("external_id", "synced_at")) == synced
    assert Student.objects.count() == len(sim.student_ids(WEB))


def test_a_changed_grade_updates_exactly_one_row(openclass):
    sim = openclass()
    pull_run(WEB)
    target = next(p for p in sim.progressions(WEB) if p.grade is not None)
    sim.set_grade(target.id, 0.11)
    again = pull_run(WEB)
    assert again.counts["updated"] == 1 and again.counts["created"] == 0
    assert Progression.objects.get(external_id=target.id).grade == 0.11


def test_token_expiry_mid_sync_signs_in_once_more(openclass, monkeypatch):
    sim = openclass()
    real_upsert = pull.progressions_upsert
    pages_written = []

    def upsert_then_expire(**kwargs):
        pages_written.append(1)
        if len(pages_written) == 1:
            sim.expire_tokens()  # after page 0 is stored, before page 1 is asked for
        return real_upsert(**kwargs)

    monkeypatch.setattr(pull, "progressions_upsert", upsert_then_expire)
    run = pull_run(WEB)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.counts["created"] == len(sim.progressions(WEB))
    assert logins(sim) == 2
    assert [c for c in sim.request_log if c[2] == 401] == [
        ("GET", f"/v1/classes/{WEB}/progressions", 401)
    ]


def test_short_token_lifetime_signs_in_again_whenever_needed(openclass):
    ticks = iter(range(0, 10_000, 10))
    sim = openclass(token_lifetime=45, clock=lambda: next(ticks))  # about 4 calls a token
    run = pull_run(WEB)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.counts["created"] == len(sim.progressions(WEB))
    assert logins(sim) > 1


def test_random_faults_are_retried_and_the_pull_completes(openclass):
    sim = openclass(fail_rate=0.2)
    run = pull_run(WEB)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.counts["created"] == len(sim.progressions(WEB))
    faults = [status for _, _, status in sim.request_log if status != 200]
    assert faults and set(faults) <= {429, 500}


def test_scripted_throttling_and_server_errors_are_retried(openclass):
    sim = openclass()
    throttled = Response.json({"error": "slow down"}, 429, {"Retry-After": "3"})
    sim.fail_next("GET", r"/progressions$", throttled)
    sim.fail_next("GET", r"/progressions$", Response.json({"error": "boom"}, 500), times=2)
    run = pull_run(WEB)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.counts["created"] == len(sim.progressions(WEB))
    assert page_requests(sim) == run.progress_total + 3


def test_retries_running_out_fail_the_run_and_keep_earlier_pages(openclass, settings, monkeypatch):
    sim = openclass()
    settings.HTTP_MAX_RETRIES = 1
    pull_run(WEB)
    first = sim.progressions(WEB)[0]  # served on page 0
    sim.set_grade(first.id, 0.01)
    real_page = pull.OpenClassClient.progression_page

    def page_then_break(self, class_id, page, page_size):
        # The vendor goes down once page 0 is served (page 1 is fetched while 0 is stored).
        result = real_page(self, class_id, page, page_size)
        sim.fail_next("GET", r"/progressions$", Response.json({"error": "down"}, 500), times=5)
        return result

    monkeypatch.setattr(pull.OpenClassClient, "progression_page", page_then_break)
    run = pull_run(WEB)
    assert run.status == RunStatus.FAILED and run.error_class == "transient"
    assert "at page 1" in run.message
    assert Progression.objects.get(external_id=first.id).grade == 0.01  # page 0 was kept


def test_a_crash_mid_page_keeps_earlier_pages_whole_and_names_the_page(openclass, monkeypatch):
    from django.db import OperationalError

    sim = openclass()
    real_upsert = pull.progressions_upsert
    calls = []

    def upsert_then_crash(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("database is locked")
        return real_upsert(**kwargs)

    monkeypatch.setattr(pull, "progressions_upsert", upsert_then_crash)
    run = pull_run(WEB)
    assert run.status == RunStatus.FAILED and run.error_class == "internal"
    assert "database is locked" in run.message
    assert "at page 1" in run.message, run.message  # which page failed, as for the vendor
    page_0 = sim.progressions(WEB)[:100]
    assert set(Progression.objects.values_list("external_id", flat=True)) == {p.id for p in page_0}
    # Page 1 wrote nothing at all: not even its students (one transaction per page).
    assert set(Student.objects.values_list("external_id", flat=True)) == {p.user_id for p in page_0}
    assert run.counts["created"] == 100 and run.counts["fetched"] == 100
    assert list(run.items.filter(outcome="page").values_list("key", flat=True)) == ["0"]


def test_a_student_whose_email_changes_is_updated_not_duplicated(openclass):
    sim = openclass()
    pull_run(WEB)
    user_id = sorted(sim.student_ids(WEB))[0]
    sim.users[user_id]["email"] = "new.address@students.example.edu"
    again = pull_run(WEB)
    assert again.status == RunStatus.SUCCEEDED
    assert again.counts["created"] == 0 and again.counts["updated"] == 0
    student = Student.objects.get(source=Source.OPENCLASS, external_id=user_id)
    assert student.email == "new.address@students.example.edu"
    assert Student.objects.count() == len(sim.student_ids(WEB))


def test_a_progression_outside_the_curriculum_gets_its_assignment(openclass):
    sim = openclass()
    sim_class = sim.classes[WEB]
    unit_name, unit_ids = sim_class.units[0]
    dropped = next(p.assignment_id for p in sim_class.progressions if p.assignment_id in unit_ids)
    sim_class.units[0] = (unit_name, [a for a in unit_ids if a != dropped])
    run = pull_run(WEB)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assignment = Assignment.objects.get(cohort__external_id=WEB, external_id=dropped)
    assert (assignment.name, assignment.kind) == sim_class.assignments[dropped]
    assert assignment.unit == "" and assignment.position == 0
    assert Progression.objects.filter(assignment=assignment).count() == sum(
        p.assignment_id == dropped for p in sim.progressions(WEB)
    )
    assert run.counts["assignments"] == len(sim.assignment_ids(WEB))
    # Once the class detail lists it, the next pull puts it in its place.
    sim_class.units[0] = (unit_name, unit_ids)
    pull_run(WEB)
    assignment.refresh_from_db()
    assert (assignment.unit, assignment.unit_position) == (unit_name, 1)
    assert assignment.position == unit_ids.index(dropped) + 1


def test_unknown_class_fails_as_not_found(openclass):
    openclass()
    run = pull_run("ffffffffffffffffffffffff")
    assert run.status == RunStatus.FAILED
    assert run.error_class == "not_found"
    assert "ffffffffffffffffffffffff" in run.message
    assert run.exit_code == 4
    assert not Cohort.objects.exists()


def test_a_student_in_two_classes_is_one_student(openclass, settings):
    sim = openclass()
    settings.OPENCLASS_PAGE_SIZE = 200
    shared = sim.student_ids(SOFTWARE) & sim.student_ids(DATA)
    assert shared
    assert pull_run(SOFTWARE).status == RunStatus.SUCCEEDED
    assert pull_run(DATA).status == RunStatus.SUCCEEDED
    everyone = sim.student_ids(SOFTWARE) | sim.student_ids(DATA)
    assert Student.objects.count() == len(everyone)
    for external_id in shared:
        student = Student.objects.get(source=Source.OPENCLASS, external_id=external_id)
        assert Enrollment.objects.filter(student=student).count() == 2


def test_pages_are_written_as_they_arrive(openclass, settings, monkeypatch):
    sim = openclass()
    settings.OPENCLASS_PAGE_SIZE = 50
    real_upsert = pull.progressions_upsert
    seen = []

    def recording_upsert(**kwargs):
        seen.append((page_requests(sim), len(kwargs["records"])))
        return real_upsert(**kwargs)

    monkeypatch.setattr(pull, "progressions_upsert", recording_upsert)
    run = pull_run(WEB)
    assert run.status == RunStatus.SUCCEEDED
    # Write N happens once N pages were asked for, and at most one more (the next page is
    # fetched while this one is stored): nothing is gathered up front.
    assert all(n <= requests <= n + 1 for n, (requests, _) in enumerate(seen, start=1))
    assert all(size <= 50 for _, size in seen)
    assert len(seen) == run.progress_total


def test_an_invalid_record_is_skipped_and_the_rest_stored(openclass):
    sim = openclass(broken_progressions=1)
    broken = sim.progressions(WEB)[0]
    run = pull_run(WEB)
    assert run.status == RunStatus.PARTIAL
    assert run.counts["failed"] == 1
    assert run.counts["created"] == len(sim.progressions(WEB)) - 1
    item = run.items.get(outcome="failed")
    assert (item.key, item.error_class) == (broken.id, "invalid_data")
    assert "user.id" in item.message
    assert not Progression.objects.filter(external_id=broken.id).exists()


def test_plain_responses_pull_the_same(openclass):
    sim = openclass(encoding="plain")
    run = pull_run(WEB)
    assert run.status == RunStatus.SUCCEEDED
    assert run.counts["created"] == len(sim.progressions(WEB))


def test_cohort_name_and_the_cohort_button(openclass):
    openclass()
    run = pull_run(WEB, cohort_name="Web Foundations, spring")
    cohort = Cohort.objects.get(pk=run.params["cohort_id"])
    assert cohort.name == "Web Foundations, spring"
    again = openclass_run_for_cohort(cohort_id=cohort.pk, triggered_by="test")
    assert openclass_run_for_cohort(cohort_id=cohort.pk, triggered_by="test") is None  # queued
    job_execute(again.pk, send_report=False)
    cohort.refresh_from_db()
    assert cohort.name == "Web Foundations, spring"  # the vendor's name does not override it
    assert cohort.last_sync_run_id == again.pk


def test_a_page_size_out_of_range_is_a_config_error(openclass, settings):
    sim = openclass()
    settings.OPENCLASS_PAGE_SIZE = 1000
    run = pull_run(WEB)
    assert run.status == RunStatus.INVALID and "OPENCLASS_PAGE_SIZE" in run.message
    assert sim.request_log == []


def test_the_simulator_serves_the_contract_quirks(openclass, settings):
    sim = openclass()
    base = settings.OPENCLASS_BASE_URL
    login = f"{base}/v1/auth/login"
    form = {"email": sim.email, "password": sim.password}
    assert requests.post(login, json=form, timeout=5).status_code == 400  # form only
    assert requests.post(login, data={**form, "password": "x"}, timeout=5).status_code == 401
    token = requests.post(login, data=form, timeout=5).json()["result"]["token"]
    url = f"{base}/v1/classes/{WEB}/progressions"
    assert requests.get(url, timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(url, headers=auth, timeout=5).status_code == 401  # `bearer` only
    first = requests.get(url, headers={"bearer": token}, params={"return_count": 500}, timeout=5)
    objects = first.json()["result"]["objects"]
    assert isinstance(objects, str)  # double-encoded
    page = json.loads(objects)
    assert page["metadata"]["results_per_page"] == 200 and page["metadata"]["can_load_more"]
    assert {type(p["_id"]) for p in page["data"]} == {str, dict}
    assert any(p["started_assignment_at"] is None for p in page["data"])
    second = requests.get(url, headers={"bearer": token}, params={"page": 1}, timeout=5)
    assert isinstance(second.json()["result"]["objects"], list)  # the objects[0] form
    sim.expire_tokens()
    assert requests.get(url, headers={"bearer": token}, timeout=5).status_code == 401


def test_a_second_pull_of_a_class_being_pulled_sends_nothing(openclass):
    from django.utils import timezone

    from reports.models import RunKind

    sim = openclass()
    class_id = SOFTWARE
    Run.objects.create(
        kind=RunKind.OPENCLASS_SYNC,
        status=RunStatus.RUNNING,
        triggered_by="t",
        params={"class_id": class_id},
        heartbeat_at=timezone.now(),
    )
    run = pull_run(class_id)
    assert run.status == RunStatus.INVALID
    assert "already running" in run.message
    assert sim.request_log == []


def test_an_orphaned_pull_does_not_block_a_new_one(openclass, settings):
    from django.utils import timezone

    from reports.models import RunKind

    openclass()
    stale = timezone.now() - timezone.timedelta(seconds=settings.RUN_STALE_SECONDS + 1)
    Run.objects.create(
        kind=RunKind.OPENCLASS_SYNC,
        status=RunStatus.RUNNING,
        triggered_by="t",
        params={"class_id": SOFTWARE},
        heartbeat_at=stale,
    )
    assert pull_run(SOFTWARE).status == RunStatus.SUCCEEDED
