"""The heartbeat /healthz reads goes through the configured broker (database, or Redis)
and a real django-q2 worker, as the schedule sends it."""

from datetime import timedelta
from multiprocessing import Event, Queue, Value

import pytest
from django.test import Client
from django_q.brokers import get_broker
from django_q.monitor import monitor
from django_q.pusher import pusher
from django_q.tasks import async_task
from django_q.worker import worker

from integrations.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db(transaction=True)


def test_heartbeat_through_broker_and_worker_brings_healthz_back(settings):
    from reports.models import Run, RunKind

    broker = get_broker("classbridge-test-heartbeat")
    broker.purge_queue()
    waited = Run.objects.create(kind=RunKind.OPENCLASS_SYNC, triggered_by="user:ada")
    old = waited.created_at - timedelta(seconds=settings.QUEUE_WORKER_STALE_SECONDS + 1)
    Run.objects.filter(pk=waited.pk).update(queued_at=old)
    assert Client().get("/healthz").status_code == 503

    async_task(
        "integrations.tasks.worker_heartbeat", broker=broker, sync=False, q_options={"save": False}
    )
    task_queue, result_queue, event = Queue(), Queue(), Event()
    event.set()  # one pass of the pusher
    pusher(task_queue, event, broker=broker)
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("f", -1))
    result_queue.put("STOP")
    monitor(result_queue, broker=broker)

    assert WorkerHeartbeat.objects.count() == 1
    response = Client().get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["worker_age_seconds"] <= 5
    broker.purge_queue()
