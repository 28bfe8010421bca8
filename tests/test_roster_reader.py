"""The general roster reader on its own: a vendor's schema with the defaults, aliases from a
setting, multi-valued cells, and one problem per row."""

from __future__ import annotations

import pytest

from integrations.apex.roster import roster_read
from integrations.http import ConfigError
from integrations.rosters import (
    DUPLICATE,
    INVALID,
    CellError,
    Column,
    Schema,
    Unique,
    table_read,
)


def _upper(value: str) -> str:
    if value != value.upper():
        raise CellError("must be upper case.")
    return value


SCHEMA = Schema(
    columns=(
        Column("code", ("id",), check=_upper),
        Column("tags", split=";|", blank=True),
        Column("note", required=False, blank=True, max_length=5),
    ),
    rules=(Unique(key=("code",), agree=("tags",)),),
)


def test_defaults_make_rows_as_tuples_and_multi_valued_cells_as_sorted_sets():
    table = table_read(b"id,tags\nA,b;a|b\nB,\n", SCHEMA)
    assert table.accepted == [(2, "A", ("a", "b"), ""), (3, "B", (), "")]
    assert table.columns == {"code": "id", "tags": "tags"}


def test_default_duplicate_and_conflict_messages_name_the_rows():
    table = table_read(b"code,tags\nA,x\nA,x\nB,x\nB,y\n", SCHEMA)
    assert table.accepted == [(2, "A", ("x",), "")]
    assert [(p.row, p.kind) for p in table.problems] == [
        (3, DUPLICATE),
        (4, INVALID),
        (5, INVALID),
    ]
    assert table.problems[0].message == "Duplicate of row 2; used once."
    assert table.problems[1].message == (
        "Row 4: rows 4, 5 have the same code but different tags; fix the rows so they "
        "agree. None of them is used."
    )
    assert table.problems[1].column == "tags" and table.invalid == 2 and table.duplicates == 1


def test_every_bad_cell_of_a_row_is_named_in_its_one_problem():
    table = table_read(b"code,tags,note\nab,x,too long\nOK,x,fine\n", SCHEMA)
    [problem] = table.problems
    assert problem.column == "code"
    assert problem.message == ("Row 2: code must be upper case; note is longer than 5 characters.")
    assert problem.cells == ("ab", "x", "too long")


def test_apex_header_aliases_come_from_the_setting(settings):
    settings.APEX_HEADER_ALIASES = "StudentId=Pupil ID|Learner,ClassroomName=Section"
    roster = roster_read(b"Section,Pupil ID\nALG-101,S1\n", default_org="ORG-DEMO")
    assert roster.columns == {"ClassroomName": "Section", "StudentId": "Pupil ID"}
    assert roster.to_send == 1


def test_a_malformed_apex_alias_setting_names_the_setting(settings):
    settings.APEX_HEADER_ALIASES = "Student=Pupil ID"
    with pytest.raises(ConfigError, match="APEX_HEADER_ALIASES: 'Student' is not a column"):
        roster_read(b"ClassroomName,StudentId\nA,S1\n", default_org="ORG-DEMO")
