"""The mentor digest: per mentor, their cohorts only, daily or weekly, their choice.

`digests_send(now)` (the hourly scheduled task) sends each mentor whose period is due
(settings DIGEST_HOUR, DIGEST_WEEKDAY, in the site's time zone) one digest per period:

- who newly needs attention (to watch or at risk, or worse than in the last digest sent),
  with the reasons in words, and who recovered;
- the top blockers of each cohort and how fresh its data is;
- links to the cohort and student pages (absolute, SITE_URL) and to the settings page.

A digest with nobody newly needing attention and nobody recovered is not sent (recorded
as empty). The `Digest` row for (mentor, period) is created before sending: a second run
in the same period finds it and sends nothing. The first digest a mentor gets compares
with nothing, so it lists everyone who needs attention.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from cohorts import analytics
from cohorts.changes import snapshot_take
from cohorts.models import Cohort
from cohorts.selectors import cohort_freshness
from notifications.models import Digest, DigestFrequency, DigestStatus, NotificationSettings
from reports.render import render_email

logger = logging.getLogger(__name__)

# Students listed per cohort and list; the cohort page has them all.
ITEMS_SHOWN = 10
BLOCKERS_SHOWN = 3
_SEVERITY = {analytics.ON_TRACK: 0, analytics.WATCH: 1, analytics.AT_RISK: 2}


def frequency_of(user) -> str:
    try:
        return user.notification_settings.digest
    except NotificationSettings.DoesNotExist:
        return settings.DIGEST_DEFAULT_FREQUENCY


def period_due(frequency: str, now: datetime) -> str | None:
    """The period a digest is due for at `now` (site time zone), or None (not yet / off).

    Daily: "D<date>" from DIGEST_HOUR on. Weekly: "W<ISO year>-<week>" from DIGEST_HOUR
    on DIGEST_WEEKDAY (0 = Monday), or any later day of that week (a missed run catches up).
    """
    local = timezone.localtime(now)
    hour, weekday = settings.DIGEST_HOUR, settings.DIGEST_WEEKDAY
    if frequency == DigestFrequency.DAILY:
        return f"D{local.date().isoformat()}" if local.hour >= hour else None
    if frequency == DigestFrequency.WEEKLY:
        year, week, iso_day = local.isocalendar()
        day = iso_day - 1
        if day > weekday or (day == weekday and local.hour >= hour):
            return f"W{year}-{week:02d}"
    return None


def _url(name: str, *args: Any) -> str:
    return settings.SITE_URL + reverse(name, args=args)


@dataclass
class DigestContent:
    context: dict[str, Any]
    statuses: dict[str, dict[str, list[str]]]
    newly: int
    recovered: int

    @property
    def empty(self) -> bool:
        return not (self.newly or self.recovered)


def digest_build(
    user, *, now: datetime, baseline: dict | None, snapshots: dict | None = None
) -> DigestContent:
    """What `user`'s digest says at `now`, against the statuses of their last digest
    (`baseline`, None for the first). Only the cohorts `user` mentors, staff included."""
    cohorts = list(Cohort.objects.filter(mentors=user).order_by("name", "id"))
    baseline = baseline or {}
    statuses: dict[str, dict[str, list[str]]] = {}
    sections, newly_total, recovered_total = [], 0, 0
    for cohort in cohorts:
        if snapshots is None or cohort.pk not in snapshots:
            snap = snapshot_take(cohort, now=now)
            if snapshots is not None:
                snapshots[cohort.pk] = snap  # a cohort with two mentors is computed once
        else:
            snap = snapshots[cohort.pk]
        before = baseline.get(str(cohort.pk), {})
        statuses[str(cohort.pk)] = {
            str(sid): [s.status, "; ".join(s.reasons)] for sid, s in snap.students.items()
        }
        newly, recovered = [], []
        for sid, state in snap.students.items():
            was_status, was_reason = before.get(str(sid), [analytics.ON_TRACK, ""])
            row = {
                "name": state.name,
                "url": _url("cohorts:student", cohort.pk, sid),
                "status": state.status,
                "status_label": analytics.STATUS_LABELS[state.status],
                "reason": "; ".join(state.reasons),
                "was_label": analytics.STATUS_LABELS.get(was_status, was_status),
                "was_reason": was_reason,
                "severity": _SEVERITY[state.status],
            }
            change = _SEVERITY[state.status] - _SEVERITY.get(was_status, 0)
            if change > 0:
                newly.append(row)
            elif change < 0:
                recovered.append(row)
        newly.sort(key=lambda r: (-r["severity"], r["name"].lower()))
        recovered.sort(key=lambda r: r["name"].lower())
        newly_total += len(newly)
        recovered_total += len(recovered)
        counts = {analytics.ON_TRACK: 0, analytics.WATCH: 0, analytics.AT_RISK: 0}
        for state in snap.students.values():
            counts[state.status] += 1
        sections.append(
            {
                "cohort": cohort,
                "url": _url("cohorts:detail", cohort.pk),
                "students": len(snap.students),
                "at_risk": counts[analytics.AT_RISK],
                "watch": counts[analytics.WATCH],
                "newly": newly[:ITEMS_SHOWN],
                "newly_more": max(len(newly) - ITEMS_SHOWN, 0),
                "newly_total": len(newly),
                "recovered": recovered[:ITEMS_SHOWN],
                "recovered_more": max(len(recovered) - ITEMS_SHOWN, 0),
                "recovered_total": len(recovered),
                "blockers": [
                    {"name": name, "reason": reason}
                    for name, _ext, reason in list(snap.blockers.values())[:BLOCKERS_SHOWN]
                ],
                "freshness": cohort_freshness(cohort=cohort, now=now),
            }
        )
    context = {
        "user": user,
        "name": user.get_full_name() or user.get_username(),
        "first": not baseline,
        "frequency_label": DigestFrequency(frequency_of(user)).label.lower(),
        "cohorts": sections,
        "newly_total": newly_total,
        "recovered_total": recovered_total,
        "now": now,
        "settings_url": _url("notifications:settings"),
        "site_url": settings.SITE_URL,
    }
    return DigestContent(context, statuses, newly_total, recovered_total)


def _mentors():
    return (
        get_user_model()
        .objects.filter(is_active=True, mentored_cohorts__isnull=False)
        .exclude(email="")
        .select_related("notification_settings")
        .distinct()
        .order_by("pk")
    )


def _baseline(user) -> dict | None:
    last = (
        Digest.objects.filter(user=user, status=DigestStatus.SENT)
        .order_by("-created_at", "-id")
        .values_list("statuses", flat=True)
        .first()
    )
    return last


def digest_send(user, *, now: datetime, snapshots: dict | None = None) -> str:
    """Send `user` the digest of the period due now. Returns what happened: "sent",
    "empty", "off", "not due", "done" (already handled this period) or "failed"."""
    frequency = frequency_of(user)
    if frequency == DigestFrequency.OFF:
        return "off"
    period = period_due(frequency, now)
    if period is None:
        return "not due"
    try:
        with transaction.atomic():
            claim = Digest.objects.create(user=user, period=period, frequency=frequency)
    except IntegrityError:
        return "done"
    try:
        content = digest_build(user, now=now, baseline=_baseline(user), snapshots=snapshots)
        summary = f"{content.newly} need attention, {content.recovered} recovered"
        if content.empty:
            claim.status, claim.summary = DigestStatus.EMPTY, summary
            claim.save(update_fields=["status", "summary"])
            return "empty"
        parts = render_email("digest", content.context)
        message = EmailMultiAlternatives(
            subject=parts.subject,
            body=parts.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[user.email],
        )
        message.attach_alternative(parts.html, "text/html")
        message.send()
    except Exception:
        # Nothing went out: free the period so the next hourly run tries again.
        logger.exception("digest for user %s (%s) failed", user.pk, period)
        claim.delete()
        return "failed"
    claim.status, claim.summary = DigestStatus.SENT, summary
    claim.statuses, claim.sent_at = content.statuses, timezone.now()
    claim.save(update_fields=["status", "summary", "statuses", "sent_at"])
    # Only the latest digest's statuses are ever compared with: keep the table small.
    Digest.objects.filter(user=user).exclude(pk=claim.pk).exclude(statuses={}).update(statuses={})
    return "sent"


def digests_send(*, now: datetime | None = None) -> dict[str, int]:
    """Every mentor's due digest; returns how many ended each way."""
    now = now or timezone.now()
    outcomes: dict[str, int] = {}
    snapshots: dict = {}
    for user in _mentors():
        outcome = digest_send(user, now=now, snapshots=snapshots)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
