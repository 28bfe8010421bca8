"""Thin django-q2 entry points: they take ids and call a job."""

from __future__ import annotations

import logging
import socket

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

logger = logging.getLogger(__name__)


def run_job(run_id: int) -> str | None:
    from integrations.jobs import job_execute

    run = job_execute(run_id)
    return run.status if run else None


def enqueue_run(run_id: int) -> None:
    """Queue a run's job once the surrounding transaction commits."""
    transaction.on_commit(
        lambda: async_task(
            "integrations.tasks.run_job", run_id, task_name=f"run-{run_id}", group="runs"
        )
    )


def cohort_pull_scheduled(cohort_id: int) -> str | None:
    """Entry point of every cohort's schedule (integrations.schedules): start the pull of
    the cohort's source, unless one is already queued or running."""
    from django.utils.module_loading import import_string

    from cohorts.models import Cohort
    from integrations import registry

    source = Cohort.objects.filter(pk=cohort_id).values_list("source", flat=True).first()
    if source is None:
        logger.warning("scheduled pull of cohort %s: the cohort is gone", cohort_id)
        return None
    declared = registry.kind_for_source(source)
    if declared is None:
        logger.warning(
            "scheduled pull of cohort %s: no registered kind pulls source %r", cohort_id, source
        )
        return None
    start = import_string(declared.schedule.start)
    run = start(cohort_id=cohort_id, triggered_by="schedule", user=None)
    if run is None:
        logger.info("cohort %s: a pull is already queued or running; slot skipped", cohort_id)
        return None
    return run_job(run.pk)


def runs_reap() -> int:
    """Scheduled: re-queue runs whose worker died (no heartbeat), so they resume, and
    runs left queued whose task never reached a worker (lost task), so they start.
    Returns how many runs it queued again."""
    from django.conf import settings

    from reports.services import run_requeue, runs_stale

    requeued = lost_tasks_requeue()
    for run in runs_stale(older_than_seconds=settings.RUN_STALE_SECONDS):
        if run_requeue(run=run, max_resumes=settings.RUN_MAX_RESUMES):
            logger.warning("run %s stopped reporting; re-queued to resume", run.pk)
            enqueue_run(run.pk)
            requeued += 1
    return requeued


RUN_TASK = "integrations.tasks.run_job"


def lost_tasks_requeue() -> int:
    """Queue again the runs queued for RUN_QUEUED_STALE_SECONDS with no task behind them;
    after RUN_MAX_TASK_REQUEUES, fail them with the reason. Safe even when the task was
    not lost after all: a run is claimed by a conditional update, so a second task of
    the same run does nothing."""
    from django.conf import settings

    from reports.services import run_requeue_lost, runs_queued_stale

    stale = runs_queued_stale(older_than_seconds=settings.RUN_QUEUED_STALE_SECONDS)
    if not stale:
        return 0
    waiting = run_ids_in_broker()
    requeued = 0
    for run in stale:
        if run.pk in waiting:
            continue  # its task waits its turn in the broker: a busy queue, not a lost task
        if run_requeue_lost(run=run, max_requeues=settings.RUN_MAX_TASK_REQUEUES):
            logger.warning(
                "run %s waited %s s in the queue with no task behind it; its task is queued "
                "again (%s of at most %s)",
                run.pk,
                settings.RUN_QUEUED_STALE_SECONDS,
                run.task_requeues + 1,
                settings.RUN_MAX_TASK_REQUEUES,
            )
            enqueue_run(run.pk)
            requeued += 1
        else:
            logger.error("run %s never reached a worker; marked failed", run.pk)
    return requeued


def run_ids_in_broker(broker=None) -> set[int]:
    """Ids of the runs whose `run_job` task the broker still holds.

    Database broker: every OrmQ row of the queue, waiting or taken by a cluster (a row
    stays until the task is acknowledged, and a taken one is handed out again once its
    lock expires), so a run missing here has truly no task. Redis: the tasks still in
    the list; a task a cluster already popped into its own memory is not seen, so a
    run waiting there is queued again (a harmless duplicate) and counts towards the
    bound. Other brokers: nothing is seen, age and the bound decide alone.
    """
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.signing import SignedPackage

    broker = broker or get_broker()
    kind = type(broker).__name__
    if kind == "ORM":
        from django_q.models import OrmQ

        payloads = list(
            OrmQ.objects.using(Conf.ORM)
            .filter(key=broker.list_key)
            .values_list("payload", flat=True)
        )
    elif kind == "Redis":
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
    else:
        return set()
    ids: set[int] = set()
    for payload in payloads:
        try:
            task = SignedPackage.loads(payload)
        except Exception:  # signed with another key, or not ours: not a run's task
            continue
        args = task.get("args") or ()
        if task.get("func") == RUN_TASK and args and isinstance(args[0], int):
            ids.add(args[0])
    return ids


def worker_heartbeat() -> None:
    """Scheduled every minute: proves to /healthz that a worker takes tasks."""
    from integrations.models import WorkerHeartbeat

    WorkerHeartbeat.objects.update_or_create(
        host=socket.gethostname()[:200], defaults={"seen_at": timezone.now()}
    )
