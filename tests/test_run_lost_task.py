"""A lost task never blocks a cohort: a run left queued with no task behind it in the
broker (broker restarted, enqueue failed after commit) is queued again by the reaper, a
bounded number of times, then failed with the reason. A run whose task merely waits its
turn in the broker is left alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.models import OrmQ
from django_q.tasks import async_task

from integrations.openclass.pull import openclass_lock_key, openclass_run_for_cohort
from integrations.tasks import run_ids_in_broker, runs_reap
from reports.models import Run, RunKind, RunStatus
from reports.services import run_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker():
    """The configured broker (database, or Redis in the suite's second pass), emptied."""
    broker = get_broker()
    broker.purge_queue()
    yield broker
    broker.purge_queue()


@pytest.fixture
def ok_job(fake_openclass_job):
    fake_openclass_job("ok_job")


def lost_run(settings, **fields) -> Run:
    """A run queued long ago whose task never reached the broker."""
    run = run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="user:ada", **fields)
    backdate(run, settings)
    return run


def backdate(run: Run, settings) -> None:
    old = timezone.now() - timedelta(seconds=settings.RUN_QUEUED_STALE_SECONDS + 1)
    Run.objects.filter(pk=run.pk).update(queued_at=old)


def test_a_lost_task_is_queued_again_and_the_run_goes_through(
    broker, ok_job, settings, django_capture_on_commit_callbacks
):
    run = lost_run(settings)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert runs_reap() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.task_requeues == 1
    assert timezone.now() - run.queued_at < timedelta(seconds=settings.RUN_QUEUED_STALE_SECONDS)
    assert len(callbacks) == 1

    callbacks[0]()  # the new task reaches a worker (tasks run in-process in tests)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.counts == {"created": 3}


def test_after_the_bound_the_run_fails_and_says_why(broker, settings):
    settings.RUN_MAX_TASK_REQUEUES = 2
    run = lost_run(settings)
    for attempt in (1, 2):
        runs_reap()  # queued again; its task is lost again (never executed here)
        run.refresh_from_db()
        assert (run.status, run.task_requeues) == (RunStatus.QUEUED, attempt)
        backdate(run, settings)
    assert runs_reap() == 0
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.finished_at
    assert run.error_class == "internal"
    assert "No worker ever picked this run up" in run.message
    assert "queued again 2 times" in run.message
    assert "qcluster" in run.message


def test_a_lost_task_no_longer_blocks_sync_now(broker, settings, cohort_a):
    stuck = lost_run(settings, lock_key=openclass_lock_key(cohort_a.external_id))
    assert openclass_run_for_cohort(cohort_id=cohort_a.pk, triggered_by="user:ada") is None
    settings.RUN_MAX_TASK_REQUEUES = 0
    runs_reap()
    stuck.refresh_from_db()
    assert stuck.status == RunStatus.FAILED
    assert openclass_run_for_cohort(cohort_id=cohort_a.pk, triggered_by="user:ada") is not None


def test_a_run_whose_task_waits_in_the_broker_is_left_alone(broker, settings):
    run = lost_run(settings)
    async_task("integrations.tasks.run_job", run.pk, broker=broker, sync=False)
    assert run_ids_in_broker() == {run.pk}
    assert runs_reap() == 0
    run.refresh_from_db()
    assert (run.status, run.task_requeues) == (RunStatus.QUEUED, 0)


def test_a_recent_queued_run_is_left_alone(broker, settings):
    run = run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t")
    assert runs_reap() == 0
    run.refresh_from_db()
    assert run.task_requeues == 0 and run.status == RunStatus.QUEUED


def test_database_broker_task_taken_by_a_cluster_still_counts_as_behind(settings):
    """A task a (perhaps dead) cluster took stays in OrmQ, locked, until acknowledged; the
    broker hands it out again once the lock expires, so the run is not lost."""
    orm = ORM(list_key=settings.Q_CLUSTER["name"])
    run = run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t")
    async_task("integrations.tasks.run_job", run.pk, broker=orm, sync=False)
    [(_, _payload)] = orm.dequeue()  # taken: locked for `retry` seconds
    assert orm.queue_size() == 0 and orm.lock_size() == 1
    assert run_ids_in_broker(orm) == {run.pk}
    OrmQ.objects.all().delete()


def test_foreign_or_unsigned_tasks_are_ignored(broker):
    async_task("integrations.tasks.worker_heartbeat", broker=broker, sync=False)
    broker.enqueue("not a signed package")
    assert run_ids_in_broker() == set()
