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
