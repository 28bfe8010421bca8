"""GET /healthz: 200 with database and queue ok; 503 naming what is not."""

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


def test_healthy(client, cohort_a):
    cohort_a.last_synced_at = timezone.now() - timezone.timedelta(minutes=5)
    cohort_a.save()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["queue"] == "ok"
    assert 250 <= body["data_age_seconds"] <= 400


def test_no_data_yet(client):
    body = client.get("/healthz").json()
    assert body["newest_data_at"] is None


def test_queue_down_is_503_and_named(client, monkeypatch):
    class DeadBroker:
        def ping(self):
            raise ConnectionError("redis went away")

    monkeypatch.setattr("django_q.brokers.get_broker", lambda *a, **k: DeadBroker())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["queue"].startswith("error")
    assert response.json()["database"] == "ok"


# --- a dead worker ---------------------------------------------------------------------
def stale_by(settings, extra: int = 1):
    return timezone.now() - timezone.timedelta(seconds=settings.QUEUE_WORKER_STALE_SECONDS + extra)


def waiting_run(settings):
    from reports.models import Run, RunKind

    return Run.objects.create(
        kind=RunKind.OPENCLASS_SYNC, triggered_by="user:ada", queued_at=stale_by(settings)
    )


def beat(when):
    from integrations.models import WorkerHeartbeat

    WorkerHeartbeat.objects.update_or_create(host="worker-1", defaults={"seen_at": when})


def test_tasks_waiting_and_no_worker_ever_seen_is_503_naming_the_queue(client, settings):
    waiting_run(settings)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["queue"].startswith("error: 1 task(s) wait and no worker has been seen ever")
    assert "QUEUE_WORKER_STALE_SECONDS" in body["queue"]
    assert body["worker_seen_at"] is None and body["waiting_runs"] == 1


def test_tasks_waiting_and_a_stale_heartbeat_is_503(client, settings):
    waiting_run(settings)
    beat(stale_by(settings, extra=60))
    body = client.get("/healthz").json()
    assert body["queue"].startswith("error:") and "no worker has been seen for" in body["queue"]
    assert body["worker_age_seconds"] > settings.QUEUE_WORKER_STALE_SECONDS


def test_a_recent_heartbeat_keeps_the_queue_up(client, settings):
    waiting_run(settings)
    beat(timezone.now())
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["queue"] == "ok"
    assert response.json()["worker_age_seconds"] <= 1


def test_a_busy_worker_reporting_progress_counts_as_seen(client, settings, run_factory):
    """Long jobs keep every worker busy, so the heartbeat task waits its turn; their
    progress shows the workers are alive. A command's own run proves no worker."""
    from reports.models import Run, RunStatus

    waiting_run(settings)
    beat(stale_by(settings, extra=600))
    by_hand = run_factory(status=RunStatus.RUNNING, triggered_by="cli:ada")
    Run.objects.filter(pk=by_hand.pk).update(heartbeat_at=timezone.now())
    assert client.get("/healthz").status_code == 503
    worker_run = run_factory(status=RunStatus.RUNNING, triggered_by="user:ada")
    Run.objects.filter(pk=worker_run.pk).update(heartbeat_at=timezone.now())
    assert client.get("/healthz").status_code == 200


def test_an_idle_queue_without_a_worker_is_not_an_alarm(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["queue"] == "ok" and response.json()["worker_seen_at"] is None


def test_tasks_waiting_in_the_broker_count(client, settings):
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    broker = get_broker()
    broker.purge_queue()
    try:
        async_task("integrations.tasks.worker_heartbeat", broker=broker, sync=False)
        body = client.get("/healthz").json()
        assert body["queued_tasks"] == 1 and body["waiting_runs"] == 0
        assert body["queue"].startswith("error: 1 task(s) wait")
    finally:
        broker.purge_queue()


def test_the_heartbeat_task_records_the_worker_and_is_scheduled():
    from django_q.models import Schedule

    from integrations.models import WorkerHeartbeat
    from integrations.schedules import HEARTBEAT, schedules_sync
    from integrations.tasks import worker_heartbeat

    worker_heartbeat()
    worker_heartbeat()
    [row] = WorkerHeartbeat.objects.all()
    assert timezone.now() - row.seen_at < timezone.timedelta(seconds=60)
    schedules_sync()
    schedule = Schedule.objects.get(name=HEARTBEAT)
    assert schedule.func == "integrations.tasks.worker_heartbeat"
    assert schedule.minutes == 1 and schedule.repeats == -1
    assert "'save': False" in schedule.kwargs


# --- plain HTTP behind a TLS-terminating proxy -------------------------------------------
def test_healthz_answers_plain_http_when_https_is_enforced(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    redirected = client.get("/login/")
    assert redirected.status_code == 301 and redirected["Location"].startswith("https://")


PRODUCTION_PROBE = """
import django
from django.conf import settings
django.setup()
from django.http import HttpResponse
from django.middleware.security import SecurityMiddleware
from django.test import RequestFactory
assert settings.SECURE_SSL_REDIRECT is True, "production settings must redirect to HTTPS"
middleware = SecurityMiddleware(lambda request: HttpResponse("ok"))
factory = RequestFactory()
for path in ("/healthz", "/login/"):
    print(middleware(factory.get(path)).status_code)
"""


def test_production_settings_exempt_healthz_from_the_https_redirect(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CLASSBRIDGE_DATA_DIR": str(tmp_path),
        "DEBUG": "false",
        "SECRET_KEY": "a-production-like-key-" + "x" * 40,
        "ALLOWED_HOSTS": "testserver",
    }
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["200", "301"]
