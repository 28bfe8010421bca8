"""Stale-data alerts for admins: one email per batch of changes, never one per check.

`stale_alerts_check(now)` (scheduled every 15 minutes) looks at every cohort:

- failing: its last STALE_ALERT_FAILED_PULLS finished pulls all failed (or were refused
  as invalid);
- stale: it has a schedule (`sync_interval_hours`) and its newest successful pull (or, if
  it never had one, its creation) is older than the interval plus STALE_ALERT_GRACE_MINUTES.

A cohort that turns failing or stale opens its alert (a `CohortAlert` row) and records one
"opened" event; one that is fine again closes it and records one "recovered" event. While
an alert stays open nothing new is recorded, so repeated checks send nothing. Unsent events
are claimed and sent together in one email to `alert_recipients()`; a failed send releases
them for the next check.

A pull run names its cohort in `params["cohort_id"]` by the time it finishes: that is how
the check finds a cohort's pulls, whatever their vendor.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cohorts.models import Cohort
from notifications.models import AlertEvent, AlertEventKind, AlertProblem, CohortAlert
from notifications.recipients import alert_recipients
from reports.models import FINISHED_STATUSES, Run, RunStatus
from reports.render import render_email

logger = logging.getLogger(__name__)

FAILED = (RunStatus.FAILED, RunStatus.INVALID)
MESSAGE_CHARS = 300


def _run_url(run_id: int | None) -> str:
    return settings.SITE_URL + reverse("reports:detail", args=[run_id]) if run_id else ""


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def cohort_problem(cohort: Cohort, *, now: datetime) -> tuple[str, dict[str, Any]]:
    """(problem, detail): problem is "failing", "stale" or "" (fine)."""
    needed = max(int(settings.STALE_ALERT_FAILED_PULLS), 1)
    pulls = list(
        Run.objects.filter(params__cohort_id=cohort.pk, status__in=FINISHED_STATUSES)
        .order_by("-created_at", "-id")
        .only("id", "status", "message", "finished_at", "created_at")[:needed]
    )
    failing = len(pulls) >= needed and all(run.status in FAILED for run in pulls)
    stale, due = False, None
    if cohort.sync_interval_hours:
        reference = cohort.last_synced_at or cohort.created_at
        due = reference + timedelta(
            hours=cohort.sync_interval_hours, minutes=settings.STALE_ALERT_GRACE_MINUTES
        )
        stale = now > due
    last_error = (
        Run.objects.filter(params__cohort_id=cohort.pk, status__in=FAILED)
        .order_by("-created_at", "-id")
        .only("id", "message", "finished_at", "error_class")
        .first()
    )
    latest = pulls[0] if pulls else None
    detail = {
        "cohort": cohort.name,
        "cohort_url": settings.SITE_URL + reverse("cohorts:detail", args=[cohort.pk]),
        "interval_hours": cohort.sync_interval_hours,
        "last_success": _when(cohort.last_synced_at),
        "due": _when(due),
        "failed_pulls": sum(run.status in FAILED for run in pulls) if failing else 0,
        "last_error": None
        if last_error is None
        else {
            "run_id": last_error.pk,
            "url": _run_url(last_error.pk),
            "at": _when(last_error.finished_at),
            # Run messages are redacted by the jobs that wrote them.
            "message": (last_error.message or last_error.get_error_class_display())[:MESSAGE_CHARS],
        },
        "run_id": latest.pk if latest else cohort.last_sync_run_id,
        "run_url": _run_url(latest.pk if latest else cohort.last_sync_run_id),
    }
    if failing:
        return AlertProblem.FAILING, detail
    if stale:
        return AlertProblem.STALE, detail
    return "", detail


def alerts_update(*, now: datetime) -> int:
    """Open and close cohort alerts; records one event per transition. Returns how many."""
    recorded = 0
    missing = Cohort.objects.filter(data_alert__isnull=True).values_list("pk", flat=True)
    for cohort_id in list(missing):
        CohortAlert.objects.get_or_create(cohort_id=cohort_id)
    with transaction.atomic():
        # Two checks at once wait for each other here: each transition is recorded once.
        alerts = {a.cohort_id: a for a in CohortAlert.objects.select_for_update()}
        for cohort in Cohort.objects.order_by("pk"):
            problem, detail = cohort_problem(cohort, now=now)
            alert = alerts.get(cohort.pk) or CohortAlert(cohort=cohort)
            was = alert.problem
            if problem and not was:
                alert.problem, alert.opened_at, alert.closed_at = problem, now, None
                alert.save()
                AlertEvent.objects.create(
                    cohort=cohort, kind=AlertEventKind.OPENED, problem=problem, detail=detail
                )
                recorded += 1
            elif was and not problem:
                detail["opened_at"] = _when(alert.opened_at)
                alert.problem, alert.closed_at = "", now
                alert.save(update_fields=["problem", "closed_at"])
                AlertEvent.objects.create(
                    cohort=cohort, kind=AlertEventKind.RECOVERED, problem=was, detail=detail
                )
                recorded += 1
            elif problem and problem != was:
                # Still open, for another reason now: no new email, the state follows.
                alert.problem = problem
                alert.save(update_fields=["problem"])
    return recorded


def _row(event: AlertEvent) -> dict[str, Any]:
    """An event as the email reads it: times as datetimes (shown in the site's zone)."""
    detail = dict(event.detail)
    for key in ("last_success", "opened_at", "due"):
        detail[key] = parse_datetime(detail[key]) if detail.get(key) else None
    if detail.get("last_error"):
        error = dict(detail["last_error"])
        error["at"] = parse_datetime(error["at"]) if error.get("at") else None
        detail["last_error"] = error
    return {"problem": event.problem, "cohort_id": event.cohort_id, "detail": detail}


def alerts_send(*, now: datetime) -> int:
    """Send every unsent event in one email. Returns the number of emails sent (0 or 1)."""
    claim = AlertEvent.new_claim()
    AlertEvent.objects.filter(sent_at__isnull=True, claim__isnull=True).update(claim=claim)
    events = list(AlertEvent.objects.filter(claim=claim).select_related("cohort"))
    if not events:
        return 0
    recipients = alert_recipients()
    if not recipients:
        logger.warning(
            "%d stale-data alert(s) not emailed: no staff user has an email address and "
            "REPORT_RECIPIENTS is empty",
            len(events),
        )
        AlertEvent.objects.filter(claim=claim).update(sent_at=now)
        return 0
    opened = [_row(e) for e in events if e.kind == AlertEventKind.OPENED]
    recovered = [_row(e) for e in events if e.kind == AlertEventKind.RECOVERED]
    reported = {e.cohort_id for e in events}
    still_open = list(
        CohortAlert.objects.exclude(problem="")
        .exclude(cohort_id__in=reported)
        .select_related("cohort")
        .order_by("cohort__name")
    )
    context = {
        "opened": opened,
        "recovered": recovered,
        "still_open": still_open,
        "now": now,
        "grace_minutes": settings.STALE_ALERT_GRACE_MINUTES,
        "failed_pulls": settings.STALE_ALERT_FAILED_PULLS,
        "site_url": settings.SITE_URL,
    }
    try:
        parts = render_email("stale_alert", context)
        message = EmailMultiAlternatives(
            subject=parts.subject,
            body=parts.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=recipients,
        )
        message.attach_alternative(parts.html, "text/html")
        message.send()
    except Exception:
        logger.exception("stale-data alert email failed; it is tried again at the next check")
        AlertEvent.objects.filter(claim=claim).update(claim=None)
        return 0
    AlertEvent.objects.filter(claim=claim).update(sent_at=now)
    return 1


def stale_alerts_check(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    alerts_update(now=now)
    return alerts_send(now=now)
