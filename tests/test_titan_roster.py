"""The Titan roster reader: a table of malformed files, each with its expected outcome,
then the interface the Titan sync relies on (rows, problems, header, aliases)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

import pytest

from integrations.http import ConfigError
from integrations.rosters import DUPLICATE, INVALID, RosterRefused
from integrations.titan.roster import TitanRow, titan_header_changes, titan_roster_read

SITES = ["North High", "South Middle", "Central Office"]
ROLES = ["Teacher", "Staff", "Principal", "Nurse"]
HEADER = "external_id,first_name,last_name,email,site_name,role_names\n"


def line(
    eid="000900",
    first="Ana",
    last="Ruiz",
    email="ana@example.org",
    site="North High",
    roles="Teacher",
    sep=",",
) -> str:
    return sep.join((eid, first, last, email, site, roles)) + "\n"


OK = line()  # row 2 of a file starting with HEADER
OK_B = line("000901", "Bo", "Li", "bo@example.org", "South Middle", "Staff")


@dataclass
class Case:
    data: str | bytes
    refused: str = ""  # the refusal message holds this
    valid: dict[int, tuple] = field(default_factory=dict)  # row -> (external_id, site, roles)
    problems: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # row -> kind,
    # column, part of the message
    max_bytes: int | None = None
    aliases: object = None


T = ("Teacher",)
S = ("Staff",)
ANA = ("000900", "North High", T)
BO = ("000901", "South Middle", S)

CASES: dict[str, Case] = {
    # --- headers ---
    "misspelt header with suggestion": Case(
        "external_id,first_name,last_name,emial,site_name,role_names\n" + OK,
        refused='"email" (did you mean "emial"?)',
    ),
    "missing role_names column": Case(
        "external_id,first_name,last_name,email,site_name\n" + line()[: line().rindex(",")],
        refused='lacks the required column "role_names"',
    ),
    "several columns missing": Case(
        "external_id,email\n000900,ana@example.org\n",
        refused='columns "first_name" and "last_name" and "site_name" and "role_names"',
    ),
    "no header: the first row is data": Case(
        OK + OK_B, refused='Columns found: "000900", "Ana", "Ruiz"'
    ),
    "a column named twice (alias)": Case(
        "external_id,first_name,last_name,email,email_address,site_name,role_names\n",
        refused="names the email column twice",
    ),
    "built-in aliases, any case and spacing": Case(
        "External ID,Given Name,Surname,E-Mail Address,SITE,Roles\n" + OK, valid={2: ANA}
    ),
    "configured aliases": Case(
        "Employee Number,first_name,last_name,email,Building,role_names\n" + OK,
        valid={2: ANA},
        aliases="external_id=Employee Number,site_name=Building|School",
    ),
    "an unknown extra column is ignored": Case(
        HEADER.replace("\n", ",notes\n") + line().replace("\n", ",hello\n"), valid={2: ANA}
    ),
    # --- encodings and delimiters ---
    "UTF-8 with BOM": Case(codecs.BOM_UTF8 + (HEADER + OK).encode(), valid={2: ANA}),
    "UTF-16 tab-separated (Excel Unicode text)": Case(
        (HEADER + line(roles="Teacher;Staff")).replace(",", "\t").encode("utf-16"),
        valid={2: ("000900", "North High", ("Staff", "Teacher"))},
    ),
    "Latin-1 (Excel CSV on Windows)": Case(
        (HEADER + line(first="José", last="Muñoz")).encode("latin-1"), valid={2: ANA}
    ),
    "UTF-8 mixed with Latin-1": Case(
        (HEADER + line(first="José")).encode() + line("2", "Zoë").encode("latin-1"),
        refused="mixes two encodings",
    ),
    "semicolon-delimited, roles quoted": Case(
        HEADER.replace(",", ";") + line(roles='"Teacher;Staff"', sep=";"),
        valid={2: ("000900", "North High", ("Staff", "Teacher"))},
    ),
    "semicolon-delimited, roles with ; unquoted": Case(
        HEADER.replace(",", ";") + line(roles="Teacher;Staff", sep=";") + OK_B.replace(",", ";"),
        valid={3: BO},
        problems={2: (INVALID, "", "has 7 values but the header has 6 columns (a semicolon")},
    ),
    "an Excel workbook": Case(b"PK\x03\x04" + b"\x00" * 50, refused="Excel workbook"),
    # --- structure ---
    "unclosed quote": Case(
        HEADER + OK + line("000902", first='"Cy') + OK_B,
        refused='Line 3: the quote that opens the "first_name" value is never closed',
    ),
    "quote closed later, swallowing rows": Case(
        HEADER + line(first='"Cy') + OK + line("000903", last='x"'),
        refused="looks like a whole row",
    ),
    "empty file": Case(b"", refused="The file is empty"),
    "header only": Case(HEADER, refused="has a header (row 1) but no data rows"),
    "only blank lines": Case("\n \n,,,\n", refused="no header row"),
    "blank lines keep spreadsheet row numbers": Case(
        "\n" + HEADER + "\n" + OK + ",,,,,\n" + OK_B, valid={4: ANA, 6: BO}
    ),
    "too large": Case(HEADER + OK * 20, refused="ROSTER_MAX_BYTES=500", max_bytes=500),
    # --- cells ---
    "missing cells": Case(
        HEADER + "000900,Ana,Ruiz,ana@example.org\n" + OK_B,
        valid={3: BO},
        problems={2: (INVALID, "site_name", "site_name, role_names are missing")},
    ),
    "extra cells": Case(
        HEADER + line(roles="Teacher,Staff") + OK_B,
        valid={3: BO},
        problems={2: (INVALID, "", "7 values but the header has 6 columns")},
    ),
    "extra empty cells are harmless": Case(HEADER + line().replace("\n", ",,\n"), valid={2: ANA}),
    "empty external_id": Case(
        HEADER + line("") + OK_B,
        valid={3: BO},
        problems={2: (INVALID, "external_id", "Row 2: external_id is empty.")},
    ),
    "invalid emails": Case(
        HEADER
        + line("1", email="ana@")
        + line("2", email="ana.example.org")
        + line("3", email="ana@localhost")
        + line("4", email="ana @example.org")
        + line("5", email="ana@@example.org")
        + OK_B,
        valid={7: BO},
        problems={
            2: (INVALID, "email", '"ana@" is not a valid email address'),
            3: (INVALID, "email", "is not a valid email address"),
            4: (INVALID, "email", "is not a valid email address"),
            5: (INVALID, "email", "is not a valid email address"),
            6: (INVALID, "email", "is not a valid email address"),
        },
    ),
    "unknown site with suggestion": Case(
        HEADER + line(site="Nrth High") + OK_B,
        valid={3: BO},
        problems={
            2: (
                INVALID,
                "site_name",
                '"Nrth High" is not a Titan site (did you mean "North High"?)',
            )
        },
    ),
    "site in another case and spacing": Case(
        HEADER + line(site="  nORTH hIGH ") + OK_B, valid={2: ANA, 3: BO}
    ),
    "unknown role with suggestion": Case(
        HEADER + line(roles='"Teacher, Techer, Janitor"') + OK_B,
        valid={3: BO},
        problems={
            2: (
                INVALID,
                "role_names",
                'roles Titan does not have: "Techer" (did you mean "Teacher"?), "Janitor"',
            )
        },
    ),
    "empty roles is an error, not a removal": Case(
        HEADER + line(roles="") + OK_B,
        valid={3: BO},
        problems={2: (INVALID, "role_names", "holds no role: every row needs at least one")},
    ),
    "roles with only separators": Case(
        HEADER + line(roles='" ; | , "') + OK_B,
        valid={3: BO},
        problems={2: (INVALID, "role_names", "holds no role")},
    ),
    "mixed separators, order, case and spacing": Case(
        HEADER + line(roles='" nurse | Teacher;STAFF , principal"'),
        valid={2: ("000900", "North High", ("Nurse", "Principal", "Staff", "Teacher"))},
    ),
    "duplicate roles within a cell": Case(
        HEADER + line(roles="Teacher;teacher;TEACHER ;"), valid={2: ANA}
    ),
    "leading zeros are kept: 000900 is not 900": Case(
        HEADER + OK + line("900", email="other@example.org"),
        valid={2: ANA, 3: ("900", "North High", T)},
    ),
    "email conflict names every row of the user": Case(
        HEADER + OK + OK_B + line(site="South Middle", email="ana.ruiz@example.org"),
        valid={3: BO},
        problems={
            2: (
                INVALID,
                "email",
                "has different emails (ana@example.org, ana.ruiz@example.org) in rows 2, 4",
            ),
            4: (INVALID, "email", "in rows 2, 4; fix the rows so they agree"),
        },
    ),
    "name conflict": Case(
        HEADER + OK + line(first="Anna", site="South Middle"),
        problems={
            2: (INVALID, "first_name", "has different first names (Ana, Anna) in rows 2, 3"),
            3: (INVALID, "first_name", "in rows 2, 3"),
        },
    ),
    "email domain case is not a conflict": Case(
        HEADER + OK + line(email="ana@EXAMPLE.org", site="South Middle"),
        valid={2: ANA, 3: ("000900", "South Middle", T)},
    ),
    "duplicate rows are used once": Case(
        HEADER + OK + OK_B + OK,
        valid={2: ANA, 3: BO},
        problems={4: (DUPLICATE, "", "Duplicate of row 2 (same user, site and roles); used once.")},
    ),
    "a repeat differing only in role order and case is a duplicate": Case(
        HEADER + line(roles="Teacher;Staff") + line(roles="staff|teacher"),
        valid={2: ("000900", "North High", ("Staff", "Teacher"))},
        problems={3: (DUPLICATE, "", "Duplicate of row 2")},
    ),
    "same user and site with different roles is a conflict": Case(
        HEADER + OK + OK_B + line(roles="Staff"),
        valid={3: BO},
        problems={
            2: (
                INVALID,
                "role_names",
                "at site North High with different roles (Teacher / Staff) in rows 2, 4",
            ),
            4: (INVALID, "role_names", "in rows 2, 4"),
        },
    ),
    "whitespace around cells and inside names": Case(
        HEADER
        + line(
            " 000900 ", "  Ana   Maria ", " Ruiz", " ana@example.org ", " North High", " Teacher "
        ),
        valid={2: ANA},
    ),
    "control character in a name": Case(
        HEADER + line(first="An\x07a") + OK_B,
        valid={3: BO},
        problems={2: (INVALID, "first_name", "contains a control character (U+0007")},
    ),
    "NUL character (UTF-8)": Case((HEADER + line(first="An\x00a")).encode(), refused="binary"),
    "NUL character (UTF-16)": Case(
        (HEADER + line(first="An\x00a")).encode("utf-16"), refused="NUL character on line 2"
    ),
    "formula-looking cells": Case(
        HEADER
        + line("1", first='=HYPERLINK("http://x")')
        + line("+2", email="b@example.org")
        + line("3", last="@SUM(A1)", email="c@example.org")
        + OK_B,
        valid={5: BO},
        problems={
            2: (INVALID, "first_name", "starts with '=', like a spreadsheet formula"),
            3: (INVALID, "external_id", "starts with '+'"),
            4: (INVALID, "last_name", "starts with '@'"),
        },
    ),
    "very long cells": Case(
        HEADER + line(first="A" * 101) + line("000901", email="b" * 250 + "@example.org") + OK_B,
        valid={4: BO},
        problems={
            2: (INVALID, "first_name", "first_name is longer than 100 characters"),
            3: (INVALID, "email", "email is longer than 254 characters"),
        },
    ),
    "a cell past the CSV field limit": Case(
        HEADER + line(first="A" * 140_000), refused="field larger than field limit"
    ),
    "a quoted line break in a cell": Case(
        HEADER + line(last='"Ruiz\nGarcía"') + OK_B,
        valid={3: BO},
        problems={2: (INVALID, "last_name", "contains a line break")},
    ),
    "several bad cells: one problem naming them all": Case(
        HEADER + line(email="nope", site="Mars", roles="Pilot"),
        problems={
            2: (
                INVALID,
                "email",
                'email "nope" is not a valid email address; site_name "Mars" is not a '
                'Titan site; role_names names a role Titan does not have: "Pilot"',
            )
        },
    ),
}


def read(case: Case, settings):
    if case.max_bytes:
        settings.ROSTER_MAX_BYTES = case.max_bytes
    data = case.data.encode() if isinstance(case.data, str) else case.data
    return titan_roster_read(data, sites=SITES, roles=ROLES, aliases=case.aliases)


def test_the_table_has_at_least_thirty_malformed_files():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_malformed_titan_roster(case: Case, settings):
    if case.refused:
        with pytest.raises(RosterRefused) as caught:
            read(case, settings)
        assert case.refused in str(caught.value)
        return
    roster = read(case, settings)
    assert {r.row: (r.external_id, r.site_name, r.roles) for r in roster.rows} == case.valid
    got = {p.row: p for p in roster.problems}
    assert sorted(got) == sorted(case.problems), [p.message for p in roster.problems]
    for row, (kind, column, text) in case.problems.items():
        problem = got[row]
        assert (problem.kind, problem.column) == (kind, column), problem
        assert text in problem.message, problem.message
        if kind == INVALID:
            assert problem.message.startswith(f"Row {row}"), problem.message


# --- the interface the Titan sync relies on ---------------------------------------------
def test_rows_carry_every_field_in_titans_spelling():
    data = HEADER + line(
        " 000900", "Ana", "Ruiz", "Ana@Example.ORG", "north high ", "staff;TEACHER"
    )
    [row] = titan_roster_read(data.encode(), sites=SITES, roles=ROLES).rows
    assert row == TitanRow(
        2, "000900", "Ana", "Ruiz", "Ana@example.org", "North High", ("Staff", "Teacher")
    )


def test_without_known_names_values_are_kept_as_written():
    data = HEADER + line(site="Annex", roles="Coach;Teacher;Coach")
    [row] = titan_roster_read(data.encode(), sites=None, roles=None).rows
    assert (row.site_name, row.roles) == ("Annex", ("Coach", "Teacher"))


def test_counts_and_users_with_problems():
    data = HEADER + OK + OK + OK_B + line("000902", email="bad") + line("000903", site="Mars")
    roster = titan_roster_read(data.encode(), sites=SITES, roles=ROLES)
    assert roster.counts == {
        "rows": 5,
        "valid": 2,
        "invalid": 2,
        "duplicates": 1,
        "blank": 0,
        "users": 2,
        "sites": 2,
    }
    assert roster.users_with_problems == {"000902", "000903"}
    assert {p.row: p.site_name for p in roster.problems} == {
        3: "North High",
        5: "North High",
        6: "Mars",
    }


def test_a_problem_names_the_site_in_titans_spelling():
    roster = titan_roster_read(
        (HEADER + line(site="south middle", email="x")).encode(), sites=SITES, roles=ROLES
    )
    [problem] = roster.problems
    assert (problem.external_id, problem.site_name) == ("000900", "South Middle")


def test_progress_is_reported():
    seen = []
    data = HEADER + "".join(line(f"{i:06d}", email=f"u{i}@example.org") for i in range(2500))
    titan_roster_read(data.encode(), sites=SITES, roles=ROLES, on_progress=seen.append)
    assert seen == [1000, 2000, 2500]


# --- header and schema drift ------------------------------------------------------------
def test_the_header_is_exposed_with_canonical_and_file_names():
    data = "External ID,first_name,last_name,Email Address,site,role_names,Notes\n" + OK
    header = titan_roster_read(data.encode(), sites=SITES, roles=ROLES).header
    assert header.columns["external_id"] == "External ID"
    assert header.columns["email"] == "Email Address"
    assert header.ignored == ("Notes",)
    assert header.names[0] == "External ID" and len(header.names) == 7
    assert header.as_dict()["columns"]["site_name"] == "site"


def test_header_changes_says_what_changed_since_the_last_sync():
    before = titan_roster_read((HEADER + OK).encode(), sites=SITES, roles=ROLES).header
    same = titan_roster_read((HEADER + OK_B).encode(), sites=SITES, roles=ROLES).header
    assert titan_header_changes(before.as_dict(), same) == []
    assert titan_header_changes(None, same) == []
    renamed = "external_id,first_name,last_name,E-mail,site_name,role_names,Dept\n" + OK
    after = titan_roster_read(renamed.encode(), sites=SITES, roles=ROLES).header
    assert titan_header_changes(before, after) == [
        'Column email is now read from "E-mail" (it was "email").',
        'New column "Dept" (ignored).',
    ]
    assert titan_header_changes(after.as_dict(), before.as_dict()) == [
        'Column "Dept" (ignored) is gone.',
        'Column email is now read from "email" (it was "E-mail").',
    ]
    reordered = "first_name,external_id,last_name,email,site_name,role_names\n"
    reordered += "Ana,000900,Ruiz,ana@example.org,North High,Teacher\n"
    moved = titan_roster_read(reordered.encode(), sites=SITES, roles=ROLES).header
    assert titan_header_changes(before, moved) == ["The columns are in a different order."]


# --- aliases from the setting -----------------------------------------------------------
ALIASED = "Employee ID,first_name,last_name,Mail,Building,role_names\n" + OK


@pytest.mark.parametrize(
    "value",
    [
        "external_id=Employee ID|Staff No,email=Mail,site_name=Building",
        '{"external_id": ["Employee ID"], "email": "Mail", "site_name": ["Building"]}',
    ],
)
def test_aliases_come_from_the_setting_in_either_form(value, settings):
    settings.TITAN_HEADER_ALIASES = value
    roster = titan_roster_read(ALIASED.encode(), sites=SITES, roles=ROLES)
    assert [r.external_id for r in roster.rows] == ["000900"]
    assert roster.header.columns["email"] == "Mail"


def test_without_the_aliases_the_header_is_refused_with_a_suggestion(settings):
    settings.TITAN_HEADER_ALIASES = ""
    with pytest.raises(RosterRefused, match='"external_id"'):
        titan_roster_read(ALIASED.encode(), sites=SITES, roles=ROLES)


def test_aliases_given_as_a_mapping_override_the_setting(settings):
    settings.TITAN_HEADER_ALIASES = "not valid"
    aliases = {"external_id": ["Employee ID"], "email": ["Mail"], "site_name": ["Building"]}
    roster = titan_roster_read(ALIASED.encode(), sites=SITES, roles=ROLES, aliases=aliases)
    assert len(roster.rows) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("emial=Mail", "'emial' is not a column"),
        ("email", "is not of the form column=alias|alias"),
        ("email=", "an alias of email is empty"),
        ("email=site", "'site' cannot name email: it already names site_name"),
        ("email=Mail,site_name=mail", "'mail' cannot name site_name: it already names email"),
        ('{"email": ', "is not valid JSON"),
        ('{"email": [1]}', "the aliases of email must be text"),
    ],
)
def test_a_malformed_alias_setting_is_a_config_error_naming_it(value, expected, settings):
    settings.TITAN_HEADER_ALIASES = value
    with pytest.raises(ConfigError) as caught:
        titan_roster_read((HEADER + OK).encode(), sites=SITES, roles=ROLES)
    assert "TITAN_HEADER_ALIASES" in str(caught.value) and expected in str(caught.value)


def test_ambiguous_titan_names_must_be_written_exactly():
    sites = ["North High", "NORTH HIGH"]
    roster = titan_roster_read(
        (
            HEADER + line(site="north high") + line("2", email="b@example.org", site="NORTH HIGH")
        ).encode(),
        sites=sites,
        roles=ROLES,
    )
    assert [(r.row, r.site_name) for r in roster.rows] == [(3, "NORTH HIGH")]
    [problem] = roster.problems
    assert "matches several Titan sites" in problem.message


@pytest.mark.parametrize(
    "local",
    [
        "ada", "Ada.Lovelace", "a+b", "o'neil", "x_y-z", "{a}|~", "a.b.c",  # dot-atoms
        "", ".ada", "ada.", "a..b", "a b", "a@b", "a(b)", "a,b", "a\\b", "a\tb",
        '"quoted name"', '"a\\"b"', '"unclosed',  # quoted strings, good and bad
        "\u017fam", "\u212aelvin", "\u0131d", "caf\u00e9", "\u00e9",  # outside ASCII
    ],
)  # fmt: skip
def test_the_emails_fast_path_agrees_with_djangos_validator(local):
    from django.core.exceptions import ValidationError
    from django.core.validators import EmailValidator

    from integrations.rosters import CellError
    from integrations.titan.roster import _email

    value = f"{local}@example.org"
    try:
        EmailValidator(allowlist=[])(value)
        django_ok = True
    except ValidationError:
        django_ok = False
    try:
        ours = _email(value)
    except CellError:
        ours = None
    assert (ours is not None) == django_ok
    if ours is not None:
        assert ours == value
