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
