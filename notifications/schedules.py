"""The notification schedules; `integrations.schedules.schedules_sync` (manage.py
setup_schedules) creates or updates them beside the reaper, never AppConfig.ready()."""

from __future__ import annotations

from django_q.models import Schedule

DIGESTS = "classbridge:mentor-digests"
STALE_ALERTS = "classbridge:stale-alerts"

SCHEDULES = {
    # Hourly: each mentor's digest goes out on the first run at or after DIGEST_HOUR.
    DIGESTS: {
        "func": "notifications.tasks.digests_send",
        "schedule_type": Schedule.HOURLY,
        "repeats": -1,
    },
    STALE_ALERTS: {
        "func": "notifications.tasks.stale_alerts_check",
        "schedule_type": Schedule.MINUTES,
        "minutes": 15,
        "repeats": -1,
    },
}


def notification_schedules_sync() -> None:
    for name, defaults in SCHEDULES.items():
        Schedule.objects.update_or_create(name=name, defaults=defaults)
