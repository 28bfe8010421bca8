"""Writes to cohorts: vendor-neutral upserts keyed by (source, external_id).

A pull hands over one page of plain records at a time; each call writes that page in one
transaction with bulk statements, and reports what it created, updated and left alone, so
a re-run over unchanged data writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from cohorts.health_store import cohort_data_changed
from cohorts.models import (
    Assignment,
    Cohort,
    Enrollment,
    Person,
    PersonLinkLog,
    Progression,
    Student,
)


@dataclass(frozen=True, slots=True)
class StudentRecord:
    external_id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    external_id: str
    name: str = ""
    kind: str = ""
    unit: str = ""
    unit_position: int | None = None
    position: int | None = None
    # None: the source does not say (left as stored).
    published: bool | None = None
    points_possible: float | None = None
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProgressionRecord:
    external_id: str
    student_external_id: str
    assignment_external_id: str
    grade: float | None
    started_at: datetime | None
    completed_at: datetime | None
    reviewed_at: datetime | None
    # What only some sources know (Canvas); the defaults mean "not said".
    score: float | None = None
    late: bool = False
    missing: bool = False
    excused: bool = False


@dataclass(frozen=True, slots=True)
class EnrollmentDetail:
    """What the source knows of a student in one course (Canvas enrollments)."""

    current_score: float | None = None
    final_score: float | None = None
    last_activity_at: datetime | None = None


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changed_keys: list[str] = field(default_factory=list)

    def __iadd__(self, other: UpsertResult) -> UpsertResult:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.changed_keys.extend(other.changed_keys)
        return self


def cohort_get_or_create(*, source: str, external_id: str, name: str = "") -> Cohort:
    cohort, created = Cohort.objects.get_or_create(
        source=source, external_id=external_id, defaults={"name": name or external_id}
    )
    if not created and name and cohort.name != name:
        cohort.name = name
        cohort.save(update_fields=["name"])
    return cohort


def cohort_mark_synced(*, cohort_id: int, run_id: int, status: str, at: datetime) -> None:
    fields = {"last_sync_status": status, "last_sync_run_id": run_id}
    if status in ("succeeded", "partial"):
        fields["last_synced_at"] = at
    Cohort.objects.filter(pk=cohort_id).update(**fields)


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    left: int = 0
    returned: int = 0


def enrollments_reconcile(
    *, cohort: Cohort, seen_student_ids: Iterable[int], at: datetime | None = None
) -> ReconcileResult:
    """After a COMPLETE pull of the cohort: its enrolled students the pull did not see have
    left (inactive from `at`), and those it saw again are back (active, no `left_at`).

    `seen_student_ids` are Student pks (what `students_upsert` returns). Never call it after
    a failed, partial or truncated pull: an unseen student there proves nothing. A leaver's
    enrollment, progressions and notes are kept; every metric leaves them out. One read,
    then one update per 500 changes.
    """
    at = at or timezone.now()
    seen = set(seen_student_ids)
    with transaction.atomic():
        rows = list(
            Enrollment.objects.select_for_update()
            .filter(cohort=cohort)
            .values_list("pk", "student_id", "active")
        )
        leaving = [pk for pk, student_id, active in rows if active and student_id not in seen]
        back = [pk for pk, student_id, active in rows if not active and student_id in seen]
        for chunk in _chunks(leaving):
            Enrollment.objects.filter(pk__in=chunk).update(active=False, left_at=at)
        for chunk in _chunks(back):
            Enrollment.objects.filter(pk__in=chunk).update(active=True, left_at=None)
        if leaving or back:  # the stored health counted them as they were
            cohort_data_changed(cohort.pk)
    return ReconcileResult(left=len(leaving), returned=len(back))


def _chunks(items: Sequence, size: int = 500) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def students_upsert(
    *, cohort: Cohort, source: str, records: Iterable[StudentRecord]
) -> tuple[dict[str, int], UpsertResult]:
    """Create or update students and enroll them in the cohort. Returns external id → pk."""
    by_id = {r.external_id: r for r in records}
    result = UpsertResult()
    if not by_id:
        return {}, result
    existing: dict[str, Student] = {}
    for chunk in _chunks(list(by_id)):
        existing.update(
            {s.external_id: s for s in Student.objects.filter(source=source, external_id__in=chunk)}
        )
    to_create, to_update = [], []
    for ext_id, rec in by_id.items():
        student = existing.get(ext_id)
        if student is None:
            to_create.append(
                Student(
                    source=source,
                    external_id=ext_id,
                    first_name=rec.first_name,
                    last_name=rec.last_name,
                    email=rec.email,
                )
            )
            continue
        changed = False
        for attr in ("first_name", "last_name", "email"):
            value = getattr(rec, attr)
            if value and getattr(student, attr) != value:
                setattr(student, attr, value)
                changed = True
        if changed:
            to_update.append(student)
    with transaction.atomic():
        if to_create:
            Student.objects.bulk_create(to_create, batch_size=500, ignore_conflicts=True)
            for chunk in _chunks([s.external_id for s in to_create]):
                existing.update(
                    {
                        s.external_id: s
                        for s in Student.objects.filter(source=source, external_id__in=chunk)
                    }
                )
        if to_update:
            Student.objects.bulk_update(to_update, ["first_name", "last_name", "email"], 500)
        ids = {ext: existing[ext].pk for ext in by_id}
        persons_assign(student_ids=ids.values())
        enrolled = set(
            Enrollment.objects.filter(cohort=cohort, student_id__in=ids.values()).values_list(
                "student_id", flat=True
            )
        )
        missing = [
            Enrollment(cohort=cohort, student_id=pk) for pk in ids.values() if pk not in enrolled
        ]
        if missing:
            Enrollment.objects.bulk_create(missing, ignore_conflicts=True)
    result.created = len(to_create)
    result.updated = len(to_update)
    result.unchanged = len(by_id) - result.created - result.updated
    return ids, result


_ASSIGNMENT_FIELDS = (
    "name",
    "kind",
    "unit",
    "unit_position",
    "position",
    "published",
    "points_possible",
    "due_at",
)


def assignments_upsert(
    *, cohort: Cohort, records: Iterable[AssignmentRecord], fill_only: bool = False
) -> tuple[dict[str, int], UpsertResult]:
    """Create or update the cohort's assignments. Returns external id → pk.

    `fill_only=True` (records seen inside progressions, which carry no curriculum order)
    creates missing assignments and fills empty names/kinds, but never moves them.
    """
    by_id: dict[str, AssignmentRecord] = {}
    for rec in records:
        by_id.setdefault(rec.external_id, rec)
    result = UpsertResult()
    if not by_id:
        return {}, result
    existing: dict[str, Assignment] = {}
    for chunk in _chunks(list(by_id)):
        existing.update(
            {
                a.external_id: a
                for a in Assignment.objects.filter(cohort=cohort, external_id__in=chunk)
            }
        )
    to_create, to_update = [], []
    for ext_id, rec in by_id.items():
        assignment = existing.get(ext_id)
        if assignment is None:
            to_create.append(
                Assignment(
                    cohort=cohort,
                    external_id=ext_id,
                    name=rec.name or ext_id,
                    kind=rec.kind,
                    unit=rec.unit,
                    unit_position=rec.unit_position or 0,
                    position=rec.position if rec.position is not None else 0,
                    published=rec.published if rec.published is not None else True,
                    points_possible=rec.points_possible,
                    due_at=rec.due_at,
                )
            )
            continue
        changed = False
        for attr in _ASSIGNMENT_FIELDS:
            value = getattr(rec, attr)
            if value in (None, ""):
                continue
            current = getattr(assignment, attr)
            if fill_only and current not in ("", 0, None, assignment.external_id):
                continue
            if current != value:
                setattr(assignment, attr, value)
                changed = True
        if changed:
            to_update.append(assignment)
    with transaction.atomic():
        if to_create:
            Assignment.objects.bulk_create(to_create, batch_size=500, ignore_conflicts=True)
            for chunk in _chunks([a.external_id for a in to_create]):
                existing.update(
                    {
                        a.external_id: a
                        for a in Assignment.objects.filter(cohort=cohort, external_id__in=chunk)
                    }
                )
        if to_update:
            Assignment.objects.bulk_update(to_update, list(_ASSIGNMENT_FIELDS), 500)
    result.created = len(to_create)
    result.updated = len(to_update)
    result.unchanged = len(by_id) - result.created - result.updated
    return {ext: existing[ext].pk for ext in by_id}, result


_PROGRESSION_FIELDS = (
    "student_id",
    "assignment_id",
    "grade",
    "started_at",
    "completed_at",
    "reviewed_at",
    "score",
    "late",
    "missing",
    "excused",
)


def progressions_upsert(
    *,
    cohort: Cohort,
    source: str,
    records: Sequence[ProgressionRecord],
    student_ids: dict[str, int],
    assignment_ids: dict[str, int],
    now: datetime | None = None,
) -> UpsertResult:
    """Insert new progressions, update changed ones, leave equal ones untouched."""
    now = now or timezone.now()
    result = UpsertResult()
    incoming: dict[str, ProgressionRecord] = {}
    for rec in records:
        incoming[rec.external_id] = rec  # a page never repeats an id; last one wins if it does
    if not incoming:
        return result
    existing: dict[str, Progression] = {}
    for chunk in _chunks(list(incoming)):
        existing.update(
            {
                p.external_id: p
                for p in Progression.objects.filter(source=source, external_id__in=chunk).only(
                    "id", "external_id", "cohort_id", *_PROGRESSION_FIELDS
                )
            }
        )
    to_create, to_update = [], []
    for ext_id, rec in incoming.items():
        values = {
            "student_id": student_ids[rec.student_external_id],
            "assignment_id": assignment_ids[rec.assignment_external_id],
            "grade": rec.grade,
            "started_at": rec.started_at,
            "completed_at": rec.completed_at,
            "reviewed_at": rec.reviewed_at,
            "score": rec.score,
            "late": rec.late,
            "missing": rec.missing,
            "excused": rec.excused,
        }
        current = existing.get(ext_id)
        if current is None:
            to_create.append(
                Progression(
                    cohort=cohort, source=source, external_id=ext_id, synced_at=now, **values
                )
            )
            continue
        if current.cohort_id == cohort.pk and all(
            getattr(current, k) == v for k, v in values.items()
        ):
            result.unchanged += 1
            continue
        for k, v in values.items():
            setattr(current, k, v)
        current.cohort_id = cohort.pk
        current.synced_at = now
        to_update.append(current)
        result.changed_keys.append(ext_id)
    with transaction.atomic():
        if to_create:
            Progression.objects.bulk_create(to_create, batch_size=500)
        if to_update:
            Progression.objects.bulk_update(
                to_update, ["cohort_id", *_PROGRESSION_FIELDS, "synced_at"], batch_size=500
            )
    result.created = len(to_create)
    result.updated = len(to_update)
    return result


def enrollment_details_update(*, cohort: Cohort, details: dict[int, EnrollmentDetail]) -> int:
    """Store what the source says of each student in the cohort (scores, last activity).

    `details` maps student pk to its detail; only enrollments whose values changed are
    written. Returns how many were.
    """
    if not details:
        return 0
    fields = ("current_score", "final_score", "last_activity_at")
    changed = []
    for chunk in _chunks(list(details)):
        for enrollment in Enrollment.objects.filter(cohort=cohort, student_id__in=chunk):
            detail = details[enrollment.student_id]
            if all(getattr(enrollment, f) == getattr(detail, f) for f in fields):
                continue
            for f in fields:
                setattr(enrollment, f, getattr(detail, f))
            changed.append(enrollment)
    if changed:
        Enrollment.objects.bulk_update(changed, list(fields), batch_size=500)
    return len(changed)


# --- One person across vendors ------------------------------------------------------------


def _email_key(email: str) -> str:
    return (email or "").strip().lower()


def persons_assign(*, student_ids: Iterable[int]) -> int:
    """Give each of these students its person: the one of any other record with the same
    email (case-insensitively), else a new one. A record without an email keeps (or gets)
    a person of its own; a record an admin linked or unlinked by hand is left alone.

    Returns how many records changed person (0 when a re-run finds everything in place).
    """
    pks = list(student_ids)
    students: list[Student] = []
    for chunk in _chunks(pks):
        students.extend(
            Student.objects.filter(pk__in=chunk, person_by_hand=False).only(
                "id", "email", "person_id"
            )
        )
    emails = {_email_key(s.email) for s in students} - {""}
    by_email: dict[str, int] = {}
    for chunk in _chunks(sorted(emails)):
        rows = (
            Student.objects.annotate(email_key=Lower("email"))
            .filter(email_key__in=chunk, person__isnull=False)
            .order_by("person_id")
            .values_list("email_key", "person_id")
        )
        for key, person_id in rows:
            by_email.setdefault(key.strip(), person_id)
    changed: list[Student] = []
    for student in students:
        key = _email_key(student.email)
        if key:
            target = by_email.get(key)
            if target is None:
                target = by_email[key] = Person.objects.create().pk
        elif student.person_id is not None:
            # No email: its own person, unless it shares one it no longer has a reason to.
            shares = (
                Student.objects.filter(person_id=student.person_id).exclude(pk=student.pk).exists()
            )
            target = Person.objects.create().pk if shares else student.person_id
        else:
            target = Person.objects.create().pk
        if student.person_id != target:
            student.person_id = target
            changed.append(student)
    if changed:
        Student.objects.bulk_update(changed, ["person_id"], batch_size=500)
    return len(changed)


def persons_link(*, students: Sequence[Student], by: str) -> Person:
    """An admin makes these records one person (recorded; pulls never undo it)."""
    if len(students) < 2:
        raise ValueError("Pick at least two student records to link.")
    with transaction.atomic():
        existing = sorted({s.person_id for s in students if s.person_id})
        person = Person.objects.get(pk=existing[0]) if existing else Person.objects.create()
        Student.objects.filter(pk__in=[s.pk for s in students]).update(
            person=person, person_by_hand=True
        )
        PersonLinkLog.objects.create(
            action="link", students=_described(students), person_id_after=person.pk, by=by
        )
    return person


def persons_unlink(*, students: Sequence[Student], by: str) -> None:
    """An admin separates these records: each becomes a person of its own (recorded)."""
    if not students:
        raise ValueError("Pick the student records to unlink.")
    with transaction.atomic():
        for student in students:
            student.person = Person.objects.create()
            student.person_by_hand = True
            student.save(update_fields=["person", "person_by_hand"])
        PersonLinkLog.objects.create(action="unlink", students=_described(students), by=by)


def _described(students: Sequence[Student]) -> list[dict[str, str | int]]:
    return [
        {"id": s.pk, "source": s.source, "external_id": s.external_id, "email": s.email}
        for s in students
    ]
