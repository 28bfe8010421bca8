"""What Classbridge tells people on its own: mentor digests and stale-data alerts.

Each send is recorded before it goes out, so a repeated or concurrent scheduled task never
sends the same digest or alert twice (docs/notifications.md).
"""

import uuid

from django.conf import settings
from django.db import models

from cohorts.models import Cohort


class DigestFrequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    OFF = "off", "No digest"


class NotificationSettings(models.Model):
    """A person's own choices. Without a row, settings.DIGEST_DEFAULT_FREQUENCY applies."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings"
    )
    digest = models.CharField(
        max_length=10,
        choices=DigestFrequency.choices,
        help_text="How often to email a digest of the cohorts you mentor.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"{self.user} · digest {self.digest}"


class DigestStatus(models.TextChoices):
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    EMPTY = "empty", "Nothing new: not sent"


class Digest(models.Model):
    """One mentor's digest for one period ("D2026-03-20", "W2026-12"). Created before the
    email goes out (the unique pair is the claim), so a period is never sent twice."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digests"
    )
    period = models.CharField(max_length=20)
    frequency = models.CharField(max_length=10, choices=DigestFrequency.choices)
    status = models.CharField(
        max_length=10, choices=DigestStatus.choices, default=DigestStatus.SENDING
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    summary = models.CharField(max_length=300, blank=True)
    # What the next digest compares with: {cohort id: {student id: status}} at send time.
    statuses = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "period"], name="digest_once_per_period")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.period} {self.status}"


class AlertProblem(models.TextChoices):
    STALE = "stale", "Data is stale"
    FAILING = "failing", "Pulls are failing"


class CohortAlert(models.Model):
    """A cohort's alert state: open while its data is stale or its pulls fail."""

    cohort = models.OneToOneField(Cohort, on_delete=models.CASCADE, related_name="data_alert")
    problem = models.CharField(max_length=10, choices=AlertProblem.choices, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.cohort} {self.problem or 'ok'}"

    @property
    def is_open(self) -> bool:
        return bool(self.problem)


class AlertEventKind(models.TextChoices):
    OPENED = "opened", "Needs attention"
    RECOVERED = "recovered", "Recovered"


class AlertEvent(models.Model):
    """One transition to report (opened or recovered), sent in the next alert email."""

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="alert_events")
    kind = models.CharField(max_length=10, choices=AlertEventKind.choices)
    problem = models.CharField(max_length=10, choices=AlertProblem.choices, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when an email claims the event (a sender sets its own claim, then sends).
    claim = models.UUIDField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["sent_at"], name="alertevent_unsent")]

    def __str__(self) -> str:
        return f"{self.cohort_id} {self.kind} {self.created_at:%Y-%m-%d %H:%M}"

    @staticmethod
    def new_claim() -> uuid.UUID:
        return uuid.uuid4()
