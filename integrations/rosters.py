"""Roster CSVs: the one reader and validator of uploaded rosters, for every vendor.

A vendor declares a `Schema` (its columns, the names each is accepted under, a check per
cell, multi-valued cells, and the `Unique` rules that find duplicate and conflicting rows)
and calls `table_read(source, schema)`. The reader does everything general:

- size limit (`ROSTER_MAX_BYTES`), encodings (UTF-8 with or without BOM, UTF-16 with BOM,
  Windows-1252), binary files, delimiters (comma, semicolon, tab, chosen from the header);
- the header: names matched ignoring case, spaces, `_` and `-`; aliases (built in, and per
  vendor from a setting, see `aliases_parse`); a missing column is refused with the
  closest name found ("did you mean ...?"); the same column twice is refused;
- structure: a quote that is never closed, or a quoted value that spans many lines or takes
  in what look like whole rows, refuses the file as a whole (naming the line where the
  quote opens): such a file would silently lose rows;
- rows: spreadsheet row numbers (the header is row 1, blank lines count and are skipped),
  too many values, missing values, one problem per bad cell naming row and column;
- duplicates (kept once) and conflicts (every row of the conflict named, none used).

A file that cannot be used as a whole raises `RosterRefused` (an `InvalidInput`: the run is
`invalid`, exit 2, nothing sent). A problem confined to a row is a `Problem`. The file is read
as a stream; only the accepted rows (built by `Schema.make`) stay in memory, and with
`keep_rows=False` not even those: validation then keeps a key hash and a row number per
row for the duplicate and conflict rules, and reads the file once more for the rows whose
key comes back.
Vendor schemas: `integrations/apex/roster.py`, `integrations/titan/roster.py`.
"""

from __future__ import annotations

import array
import codecs
import csv
import difflib
import hashlib
import io
import json
import operator
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from integrations.http import ConfigError
from integrations.jobs import InvalidInput

DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
CHUNK = 64 * 1024
# A quoted value running over more lines than this is taken for a quote left open.
MAX_CELL_LINES = 5
MEMO_LIMIT = 10_000  # distinct values remembered per `Column(memo=True)`
# Rows read column by column at a time (`_columns_reader`); a block holding a problem row
# is read again row by row, so a block is kept small.
BLOCK_ROWS = 128

# Kinds of row problems.
INVALID = "invalid"  # the row is not used (a failed row)
DUPLICATE = "duplicate"  # the row repeats an earlier one and is used once

Source = bytes | str | os.PathLike | IO[bytes]


class RosterRefused(InvalidInput):
    """The file cannot be read as a roster; nothing of it may be sent."""


class CellError(ValueError):
    """A cell's value is unusable. The message completes "Row N: <column> ...", e.g.
    `CellError("is not a valid email address.")`."""


# --- schemas ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Column:
    """One column of a vendor's roster.

    `check` takes the trimmed text (a tuple of trimmed items for a multi-valued column) and
    returns the value kept, or raises `CellError`. Before it, the reader refuses an empty
    cell (unless `blank`), a cell over `max_length` characters, a line break and (when
    `controls` is false) control characters. `split` makes the column multi-valued: any of
    its characters separates items; empty items are dropped, and without a `check` the
    value is the sorted tuple of distinct items.
    """

    name: str
    aliases: tuple[str, ...] = ()
    required: bool = True
    blank: bool = False
    max_length: int | None = None
    controls: bool = True
    check: Callable[[Any], Any] | None = None
    split: str = ""
    memo: bool = False  # few distinct values: check each once (the check must be pure)


@dataclass(frozen=True, slots=True)
class Conflict:
    """Rows sharing a `Unique.key` whose `Unique.agree` values differ."""

    key: tuple[Any, ...]
    entries: list[tuple[int, tuple[Any, ...]]]  # (row, agree values), in file order
    columns: dict[str, str]  # canonical -> the file's header name

    @property
    def rows(self) -> list[int]:
        return [row for row, _ in self.entries]

    @property
    def rows_text(self) -> str:
        return ", ".join(str(r) for r in self.rows)


@dataclass(frozen=True, slots=True)
class Unique:
    """Rows with the same `key` values must agree on the `agree` columns.

    Rows that disagree are a conflict: every one of them becomes an invalid row whose
    message (from `conflict(conflict, row) -> (canonical column, message)`) names them all.
    With `duplicates`, a row that repeats the key with the same values is a duplicate of
    the first (kept once, message from `duplicate(first_row, row)`).
    """

    key: tuple[str, ...]
    agree: tuple[str, ...]
    duplicates: bool = True
    conflict: Callable[[Conflict, int], tuple[str, str]] | None = None
    duplicate: Callable[[int, int], str] | None = None


@dataclass(frozen=True)
class Schema:
    """A vendor's roster: columns, duplicate/conflict rules, and how an accepted row is
    built (`make(row_number, values)`, values in column order)."""

    columns: tuple[Column, ...]
    rules: tuple[Unique, ...] = ()
    make: Callable[[int, tuple[Any, ...]], Any] = lambda row, values: (row, *values)
    # Report a row whose required cells are missing (fewer values than the header) as such
    # rather than as empty cells.
    short_rows: bool = False
    max_cell_lines: int = MAX_CELL_LINES

    def with_aliases(self, extra: Mapping[str, Iterable[str]] | None) -> Schema:
        """The schema with more accepted names per column (from a setting)."""
        if not extra:
            return self
        columns = tuple(
            replace(c, aliases=(*c.aliases, *extra.get(c.name, ()))) for c in self.columns
        )
        return replace(self, columns=columns)

    def index(self, name: str) -> int:
        return next(i for i, c in enumerate(self.columns) if c.name == name)


def aliases_parse(value: str | Mapping[str, Any] | None, *, setting: str, schema: Schema):
    """Extra header names per column, from a setting: JSON (`{"email": ["E-mail", "Mail"]}`)
    or `canonical=alias|alias,canonical=alias`. Raises ConfigError naming the setting for
    an unknown column, an empty alias, or a name claimed by two columns."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ConfigError(f"{setting} is not valid JSON: {exc}") from None
        else:
            parsed: dict[str, list[str]] = {}
            for part in filter(None, (p.strip() for p in text.split(","))):
                canonical, sep, names = part.partition("=")
                if not sep:
                    raise ConfigError(
                        f"{setting}: {part!r} is not of the form column=alias|alias "
                        f"(e.g. email=E-mail|Mail)."
                    )
                parsed.setdefault(canonical.strip(), []).extend(names.split("|"))
            value = parsed
    if not isinstance(value, Mapping):
        raise ConfigError(f"{setting} must map column names to lists of aliases.")
    known = [c.name for c in schema.columns]
    result: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {_norm(n): c.name for c in schema.columns for n in (c.name, *c.aliases)}
    for canonical, names in value.items():
        if canonical not in known:
            raise ConfigError(
                f"{setting}: {canonical!r} is not a column; the columns are {', '.join(known)}."
            )
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{setting}: the aliases of {canonical} must be text.")
        cleaned = tuple(n.strip() for n in names)
        if not all(cleaned):
            raise ConfigError(f"{setting}: an alias of {canonical} is empty.")
        for alias in cleaned:
            other = owner.setdefault(_norm(alias), canonical)
            if other != canonical:
                raise ConfigError(
                    f"{setting}: {alias!r} cannot name {canonical}: it already names {other}."
                )
        result[canonical] = cleaned
    return result


# --- results ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Problem:
    row: int
    column: str  # the file's header name ("" for the row as a whole)
    kind: str  # INVALID or DUPLICATE
    message: str
    # The row's trimmed cells in schema column order (for a duplicate or a conflict, found
    # once the row was read, its values as text).
    cells: tuple[str, ...]


@dataclass(frozen=True)
class Header:
    """The header as the file wrote it: enough to tell a later file's columns changed."""

    row: int
    names: tuple[str, ...]  # every header cell, trimmed, in file order
    columns: dict[str, str]  # canonical -> the file's name, for the columns used
    ignored: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "names": list(self.names),
            "columns": dict(self.columns),
            "ignored": list(self.ignored),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Header:
        return cls(
            row=int(data.get("row", 1)),
            names=tuple(data.get("names", ())),
            columns=dict(data.get("columns", {})),
            ignored=tuple(data.get("ignored", ())),
        )


def header_changes(before: Header | Mapping | None, after: Header | Mapping) -> list[str]:
    """What changed between two files' headers (e.g. the last successful sync's and this
    one's), as sentences for a preview; [] when nothing did or there is no earlier one."""
    if before is None:
        return []
    if not isinstance(before, Header):
        before = Header.from_dict(before)
    if not isinstance(after, Header):
        after = Header.from_dict(after)
    changes = []
    for name in after.columns.keys() | before.columns.keys():
        old, new = before.columns.get(name), after.columns.get(name)
        if old is None:
            changes.append(f'Column {name} is new (read from "{new}").')
        elif new is None:
            changes.append(f'Column {name} is gone (it was read from "{old}").')
        elif old != new:
            changes.append(f'Column {name} is now read from "{new}" (it was "{old}").')
    for name in after.ignored:
        if name not in before.ignored:
            changes.append(f'New column "{name}" (ignored).')
    for name in before.ignored:
        if name not in after.ignored:
            changes.append(f'Column "{name}" (ignored) is gone.')
    if not changes and before.names != after.names:
        changes.append("The columns are in a different order.")
    return sorted(changes)


@dataclass
class Table:
    """What `table_read` found: the accepted rows (built by `Schema.make`, file order) and
    the problems (by row)."""

    encoding: str
    delimiter: str
    header: Header
    notes: list[str] = field(default_factory=list)
    rows: int = 0  # data rows read (blank lines excluded)
    blank_rows: int = 0
    accepted: list[Any] = field(default_factory=list)  # empty when read with keep_rows=False
    problems: list[Problem] = field(default_factory=list)
    accepted_count: int = 0  # rows used: valid, and neither a duplicate nor in a conflict

    @property
    def header_row(self) -> int:
        return self.header.row

    @property
    def columns(self) -> dict[str, str]:
        return self.header.columns

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))

    @property
    def invalid(self) -> int:
        """Rows not used because of a problem (a row counts once)."""
        return len({p.row for p in self.problems if p.kind == INVALID})

    @property
    def duplicates(self) -> int:
        return sum(1 for p in self.problems if p.kind == DUPLICATE)


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


def _accepted(schema: Schema) -> dict[str, str]:
    return {_norm(n): c.name for c in schema.columns for n in (c.name, *c.aliases)}


def _is_blank(fields: list[str]) -> bool:
    return not any(value.strip() for value in fields)


def _pick_delimiter(line: str, accepted: dict[str, str]) -> str:
    """The delimiter that splits the header line into the most known columns."""

    def score(delimiter: str) -> tuple[int, int]:
        fields = next(csv.reader([line], delimiter=delimiter), [])
        known = sum(1 for f in fields if _norm(f) in accepted)
        return known, len(fields)

    return max(DELIMITERS, key=score)


def _resolve_header(
    schema: Schema, raw: list[str], header_row: int
) -> tuple[Header, dict[str, int]]:
    """The header, and canonical column -> index. Refuses a header without the required
    columns (suggesting the closest name found) or naming a column twice."""
    accepted = _accepted(schema)
    names = tuple(h.strip().lstrip("\ufeff").strip() for h in raw)
    found: dict[str, int] = {}
    unknown: list[str] = []
    for index, name in enumerate(names):
        canonical = accepted.get(_norm(name))
        if canonical is None:
            if name:
                unknown.append(name)
            continue
        if canonical in found:
            raise RosterRefused(
                f"Row {header_row} (the header) names the {canonical} column twice "
                f"({names[found[canonical]]!r} and {name!r}); keep one."
            )
        found[canonical] = index
    missing = [c for c in schema.columns if c.required and c.name not in found]
    if missing:
        parts = []
        for column in missing:
            suggestion = _closest(column, unknown)
            parts.append(
                f'"{column.name}"' + (f' (did you mean "{suggestion}"?)' if suggestion else "")
            )
        accepted_names = "; ".join(
            " or ".join((c.name, *c.aliases)) for c in schema.columns if c.required
        )
        seen = ", ".join(f'"{n}"' for n in names if n) or "none"
        raise RosterRefused(
            f"The header (row {header_row}) lacks the required "
            f"column{'s' if len(parts) > 1 else ''} {' and '.join(parts)}. "
            f"Accepted names: {accepted_names}. Columns found: {seen}."
        )
    header = Header(
        row=header_row,
        names=names,
        columns={c.name: names[found[c.name]] for c in schema.columns if c.name in found},
        ignored=tuple(unknown),
    )
    return header, found


def _closest(column: Column, candidates: list[str]) -> str | None:
    names = [_norm(n) for n in (column.name, *column.aliases)]
    best, best_ratio = None, 0.0
    for candidate in candidates:
        for normalised in names:
            ratio = difflib.SequenceMatcher(None, _norm(candidate), normalised).ratio()
            if ratio > best_ratio:
                best, best_ratio = candidate, ratio
    return best if best_ratio >= 0.6 else None


def closest_name(value: str, names: Iterable[str]) -> str | None:
    """The known name closest to a misspelt one, for "did you mean ...?" (or None)."""
    folded = {n.casefold(): n for n in names}
    match = difflib.get_close_matches(value.casefold(), folded, n=1, cutoff=0.75)
    return folded[match[0]] if match else None


# --- structure: quotes that swallow rows -------------------------------------------------
_START, _IN_FIELD, _IN_QUOTED, _QUOTE_IN_QUOTED = range(4)


@dataclass(frozen=True, slots=True)
class _Quoted:
    """A quoted value of a record that does not end on the line where it opens."""

    open_line: int  # index into the record's lines
    close_line: int | None  # None: never closed
    field: int  # its position in the record (0-based)


def _spanning_quotes(lines: Sequence[str], delimiter: str) -> list[_Quoted]:
    """The quoted values of one record (its raw lines) that run over a line end, following
    the states of Python's csv reader (not strict: text after a closing quote joins the
    value)."""
    spans: list[_Quoted] = []
    state, open_line, field_no = _START, 0, 0
    last = 0
    for i, line in enumerate(lines):
        last = i
        for c in line:
            if state == _IN_QUOTED:
                if c == '"':
                    state = _QUOTE_IN_QUOTED
            elif state == _QUOTE_IN_QUOTED:
                if c == '"':
                    state = _IN_QUOTED
                    continue
                if i != open_line:
                    spans.append(_Quoted(open_line, i, field_no))
                if c == delimiter:
                    state, field_no = _START, field_no + 1
                elif c in "\r\n":
                    state = _START
                else:
                    state = _IN_FIELD
            elif state == _START:
                if c == '"':
                    state, open_line = _IN_QUOTED, i
                elif c == delimiter:
                    field_no += 1
                elif c not in "\r\n":
                    state = _IN_FIELD
            elif c == delimiter:  # _IN_FIELD
                state, field_no = _START, field_no + 1
            elif c in "\r\n":
                state = _START
    if state == _IN_QUOTED:
        spans.append(_Quoted(open_line, None, field_no))
    elif state == _QUOTE_IN_QUOTED and last != open_line:
        spans.append(_Quoted(open_line, last, field_no))
    return spans


class _Records:
    """csv records with their spreadsheet row numbers, refusing a file whose quoting makes
    rows disappear into one value. `names` (the header's) is set once the header is read:
    until then a quote is judged by its length alone."""

    def __init__(self, text: IO[str], delimiter: str, schema: Schema) -> None:
        self.text = text
        self.delimiter = delimiter
        self.max_cell_lines = schema.max_cell_lines
        self.names: tuple[str, ...] = ()
        self.line = 0  # physical lines read so far
        self.pending: list[str] = []  # raw lines of the record being read

    def _lines(self) -> Iterator[str]:
        for line in self.text:
            self.pending.append(line)
            yield line

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(self._lines(), delimiter=self.delimiter)
        row = 0
        last: list[str] = []
        while True:
            first_line = self.line + 1
            try:
                fields = next(reader)
            except StopIteration:
                if last and '"' in "".join(last):  # a quote left open on the last line
                    self._check(last, first_line - len(last))
                return
            except csv.Error as exc:
                self._check(self.pending, first_line, error=str(exc))
                raise RosterRefused(
                    f"Line {first_line} (row {row + 1}) cannot be read as CSV ({exc})."
                ) from None
            except UnicodeDecodeError:
                raise RosterRefused(
                    f"Row {row + 1} is not valid {self.text.encoding} text. {_SAVE_AS}"
                ) from None
            lines, self.pending = self.pending, []
            self.line += len(lines)
            if len(lines) > 1:
                self._check(lines, first_line)
            last = lines
            row += 1
            yield row, fields

    def _column(self, field_no: int) -> str:
        if field_no < len(self.names) and self.names[field_no]:
            return f'the "{self.names[field_no]}" value'
        return f"value {field_no + 1}"

    def _check(self, lines: Sequence[str], first_line: int, error: str = "") -> None:
        """Refuse the record if a quoted value in it is never closed, runs over too many
        lines, or takes in lines that look like whole rows."""
        width = len(self.names)
        row_like = max(1, width - 1)  # delimiters in a line that is a whole row
        for span in _spanning_quotes(lines, self.delimiter):
            where = first_line + span.open_line
            what = self._column(span.field)
            if span.close_line is None:
                reason = (
                    f"its value runs past {csv.field_size_limit():,} characters"
                    if error
                    else "every line after it would be read into that one value"
                )
                raise RosterRefused(
                    f"Line {where}: the quote that opens {what} is never closed, so {reason} "
                    "and those rows lost. Nothing was sent: close or remove the quote and "
                    "upload the file again."
                )
            spanned = span.close_line - span.open_line + 1
            if spanned > self.max_cell_lines:
                raise RosterRefused(
                    f"Line {where}: the quote that opens {what} closes only on line "
                    f"{first_line + span.close_line}, so {spanned} lines would be read as one "
                    "value (a quote left open?). Nothing was sent: fix the quotes and upload "
                    "the file again."
                )
            if width:
                for offset in range(span.open_line + 1, span.close_line + 1):
                    if lines[offset].count(self.delimiter) >= row_like:
                        raise RosterRefused(
                            f"Line {where}: the quote that opens {what} closes only on line "
                            f"{first_line + span.close_line}, taking in line "
                            f"{first_line + offset}, which looks like a whole row (a quote "
                            "left open?). Nothing was sent: fix the quotes and upload the "
                            "file again."
                        )


# --- reading ---------------------------------------------------------------------------
def _open_binary(source: Source) -> tuple[IO[bytes], bool]:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source), True
    if isinstance(source, str | os.PathLike):
        return open(source, "rb"), True
    return source, False


def table_read(
    source: Source,
    schema: Schema,
    *,
    on_progress: Callable[[int], None] | None = None,
    after_header: Callable[[Header], None] | None = None,
    keep_rows: bool = True,
) -> Table:
    """Read and validate a roster against a vendor's schema. Raises RosterRefused when the
    file as a whole cannot be used (the message says why, naming row or line).
    `after_header(header)` may refuse the file once its header is known (e.g. a setting
    the file's columns make necessary), before any row is read.

    `keep_rows=False` validates only: `Table.accepted` stays empty (`accepted_count` says
    how many rows would be used) and memory no longer grows with the file's rows, only
    with its problems (a 1,000,000-row file is validated in a few tens of MB)."""
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
            return _parse(text, encoding, note, schema, on_progress, after_header, keep_rows)
        finally:
            text.detach()
    finally:
        if owned:
            f.close()


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2028\u2029]")
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u200b\u2028\u2029]")
_BREAK = re.compile(r"[\r\n]")


def _control_message(value: str) -> str:
    c = _CONTROL.search(value).group()  # type: ignore[union-attr]
    name = unicodedata.name(c, "") or "a control character"
    return f"contains a control character (U+{ord(c):04X} {name}).".replace(" )", ")")


def _parse(
    text: io.TextIOWrapper,
    encoding: str,
    note: str,
    schema: Schema,
    on_progress: Callable[[int], None] | None,
    after_header: Callable[[Header], None] | None,
    keep_rows: bool = True,
) -> Table:
    first_line = ""
    while line := text.readline():
        if line.strip(" \t\r\n,;"):
            first_line = line
            break
    if not first_line:
        raise RosterRefused("The file has no header row: it is blank.")
    delimiter = _pick_delimiter(first_line, _accepted(schema))
    text.seek(0)

    reader = _Records(text, delimiter, schema)
    records = iter(reader)
    raw_header: list[str] = []
    header_row = 0
    for header_row, fields in records:  # noqa: B007 - header_row is used below
        if not _is_blank(fields):
            raw_header = fields
            break
    header, found = _resolve_header(schema, raw_header, header_row)
    reader.names = header.names
    if after_header is not None:
        after_header(header)
    notes = [note] if note else []
    if header.ignored:
        notes.append(f"Columns ignored: {', '.join(header.ignored)}.")
    table = Table(encoding=encoding, delimiter=delimiter, header=header, notes=notes)

    columns = schema.columns
    indexes = [found.get(c.name) for c in columns]
    names = [header.columns.get(c.name, c.name) for c in columns]
    position = {c.name: i for i, c in enumerate(columns)}
    width = len(raw_header)
    problems = table.problems
    # (row, values) of every valid row, only when the caller wants the rows: validation
    # alone keeps what the Unique rules need (a hash and a row number per row), nothing else.
    kept: list[tuple[int, tuple]] = []
    valid_rows = array.array("q")  # the row number of each valid row, shared by the rules
    rules = [_RuleState(rule, position, valid_rows) for rule in schema.rules]
    hashers = [(state.hashes, state.hash_of) for state in rules]
    add_valid = valid_rows.append
    read_count = 0
    delimiter_name = DELIMITER_NAMES[delimiter]

    readers = [_cell_reader(c) for c in columns]
    plain = [_cell_functions(c, plain=True) for c in columns]
    row_values = _row_reader(readers, [read for read, _ in plain])
    block_values = _columns_reader(columns, indexes, [work for _, work in plain])
    at = [i if i is not None else 1 << 30 for i in indexes]  # a missing column reads ""
    cells_of = _cells_picker(at)

    def one(row: int, fields: list[str]) -> None:
        """A row read on its own: its problem, or its values kept."""
        n = len(fields)
        cells = cells_of(fields, n)
        if n > width and not _is_blank(fields[width:]):
            problems.append(
                Problem(
                    row,
                    "",
                    INVALID,
                    f"Row {row} has {n} values but the header has {width} columns "
                    f"(a {delimiter_name} inside a value that is not quoted?).",
                    cells,
                )
            )
            return
        if schema.short_rows and n < width:
            lost = [
                names[k]
                for k, i in enumerate(indexes)
                if i is not None and i >= n and columns[k].required
            ]
            if lost:
                problems.append(
                    Problem(
                        row,
                        lost[0],
                        INVALID,
                        f"Row {row} has {n} values but the header has {width} "
                        f"columns: {', '.join(lost)} {'is' if len(lost) == 1 else 'are'} "
                        "missing.",
                        cells,
                    )
                )
                return
        try:
            values_t = row_values(cells)
        except CellError:
            # One problem per row (one outcome per row), naming every bad cell.
            errors = []
            for k, reader in enumerate(readers):
                try:
                    reader(cells[k])
                except CellError as exc:
                    errors.append((names[k], f"{names[k]} {str(exc).rstrip('.')}"))
            message = f"Row {row}: " + "; ".join(m for _, m in errors) + "."
            problems.append(Problem(row, errors[0][0], INVALID, message, cells))
            return
        add_valid(row)
        for hashes, hash_of in hashers:
            hashes.append(hash(hash_of(values_t)))
        if keep_rows:
            kept.append((row, values_t))

    def flush(rows: list[int], block: list[list[str]], whole: bool) -> None:
        """A block of rows, in file order: by columns when every row is `whole` (exactly
        the header's number of values) and every cell plainly usable, else row by row."""
        values = block_values(block) if whole else None
        if values is None:
            for row, fields in zip(rows, block, strict=True):
                one(row, fields)
            return
        valid_rows.extend(rows)
        for hashes, hash_of in hashers:
            hashes.extend(map(hash, map(hash_of, values)))
        if keep_rows:
            kept.extend(zip(rows, values, strict=True))

    rows_in: list[int] = []
    block: list[list[str]] = []
    whole = True
    for row, fields in records:
        if not (fields and fields[0].strip()) and _is_blank(fields):
            table.blank_rows += 1
            continue
        read_count += 1
        if on_progress and read_count % 1000 == 0:
            on_progress(read_count)
        rows_in.append(row)
        block.append(fields)
        if len(fields) != width:
            whole = False
        if len(block) == BLOCK_ROWS:
            flush(rows_in, block, whole)
            rows_in, block, whole = [], [], True
    if block:
        flush(rows_in, block, whole)

    table.rows = read_count
    valid = len(valid_rows)
    if table.rows == 0:
        raise RosterRefused(f"The file has a header (row {header_row}) but no data rows.")
    if on_progress:
        on_progress(table.rows)

    # Only rows whose key (hash) comes back can be duplicates or conflicts: their values
    # are taken from the rows kept, or read again from the file, and checked exactly.
    repeated = [state.repeated_rows() for state in rules]
    wanted = set().union(*repeated)
    if wanted:
        if keep_rows:
            values_of = {row: values for row, values in kept if row in wanted}
        else:
            values_of = _values_again(text, delimiter, schema, header, cells_of, row_values, wanted)
        for state, rows in zip(rules, repeated, strict=True):
            state.resolve([(row, values_of[row]) for row in sorted(rows)])

    # Conflicts first: their rows are not used, and are nobody's duplicates.
    excluded: set[int] = set()
    conflicted: dict[int, Problem] = {}  # one problem per row, even in two conflicts
    for state in rules:
        for conflict, cells_of in state.conflicts(header.columns):
            for row in conflict.rows:
                column, message = state.conflict_message(conflict, row)
                earlier = conflicted.get(row)
                if earlier is not None:
                    message = f"{earlier.message} {message}"
                    column = earlier.column
                else:
                    column = header.columns.get(column, column)
                conflicted[row] = Problem(row, column, INVALID, message, cells_of[row])
                excluded.add(row)
    problems.extend(conflicted.values())
    for state in rules:
        for first, row, cells in state.repeats(excluded):
            problems.append(Problem(row, "", DUPLICATE, state.duplicate_message(first, row), cells))
            excluded.add(row)
    problems.sort(key=lambda p: p.row)
    table.accepted_count = valid - len(excluded)
    if keep_rows:
        make = schema.make
        table.accepted = [make(row, values) for row, values in kept if row not in excluded]
    if table.blank_rows:
        plural = "" if table.blank_rows == 1 else "s"
        table.notes.append(f"{table.blank_rows} blank row{plural} skipped.")
    return table


def _cells_picker(at: list[int]) -> Callable[[list[str], int], tuple[str, ...]]:
    """(fields, their number) -> the schema's cells, trimmed, in column order ("" for a
    column the file lacks or a row too short to reach)."""
    reach = max(at)
    pick = operator.itemgetter(*at) if len(at) > 1 else None

    def cells(fields: list[str], n: int) -> tuple[str, ...]:
        if pick is not None and n > reach:  # nearly always: one C call picks every cell
            return tuple(map(str.strip, pick(fields)))
        return tuple([fields[i].strip() if i < n else "" for i in at])

    return cells


def _row_reader(
    readers: list[Callable[[str], Any]], fast: list[Callable[[str], Any]]
) -> Callable[[tuple[str, ...]], tuple]:
    """cells -> the row's values, or CellError from the first bad cell. A row without any
    line break or control character (one search over the whole row) goes through the
    `fast` readers, which skip that test in each cell; the other rows through the full
    `readers`."""
    search = _CONTROL_OR_BREAK.search

    def values(cells: tuple[str, ...]) -> tuple:
        use = readers if search("".join(cells)) else fast
        return tuple([read(cell) for read, cell in zip(use, cells, strict=True)])

    return values


def _columns_reader(
    columns: Sequence[Column], indexes: list[int | None], direct: list[Callable[[str], Any]]
) -> Callable[[list[list[str]]], list[tuple] | None]:
    """A block of rows read column by column: each column's cells picked, trimmed and
    checked with one C-level `map` each, instead of a Python loop per row. Only for rows
    holding exactly the header's number of values. Returns the rows' values (as the row
    way gives them), or None when any cell of the block is not plainly usable (empty where
    it may not be, too long, a line break or control character, a check's CellError, a
    memo value not seen yet): the block is then read row by row, which finds and words
    every problem as before. The checks are pure, so reading a cell twice changes
    nothing."""
    strip, search = str.strip, _CONTROL_OR_BREAK.search
    plan = [
        (
            None if index is None else operator.itemgetter(index),
            not column.blank,
            column.max_length,
            work,
        )
        for column, index, work in zip(columns, indexes, direct, strict=True)
    ]

    def values(block: list[list[str]]) -> list[tuple] | None:
        read = []
        for pick, needed, max_length, work in plan:
            # A column the file lacks: every cell is "".
            cells = [""] * len(block) if pick is None else list(map(strip, map(pick, block)))
            if (
                (needed and not all(cells))
                or (max_length is not None and max(map(len, cells)) > max_length)
                or search("".join(cells))
            ):
                return None
            try:
                read.append(list(map(work, cells)))
            except (CellError, KeyError):
                return None
        return list(zip(*read, strict=True))

    return values if plan else (lambda block: None)


def _values_again(
    text: io.TextIOWrapper,
    delimiter: str,
    schema: Schema,
    header: Header,
    cells_of: Callable[[list[str], int], tuple[str, ...]],
    row_values: Callable[[tuple[str, ...]], tuple],
    wanted: set[int],
) -> dict[int, tuple]:
    """The values of the `wanted` rows (all valid), read again from the file: validating
    without keeping the rows reads the file a second time, only when some key repeats."""
    text.seek(0)
    records = _Records(text, delimiter, schema)
    records.names = header.names
    found: dict[int, tuple] = {}
    for row, fields in records:
        if row in wanted:
            found[row] = row_values(cells_of(fields, len(fields)))
            if len(found) == len(wanted):
                break
    return found


def _cell_reader(column: Column, *, plain: bool = False) -> Callable[[str], Any]:
    """A function from a trimmed cell to the value the column keeps, or CellError. Built
    once per column: it runs for every cell of the file. `plain`: for cells known to hold
    no line break or control character (the test is skipped)."""
    return _cell_functions(column, plain=plain)[0]


def _cell_functions(
    column: Column, *, plain: bool = False
) -> tuple[Callable[[str], Any], Callable[[str], Any]]:
    """(read, direct) of a column. `read` is `_cell_reader`'s. `direct` does only the
    column's own work (split, check, memo) and takes only a cell `read` would let through
    to that work: not empty unless the column may be, within its maximum length, and (with
    `plain`) free of line breaks and control characters. For a memo column, `direct`
    raises KeyError for a value not yet remembered as valid: `read` then checks it."""
    blank, max_length, check = column.blank, column.max_length, column.check
    unusable = None if plain else (_CONTROL_OR_BREAK if not column.controls else _BREAK)
    split = _splitter(column.split).split if column.split else None

    def work(value: str) -> Any:
        items = tuple([i for i in (part.strip() for part in split(value)) if i])  # type: ignore[misc]
        if not items and not blank:
            raise CellError(f"holds only separators ({value!r}): no value.")
        return tuple(sorted(set(items))) if check is None else check(items)

    def read(value: str) -> Any:
        if not value:
            if not blank:
                raise CellError("is empty.")
        elif max_length is not None and len(value) > max_length:
            raise CellError(f"is longer than {max_length} characters.")
        elif unusable is not None and unusable.search(value):
            if "\n" in value or "\r" in value:
                raise CellError("contains a line break (a quote left open?).")
            raise CellError(_control_message(value))
        if split is not None:
            return work(value)
        return value if check is None else check(value)

    if split is not None:
        direct = work
    elif check is not None:
        direct = check
    else:
        direct = str  # the value as it is (a cell is a str: str() returns it unchanged)
    if not column.memo:
        return read, direct
    memo: dict[str, Any] = {}  # value -> the value kept, or the CellError it raised
    valid: dict[str, Any] = {}  # the values that passed, for `direct`

    def remembered(value: str) -> Any:
        """A column with few distinct values (sites, role lists): each is checked once."""
        try:
            found = memo[value]
        except KeyError:
            try:
                found = read(value)
            except CellError as exc:
                found = exc
            if len(memo) < MEMO_LIMIT:
                memo[value] = found
                if not isinstance(found, CellError):
                    valid[value] = found
        if isinstance(found, CellError):
            raise CellError(str(found))
        return found

    return remembered, valid.__getitem__


_SPLITTERS: dict[str, re.Pattern[str]] = {}


def _splitter(characters: str) -> re.Pattern[str]:
    pattern = _SPLITTERS.get(characters)
    if pattern is None:
        pattern = _SPLITTERS[characters] = re.compile(f"[{re.escape(characters)}]")
    return pattern


def _as_cells(values: tuple) -> tuple[str, ...]:
    """A valid row's values as text, for a problem found after the row was read."""
    return tuple("; ".join(v) if isinstance(v, tuple) else str(v) for v in values)


def _picker(indexes: list[int]) -> Callable[[tuple], tuple]:
    """values -> the tuple of the values at these indexes."""
    if len(indexes) == 1:
        (only,) = indexes
        return lambda values: (values[only],)
    return operator.itemgetter(*indexes) if indexes else lambda values: ()


def _no_key(values: tuple) -> tuple:
    return ()


class _RuleState:
    """One `Unique` rule over the rows read.

    While the file is read, each valid row leaves only the hash of its key (`hash_of`:
    the key's value, or the tuple of its values) and its row number (in `rows`, one array
    that every rule shares), so validation holds no row. Afterwards the rows
    whose key hash comes back (`repeated_rows`: every row of a key seen twice, and the
    rare row of another key with the same hash) are checked exactly (`resolve`), with
    their values: the first row of each key and every later one."""

    def __init__(self, rule: Unique, position: dict[str, int], rows: array.array) -> None:
        self.rule = rule
        key = [position[n] for n in rule.key]
        self.key_of = _picker(key)
        self.hash_of = operator.itemgetter(*key) if key else _no_key
        self.agree_of = _picker([position[n] for n in rule.agree])
        self.hashes = array.array("q")  # hash of each valid row's key, file order
        self.rows = rows  # and its row number (the reader appends both)
        # Of the rows resolved: key -> (row, agree values, values) of its first row ...
        self.first: dict[tuple, tuple[int, tuple, tuple]] = {}
        # ... and key -> its later rows (row, agree values, values)
        self.more: dict[tuple, list[tuple[int, tuple, tuple]]] = {}
        self.conflicting: set[tuple] = set()

    def repeated_rows(self) -> set[int]:
        """The rows whose key hash is shared with another row."""
        if len(self.hashes) < 2:
            return set()
        import numpy as np

        hashes = np.frombuffer(self.hashes, dtype=np.int64)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        same = ordered[1:] == ordered[:-1]
        repeated = np.zeros(len(ordered), dtype=bool)
        repeated[1:] |= same
        repeated[:-1] |= same
        rows = np.frombuffer(self.rows, dtype=np.int64)[order[repeated]]
        return set(rows.tolist())

    def resolve(self, entries: Iterable[tuple[int, tuple]]) -> None:
        """The exact check of the repeated rows, (row, values) in file order."""
        for row, values in entries:
            key = self.key_of(values)
            agree = self.agree_of(values)
            first = self.first.get(key)
            if first is None:
                self.first[key] = (row, agree, values)
                continue
            self.more.setdefault(key, []).append((row, agree, values))
            if agree != first[1]:
                self.conflicting.add(key)

    def conflicts(self, columns: dict[str, str]):
        for key in self.first:  # file order of the keys' first rows
            if key not in self.conflicting:
                continue
            entries = [self.first[key], *self.more[key]]
            conflict = Conflict(key, [(r, a) for r, a, _ in entries], columns)
            yield conflict, {r: _as_cells(v) for r, _, v in entries}

    def repeats(self, excluded: set[int]):
        """(first row, repeating row, its cells) of the duplicates among rows still used."""
        if not self.rule.duplicates:
            return
        for key, later in self.more.items():
            if key in self.conflicting:
                continue
            first_row = self.first[key][0]
            if first_row in excluded:
                continue
            for row, _, values in later:
                if row not in excluded:
                    yield first_row, row, _as_cells(values)

    def conflict_message(self, conflict: Conflict, row: int) -> tuple[str, str]:
        if self.rule.conflict is not None:
            return self.rule.conflict(conflict, row)
        differing = [
            name
            for k, name in enumerate(self.rule.agree)
            if len({a[k] for _, a in conflict.entries}) > 1
        ]
        shown = [conflict.columns.get(n, n) for n in differing]
        return differing[0], (
            f"Row {row}: rows {conflict.rows_text} have the same "
            f"{' and '.join(conflict.columns.get(n, n) for n in self.rule.key)} but different "
            f"{' and '.join(shown)}; fix the rows so they agree. None of them is used."
        )

    def duplicate_message(self, first: int, row: int) -> str:
        if self.rule.duplicate is not None:
            return self.rule.duplicate(first, row)
        return f"Duplicate of row {first}; used once."


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


def roster_store_path(path: str | os.PathLike, *, origin: str = "cli"):
    """Store a local file (the job commands): `(upload, "")`, or `(None, why)` when the file
    cannot be read or stored, so the command still records a run that says why."""
    path = Path(path)
    try:
        with path.open("rb") as source:
            return roster_store(source, name=path.name, origin=origin), ""
    except FileNotFoundError:
        return None, f"File not found: {path}"
    except IsADirectoryError:
        return None, f"{path} is a folder, not a file."
    except OSError as exc:
        return None, f"Cannot read {path}: {exc.strerror or exc}"
    except RosterRefused as exc:
        return None, str(exc)


def roster_stored(roster_id: Any):
    """The stored roster a run was made with, checked byte for byte against the hash taken
    at upload (a resume relies on row numbers, and an apply on the previewed plan).
    Raises InvalidInput, naming what is wrong, when it is gone or changed."""
    from integrations.models import RosterUpload

    upload = RosterUpload.objects.filter(pk=roster_id).first()
    if upload is None:
        raise InvalidInput("The run's stored roster is gone; upload the file again.")
    if not upload.path.is_file():
        raise InvalidInput(
            f"The stored copy of {upload.original_name} is missing from "
            f"{upload.path.parent}; upload the file again."
        )
    digest = hashlib.sha256()
    with upload.path.open("rb") as stored:
        for chunk in iter(lambda: stored.read(1 << 16), b""):
            digest.update(chunk)
    if digest.hexdigest() != upload.sha256:
        raise InvalidInput(
            f"The stored copy of {upload.original_name} has changed since it was uploaded; "
            "upload the file again."
        )
    return upload


def _total_size(source: IO[bytes], read_so_far: int) -> int:
    try:
        return max(read_so_far, os.fstat(source.fileno()).st_size)
    except (AttributeError, OSError, io.UnsupportedOperation):
        return read_so_far
