"""Cohorts, their students, curriculum and progress.

Vendor-neutral: a pull job in `integrations` writes here through `cohorts.services`.
Rows are keyed by (source, external_id) so re-running a pull is an upsert.
"""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class Source(models.TextChoices):
    OPENCLASS = "openclass", "OpenClass.ai"
    CANVAS = "canvas", "Canvas LMS"


class Cohort(models.Model):
    name = models.CharField(max_length=200)
    source = models.CharField(max_length=20, choices=Source.choices)
    external_id = models.CharField(
        max_length=100, help_text="The class or course id at the source vendor."
    )
    mentors = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="mentored_cohorts"
    )
    sync_interval_hours = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Pull this cohort from its source every N hours. Empty: no schedule.",
    )
    # Health thresholds, editable per cohort by an admin.
    inactive_days = models.PositiveSmallIntegerField(
        default=7, help_text="Days without activity before a student needs watching."
    )
    behind_fraction = models.FloatField(
        default=0.2,
        help_text="Share of the curriculum behind the cohort median that puts a student at risk.",
    )
    low_grade = models.FloatField(
        default=0.6, help_text="Quiz average (0..1) below which a student is at risk."
    )
    # The pace line: the curriculum's units spread evenly from start to end
    # (docs/cohort-health.md). Empty start: the cohort's first activity; empty end: one
    # week per unit.
    starts_on = models.DateField(
        null=True, blank=True, help_text="First day of the course. Empty: the first activity."
    )
    ends_on = models.DateField(
        null=True,
        blank=True,
        help_text="Day the curriculum should be finished. Empty: one week per unit.",
    )
    # Written by the pull job when a pull finishes (not a foreign key: cohorts stay
    # independent of the reports app).
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_sync_status = models.CharField(max_length=20, blank=True)
    last_sync_run_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped whenever the cohort's data changes (the end of every pull, any single save of
    # its students, enrollments, assignments or progressions: `cohorts.health_store`), so
    # a stored health computed from older data is never served (docs/cohort-health.md).
    data_version = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="cohort_source_extid")
        ]

    def __str__(self) -> str:
        return self.name


class Person(models.Model):
    """One human behind one or more Student records (one per vendor that knows them).

    Records with the same email, compared case-insensitively, share a person; a record
    without an email has a person of its own. An admin may link or unlink records by hand
    (`person_by_hand`), and every such change is logged in `PersonLinkLog`.
    """

    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Person {self.pk}"


class PersonLinkLog(models.Model):
    """An admin's hand-made link or unlink of student records (never edited)."""

    action = models.CharField(max_length=10, choices=[("link", "Linked"), ("unlink", "Unlinked")])
    students = models.JSONField(help_text="The student records concerned: id, source, external id.")
    person_id_after = models.BigIntegerField(null=True, blank=True)
    by = models.CharField(max_length=200)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.by} at {self.at:%Y-%m-%d %H:%M}"


class Student(models.Model):
    source = models.CharField(max_length=20, choices=Source.choices)
    # Kept exactly as the vendor sends it (Canvas's shard-style numeric ids as text).
    external_id = models.CharField(max_length=100)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    email = models.EmailField(max_length=254, blank=True, db_index=True)
    cohorts = models.ManyToManyField(Cohort, through="Enrollment", related_name="students")
    person = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="students"
    )
    person_by_hand = models.BooleanField(
        default=False, help_text="Linked or unlinked by an admin: pulls never re-link it."
    )

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="student_source_extid")
        ]

    def __str__(self) -> str:
        return self.full_name or self.email or self.external_id

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Enrollment(models.Model):
    """A student in a cohort. A student a complete pull no longer sees has left: the
    enrollment turns inactive (kept for history, out of every metric) until a pull sees
    them again (`cohorts.services.enrollments_reconcile`)."""

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="enrollments")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="enrollments")
    created_at = models.DateTimeField(auto_now_add=True)
    active = models.BooleanField(
        default=True, help_text="False once a complete pull no longer saw the student."
    )
    left_at = models.DateTimeField(
        null=True, blank=True, help_text="When a pull first no longer saw the student."
    )
    # What the source knows of the student in this course (Canvas: enrollment grades and
    # last activity); empty for sources that do not say.
    current_score = models.FloatField(null=True, blank=True, help_text="Percent, 0..100+.")
    final_score = models.FloatField(null=True, blank=True, help_text="Percent, 0..100+.")
    last_activity_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cohort", "student"], name="enrollment_unique")
        ]

    def __str__(self) -> str:
        return f"{self.student_id} in {self.cohort_id}"


class Assignment(models.Model):
    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="assignments")
    external_id = models.CharField(max_length=100)
    name = models.CharField(max_length=300)
    kind = models.CharField(max_length=30, blank=True, help_text="lesson, quiz, assignment…")
    unit = models.CharField(max_length=200, blank=True, help_text="Unit, section or week.")
    unit_position = models.PositiveIntegerField(default=0)
    position = models.PositiveIntegerField(default=0, help_text="Order within the curriculum.")
    # Unpublished work is kept but left out of completion and health (docs/canvas.md).
    published = models.BooleanField(default=True)
    points_possible = models.FloatField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cohort", "unit_position", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["cohort", "external_id"], name="assignment_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Progression(models.Model):
    # Denormalised from assignment.cohort so cohort-wide reads need no join.
    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="progressions")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="progressions")
    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, related_name="progressions"
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    external_id = models.CharField(max_length=100)
    grade = models.FloatField(null=True, blank=True, help_text="0..1, or empty.")
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # Flags and raw score some sources give (Canvas); False / empty elsewhere.
    score = models.FloatField(null=True, blank=True, help_text="Points, as the source gave.")
    late = models.BooleanField(default=False)
    missing = models.BooleanField(default=False)
    excused = models.BooleanField(default=False)
    # When this row was first stored or last changed by a pull.
    synced_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="progression_source_extid"
            )
        ]
        indexes = [
            models.Index(fields=["cohort", "student"], name="progression_cohort_student"),
            models.Index(fields=["cohort", "assignment"], name="progression_cohort_assign"),
            models.Index(fields=["cohort", "completed_at"], name="progression_cohort_done"),
        ]

    def __str__(self) -> str:
        return f"{self.student_id} x {self.assignment_id}"


class MentorNote(models.Model):
    """A follow-up a mentor recorded about a student, kept as a log (never edited)."""

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="mentor_notes")
    student = models.ForeignKey(Student, on_delete=models.CASCADE, related_name="mentor_notes")
    # SET_NULL with a copy of the name: the log outlives an account being removed.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=300)
    body = models.TextField(max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["cohort", "student", "created_at"], name="note_cohort_student")
        ]

    def __str__(self) -> str:
        return f"{self.author_name} on {self.student_id}, {self.created_at:%Y-%m-%d}"


class StoredHealth(models.Model):
    """A cohort's health as its default view shows it, computed once and served until it is
    stale (`cohorts.health_store`: new data, other thresholds or course dates, or older
    than HEALTH_MAX_AGE_SECONDS). Never edited by hand: delete it and the next view
    computes it again."""

    cohort = models.OneToOneField(
        Cohort, on_delete=models.CASCADE, primary_key=True, related_name="stored_health"
    )
    # Digest of everything the figures depend on besides time (data version, thresholds,
    # course dates, source, time zone, code and pandas versions).
    key = models.CharField(max_length=64)
    data_version = models.PositiveBigIntegerField()
    computed_at = models.DateTimeField(help_text="The moment the figures are as of.")
    seconds = models.FloatField(default=0.0, help_text="How long computing them took.")
    # Signed, compressed: the pages' figures, and (read only by the pull's change report)
    # each student x assignment's completion and grade.
    payload = models.BinaryField()
    pairs = models.BinaryField()

    class Meta:
        verbose_name = "stored health"
        verbose_name_plural = "stored health"

    def __str__(self) -> str:
        return f"Health of cohort {self.cohort_id} as of {self.computed_at:%Y-%m-%d %H:%M}"


class ApiToken(models.Model):
    """A key for the JSON API. Only its SHA-256 is stored: the key is shown once, at creation.

    A plain hash is enough (no slow KDF): the key is 256 random bits, not a password.
    """

    PREFIX_LENGTH = 8

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(
        max_length=100, help_text="What the token is for, e.g. 'weekly export'."
    )
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    @classmethod
    def new_key(cls) -> str:
        return secrets.token_urlsafe(32)

    def set_key(self, key: str) -> None:
        self.prefix = key[: self.PREFIX_LENGTH]
        self.key_hash = self.hash_key(key)
