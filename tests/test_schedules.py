"""Per-cohort pull schedules: one idempotent declaration, kept in step by the admin."""

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from integrations.schedules import PREFIX, REAPER, TASK, schedule_name, schedules_sync

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
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from integrations import jobs
    from integrations.tasks import runs_reap
    from reports.models import Run, RunKind, RunStatus

    monkeypatch.setitem(jobs.JOBS, RunKind.OPENCLASS_SYNC, "tests.fake_jobs.ok_job")
    monkeypatch.setitem(jobs.AFTER_FINISH, RunKind.OPENCLASS_SYNC, "builtins.id")
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
    from integrations.tasks import openclass_sync_scheduled
    from reports.models import Run, RunKind, RunStatus

    openclass()
    settings.OPENCLASS_REQUESTS_PER_SECOND = 0
    from cohorts.models import Cohort

    cohort = Cohort.objects.create(name="SD", source="openclass", external_id=SOFTWARE)
    assert openclass_sync_scheduled(cohort.pk) == RunStatus.SUCCEEDED
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
    assert openclass_sync_scheduled(cohort.pk) is None
    assert Run.objects.filter(kind=RunKind.OPENCLASS_SYNC).count() == 2
