"""Files the integrations keep between a request and the job that uses them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models


class RosterUpload(models.Model):
    """A roster file as uploaded (or given to a command), stored under DATA_DIR/rosters by
    its SHA-256 so the preview, the run and a resume all read the same bytes."""

    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveBigIntegerField()
    origin = models.CharField(max_length=20, default="web", help_text="web or cli.")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="roster_uploads",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.sha256[:12]})"

    @property
    def path(self) -> Path:
        return Path(settings.DATA_DIR) / "rosters" / f"{self.sha256}.csv"


class TitanSiteLimit(models.Model):
    """A Titan site's own guardrail limits, for sites much larger or smaller than most.
    Empty fields fall back to TITAN_MAX_REMOVALS and TITAN_MAX_REMOVAL_PERCENT."""

    site_name = models.CharField(
        max_length=200,
        unique=True,
        help_text="The site's name as Titan spells it (compared without regard to case).",
    )
    max_removals = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Hold a sync that would remove more of this site's memberships than this.",
    )
    max_removal_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Hold a sync that would remove more than this share (0-100) of the "
        "site's current memberships.",
    )
    note = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["site_name"]
        verbose_name = "Titan site limit"

    def __str__(self) -> str:
        return self.site_name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        self.site_name = " ".join(self.site_name.split())
        if self.max_removal_percent is not None and not 0 <= self.max_removal_percent <= 100:
            raise ValidationError({"max_removal_percent": "A percentage between 0 and 100."})
        if self.max_removals is None and self.max_removal_percent is None:
            raise ValidationError("Set a count, a percentage, or both.")


class WorkerHeartbeat(models.Model):
    """The last time a task worker on this host ran the heartbeat task (scheduled every
    minute by setup_schedules). /healthz reads it: the database broker's ping() always
    answers yes, and django-q2's cluster statistics live in Redis or in the cache (not
    shared between processes by default), so the database is the one place every broker
    shares."""

    host = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.host} {self.seen_at:%Y-%m-%d %H:%M:%S}"
