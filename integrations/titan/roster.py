"""The Titan HST roster: its schema on the general reader (integrations.rosters).

Interface (used by the Titan sync; keep it stable)::

    titan_roster_read(source, *, sites: Iterable[str] | None, roles: Iterable[str] | None,
                      aliases=None, on_progress=None) -> TitanRoster

- `source`: a path, bytes, or a binary file object.
- `sites`, `roles`: the names Titan knows (`GET /api/v1/sites`, `GET /api/v1/roles`, looked
  up by the caller). A cell matches a name whatever its case and surrounding spaces, and is
  kept in Titan's spelling; a name Titan does not know is a row error (with "did you
  mean"). `None` skips that check: names are then kept as written (trimmed).
- `aliases`: more header names per column: a mapping `{"email": ["E-mail"]}` or the text
  form of the setting; `None` reads `TITAN_HEADER_ALIASES` (JSON, or
  `canonical=alias|alias,canonical=alias`). A malformed value raises `ConfigError` naming
  the setting (exit 2).
- A file that cannot be used as a whole raises `RosterRefused` (an `InvalidInput`: run
  `invalid`, exit 2, nothing sent), with a message naming the row or line.

`TitanRoster`:

- `.rows`: the valid rows, file order, as `TitanRow(row, external_id, first_name,
  last_name, email, site_name, roles)`; `row` is the spreadsheet row (header = 1), `roles`
  a sorted tuple of distinct role names (Titan's spelling), so role sets compare with `==`.
  At most one row per (external_id, site_name).
- `.problems`: `TitanProblem(row, column, kind, message, external_id, site_name)`, by
  row, one per row; `kind` is `invalid` (the row is not used) or `duplicate` (the row
  repeats an earlier one exactly and is used once). `column` is the file's header name
  ("" for the row as a whole).
- `.users_with_problems`: external ids of the invalid rows. A planner must not read a
  missing membership of these users as a removal: their row was meant, but is broken.
- `.header` (`integrations.rosters.Header`: `.columns` canonical -> the file's name,
  `.names` in file order, `.ignored`, `.as_dict()` to store with a run) and
  `titan_header_changes(previous, current)` -> sentences ("Column email is now read from
  "E-mail" (it was "email").") for "columns changed since the last sync" ([] if none).
- `.counts`: rows (data rows read), valid, invalid, duplicates, blank, users, sites.
- `.encoding`, `.delimiter`, `.notes` (e.g. "read as Windows-1252", ignored columns).

Rules: every column is required and no cell may be empty; `external_id` is text
(`000900` stays `000900`) of at most 100 characters; names are trimmed, inner runs of
spaces made one; `email` must be a valid address (its domain is lower-cased); `role_names`
holds one or more roles separated by `;`, `|` or `,` (a `,` only inside quotes in a comma
file); order, spacing, the separator and repeats do not matter. Control characters, line
breaks and values that start like a spreadsheet formula (`=`, `+`, `-`, `@`) in an id or
a name are row errors. The same `external_id` with different names or emails is a
conflict: every row of that user is invalid, naming all of them. The same user and site
twice: with the same roles a duplicate, with different roles a conflict.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.conf import settings
from django.core.validators import EmailValidator

from integrations.rosters import (
    DUPLICATE,
    INVALID,
    CellError,
    Column,
    Conflict,
    Header,
    RosterRefused,
    Schema,
    Source,
    Unique,
    aliases_parse,
    closest_name,
    header_changes,
    table_read,
)

__all__ = [
    "COLUMNS",
    "DUPLICATE",
    "INVALID",
    "RosterRefused",
    "TitanProblem",
    "TitanRoster",
    "TitanRow",
    "titan_header_changes",
    "titan_roster_read",
]

EXTERNAL_ID = "external_id"
FIRST_NAME = "first_name"
LAST_NAME = "last_name"
EMAIL = "email"
SITE = "site_name"
ROLES = "role_names"
COLUMNS = (EXTERNAL_ID, FIRST_NAME, LAST_NAME, EMAIL, SITE, ROLES)
ROLE_SEPARATORS = ";|,"
SETTING = "TITAN_HEADER_ALIASES"
MAX_ID_LENGTH = 100
MAX_NAME_LENGTH = 100
MAX_EMAIL_LENGTH = 254
MAX_SITE_LENGTH = 200
MAX_ROLES_LENGTH = 1000
# Header names accepted besides the canonical ones (case, spaces, "_" and "-" never matter).
BUILTIN_ALIASES = {
    EXTERNAL_ID: ("sis_id",),
    FIRST_NAME: ("given_name",),
    LAST_NAME: ("surname", "family_name"),
    EMAIL: ("email_address",),
    SITE: ("site",),
    ROLES: ("roles", "role"),
}

titan_header_changes = header_changes


class TitanRow(NamedTuple):
    row: int
    external_id: str
    first_name: str
    last_name: str
    email: str
    site_name: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TitanProblem:
    row: int
    column: str
    kind: str  # INVALID or DUPLICATE
    message: str
    external_id: str  # as written (trimmed); "" when empty
    site_name: str  # Titan's spelling when known, else as written (trimmed)


@dataclass
class TitanRoster:
    encoding: str
    delimiter: str
    header: Header
    notes: list[str] = field(default_factory=list)
    data_rows: int = 0
    blank_rows: int = 0
    rows: list[TitanRow] = field(default_factory=list)
    problems: list[TitanProblem] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return sum(1 for p in self.problems if p.kind == INVALID)

    @property
    def duplicates(self) -> int:
        return sum(1 for p in self.problems if p.kind == DUPLICATE)

    @property
    def users_with_problems(self) -> set[str]:
        return {p.external_id for p in self.problems if p.kind == INVALID and p.external_id}

    @property
    def counts(self) -> dict[str, int]:
        return {
            "rows": self.data_rows,
            "valid": len(self.rows),
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "blank": self.blank_rows,
            "users": len({r.external_id for r in self.rows}),
            "sites": len({r.site_name for r in self.rows}),
        }


# --- cells -----------------------------------------------------------------------------
def _not_formula(value: str) -> str:
    if value[:1] in ("=", "+", "-", "@"):
        raise CellError(
            f"starts with {value[0]!r}, like a spreadsheet formula; remove it (values are "
            "sent as text)."
        )
    return value


def _name(value: str) -> str:
    return _not_formula(" ".join(value.split()))


# Django's email rules, applied in two halves: the local part by its compiled pattern, the
# domain once per distinct domain (a roster holds few), which keeps 100,000 rows fast.
_email_validator = EmailValidator(allowlist=[])
_EMAIL_USER = re.compile(EmailValidator.user_regex.pattern, EmailValidator.user_regex.flags)


@functools.lru_cache(maxsize=4096)
def _email_domain_ok(domain: str) -> bool:
    return bool(_email_validator.validate_domain_part(domain))


# The local part's dot-atom in plain ASCII (the pattern's first branch, whose IGNORECASE
# makes it slow: 5 us a value): atoms of these characters joined by single dots. Anything
# else (a quoted local part, a character outside ASCII) goes to Django's pattern itself.
_ATEXT_AND_DOT = (
    "-!#$%&'*+/=?^_`{}|~0123456789.ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def _email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if (
        not at
        or len(value) > 320
        or not (
            (
                local
                and not local.strip(_ATEXT_AND_DOT)
                and local[0] != "."
                and local[-1] != "."
                and ".." not in local
            )
            or _EMAIL_USER.match(local)
        )
        or not _email_domain_ok(domain)
    ):
        raise CellError(f'"{value}" is not a valid email address.')
    return f"{local}@{domain.lower()}"


class _Names:
    """Titan's names of one kind (sites or roles), matched without regard to case and
    surrounding spaces and returned in Titan's spelling."""

    def __init__(self, names: Iterable[str], what: str) -> None:
        self.what = what
        self.spelling: dict[str, str] = {}
        self.ambiguous: dict[str, list[str]] = {}
        for name in names:
            name = str(name)
            folded = name.strip().casefold()
            other = self.spelling.setdefault(folded, name)
            if other != name:
                self.ambiguous.setdefault(folded, [other]).append(name)
        self._suggestions: dict[str, str | None] = {}

    def match(self, value: str) -> str | None:
        """Titan's spelling, or None if unknown. Raises CellError when ambiguous."""
        folded = value.casefold()
        if folded in self.ambiguous:
            spellings = self.ambiguous[folded]
            if value in spellings:
                return value
            listed = ", ".join(f'"{s}"' for s in spellings)
            raise CellError(
                f'"{value}" matches several Titan {self.what}s ({listed}); write it exactly.'
            )
        return self.spelling.get(folded)

    def suggest(self, value: str) -> str:
        """' (did you mean "X"?)' for the closest known name, or ""."""
        if value not in self._suggestions:
            self._suggestions[value] = closest_name(value, self.spelling.values())
        suggestion = self._suggestions[value]
        return f' (did you mean "{suggestion}"?)' if suggestion else ""


def _site_check(sites: _Names | None) -> Callable[[str], str] | None:
    if sites is None:
        return None

    def check(value: str) -> str:
        found = sites.match(value)
        if found is None:
            raise CellError(f'"{value}" is not a Titan site{sites.suggest(value)}.')
        return found

    return check


def _sorted(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names), key=lambda n: (n.casefold(), n)))


def _roles_check(roles: _Names | None) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    def check(items: tuple[str, ...]) -> tuple[str, ...]:
        if not items:
            raise CellError(
                "holds no role: every row needs at least one (an empty cell is not a "
                "removal: to take a user off a site, leave that row out)."
            )
        if roles is None:
            return _sorted(items)
        found, unknown = [], []
        for item in items:
            spelling = roles.match(item)
            if spelling is None:
                if item not in unknown:
                    unknown.append(item)
            else:
                found.append(spelling)
        if unknown:
            listed = ", ".join(f'"{u}"{roles.suggest(u)}' for u in unknown)
            plural = "a role" if len(unknown) == 1 else "roles"
            raise CellError(f"names {plural} Titan does not have: {listed}.")
        return _sorted(found)

    return check


# --- duplicates and conflicts ----------------------------------------------------------
def _roles_text(roles: tuple[str, ...]) -> str:
    return "; ".join(roles)


def _site_conflict(conflict: Conflict, row: int) -> tuple[str, str]:
    external_id, site = conflict.key
    seen = " / ".join(dict.fromkeys(_roles_text(roles) for _, (roles,) in conflict.entries))
    return ROLES, (
        f"Row {row}: user {external_id} is listed at site {site} with different roles "
        f"({seen}) in rows {conflict.rows_text}; fix the rows so they agree. None of them "
        "is used."
    )


def _user_conflict(conflict: Conflict, row: int) -> tuple[str, str]:
    (external_id,) = conflict.key
    parts, first_column = [], None
    for k, (column, label) in enumerate(
        ((FIRST_NAME, "first names"), (LAST_NAME, "last names"), (EMAIL, "emails"))
    ):
        values = list(dict.fromkeys(agree[k] for _, agree in conflict.entries))
        if len(values) > 1:
            first_column = first_column or column
            parts.append(f"{label} ({', '.join(values)})")
    # Emails first: the field a silent pick would hurt most.
    if len(parts) > 1 and parts[-1].startswith("emails"):
        parts.insert(0, parts.pop())
        first_column = EMAIL
    return first_column or EXTERNAL_ID, (
        f"Row {row}: user {external_id} has different {' and '.join(parts)} in rows "
        f"{conflict.rows_text}; fix the rows so they agree. None of them is used."
    )


def titan_schema(
    *, sites: Iterable[str] | None = None, roles: Iterable[str] | None = None
) -> Schema:
    site_names = None if sites is None else _Names(sites, "site")
    role_names = None if roles is None else _Names(roles, "role")
    return Schema(
        columns=(
            Column(
                EXTERNAL_ID,
                BUILTIN_ALIASES[EXTERNAL_ID],
                max_length=MAX_ID_LENGTH,
                controls=False,
                check=_not_formula,
            ),
            Column(
                FIRST_NAME,
                BUILTIN_ALIASES[FIRST_NAME],
                max_length=MAX_NAME_LENGTH,
                controls=False,
                check=_name,
            ),
            Column(
                LAST_NAME,
                BUILTIN_ALIASES[LAST_NAME],
                max_length=MAX_NAME_LENGTH,
                controls=False,
                check=_name,
            ),
            Column(
                EMAIL,
                BUILTIN_ALIASES[EMAIL],
                max_length=MAX_EMAIL_LENGTH,
                controls=False,
                check=_email,
            ),
            Column(
                SITE,
                BUILTIN_ALIASES[SITE],
                max_length=MAX_SITE_LENGTH,
                controls=False,
                check=_site_check(site_names),
                memo=True,
            ),
            Column(
                ROLES,
                BUILTIN_ALIASES[ROLES],
                blank=True,  # the check explains why a row needs a role
                max_length=MAX_ROLES_LENGTH,
                controls=False,
                split=ROLE_SEPARATORS,
                check=_roles_check(role_names),
                memo=True,
            ),
        ),
        rules=(
            Unique(
                key=(EXTERNAL_ID,),
                agree=(FIRST_NAME, LAST_NAME, EMAIL),
                duplicates=False,
                conflict=_user_conflict,
            ),
            Unique(
                key=(EXTERNAL_ID, SITE),
                agree=(ROLES,),
                conflict=_site_conflict,
                duplicate=lambda first, row: (
                    f"Duplicate of row {first} (same user, site and roles); used once."
                ),
            ),
        ),
        make=lambda row, values: TitanRow(row, *values),
        short_rows=True,
    )


def titan_roster_read(
    source: Source,
    *,
    sites: Iterable[str] | None,
    roles: Iterable[str] | None,
    aliases: str | Mapping[str, Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> TitanRoster:
    """Read and validate a Titan roster (see the module docstring for the interface)."""
    site_list = None if sites is None else list(sites)
    schema = titan_schema(sites=site_list, roles=roles)
    if aliases is None:
        aliases = getattr(settings, SETTING, "")
    schema = schema.with_aliases(aliases_parse(aliases, setting=SETTING, schema=schema))
    table = table_read(source, schema, on_progress=on_progress)
    site_names = None if site_list is None else _Names(site_list, "site")
    return TitanRoster(
        encoding=table.encoding,
        delimiter=table.delimiter,
        header=table.header,
        notes=table.notes,
        data_rows=table.rows,
        blank_rows=table.blank_rows,
        rows=table.accepted,
        problems=[
            TitanProblem(
                p.row,
                p.column,
                p.kind,
                p.message,
                p.cells[0],
                _problem_site(p.cells[4], site_names),
            )
            for p in table.problems
        ],
    )


def _problem_site(value: str, sites: _Names | None) -> str:
    if sites is None or not value:
        return value
    try:
        return sites.match(value) or value
    except CellError:
        return value
