"""Per-cohort pull schedules: one idempotent declaration, kept in step by the admin."""

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from integrations.schedules import (
    HEARTBEAT,
    PREFIX,
    REAPER,
    RETENTION,
    TASK,
    schedule_name,
    schedules_sync,
)
from notifications.schedules import SCHEDULES as NOTIFICATION_SCHEDULES

pytestmark = pytest.mark.django_db


def test_schedule_per_cohort_with_an_interval(cohort_a, cohort_b):
    cohort_a.sync_interval_hours = 6
    cohort_a.save()
    changes = schedules_sync()
    assert changes.created == 1
    schedule = Schedule.objects.get(name=schedule_name(cohort_a.pk))
    assert schedule.func == TASK
    assert schedule.minutes == 360
    assert schedule.args == repr(cohort_a.pk)
    assert not Schedule.objects.filter(name=schedule_name(cohort_b.pk)).exists()


def test_running_twice_changes_nothing(cohort_a, capsys):
    cohort_a.sync_interval_hours = 2
    cohort_a.save()
    call_command("setup_schedules")
    call_command("setup_schedules")
    assert "0 created, 0 updated, 1 unchanged, 0 removed" in capsys.readouterr().out
    assert Schedule.objects.filter(name__startswith=PREFIX).count() == 1
    assert Schedule.objects.filter(name=REAPER).count() == 1


def test_interval_change_and_removal(cohort_a):
    cohort_a.sync_interval_hours = 2
    cohort_a.save()
    schedules_sync()
    cohort_a.sync_interval_hours = 12
    cohort_a.save()
    assert schedules_sync().updated == 1
    assert Schedule.objects.get(name__startswith=PREFIX).minutes == 720
    cohort_a.sync_interval_hours = None
    cohort_a.save()
    assert schedules_sync().removed == 1
    assert not Schedule.objects.filter(name__startswith=PREFIX).exists()


def test_admin_save_declares_the_schedule(
    client, admin_user, cohort_a, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    url = f"/admin/cohorts/cohort/{cohort_a.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "mentors"}
    data.update({"sync_interval_hours": 4, "name": cohort_a.name, "mentors": []})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    assert Schedule.objects.get(name=schedule_name(cohort_a.pk)).minutes == 240


def test_reaper_requeues_a_run_whose_worker_died(
    fake_openclass_job, settings, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from integrations.tasks import runs_reap
    from reports.models import Run, RunKind, RunStatus

    fake_openclass_job("ok_job")
    stale = timezone.now() - timezone.timedelta(seconds=settings.RUN_STALE_SECONDS + 60)
    orphan = Run.objects.create(
        kind=RunKind.OPENCLASS_SYNC, status=RunStatus.RUNNING, triggered_by="t", heartbeat_at=stale
    )
    fresh = Run.objects.create(
        kind=RunKind.OPENCLASS_SYNC,
        status=RunStatus.RUNNING,
        triggered_by="t",
        heartbeat_at=timezone.now(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert runs_reap() == 1  # tasks run synchronously in tests: the orphan resumes
    orphan.refresh_from_db()
    fresh.refresh_from_db()
    assert orphan.status == RunStatus.SUCCEEDED and orphan.params["resumes"] == 1
    assert fresh.status == RunStatus.RUNNING


def test_reaper_gives_up_after_max_resumes(settings):
    from django.utils import timezone

    from integrations.tasks import runs_reap
    from reports.models import Run, RunKind, RunStatus

    stale = timezone.now() - timezone.timedelta(seconds=settings.RUN_STALE_SECONDS + 60)
    orphan = Run.objects.create(
        kind=RunKind.OPENCLASS_SYNC,
        status=RunStatus.RUNNING,
        triggered_by="t",
        heartbeat_at=stale,
        params={"resumes": settings.RUN_MAX_RESUMES},
    )
    assert runs_reap() == 0
    orphan.refresh_from_db()
    assert orphan.status == RunStatus.FAILED
    assert "stopped reporting" in orphan.message


def test_scheduled_pull_runs_once_and_skips_while_one_is_going(openclass, settings):
    from integrations.openclass.simulator import SOFTWARE
    from integrations.tasks import cohort_pull_scheduled
    from reports.models import Run, RunKind, RunStatus

    openclass()
    settings.OPENCLASS_REQUESTS_PER_SECOND = 0
    from cohorts.models import Cohort

    cohort = Cohort.objects.create(name="SD", source="openclass", external_id=SOFTWARE)
    assert cohort_pull_scheduled(cohort.pk) == RunStatus.SUCCEEDED
    run = Run.objects.get(kind=RunKind.OPENCLASS_SYNC)
    assert run.triggered_by == "schedule"
    cohort.refresh_from_db()
    assert cohort.last_sync_status == RunStatus.SUCCEEDED and cohort.last_synced_at

    from integrations.openclass.pull import openclass_lock_key

    Run.objects.create(
        kind=RunKind.OPENCLASS_SYNC,
        status=RunStatus.QUEUED,
        triggered_by="user:ada",
        params={"class_id": SOFTWARE},
        lock_key=openclass_lock_key(SOFTWARE),
    )
    assert cohort_pull_scheduled(cohort.pk) is None
    assert Run.objects.filter(kind=RunKind.OPENCLASS_SYNC).count() == 2


# --- every source with a registered pull kind is scheduled --------------------------------


@pytest.fixture
def canvas_kind(no_canvas_kind, register_kind):
    """A pull kind for Canvas cohorts (a fake job), in place of any the registry holds."""
    from integrations.registry import CohortSchedule, JobKind, Resume
    from reports.models import RunKind

    return register_kind(
        JobKind(
            kind=RunKind.CANVAS_SYNC,
            job="tests.fake_jobs.ok_job",
            summary_keys=("created", "failed"),
            resume=Resume.RESTART,
            schedule=CohortSchedule(source="canvas", start="tests.fake_jobs.fake_pull_start"),
        )
    )


@pytest.fixture
def no_canvas_kind(monkeypatch):
    """Canvas cohorts have no pull kind (whether or not the Canvas folder exists yet)."""
    from integrations import registry

    for key, declared in list(registry.kinds().items()):
        if declared.schedule and declared.schedule.source == "canvas":
            monkeypatch.delitem(registry.kinds(), key)


@pytest.fixture
def course(db):
    from cohorts.models import Cohort

    return Cohort.objects.create(
        name="Biology 101", source="canvas", external_id="90000000000017", sync_interval_hours=3
    )


def test_one_schedule_per_cohort_of_every_pulled_source(canvas_kind, cohort_a, course):
    cohort_a.sync_interval_hours = 6
    cohort_a.save()
    changes = schedules_sync()
    assert (changes.created, changes.unsupported) == (2, 0)
    schedules = {s.args: s for s in Schedule.objects.filter(name__startswith=PREFIX)}
    assert set(schedules) == {repr(cohort_a.pk), repr(course.pk)}
    assert {s.func for s in schedules.values()} == {TASK}
    assert schedules[repr(course.pk)].minutes == 180
    assert schedules[repr(course.pk)].name == schedule_name(course.pk)


def test_a_source_nobody_pulls_gets_no_schedule(no_canvas_kind, cohort_a, course, capsys):
    cohort_a.sync_interval_hours = 6
    cohort_a.save()
    call_command("setup_schedules")
    out = capsys.readouterr().out
    assert "1 created" in out
    assert "1 cohort(s) with an interval not scheduled" in out
    assert not Schedule.objects.filter(name=schedule_name(course.pk)).exists()


def test_a_cohort_moved_to_an_unpulled_source_loses_its_schedule(no_canvas_kind, cohort_a):
    cohort_a.sync_interval_hours = 6
    cohort_a.save()
    schedules_sync()
    cohort_a.source = "canvas"
    cohort_a.save()
    changes = schedules_sync()
    assert (changes.removed, changes.unsupported) == (1, 1)
    assert not Schedule.objects.filter(name__startswith=PREFIX).exists()


def test_the_scheduled_task_starts_the_pull_of_the_cohorts_source(canvas_kind, course):
    from integrations.tasks import cohort_pull_scheduled
    from reports.models import Run, RunKind, RunStatus

    assert cohort_pull_scheduled(course.pk) == RunStatus.SUCCEEDED
    run = Run.objects.get(kind=RunKind.CANVAS_SYNC)
    assert run.triggered_by == "schedule" and run.params == {"course_id": course.external_id}

    Run.objects.create(
        kind=RunKind.CANVAS_SYNC,
        status=RunStatus.RUNNING,
        triggered_by="user:ada",
        params={"course_id": course.external_id},
    )
    assert cohort_pull_scheduled(course.pk) is None  # one is live: no second pull
    assert Run.objects.filter(kind=RunKind.CANVAS_SYNC).count() == 2


def test_the_scheduled_task_does_nothing_without_a_pull_kind_or_a_cohort(
    no_canvas_kind, course, caplog
):
    from integrations.tasks import cohort_pull_scheduled
    from reports.models import Run

    assert cohort_pull_scheduled(course.pk) is None
    assert "no registered kind pulls source 'canvas'" in caplog.text
    assert cohort_pull_scheduled(course.pk + 1000) is None
    assert "the cohort is gone" in caplog.text
    assert not Run.objects.exists()


def test_an_old_openclass_schedule_is_renamed_not_duplicated(cohort_a, cohort_b, capsys):
    from integrations.schedules import LEGACY_PREFIX

    cohort_a.sync_interval_hours = 6
    cohort_a.save()
    old = Schedule.objects.create(
        name=f"{LEGACY_PREFIX}{cohort_a.pk}",
        func="integrations.tasks.openclass_sync_scheduled",
        args=repr(cohort_a.pk),
        schedule_type=Schedule.MINUTES,
        minutes=360,
        repeats=-1,
    )
    # cohort_b has no interval any more: its old schedule goes.
    Schedule.objects.create(
        name=f"{LEGACY_PREFIX}{cohort_b.pk}",
        func="integrations.tasks.openclass_sync_scheduled",
        args=repr(cohort_b.pk),
        schedule_type=Schedule.MINUTES,
        minutes=60,
        repeats=-1,
    )
    call_command("setup_schedules")
    assert "0 created, 1 updated, 0 unchanged, 1 removed" in capsys.readouterr().out
    kept = Schedule.objects.exclude(
        name__in=[REAPER, HEARTBEAT, RETENTION, *NOTIFICATION_SCHEDULES]
    ).get()
    assert kept.pk == old.pk
    assert (kept.name, kept.func, kept.minutes) == (schedule_name(cohort_a.pk), TASK, 360)
    call_command("setup_schedules")
    assert "0 created, 0 updated, 1 unchanged, 0 removed" in capsys.readouterr().out


def test_an_old_schedule_beside_a_new_one_is_removed(cohort_a):
    from integrations.schedules import LEGACY_PREFIX

    cohort_a.sync_interval_hours = 6
    cohort_a.save()
    schedules_sync()
    Schedule.objects.create(
        name=f"{LEGACY_PREFIX}{cohort_a.pk}",
        func="integrations.tasks.openclass_sync_scheduled",
        args=repr(cohort_a.pk),
        schedule_type=Schedule.MINUTES,
        minutes=360,
    )
    changes = schedules_sync()
    assert (changes.removed, changes.unchanged) == (1, 1)
    others = Schedule.objects.exclude(
        name__in=[REAPER, HEARTBEAT, RETENTION, *NOTIFICATION_SCHEDULES]
    )
    assert others.get().name == schedule_name(cohort_a.pk)


def test_the_admin_says_when_a_cohort_cannot_be_scheduled(
    client, admin_user, no_canvas_kind, course, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    url = f"/admin/cohorts/cohort/{course.pk}/change/"
    page = client.get(url)
    assert "Scheduled pulls exist for: OpenClass.ai." in page.content.decode()
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "mentors"}
    data.update({"sync_interval_hours": 4, "name": course.name, "mentors": []})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data, follow=True)
    text = response.content.decode()
    assert "is not scheduled: Classbridge cannot pull Canvas LMS cohorts yet" in text
    assert not Schedule.objects.filter(name=schedule_name(course.pk)).exists()


def test_the_admin_is_silent_when_the_cohort_is_scheduled(
    client, admin_user, canvas_kind, course, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    url = f"/admin/cohorts/cohort/{course.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "mentors"}
    data.update({"sync_interval_hours": 4, "name": course.name, "mentors": []})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data, follow=True)
    assert "is not scheduled" not in response.content.decode()
    assert Schedule.objects.get(name=schedule_name(course.pk)).minutes == 240
