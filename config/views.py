"""Site-wide views: the health check."""

from __future__ import annotations

from django.db import connection
from django.db.models import Max
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache


@never_cache
def healthz(request):
    """200 when the database and the queue answer, 503 naming what does not."""
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
    return JsonResponse(body, status=200 if healthy else 503)
