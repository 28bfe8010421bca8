"""Site-wide views: the health check."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache


@never_cache
def healthz(request):
    """200 when the database, the queue and its workers answer, 503 naming what does not.

    The queue is down when its broker does not answer, or when tasks wait and no worker
    has been seen for QUEUE_WORKER_STALE_SECONDS (the database broker's ping() always
    answers yes, so only a sign of a worker tells a dead one apart).
    """
    body: dict[str, object] = {}
    healthy = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body["database"] = "ok"
    except Exception as exc:  # the point is to report it, whatever it is
        body["database"] = f"error: {type(exc).__name__}"
        healthy = False
    try:
        from django_q.brokers import get_broker

        broker = get_broker()
        if not broker.ping():
            raise RuntimeError("no answer")
        body["queue"] = "ok"
        body["queue_broker"] = type(broker).__name__
        body["queued_tasks"] = broker.queue_size()
    except Exception as exc:
        body["queue"] = f"error: {type(exc).__name__}"
        healthy = False
    if body.get("database") == "ok":
        from cohorts.models import Cohort

        newest = Cohort.objects.aggregate(newest=Max("last_synced_at"))["newest"]
        body["newest_data_at"] = newest.isoformat() if newest else None
        body["data_age_seconds"] = (
            round((timezone.now() - newest).total_seconds()) if newest else None
        )
        if body["queue"] == "ok" and not _worker_check(body):
            healthy = False
    return JsonResponse(body, status=200 if healthy else 503)


def _worker_check(body: dict[str, object]) -> bool:
    """Add what is known of the workers to `body`; False when the queue must count as down:
    tasks wait (in the broker, or runs queued for longer than the limit) and no worker
    has been seen for that long."""
    from reports.models import Run, RunStatus

    now = timezone.now()
    limit = settings.QUEUE_WORKER_STALE_SECONDS
    seen = _worker_seen_at()
    age = round((now - seen).total_seconds()) if seen else None
    body["worker_seen_at"] = seen.isoformat() if seen else None
    body["worker_age_seconds"] = age
    waiting_runs = Run.objects.filter(
        status=RunStatus.QUEUED, queued_at__lt=now - timedelta(seconds=limit)
    ).count()
    body["waiting_runs"] = waiting_runs
    waiting = int(body.get("queued_tasks") or 0) + waiting_runs
    if not waiting or (age is not None and age <= limit):
        return True
    since = f"for {age} s" if age is not None else "ever"
    body["queue"] = (
        f"error: {waiting} task(s) wait and no worker has been seen {since} "
        f"(limit QUEUE_WORKER_STALE_SECONDS={limit}); is manage.py qcluster running?"
    )
    return False


def _worker_seen_at() -> datetime | None:
    """The last sign of a worker: the scheduled heartbeat task, or a running job's progress
    (a busy worker runs no heartbeat until its job ends, but its job reports)."""
    from integrations.models import WorkerHeartbeat
    from reports.models import Run, RunStatus

    beats = [
        WorkerHeartbeat.objects.aggregate(seen=Max("seen_at"))["seen"],
        Run.objects.filter(status=RunStatus.RUNNING)
        .exclude(triggered_by__startswith="cli:")  # a command runs its job itself
        .aggregate(seen=Max("heartbeat_at"))["seen"],
    ]
    beats = [b for b in beats if b is not None]
    return max(beats) if beats else None
