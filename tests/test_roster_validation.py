"""Roster CSVs: each malformed file is refused as a whole or reported row by row."""

from __future__ import annotations

import codecs
import io

import pytest

from integrations.apex.roster import DUPLICATE, INVALID, RosterRefused, roster_read
from integrations.http import ConfigError
from integrations.rosters import roster_store

ORG = "ORG-DEMO"


def read(data: bytes | str, **kw):
    if isinstance(data, str):
        data = data.encode()
    kw.setdefault("default_org", ORG)
    return roster_read(data, **kw)


def sent(roster) -> list[tuple[int, str, str, str]]:
    return [tuple(r) for rows in roster.classrooms.values() for r in rows]


def refusal(data: bytes | str, **kw) -> str:
    with pytest.raises(RosterRefused) as caught:
        read(data, **kw)
    return str(caught.value)


def test_a_clean_roster_groups_rows_by_classroom():
    roster = read("ClassroomName,StudentId\nALG-101,S1\nBIO-110,S2\nALG-101,S3\n")
    assert roster.rows == 3 and roster.problems == []
    assert list(roster.classrooms) == ["ALG-101", "BIO-110"]
    assert sent(roster) == [
        (2, "ALG-101", "S1", ORG),
        (4, "ALG-101", "S3", ORG),
        (3, "BIO-110", "S2", ORG),
    ]
    assert roster.encoding == "utf-8" and roster.delimiter == ","


def test_apex_names_are_accepted_as_aliases_and_case_is_ignored():
    roster = read("importclassroomid,ImportUserId,Notes\nALG-101,S1,hi\n")
    assert sent(roster) == [(2, "ALG-101", "S1", ORG)]
    assert roster.columns == {"ClassroomName": "importclassroomid", "StudentId": "ImportUserId"}
    assert "Columns ignored: Notes." in roster.notes


def test_org_column_overrides_the_setting_and_falls_back_when_empty():
    roster = read("ClassroomName,StudentId,OrgId\nA,S1,ORG-NORTH\nA,S2,\n")
    assert sent(roster) == [(2, "A", "S1", "ORG-NORTH"), (3, "A", "S2", ORG)]


def test_no_org_column_and_no_setting_is_a_config_error_naming_the_setting(settings):
    settings.APEX_ORG_ID = ""
    with pytest.raises(ConfigError, match="APEX_ORG_ID"):
        roster_read(b"ClassroomName,StudentId\nA,S1\n")


def test_empty_org_cell_without_setting_is_a_row_error():
    roster = read("ClassroomName,StudentId,OrgId\nA,S1,ORG-X\nA,S2,\n", default_org="")
    assert sent(roster) == [(2, "A", "S1", "ORG-X")]
    [problem] = roster.problems
    assert (problem.row, problem.column, problem.kind) == (3, "OrgId", INVALID)
    assert "APEX_ORG_ID" in problem.message


def test_misspelled_header_is_named_with_the_closest_match():
    message = refusal("ClassroomName,StudntId\nA,S1\n")
    assert '"StudentId" (did you mean "StudntId"?)' in message
    assert "ImportUserId" in message  # the accepted names are listed
    assert "row 1" in message


def test_missing_header_without_a_near_name_lists_what_was_found():
    message = refusal("Room,Pupil\nA,S1\n")
    assert "did you mean" not in message
    assert '"ClassroomName"' in message and '"StudentId"' in message
    assert 'Columns found: "Room", "Pupil"' in message


def test_a_column_named_twice_is_refused():
    assert "twice" in refusal("ClassroomName,StudentId,ImportUserId\nA,S1,S2\n")


def test_utf8_with_bom_is_read():
    roster = read(b"\xef\xbb\xbfClassroomName,StudentId\n\xc3\x89cole,S1\n")
    assert roster.encoding == "utf-8-sig"
    assert sent(roster) == [(2, "École", "S1", ORG)]
    assert roster.columns["ClassroomName"] == "ClassroomName"


def test_latin1_is_decoded_correctly_with_a_note():
    data = "ClassroomName,StudentId\nÉcole Noël,S1\nEspañol,S2\n".encode("latin-1")
    roster = read(data)
    assert roster.encoding == "cp1252"
    assert [r[1] for r in sent(roster)] == ["École Noël", "Español"]
    assert any("not UTF-8" in note and "Windows-1252" in note for note in roster.notes)


def test_mixed_utf8_and_latin1_is_refused_not_garbled():
    data = "ClassroomName,StudentId\nÉcole,S1\n".encode() + "Noël,S2\n".encode("latin-1")
    message = refusal(data)
    assert "mixes two encodings" in message and "line 3" in message


def test_utf16_from_excel_unicode_text_is_read():
    roster = read("ClassroomName\tStudentId\r\nÉcole\tS1\r\n".encode("utf-16"))
    assert sent(roster) == [(2, "École", "S1", ORG)]


@pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), (";", "semicolon"), ("\t", "tab")])
def test_delimiter_is_detected(delimiter, name):
    text = f"ClassroomName{delimiter}StudentId\nAlgebra, period 1{delimiter}S1\n"
    if delimiter == ",":
        text = 'ClassroomName,StudentId\n"Algebra, period 1",S1\n'
    roster = read(text)
    assert roster.delimiter_name == name
    assert sent(roster) == [(2, "Algebra, period 1", "S1", ORG)]


def test_blank_lines_are_skipped_and_rows_keep_spreadsheet_numbers():
    roster = read("\nClassroomName,StudentId\n\nA,S1\n , \n;;\nA,S2\n\n")
    assert roster.header_row == 2
    assert [r[0] for r in sent(roster)] == [4, 7]
    assert roster.rows == 3  # ";;" is one value, not blank, with a comma delimiter
    assert roster.blank_rows == 3


def test_whitespace_is_trimmed():
    roster = read(" ClassroomName , StudentId \n  ALG-101 \t,  S1  \n")
    assert sent(roster) == [(2, "ALG-101", "S1", ORG)]


def test_duplicate_rows_are_collapsed_and_reported():
    roster = read("ClassroomName,StudentId\nA,S1\nA,S2\nA,S1\nA , S1\n")
    assert sent(roster) == [(2, "A", "S1", ORG), (3, "A", "S2", ORG)]
    assert [(p.row, p.kind) for p in roster.problems] == [(4, DUPLICATE), (5, DUPLICATE)]
    assert "Duplicate of row 2" in roster.problems[0].message
    assert roster.duplicates == 2 and roster.invalid == 0


def test_conflicting_rows_are_reported_and_none_of_them_sent():
    roster = read("ClassroomName,StudentId,OrgId\nA,S1,ORG-1\nA,S2,ORG-1\nA,S1,ORG-1\nA,S1,ORG-2\n")
    assert sent(roster) == [(3, "A", "S2", "ORG-1")]
    assert [(p.row, p.kind) for p in roster.problems] == [(2, INVALID), (4, INVALID), (5, INVALID)]
    assert all(p.column == "OrgId" for p in roster.problems if p.row != 4)
    assert "different OrgIds" in roster.problems[0].message


def test_the_same_student_in_two_classrooms_is_not_a_conflict():
    roster = read("ClassroomName,StudentId,OrgId\nA,S1,ORG-1\nB,S1,ORG-2\n")
    assert len(sent(roster)) == 2 and roster.problems == []


def test_empty_ids_are_row_errors_naming_row_and_column():
    roster = read("ImportClassroomId,StudentId\n,S1\nA,\nA,S2\n")
    assert sent(roster) == [(4, "A", "S2", ORG)]
    assert [(p.row, p.column) for p in roster.problems] == [
        (2, "ImportClassroomId"),
        (3, "StudentId"),
    ]
    assert roster.problems[1].message == "Row 3: StudentId is empty."


def test_a_row_with_too_many_values_is_a_row_error():
    roster = read("ClassroomName,StudentId\nAlgebra, period 1,S1\nA,S2,\n")
    assert sent(roster) == [(3, "A", "S2", ORG)]
    [problem] = roster.problems
    assert problem.row == 2 and "3 values" in problem.message


def test_an_unclosed_quote_is_reported_not_swallowed_silently():
    # Issue 7: the rows after an unclosed quote would vanish into one value, so the file
    # is refused as a whole, naming the line where the quote opens.
    message = refusal('ClassroomName,StudentId\nA,"S1\nB,S2\n')
    assert message.startswith('Line 2: the quote that opens the "StudentId" value')
    assert "never closed" in message


def test_a_quoted_line_break_that_swallows_no_row_stays_a_row_error():
    roster = read('ClassroomName,StudentId\nA,"S1\nX"\nB,S2\n')
    [problem] = roster.problems
    assert problem.kind == INVALID and "line break" in problem.message
    assert sent(roster) == [(3, "B", "S2", ORG)]  # a spreadsheet row per record


def test_over_the_size_limit_is_refused_naming_the_limit(settings):
    settings.ROSTER_MAX_BYTES = 1000
    message = refusal("ClassroomName,StudentId\n" + "A,S1\n" * 300)
    assert "ROSTER_MAX_BYTES=1000" in message and "1000 bytes" in message


def test_storing_a_file_over_the_limit_is_refused_and_leaves_nothing(settings, tmp_path, db):
    settings.DATA_DIR = tmp_path
    settings.ROSTER_MAX_BYTES = 100
    with pytest.raises(RosterRefused, match="ROSTER_MAX_BYTES=100"):
        roster_store(io.BytesIO(b"x" * 500), name="big.csv")
    assert list((tmp_path / "rosters").iterdir()) == []


def test_storing_keeps_the_bytes_under_their_hash(settings, tmp_path, db):
    settings.DATA_DIR = tmp_path
    data = b"ClassroomName,StudentId\nA,S1\n"
    upload = roster_store(io.BytesIO(data), name="../../etc/roster.csv")
    assert upload.original_name == "roster.csv"
    assert upload.path.read_bytes() == data and upload.size == len(data)
    assert upload.path.parent == tmp_path / "rosters"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes(range(256)) * 4, "binary"),
        (b"\x01\x02\x03\x04\x05\x06\x07\x08" * 200, "binary"),
        (b"PK\x03\x04" + b"\x00" * 100, "Excel workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "old Excel"),
        (b"%PDF-1.7\n", "PDF"),
        (b"", "empty"),
        (b"\n\n  \n", "blank"),
        (b"ClassroomName,StudentId\n", "no data rows"),
        (b"ClassroomName,StudentId\n\n,\n", "no data rows"),
        (b"\x81\x8d\x8f\x90\x9d" * 3 + b"\n", "neither UTF-8 nor Windows-1252"),
    ],
)
def test_unreadable_files_are_refused_whole(data, expected):
    assert expected in refusal(data)


def test_progress_is_reported_while_reading():
    seen = []
    text = "ClassroomName,StudentId\n" + "".join(f"A,S{i}\n" for i in range(2500))
    read(text, on_progress=seen.append)
    assert seen == [1000, 2000, 2500]


# --- review: encodings, NUL characters, conflicts, unsafe ids ---------------------------
def _utf16(text: str) -> bytes:
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


LONE_SURROGATE = b"\x00\xd8"  # a high surrogate with no low one: not UTF-16


def test_utf16_with_a_bad_sequence_in_the_first_line_is_refused_not_a_crash():
    data = _utf16("ClassroomName,Stud") + LONE_SURROGATE + _utf16("entId\nA,S1\n")[2:]
    message = refusal(data)
    assert "UTF-16" in message and "line 1" in message


def test_utf16_with_a_bad_sequence_deep_in_the_file_names_its_line():
    rows = "".join(f"A,S{i}\n" for i in range(5000))
    data = (
        _utf16("ClassroomName,StudentId\n" + rows + "B,")
        + LONE_SURROGATE
        + "1\n".encode("utf-16-le")
    )
    message = refusal(data)
    assert "line 5002" in message  # the header is line 1, then 5,000 good rows


def test_utf16_with_a_nul_character_is_refused_not_sent():
    message = refusal(_utf16("ClassroomName,StudentId\nA,S1\nA,S\x002\n"))
    assert "NUL" in message and "line 3" in message


def test_utf32_is_refused_with_a_clear_message():
    assert "UTF-32" in refusal("ClassroomName,StudentId\nA,S1\n".encode("utf-32"))


def test_every_row_of_a_conflict_names_itself_the_column_and_all_the_rows():
    roster = read(
        "ClassroomName,StudentId,OrgId\n"
        "A,S1,ORG-1\n"  # 2
        "A,S1,ORG-1\n"  # 3: a repeat of row 2 ...
        "A,S2,ORG-1\n"  # 4
        "A,S1,ORG-2\n"  # 5: ... then a conflict
        "A,S1,\n"  # 6: the setting's org (ORG-DEMO): a third org
    )
    assert sent(roster) == [(4, "A", "S2", "ORG-1")]
    problems = {p.row: p for p in roster.problems}
    assert sorted(problems) == [2, 3, 5, 6]
    for row, problem in problems.items():
        assert problem.kind == INVALID and problem.column == "OrgId"
        assert problem.message.startswith(f"Row {row}:"), problem.message
        assert "rows 2, 3, 5, 6" in problem.message, problem.message
        assert "different OrgIds" in problem.message


def test_the_setting_and_the_column_naming_the_same_org_are_duplicates_not_a_conflict():
    roster = read("ClassroomName,StudentId,OrgId\nA,S1,\nA,S1,ORG-DEMO\n")
    assert sent(roster) == [(2, "A", "S1", ORG)]
    [problem] = roster.problems
    assert (problem.row, problem.kind) == (3, DUPLICATE)


@pytest.mark.parametrize("classroom", [".", ".."])
def test_a_classroom_id_that_is_a_dot_segment_is_an_invalid_row(classroom):
    # POST /classrooms/../students would reach POST /students on the vendor.
    roster = read(f"ClassroomName,StudentId\n{classroom},S1\nA,S2\n")
    assert sent(roster) == [(3, "A", "S2", ORG)]
    [problem] = roster.problems
    assert (problem.row, problem.column, problem.kind) == (2, "ClassroomName", INVALID)
    assert "Row 2" in problem.message


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (20 * 1024**2, "20.0 MiB"),
        (3 * 1024**3, "3.0 GiB"),
        (5 * 1024**4, "5120.0 GiB"),
    ],
)
def test_sizes_read_in_the_largest_fitting_unit(n, text):
    from integrations.rosters import human_bytes

    assert human_bytes(n) == text
