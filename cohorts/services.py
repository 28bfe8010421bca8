"""Writes to cohorts: vendor-neutral upserts keyed by (source, external_id).

A pull hands over one page of plain records at a time; each call writes that page in one
transaction with bulk statements, and reports what it created, updated and left alone, so
a re-run over unchanged data writes nothing.

Progressions, the bulk of every pull, are written without model instances: each row is
compared with what is stored (as the database stores it), and only the new and changed
rows are sent, in one `INSERT ... ON CONFLICT (source, external_id) DO UPDATE ... WHERE <a
column differs>` (SQLite 3.35+ and PostgreSQL alike); the counts come from the comparison.
A pull that writes many pages passes a `PullMemo`: the cohort's stored progressions and
assignments are read once for the whole pull, and students and assignments it already
wrote with the same record are not read or written again on later pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.db import connection, transaction
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


# Not frozen: a pull builds one per row (100,000 in a large pull), and a frozen dataclass
# takes three times as long to build. Nothing changes one once built.
@dataclass(slots=True)
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
    enrolled: int = 0  # students_upsert: enrollments it made (new students' or not)

    @property
    def wrote(self) -> bool:
        """Whether this upsert changed the cohort's data."""
        return bool(self.created or self.updated or self.enrolled)

    def __iadd__(self, other: UpsertResult) -> UpsertResult:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.enrolled += other.enrolled
        self.changed_keys.extend(other.changed_keys)
        return self


@dataclass
class PullMemo:
    """What one pull has written so far: external id -> (the record written, its pk).

    A record equal to the one written earlier in the same pull changes nothing (the
    upserts only fill and overwrite with the record's values, and the student's person and
    enrollment were settled then), so later pages skip it without a query. Lives for one
    pull; drop it (`clear`) if a write it saw is rolled back.
    """

    students: dict[str, tuple[StudentRecord, int]] = field(default_factory=dict)
    assignments: dict[str, tuple[AssignmentRecord, int]] = field(default_factory=dict)
    # Records built from a vendor's objects, by the object's identity (held, so the id
    # cannot be reused): the same object gives the same record, compared by `is`.
    _built: dict[int, tuple[object, object]] = field(default_factory=dict)
    # ((cohort pk, source), external id -> digest of the stored compared values).
    _progressions: tuple[tuple[int, str], dict[str, int]] | None = None
    # (cohort pk, external id -> the stored assignment, kept as written).
    _assignment_rows: tuple[int, dict[str, Assignment]] | None = None

    def converted[T](self, item: object, convert: Callable[[Any], T]) -> T:
        """`convert(item)`, built once per object for the whole pull."""
        entry = self._built.get(id(item))
        if entry is None or entry[0] is not item:
            if len(self._built) >= 50_000:
                self._built.clear()
            entry = self._built[id(item)] = (item, convert(item))
        return entry[1]  # type: ignore[return-value]

    def progressions_of(self, cohort: Cohort, source: str) -> dict[str, int]:
        """The cohort's stored progressions as digests (`progressions_digests`), read on
        first use and kept up to date by `progressions_upsert`."""
        if self._progressions is None or self._progressions[0] != (cohort.pk, source):
            self._progressions = ((cohort.pk, source), progressions_digests(cohort, source))
        return self._progressions[1]

    def assignment_rows_of(self, cohort: Cohort) -> dict[str, Assignment]:
        """The cohort's stored assignments, read on first use (one query) and kept up to
        date by `assignments_upsert`."""
        if self._assignment_rows is None or self._assignment_rows[0] != cohort.pk:
            rows = {a.external_id: a for a in Assignment.objects.filter(cohort=cohort)}
            self._assignment_rows = (cohort.pk, rows)
        return self._assignment_rows[1]

    def clear(self) -> None:
        self.students.clear()
        self.assignments.clear()
        # Read again: rolled-back writes may be in them.
        self._progressions = self._assignment_rows = None


def _memo_upsert(
    by_id: dict,
    seen: dict | None,
    write: Callable[[dict], tuple[dict[str, int], UpsertResult]],
) -> tuple[dict[str, int], UpsertResult]:
    """`write` the records the memo (`seen`, or None: no memo) did not see written as they
    are, remember what it wrote, and count the rest unchanged. Returns external id → pk."""
    known: dict[str, int] = {}
    todo = by_id
    if seen:
        todo = {}
        for ext_id, rec in by_id.items():
            entry = seen.get(ext_id)
            if entry is not None and (entry[0] is rec or entry[0] == rec):
                known[ext_id] = entry[1]
            else:
                todo[ext_id] = rec
    result = UpsertResult()
    if todo:
        ids, result = write(todo)
        known.update(ids)
        if seen is not None:
            seen.update((ext, (rec, ids[ext])) for ext, rec in todo.items())
    result.unchanged = len(by_id) - result.created - result.updated
    return {ext: known[ext] for ext in by_id}, result


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
    *,
    cohort: Cohort,
    source: str,
    records: Iterable[StudentRecord],
    memo: PullMemo | None = None,
) -> tuple[dict[str, int], UpsertResult]:
    """Create or update students and enroll them in the cohort. Returns external id → pk.

    With a `memo`, a record written earlier in the same pull is counted unchanged without
    a query."""
    by_id = {r.external_id: r for r in records}
    return _memo_upsert(
        by_id,
        memo.students if memo is not None else None,
        lambda todo: _students_write(cohort=cohort, source=source, by_id=todo),
    )


def _students_write(
    *, cohort: Cohort, source: str, by_id: dict[str, StudentRecord]
) -> tuple[dict[str, int], UpsertResult]:
    result = UpsertResult()
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
    # All or nothing, without a savepoint of its own inside a caller's transaction
    # (a pull's page has one): two statements less per call.
    with transaction.atomic(savepoint=False):
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
            _rows_update(Student, to_update, ("first_name", "last_name", "email"))
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
    result.enrolled = len(missing)
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
    *,
    cohort: Cohort,
    records: Iterable[AssignmentRecord],
    fill_only: bool = False,
    memo: PullMemo | None = None,
) -> tuple[dict[str, int], UpsertResult]:
    """Create or update the cohort's assignments. Returns external id → pk.

    `fill_only=True` (records seen inside progressions, which carry no curriculum order)
    creates missing assignments and fills empty names/kinds, but never moves them. With a
    `memo`, a record written earlier in the same pull is counted unchanged without a query
    (the same record applied twice changes nothing, fill-only or not).
    """
    by_id: dict[str, AssignmentRecord] = {}
    for rec in records:
        by_id.setdefault(rec.external_id, rec)
    return _memo_upsert(
        by_id,
        memo.assignments if memo is not None else None,
        lambda todo: _assignments_write(
            cohort=cohort,
            by_id=todo,
            fill_only=fill_only,
            stored=memo.assignment_rows_of(cohort) if memo is not None else None,
        ),
    )


def _assignments_write(
    *,
    cohort: Cohort,
    by_id: dict[str, AssignmentRecord],
    fill_only: bool,
    stored: dict[str, Assignment] | None = None,
) -> tuple[dict[str, int], UpsertResult]:
    """`stored`: the cohort's assignments already read (a pull's memo), else read here;
    kept up to date with what this writes."""
    result = UpsertResult()
    existing: dict[str, Assignment] = {}
    if stored is not None:
        existing.update((ext, stored[ext]) for ext in by_id if ext in stored)
    else:
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
    # No savepoint of its own (see _students_write).
    with transaction.atomic(savepoint=False):
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
            _rows_update(Assignment, to_update, _ASSIGNMENT_FIELDS)
    if stored is not None:
        stored.update(existing)
    result.created = len(to_create)
    result.updated = len(to_update)
    result.unchanged = len(by_id) - result.created - result.updated
    return {ext: existing[ext].pk for ext in by_id}, result


def _rows_update(model, objs: Sequence, fields: Sequence[str]) -> None:
    """Save these fields of these instances: one `executemany` of a plain `UPDATE ...
    WHERE pk = %s` (`bulk_update` builds a `CASE WHEN` per field and batch, about 9 ms
    for a single row). No signals, as with `bulk_update`."""
    if not objs:
        return
    meta = model._meta
    quote = connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    sql = (
        f"UPDATE {quote(meta.db_table)} SET "
        + ", ".join(f"{quote(f.column)} = %s" for f in columns)
        + f" WHERE {quote(meta.pk.column)} = %s"
    )
    rows = [
        (*(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in columns), obj.pk)
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


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
    memo: PullMemo | None = None,
) -> UpsertResult:
    """Insert new progressions, update changed ones, leave equal ones untouched.

    No model instances. Each row is compared as the database stores it (SQLite: times as
    their stored text) with what is stored: only new and changed rows are sent, with one
    `executemany` of `INSERT ... ON CONFLICT (source, external_id) DO UPDATE ... WHERE <a
    column differs>` (the database compares again). The counts come from that comparison:
    created, ids not stored before; updated, stored ids whose row differed (or was in
    another cohort); unchanged, the rest, which keep their `synced_at`.

    Without a `memo`: one read of the batch's stored rows. With a `memo` (a pull of many
    pages): the cohort's stored rows are read ONCE for the whole pull, kept as a digest
    per id, and only ids missing from it are read per batch; an unchanged page then costs
    no query at all.
    """
    now = now or timezone.now()
    result = UpsertResult()
    if not records:
        return result
    adapt = _datetime_adapter()
    synced_at = adapt(now)
    cohort_id = cohort.pk
    # id -> the row as written (`_PROGRESSION_COLUMNS` order); the last one wins if a
    # page repeats an id.
    incoming: dict[str, tuple] = {}
    for rec in records:
        incoming[rec.external_id] = (
            cohort_id,
            student_ids[rec.student_external_id],
            assignment_ids[rec.assignment_external_id],
            rec.grade,
            adapt(rec.started_at),
            adapt(rec.completed_at),
            adapt(rec.reviewed_at),
            rec.score,
            rec.late,
            rec.missing,
            rec.excused,
            synced_at,
            source,
            rec.external_id,
        )
    known = memo.progressions_of(cohort, source) if memo is not None else None
    keys = list(incoming)
    size = _batch_size(len(_PROGRESSION_COLUMNS))
    compared = len(_PROGRESSION_COMPARED)
    # No savepoint of its own (see _students_write).
    with transaction.atomic(savepoint=False):
        for start in range(0, len(keys), size):
            batch = keys[start : start + size]
            # What is stored for these ids: a digest of the compared values (None: not
            # stored). From the pull's digests, else (and for ids it has not) one read.
            differs: set[str] = set()
            unknown = batch
            if known is not None:
                unknown = []
                for key in batch:
                    digest = known.get(key)
                    if digest is None:
                        unknown.append(key)
                    elif digest != hash(incoming[key][:compared]):
                        differs.add(key)
            stored = set(batch).difference(unknown)  # ids stored before (not created here)
            if unknown:
                found = _progressions_stored(source, unknown)
                stored.update(found)
                differs.update(k for k in unknown if found.get(k) != incoming[k][:compared])
            todo = [key for key in batch if key in differs]
            if todo:
                _progressions_write([incoming[key] for key in todo])
                if known is not None:
                    known.update((key, hash(incoming[key][:compared])) for key in todo)
            changed = [key for key in todo if key in stored]
            result.created += len(todo) - len(changed)
            result.updated += len(changed)
            result.changed_keys.extend(changed)
            result.unchanged += len(batch) - len(todo)
    return result


# Written by progressions_upsert, in the order of its rows; the last two are the key.
_PROGRESSION_COLUMNS = ("cohort_id", *_PROGRESSION_FIELDS, "synced_at", "source", "external_id")
# A stored row is rewritten only when one of these differs (synced_at then moves too).
_PROGRESSION_COMPARED = ("cohort_id", *_PROGRESSION_FIELDS)
_PROGRESSION_TIMES = frozenset({"started_at", "completed_at", "reviewed_at"})
_KEY = ("source", "external_id")


def _batch_size(columns: int) -> int:
    """Rows per statement: at most 500, within the database's limit of parameters."""
    limit = connection.features.max_query_params or 999
    return max(1, min(500, limit // columns))


def _datetime_adapter() -> Callable[[datetime | None], object]:
    """The database's value of a datetime, as Django's field would send it (and as the
    stored rows read back: SQLite's times as their text).

    SQLite stores UTC text (`str()` of the naive UTC time); an aware UTC datetime, what
    every vendor client hands over, takes a shortcut that gives the same text.
    """
    adapt = connection.ops.adapt_datetimefield_value
    if connection.vendor != "sqlite" or connection.timezone_name != "UTC":
        return adapt

    def adapt_sqlite(value: datetime | None) -> object:
        if value is None:
            return None
        if value.tzinfo is UTC:
            return value.isoformat(" ")[:-6]  # without "+00:00"
        return adapt(value)

    return adapt_sqlite


def progressions_digests(cohort: Cohort, source: str) -> dict[str, int]:
    """The cohort's stored progressions of `source`: external id -> a digest (`hash`) of
    their compared values as stored, in one query (what `PullMemo` keeps for a pull)."""
    with connection.cursor() as cursor:
        cursor.execute(_progression_stored_sql(connection.vendor, 0), [cohort.pk, source])
        return {row[0]: hash(row[1:]) for row in cursor.fetchall()}


def _progressions_stored(source: str, keys: Sequence[str]) -> dict[str, tuple]:
    """The stored rows among these external ids: id -> their `_PROGRESSION_COMPARED`
    values as stored (SQLite's times as their text), as progressions_upsert builds its
    own."""
    with connection.cursor() as cursor:
        cursor.execute(_progression_stored_sql(connection.vendor, len(keys)), [source, *keys])
        return {row[0]: row[1:] for row in cursor.fetchall()}


@lru_cache(maxsize=16)
def _progression_stored_sql(vendor: str, count: int) -> str:
    """The compared columns of the stored rows: of `count` ids (with the source), or, with
    `count` 0, of a whole cohort (its id, then the source)."""
    quote = connection.ops.quote_name
    table = quote(Progression._meta.db_table)
    columns = []
    for name in _PROGRESSION_COMPARED:
        column = quote(Progression._meta.get_field(name).column)
        if vendor == "sqlite" and name in _PROGRESSION_TIMES:
            column = f"CAST({column} AS TEXT)"  # the stored text, not Django's slow decoder
        columns.append(column)
    select = f"SELECT {quote('external_id')}, {', '.join(columns)} FROM {table} WHERE "
    if not count:
        return select + f"{quote('cohort_id')} = %s AND {quote('source')} = %s"
    marks = ", ".join(["%s"] * count)
    return select + f"{quote('source')} = %s AND {quote('external_id')} IN ({marks})"


def _progressions_write(rows: Sequence[tuple]) -> None:
    """Insert or update these rows (in `_PROGRESSION_COLUMNS` order) where they differ.

    One multi-row statement, not `executemany`: the sqlite3 module releases the GIL for
    every row it steps, and while the prefetch thread decodes the next page, each of
    those releases made the job's thread wait for the GIL again (11 s of a 30,000-row
    pull, against 2.3 s of its CPU).

    On SQLite the statement goes to the driver's connection (`connection.connection`, in
    the same transaction) already in its "?" style: Django's SQLite cursor rewrites
    "%s" with a regular expression on every call, 0.8 to 1.8 ms for a page's 7 KB
    statement (a quarter of the pull's own write time). Not seen by Django's query
    logging (`CaptureQueriesContext`): tests count SQLite's `total_changes` instead."""
    params = [value for row in rows for value in row]
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        with connection.wrap_database_errors:  # Django's exceptions, as through a cursor
            connection.connection.execute(_progression_upsert_qmark(len(rows)), params)
        return
    with connection.cursor() as cursor:
        cursor.execute(_progression_upsert_sql(connection.vendor, len(rows)), params)


@lru_cache(maxsize=16)
def _progression_upsert_qmark(count: int) -> str:
    """The SQLite statement with the driver's placeholders (no "%" in it otherwise)."""
    return _progression_upsert_sql("sqlite", count).replace("%s", "?")


@lru_cache(maxsize=16)
def _progression_upsert_sql(vendor: str, count: int) -> str:
    quote = connection.ops.quote_name
    table = quote(Progression._meta.db_table)
    names = [quote(Progression._meta.get_field(f).column) for f in _PROGRESSION_COLUMNS]
    row = "(" + ", ".join(["%s"] * len(names)) + ")"
    # NULL-safe "differs": IS DISTINCT FROM (PostgreSQL), IS NOT (SQLite).
    differs = "IS DISTINCT FROM" if vendor == "postgresql" else "IS NOT"
    updated = [n for f, n in zip(_PROGRESSION_COLUMNS, names, strict=True) if f not in _KEY]
    compared = [quote(Progression._meta.get_field(f).column) for f in _PROGRESSION_COMPARED]
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join([row] * count)} "
        f"ON CONFLICT ({quote('source')}, {quote('external_id')}) DO UPDATE SET "
        + ", ".join(f"{n} = excluded.{n}" for n in updated)
        + " WHERE "
        + " OR ".join(f"{table}.{n} {differs} excluded.{n}" for n in compared)
    )


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
        _rows_update(Enrollment, changed, fields)
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
    waiting: list[tuple[Student, str]] = []  # need a new person: of their email, or their own
    for student in students:
        key = _email_key(student.email)
        if key:
            target = by_email.get(key)
            if target is None:
                waiting.append((student, key))
                continue
        elif student.person_id is not None:
            # No email: its own person, unless it shares one it no longer has a reason to.
            shares = (
                Student.objects.filter(person_id=student.person_id).exclude(pk=student.pk).exists()
            )
            if shares:
                waiting.append((student, ""))
                continue
            target = student.person_id
        else:
            waiting.append((student, ""))
            continue
        if student.person_id != target:
            student.person_id = target
            changed.append(student)
    if waiting:
        # One new person per new email and per record of its own, in one statement (a
        # first pull of a thousand students made a thousand inserts).
        keys = list(dict.fromkeys(key for _, key in waiting if key))
        own = sum(1 for _, key in waiting if not key)
        new_ids = iter(_persons_create(len(keys) + own))
        by_email.update((key, next(new_ids)) for key in keys)
        for student, key in waiting:
            target = by_email[key] if key else next(new_ids)
            if student.person_id != target:
                student.person_id = target
                changed.append(student)
    if changed:
        _rows_update(Student, changed, ("person",))
    return len(changed)


def _persons_create(n: int) -> list[int]:
    """The pks of `n` new persons."""
    # SQLite 3.35+ and PostgreSQL return the new pks (the upserts need RETURNING anyway).
    people = Person.objects.bulk_create([Person() for _ in range(n)], batch_size=500)
    return [p.pk for p in people]


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
