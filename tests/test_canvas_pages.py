"""Starting Canvas pulls from the web UI, Sync now, and schedules for Canvas cohorts."""

from __future__ import annotations

import json

import pytest
from django_q.models import Schedule

from cohorts.models import Cohort, Source
from integrations.canvas.simulator import BIOLOGY, CHEMISTRY
from integrations.canvas.views import SCHEDULE_PREFIX
from reports.models import Run, RunKind, RunStatus

pytestmark = pytest.mark.django_db

URL = "/integrations/canvas/"


def test_only_staff_see_the_canvas_page(client, mentor_a):
    client.force_login(mentor_a)
    assert client.get(URL).status_code in (302, 403, 404)


def test_pull_listed_courses_now(client, admin_user, canvas, django_capture_on_commit_callbacks):
    canvas()
    client.force_login(admin_user)
    assert client.get(URL).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"courses": f"{BIOLOGY}, {CHEMISTRY}", "profile": "analytics"})
    assert response.status_code == 302
    run = Run.objects.get(kind=RunKind.CANVAS_SYNC, params__mode="bulk")
    assert response.url == f"/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.triggered_by == f"user:{admin_user.username}"
    assert run.params["course_ids"] == [BIOLOGY, CHEMISTRY]


def test_bad_choices_are_refused_with_their_reason(client, admin_user, canvas):
    sim = canvas()
    client.force_login(admin_user)
    response = client.post(URL, {"courses": "12/34", "profile": "full"})
    assert response.status_code == 200
    assert "course id must be" in response.content.decode()
    response = client.post(URL, {"courses": "", "max_courses": "0", "profile": "full"})
    assert "Ensure this value is greater than or equal to 1" in response.content.decode()
    assert not Run.objects.exists() and sim.request_log == []


def test_a_schedule_of_filters_and_its_task(client, admin_user, canvas):
    canvas()
    client.force_login(admin_user)
    response = client.post(
        URL,
        {
            "courses": "",
            "state": "available",
            "max_courses": "1",
            "profile": "lightweight",
            "every_hours": "12",
        },
    )
    assert response.status_code == 302
    schedule = Schedule.objects.get(name__startswith=SCHEDULE_PREFIX)
    assert schedule.minutes == 720
    page = client.get(URL).content.decode()
    assert "lightweight" in page and "12 h" in page
    # The schedule's task pulls that selection.
    from integrations.canvas.pull import canvas_scheduled_pull

    params = json.loads(eval(schedule.args))
    assert canvas_scheduled_pull(json.dumps(params)) == RunStatus.SUCCEEDED
    run = Run.objects.get(kind=RunKind.CANVAS_SYNC, params__mode="bulk")
    assert run.triggered_by == "schedule" and run.counts["courses"] == 1
    client.post(f"/integrations/canvas/schedules/{schedule.pk}/delete/")
    assert not Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).exists()


def test_sync_now_on_a_canvas_cohort(
    client, admin_user, canvas, django_capture_on_commit_callbacks
):
    canvas()
    cohort = Cohort.objects.create(name="Bio", source=Source.CANVAS, external_id=BIOLOGY)
    client.force_login(admin_user)
    assert (
        f"/integrations/canvas/cohorts/{cohort.pk}/sync/"
        in client.get(f"/cohorts/{cohort.pk}/").content.decode()
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/integrations/canvas/cohorts/{cohort.pk}/sync/")
    run = Run.objects.get(kind=RunKind.CANVAS_SYNC)
    assert response.url == f"/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.message
    cohort.refresh_from_db()
    assert cohort.name == "Bio"  # the admin's name is kept
    assert cohort.last_sync_run_id == run.pk and cohort.progressions.exists()


def test_a_canvas_cohort_with_an_interval_is_scheduled_and_pulled(canvas):
    from integrations.schedules import schedules_sync
    from integrations.tasks import cohort_pull_scheduled

    canvas()
    cohort = Cohort.objects.create(
        name="Chem", source=Source.CANVAS, external_id=CHEMISTRY, sync_interval_hours=4
    )
    schedules_sync()
    assert Schedule.objects.filter(args=repr(cohort.pk)).exists()
    assert cohort_pull_scheduled(cohort.pk) == RunStatus.SUCCEEDED
    cohort.refresh_from_db()
    assert cohort.last_sync_status == "succeeded"
    # A second schedule tick while a pull is queued starts nothing.
    from integrations.canvas.pull import canvas_run_for_cohort

    assert canvas_run_for_cohort(cohort_id=cohort.pk, triggered_by="t") is not None
    assert canvas_run_for_cohort(cohort_id=cohort.pk, triggered_by="t") is None
