"""A queued run goes through the configured broker (database, or Redis with REDIS_URL)
and a real django-q2 worker, not the synchronous shortcut the other tests use."""

from multiprocessing import Event, Queue, Value

import pytest
from django_q.brokers import get_broker
from django_q.monitor import monitor
from django_q.pusher import pusher
from django_q.tasks import async_task
from django_q.worker import worker

from reports.models import Run, RunKind, RunStatus
from reports.services import run_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_run_goes_through_broker_and_worker(fake_openclass_job, settings):
    fake_openclass_job("ok_job")
    broker = get_broker("classbridge-test-queue")
    assert type(broker).__name__ == ("Redis" if settings.REDIS_URL else "ORM")
    broker.purge_queue()
    run = run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="test")

    async_task("integrations.tasks.run_job", run.pk, broker=broker, sync=False)
    assert broker.queue_size() == 1
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED

    task_queue, result_queue, event = Queue(), Queue(), Event()
    event.set()  # one pass of the pusher
    pusher(task_queue, event, broker=broker)
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("f", -1))
    result_queue.put("STOP")
    monitor(result_queue, broker=broker)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.counts == {"created": 3}
    assert broker.queue_size() == 0
    broker.purge_queue()
