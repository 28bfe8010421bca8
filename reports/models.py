"""Runs and their per-row outcomes: the record every job (pull or push) leaves behind."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from reports.constants import ErrorClass


class RunKind(models.TextChoices):
    OPENCLASS_SYNC = "openclass_sync", "OpenClass pull"
    CANVAS_SYNC = "canvas_sync", "Canvas pull"
    APEX_ENROLL = "apex_enroll", "APEX enrollment"
    TITAN_SYNC = "titan_sync", "Titan HST sync"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partly failed"
    FAILED = "failed", "Failed"
    HELD = "held", "Held by a guardrail"
    INVALID = "invalid", "Invalid input"


# A run in one of these is live: it holds its lock_key (one live run per key).
ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)

FINISHED_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.HELD, RunStatus.INVALID}
)

# Exit status of the job commands, per final run status (docs/interfaces in shared/).
EXIT_CODES = {
    RunStatus.SUCCEEDED: 0,
    RunStatus.PARTIAL: 1,
    RunStatus.INVALID: 2,
    RunStatus.HELD: 3,
    RunStatus.FAILED: 4,
}


class Run(models.Model):
    kind = models.CharField(max_length=30, choices=RunKind.choices, db_index=True)
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    dry_run = models.BooleanField(default=False)
    subject = models.CharField(
        max_length=300, blank=True, help_text="What the run was about: a cohort, a file."
    )
    # Non-secret parameters the job needs to (re)start: class id, cohort id, file path…
    params = models.JSONField(default=dict, blank=True)
    triggered_by = models.CharField(
        max_length=200, help_text="user:NAME, cli:OS-USER, schedule:NAME or system."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    stage = models.CharField(max_length=40, blank=True)
    stage_timings = models.JSONField(default=dict, blank=True, help_text="Seconds per stage.")
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    progress_unit = models.CharField(max_length=20, blank=True, help_text="pages, rows…")
    message = models.TextField(blank=True, help_text="Summary, or why the run failed.")
    error_class = models.CharField(max_length=30, choices=ErrorClass.choices, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_error = models.TextField(
        blank=True, help_text="Why the mail relay did not take the report (no secrets)."
    )
    items_pruned_at = models.DateTimeField(
        null=True, blank=True, help_text="When retention deleted the run's items."
    )
    # The job spine (docs/architecture.md, "Jobs"): one live run per lock_key, one owner
    # per run (the lease), and a lost task noticed by the reaper (queued_at, task_requeues).
    lock_key = models.CharField(
        max_length=200,
        blank=True,
        help_text="What the run works on, e.g. apex_enroll:upload:34; one live run per key.",
    )
    lease = models.PositiveIntegerField(
        default=0,
        help_text="Claim generation: +1 at each claim; only the worker holding it may write.",
    )
    queued_at = models.DateTimeField(
        default=timezone.now, help_text="When the run was last put in the queue."
    )
    task_requeues = models.PositiveSmallIntegerField(
        default=0,
        help_text="Times its task was queued again because none reached a worker.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["kind", "status", "created_at"], name="run_kind_status"),
            models.Index(fields=["status", "queued_at"], name="run_status_queued_at"),
        ]
        constraints = [
            # Two confirms or two "Sync now" presses at the same moment: the database
            # lets only one of them insert a live run for the key (reports.services.run_create).
            models.UniqueConstraint(
                fields=["lock_key"],
                condition=models.Q(status__in=ACTIVE_STATUSES) & ~models.Q(lock_key=""),
                name="run_one_live_per_lock_key",
            )
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} {self.kind} {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def exit_code(self) -> int | None:
        return EXIT_CODES.get(self.status)


class RunItem(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="items")
    seq = models.PositiveIntegerField(default=0, help_text="Row number or order of the entity.")
    key = models.CharField(max_length=200, blank=True, help_text="The entity's id.")
    label = models.CharField(max_length=300, blank=True)
    group = models.CharField(max_length=200, blank=True, help_text="Classroom, page, site…")
    outcome = models.CharField(max_length=30, help_text="created, updated, enrolled, failed…")
    error_class = models.CharField(max_length=30, choices=ErrorClass.choices, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq", "id"]
        indexes = [
            models.Index(fields=["run", "outcome"], name="runitem_run_outcome"),
            models.Index(fields=["run", "error_class"], name="runitem_run_error"),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.outcome}"

    @property
    def failed(self) -> bool:
        return bool(self.error_class)
