"""The APEX enrollment roster: its schema on the general reader (integrations.rosters).

`roster_read()` turns a file into the rows to send, grouped by classroom, plus the
problems found. A file that cannot be read as a roster at all raises `RosterRefused`
(the run is `invalid`, nothing is sent); a problem confined to one row becomes a
`RowProblem` that the job records as that row's outcome.

Columns: `ClassroomName` (or `ImportClassroomId`), `StudentId` (or `ImportUserId`),
optionally `OrgId` (or `ImportOrgId`; an empty cell or no column means `APEX_ORG_ID`).
More header names per column: the `APEX_HEADER_ALIASES` setting (see
`integrations.rosters.aliases_parse`). The same classroom and student twice is sent once;
with different org ids, none of those rows is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from django.conf import settings

from integrations.http import ConfigError
from integrations.rosters import (
    DELIMITER_NAMES,
    DUPLICATE,
    INVALID,
    CellError,
    Column,
    Conflict,
    RosterRefused,
    Schema,
    Source,
    Unique,
    aliases_parse,
    table_read,
)

__all__ = [
    "DUPLICATE",
    "INVALID",
    "Roster",
    "RosterRefused",
    "RosterRow",
    "RowProblem",
    "roster_read",
]

CLASSROOM = "ClassroomName"
STUDENT = "StudentId"
ORG = "OrgId"
MAX_ID_LENGTH = 100


class RosterRow(NamedTuple):
    row: int
    classroom: str
    student: str
    org: str


@dataclass(frozen=True, slots=True)
class RowProblem:
    row: int
    classroom: str
    student: str
    column: str
    kind: str  # INVALID (a failed row) or DUPLICATE (collapsed into an earlier row)
    message: str


@dataclass(frozen=True, slots=True)
class OrgMismatch:
    student: str
    orgs: tuple[tuple[str, tuple[str, ...]], ...]  # (org id, ("classroom (row n)", ...))

    @property
    def message(self) -> str:
        where = "; ".join(f"OrgId {org} in {', '.join(places)}" for org, places in self.orgs)
        return (
            f"Student {self.student} has different OrgIds in different classrooms: {where}. "
            "APEX keeps one organisation per student; check which is right."
        )


@dataclass
class Roster:
    encoding: str
    delimiter: str
    header_row: int
    columns: dict[str, str]
    notes: list[str] = field(default_factory=list)
    rows: int = 0
    blank_rows: int = 0
    classrooms: dict[str, list[RosterRow]] = field(default_factory=dict)
    problems: list[RowProblem] = field(default_factory=list)
    ignored: tuple[str, ...] = ()  # header names of the columns the roster does not use

    @property
    def to_send(self) -> int:
        """Enrollments to send: one per classroom and student."""
        return sum(len(rows) for rows in self.classrooms.values())

    @property
    def students(self) -> int:
        """Distinct students to send (one student may be in several classrooms)."""
        return len({row.student for rows in self.classrooms.values() for row in rows})

    def org_mismatches(self) -> list[OrgMismatch]:
        """Students sent with different OrgIds in different classrooms: each row is valid
        on its own, but APEX knows a student in one organisation, so one of them is
        probably wrong. A warning, not a failure: the rows are still sent."""
        seen: dict[str, dict[str, list[RosterRow]]] = {}
        for rows in self.classrooms.values():
            for row in rows:
                seen.setdefault(row.student, {}).setdefault(row.org, []).append(row)
        return [
            OrgMismatch(
                student=student,
                orgs=tuple(
                    (org, tuple(f"{r.classroom} (row {r.row})" for r in rows_))
                    for org, rows_ in sorted(by_org.items())
                ),
            )
            for student, by_org in seen.items()
            if len(by_org) > 1
        ]

    @property
    def invalid(self) -> int:
        return sum(1 for p in self.problems if p.kind == INVALID)

    @property
    def duplicates(self) -> int:
        return sum(1 for p in self.problems if p.kind == DUPLICATE)

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))

    def batches(self, batch_size: int) -> int:
        return sum(-(-len(rows) // batch_size) for rows in self.classrooms.values())


def _import_id(value: str) -> str:
    if value in (".", ".."):
        # In the request path /classrooms/{id}/students it would address another URL.
        raise CellError(f"{value!r} is not a usable import id.")
    return value


def _org(default_org: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value and not default_org:
            raise CellError("is empty and APEX_ORG_ID is not set.")
        return value or default_org

    return check


def _conflict(conflict: Conflict, row: int) -> tuple[str, str]:
    classroom, student = conflict.key
    orgs = ", ".join(sorted({org for _, (org,) in conflict.entries}))
    return ORG, (
        f"Row {row}: student {student} is listed in classroom {classroom} with "
        f"different OrgIds ({orgs}) in rows {conflict.rows_text}; fix the rows so they "
        "agree. None of them is sent."
    )


def apex_schema(default_org: str) -> Schema:
    return Schema(
        columns=(
            Column(CLASSROOM, ("ImportClassroomId",), max_length=MAX_ID_LENGTH, check=_import_id),
            Column(STUDENT, ("ImportUserId",), max_length=MAX_ID_LENGTH, check=_import_id),
            Column(ORG, ("ImportOrgId",), required=False, blank=True, check=_org(default_org)),
        ),
        rules=(
            Unique(
                key=(CLASSROOM, STUDENT),
                agree=(ORG,),
                conflict=_conflict,
                duplicate=lambda first, row: (
                    f"Duplicate of row {first} (same classroom and student); sent once."
                ),
            ),
        ),
        make=lambda row, values: RosterRow(row, *values),
    )


def roster_read(
    source: Source,
    *,
    default_org: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Roster:
    """Read and validate an APEX roster. Raises RosterRefused (or ConfigError when no org
    id can be known, or APEX_HEADER_ALIASES is malformed) when the file as a whole cannot
    be used."""
    if default_org is None:
        default_org = str(settings.APEX_ORG_ID or "").strip()
    schema = apex_schema(default_org)
    aliases = aliases_parse(
        getattr(settings, "APEX_HEADER_ALIASES", ""), setting="APEX_HEADER_ALIASES", schema=schema
    )
    schema = schema.with_aliases(aliases)
    table = table_read(
        source,
        schema,
        on_progress=on_progress,
        after_header=lambda header: _require_org(header.columns, default_org),
    )
    roster = Roster(
        encoding=table.encoding,
        delimiter=table.delimiter,
        header_row=table.header_row,
        columns=table.columns,
        notes=table.notes,
        rows=table.rows,
        blank_rows=table.blank_rows,
        ignored=tuple(table.header.ignored),
        problems=[
            RowProblem(p.row, p.cells[0], p.cells[1], p.column, p.kind, p.message)
            for p in table.problems
        ],
    )
    for entry in table.accepted:
        roster.classrooms.setdefault(entry.classroom, []).append(entry)
    return roster


def _require_org(columns: dict[str, str], default_org: str) -> None:
    if ORG not in columns and not default_org:
        raise ConfigError(
            "APEX_ORG_ID is not set and the roster has no OrgId column, so no ImportOrgId "
            "can be sent; set APEX_ORG_ID (see docs/apex.md) or add an OrgId column."
        )
