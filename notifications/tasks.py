"""django-q2 entry points of the notification schedules (notifications/schedules.py)."""

from __future__ import annotations


def digests_send() -> dict[str, int]:
    from notifications.digest import digests_send as send

    return send()


def stale_alerts_check() -> int:
    from notifications.alerts import stale_alerts_check as check

    return check()
