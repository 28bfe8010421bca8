"""Roster CSVs: the one reader and validator of uploaded rosters (APEX enrollment).

`roster_read()` turns a file into the rows to send, grouped by classroom, plus the
problems found. A file that cannot be read as a roster at all raises `RosterRefused`
(the run is `invalid`, nothing is sent); a problem confined to one row becomes a
`RowProblem` that the job records as that row's outcome.

Row numbers are the ones a spreadsheet shows: the header is row 1, blank lines count.
The file is read as a stream; only the accepted rows stay in memory.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from django.conf import settings

from integrations.http import ConfigError
from integrations.jobs import InvalidInput

CLASSROOM = "ClassroomName"
STUDENT = "StudentId"
ORG = "OrgId"
# Canonical column -> names accepted for it (the seed's names first, then APEX's own).
COLUMNS: dict[str, tuple[str, ...]] = {
    CLASSROOM: ("ClassroomName", "ImportClassroomId"),
    STUDENT: ("StudentId", "ImportUserId"),
    ORG: ("OrgId", "ImportOrgId"),
}
REQUIRED = (CLASSROOM, STUDENT)
DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
MAX_ID_LENGTH = 100
CHUNK = 64 * 1024

# Outcomes the job records for a row problem.
INVALID = "invalid"
DUPLICATE = "duplicate"


class RosterRefused(InvalidInput):
    """The file cannot be read as a roster; nothing of it may be sent."""


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

    @property
    def to_send(self) -> int:
        return sum(len(rows) for rows in self.classrooms.values())

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


# --- size ------------------------------------------------------------------------------
def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size = n / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def roster_max_bytes() -> int:
    return int(settings.ROSTER_MAX_BYTES)


def size_refusal(size: int) -> str:
    limit = roster_max_bytes()
    return (
        f"The file is {human_bytes(size)}, larger than the {human_bytes(limit)} limit "
        f"(ROSTER_MAX_BYTES={limit}). Split it into smaller files, or raise the limit."
    )


# --- encoding --------------------------------------------------------------------------
# A well-formed UTF-8 multi-byte sequence; in a file that is not valid UTF-8 overall it
# means two encodings are mixed, and reading it as Latin-1 would garble those characters.
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}")
_CONTROL_BYTES = bytes([*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_SIGNATURES = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls)"),
    (b"%PDF", "a PDF document"),
)
_SAVE_AS = "Save it from your spreadsheet as 'CSV UTF-8 (comma delimited)' and upload that."


def _detect_encoding(f: IO[bytes]) -> tuple[str, str]:
    """(Python codec, note for the user). Reads the stream once in chunks."""
    f.seek(0)
    head = f.read(8)
    f.seek(0)
    # UTF-32's little-endian mark starts with UTF-16's: test it first.
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise RosterRefused(f"The file is UTF-32 text, which is not accepted. {_SAVE_AS}")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        _scan_utf16(f, "utf-16-le" if head.startswith(codecs.BOM_UTF16_LE) else "utf-16-be")
        return "utf-16", "The file is UTF-16 text (Excel 'Unicode Text'); it was read as such."
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            raise RosterRefused(f"This is {what}, not a CSV file. {_SAVE_AS}")
    bom = head.startswith(codecs.BOM_UTF8)
    utf8_error, saw_utf8_sequence = _scan(f)
    f.seek(0)
    if not utf8_error:
        return ("utf-8-sig" if bom else "utf-8"), ""
    if bom or saw_utf8_sequence:
        raise RosterRefused(
            f"The file is not valid UTF-8 (first bad byte at {utf8_error}) although it "
            f"contains UTF-8 text: it mixes two encodings and would be read garbled. {_SAVE_AS}"
        )
    try:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            chunk.decode("cp1252")
    except UnicodeDecodeError:
        raise RosterRefused(
            f"The file is neither UTF-8 nor Windows-1252/Latin-1 text "
            f"(first bad byte at {utf8_error}). {_SAVE_AS}"
        ) from None
    finally:
        f.seek(0)
    return "cp1252", (
        "The file is not UTF-8; it was read as Windows-1252 (Latin-1), the encoding of "
        "Excel's plain 'CSV' on Windows. Check accented names in the preview; saving as "
        "'CSV UTF-8' avoids this note."
    )


def _scan_utf16(f: IO[bytes], codec: str) -> None:
    """Refuse a UTF-16 file that does not decode, or holds a NUL character, naming the
    line, before anything is parsed (a decoding error mid-parse would be a crash)."""
    decoder = codecs.getincrementaldecoder("utf-16")("strict")
    lines = 0
    try:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            pending = decoder.getstate()[0] + chunk
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line = lines + pending[: exc.start].decode(codec, "replace").count("\n") + 1
                raise RosterRefused(
                    f"The file is not valid UTF-16 text (first bad character on line {line}). "
                    f"{_SAVE_AS}"
                ) from None
            if "\x00" in text:
                line = lines + text.count("\n", 0, text.index("\x00")) + 1
                raise RosterRefused(
                    f"The file holds a NUL character on line {line}: it is not CSV text. {_SAVE_AS}"
                )
            lines += text.count("\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise RosterRefused(
                f"The file is not valid UTF-16 text (it ends in the middle of a character). "
                f"{_SAVE_AS}"
            ) from None
    finally:
        f.seek(0)


def _scan(f: IO[bytes]) -> tuple[str, bool]:
    """Where the file first stops being UTF-8 ("" if never), and whether it holds any
    UTF-8 multi-byte sequence. Refuses binary content on the way."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    utf8_error = ""
    saw_utf8_sequence = False
    controls = total = lines = 0
    for chunk in iter(lambda: f.read(CHUNK), b""):
        if b"\x00" in chunk:
            raise RosterRefused(f"This looks like a binary file, not a CSV text file. {_SAVE_AS}")
        total += len(chunk)
        controls += len(chunk) - len(chunk.translate(None, _CONTROL_BYTES))
        if not utf8_error:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                newlines = chunk.count(b"\n", 0, exc.start)
                utf8_error = f"line {lines + newlines + 1}"
        if not saw_utf8_sequence and _UTF8_SEQUENCE.search(chunk):
            saw_utf8_sequence = True
        lines += chunk.count(b"\n")
    if controls > max(8, total // 100):
        raise RosterRefused(f"This looks like a binary file, not a CSV text file. {_SAVE_AS}")
    if not utf8_error:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8_error = "the end of the file"
    return utf8_error, saw_utf8_sequence


# --- header ----------------------------------------------------------------------------
def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).casefold()


_ACCEPTED = {_norm(alias): canonical for canonical, names in COLUMNS.items() for alias in names}


def _is_blank(fields: list[str]) -> bool:
    return not any(value.strip() for value in fields)


def _pick_delimiter(line: str) -> str:
    """The delimiter that splits the header line into the most known columns."""

    def score(delimiter: str) -> tuple[int, int]:
        fields = next(csv.reader([line], delimiter=delimiter), [])
        known = sum(1 for f in fields if _norm(f) in _ACCEPTED)
        return known, len(fields)

    return max(DELIMITERS, key=score)


def _resolve_columns(header: list[str], header_row: int) -> tuple[dict[str, int], list[str]]:
    """Canonical column -> index, and notes. Refuses a header without the required columns."""
    found: dict[str, int] = {}
    unknown: list[str] = []
    for index, raw in enumerate(header):
        name = raw.strip().lstrip("\ufeff")
        canonical = _ACCEPTED.get(_norm(name))
        if canonical is None:
            if name:
                unknown.append(name)
            continue
        if canonical in found:
            raise RosterRefused(
                f"Row {header_row} (the header) names the {canonical} column twice "
                f"({header[found[canonical]].strip()!r} and {name!r}); keep one."
            )
        found[canonical] = index
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        parts = []
        for column in missing:
            suggestion = _closest(column, unknown)
            parts.append(f'"{column}"' + (f' (did you mean "{suggestion}"?)' if suggestion else ""))
        accepted = "; ".join(" or ".join(COLUMNS[c]) for c in REQUIRED)
        seen = ", ".join(f'"{h.strip()}"' for h in header if h.strip()) or "none"
        raise RosterRefused(
            f"The header (row {header_row}) lacks the required "
            f"column{'s' if len(parts) > 1 else ''} {' and '.join(parts)}. "
            f"Accepted names: {accepted}. Columns found: {seen}."
        )
    notes = []
    if unknown:
        notes.append(f"Columns ignored: {', '.join(unknown)}.")
    return found, notes


def _closest(column: str, candidates: list[str]) -> str | None:
    names = {_norm(alias): alias for alias in COLUMNS[column]}
    best, best_ratio = None, 0.0
    for candidate in candidates:
        for normalised in names:
            ratio = difflib.SequenceMatcher(None, _norm(candidate), normalised).ratio()
            if ratio > best_ratio:
                best, best_ratio = candidate, ratio
    return best if best_ratio >= 0.6 else None


# --- reading ---------------------------------------------------------------------------
def _open_binary(source: bytes | str | os.PathLike | IO[bytes]) -> tuple[IO[bytes], bool]:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source), True
    if isinstance(source, str | os.PathLike):
        return open(source, "rb"), True
    return source, False


def _records(text: IO[str], delimiter: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(text, delimiter=delimiter)
    row = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RosterRefused(
                f"Row {row + 1} cannot be read as CSV ({exc}); is a quote left open?"
            ) from None
        except UnicodeDecodeError:
            raise RosterRefused(
                f"Row {row + 1} is not valid {text.encoding} text. {_SAVE_AS}"
            ) from None
        row += 1
        yield row, fields


def roster_read(
    source: bytes | str | os.PathLike | IO[bytes],
    *,
    default_org: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Roster:
    """Read and validate a roster. Raises RosterRefused (or ConfigError when no org id
    can be known) when the file as a whole cannot be used."""
    if default_org is None:
        default_org = str(settings.APEX_ORG_ID or "").strip()
    f, owned = _open_binary(source)
    try:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(0)
        if size > roster_max_bytes():
            raise RosterRefused(size_refusal(size))
        if size == 0:
            raise RosterRefused("The file is empty.")
        encoding, note = _detect_encoding(f)
        text = io.TextIOWrapper(f, encoding=encoding, newline="")
        try:
            return _parse(text, encoding, note, default_org, on_progress)
        finally:
            text.detach()
    finally:
        if owned:
            f.close()


def _parse(
    text: io.TextIOWrapper,
    encoding: str,
    note: str,
    default_org: str,
    on_progress: Callable[[int], None] | None,
) -> Roster:
    first_line = ""
    while line := text.readline():
        if line.strip(" \t\r\n,;"):
            first_line = line
            break
    if not first_line:
        raise RosterRefused("The file has no header row: it is blank.")
    delimiter = _pick_delimiter(first_line)
    text.seek(0)

    records = _records(text, delimiter)
    header: list[str] = []
    header_row = 0
    for header_row, fields in records:  # noqa: B007 - header_row is used below
        if not _is_blank(fields):
            header = fields
            break
    columns, notes = _resolve_columns(header, header_row)
    ci, si, oi = columns[CLASSROOM], columns[STUDENT], columns.get(ORG)
    if oi is None and not default_org:
        raise ConfigError(
            "APEX_ORG_ID is not set and the roster has no OrgId column, so no ImportOrgId "
            "can be sent; set APEX_ORG_ID (see docs/apex.md) or add an OrgId column."
        )
    roster = Roster(
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
        columns={name: header[i].strip().lstrip("\ufeff") for name, i in columns.items()},
        notes=[n for n in (note, *notes) if n],
    )
    width = len(header)
    accepted: dict[tuple[str, str], RosterRow] = {}
    repeats: dict[tuple[str, str], list[int]] = {}  # rows repeating an accepted one
    conflicts: dict[tuple[str, str], dict[int, str]] = {}  # every row of the key -> org
    problems = roster.problems

    def problem(row: int, classroom: str, student: str, column: str, kind: str, msg: str):
        problems.append(RowProblem(row, classroom, student, column, kind, msg))

    for row, fields in records:
        if _is_blank(fields):
            roster.blank_rows += 1
            continue
        roster.rows += 1
        if on_progress and roster.rows % 1000 == 0:
            on_progress(roster.rows)

        def cell(index: int | None, fields: list[str] = fields) -> str:
            return fields[index].strip() if index is not None and index < len(fields) else ""

        classroom, student, org_cell = cell(ci), cell(si), cell(oi)
        if len(fields) > width and not _is_blank(fields[width:]):
            problem(
                row,
                classroom,
                student,
                "",
                INVALID,
                f"Row {row} has {len(fields)} values but the header has {width} columns "
                f"(a {DELIMITER_NAMES[delimiter]} inside a value that is not quoted?).",
            )
            continue
        bad = _row_error(row, classroom, student, org_cell, roster.columns, oi, default_org)
        if bad:
            problem(row, classroom, student, bad[0], INVALID, bad[1])
            continue
        org = org_cell or default_org
        key = (classroom, student)
        first = accepted.get(key)
        if first is None:
            accepted[key] = RosterRow(row, classroom, student, org)
        elif key in conflicts or first.org != org:
            # Reported once every row of the student is known (below), naming them all.
            rows_of_key = conflicts.setdefault(key, {first.row: first.org})
            rows_of_key.update(dict.fromkeys(repeats.get(key, ()), first.org))
            rows_of_key[row] = org
        else:
            repeats.setdefault(key, []).append(row)
            problem(
                row,
                classroom,
                student,
                "",
                DUPLICATE,
                f"Duplicate of row {first.row} (same classroom and student); sent once.",
            )

    if roster.rows == 0:
        raise RosterRefused(f"The file has a header (row {header_row}) but no data rows.")
    if on_progress:
        on_progress(roster.rows)

    if conflicts:
        # Repeats of a conflicting row are not "sent once": they are part of the conflict.
        problems[:] = [
            p for p in problems if p.kind != DUPLICATE or (p.classroom, p.student) not in conflicts
        ]
    org_column = roster.columns.get(ORG, ORG)
    for (classroom, student), rows_of_key in conflicts.items():
        accepted.pop((classroom, student))
        rows_text = ", ".join(str(r) for r in sorted(rows_of_key))
        orgs_text = ", ".join(sorted(set(rows_of_key.values())))
        for row in rows_of_key:
            problem(
                row,
                classroom,
                student,
                org_column,
                INVALID,
                f"Row {row}: student {student} is listed in classroom {classroom} with "
                f"different OrgIds ({orgs_text}) in rows {rows_text}; fix the rows so they "
                "agree. None of them is sent.",
            )
    roster.problems.sort(key=lambda p: p.row)
    for entry in accepted.values():
        roster.classrooms.setdefault(entry.classroom, []).append(entry)
    if roster.blank_rows:
        plural = "" if roster.blank_rows == 1 else "s"
        roster.notes.append(f"{roster.blank_rows} blank row{plural} skipped.")
    return roster


def _row_error(
    row: int,
    classroom: str,
    student: str,
    org_cell: str,
    names: dict[str, str],
    org_index: int | None,
    default_org: str,
) -> tuple[str, str] | None:
    """(column, message) of the first problem in a row's values, if any."""
    for canonical, value in ((CLASSROOM, classroom), (STUDENT, student)):
        column = names[canonical]
        if not value:
            return column, f"Row {row}: {column} is empty."
        if len(value) > MAX_ID_LENGTH:
            return column, f"Row {row}: {column} is longer than {MAX_ID_LENGTH} characters."
        if "\n" in value or "\r" in value:
            return column, f"Row {row}: {column} contains a line break (a quote left open?)."
        if value in (".", ".."):
            # In the request path /classrooms/{id}/students it would address another URL.
            return column, f"Row {row}: {column} {value!r} is not a usable import id."
    if org_index is not None and not org_cell and not default_org:
        column = names[ORG]
        return column, f"Row {row}: {column} is empty and APEX_ORG_ID is not set."
    return None


# --- storage ---------------------------------------------------------------------------
def roster_dir() -> Path:
    path = Path(settings.DATA_DIR) / "rosters"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)  # student data: the service's only
    return path


def roster_store(source: IO[bytes], *, name: str, user=None, origin: str = "web"):
    """Copy an uploaded or local file into DATA_DIR/rosters (named by its SHA-256, so the
    run and a later resume read exactly what was previewed) and record it."""
    from integrations.models import RosterUpload

    limit = roster_max_bytes()
    digest = hashlib.sha256()
    size = 0
    directory = roster_dir()
    fd, tmp_name = tempfile.mkstemp(dir=directory, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                size += len(chunk)
                if size > limit:
                    raise RosterRefused(size_refusal(_total_size(source, size)))
                digest.update(chunk)
                out.write(chunk)
        upload = RosterUpload(
            original_name=os.path.basename(name)[:255] or "roster.csv",
            sha256=digest.hexdigest(),
            size=size,
            uploaded_by=user if (user is not None and user.is_authenticated) else None,
            origin=origin,
        )
        os.replace(tmp_name, upload.path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    upload.save()
    return upload


def _total_size(source: IO[bytes], read_so_far: int) -> int:
    try:
        return max(read_so_far, os.fstat(source.fileno()).st_size)
    except (AttributeError, OSError, io.UnsupportedOperation):
        return read_so_far
