"""Thin django-q2 entry points: they take ids and call a job."""

from __future__ import annotations

import logging

from django.db import transaction
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
        return None
    return run_job(run.pk)


def runs_reap() -> int:
    """Scheduled: re-queue runs whose worker died (no heartbeat), so they resume."""
    from django.conf import settings

    from reports.services import run_requeue, runs_stale

    requeued = 0
    for run in runs_stale(older_than_seconds=settings.RUN_STALE_SECONDS):
        if run_requeue(run=run, max_resumes=settings.RUN_MAX_RESUMES):
            logger.warning("run %s stopped reporting; re-queued to resume", run.pk)
            enqueue_run(run.pk)
            requeued += 1
    return requeued
