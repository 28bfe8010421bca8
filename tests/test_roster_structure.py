"""Issue 7: a roster whose quoting cannot be trusted is refused as a whole, naming the line
where the quote opens, and nothing is sent."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from integrations.apex.roster import RosterRefused, roster_read
from integrations.rosters import MAX_CELL_LINES, _spanning_quotes
from reports.models import Run

GOOD_ROWS = "".join(f"ALG-101,S10000{i}\n" for i in range(1, 6))


def refusal(text: str) -> str:
    with pytest.raises(RosterRefused) as caught:
        roster_read(text.encode(), default_org="ORG-DEMO")
    return str(caught.value)


def enroll_json(path) -> tuple[int, dict]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("enroll_apex", str(path), "--json", stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


UNTRUSTED = {
    # Today rows 3.. vanished into S100001's value and the rest was sent.
    "unclosed quote mid-file": (
        'ClassroomName,StudentId\nALG-101,S100000\nALG-101,"S100001\n' + GOOD_ROWS,
        'Line 3: the quote that opens the "StudentId" value is never closed',
    ),
    "unclosed quote in the first column": (
        'ClassroomName,StudentId\n"ALG-101,S100001\n' + GOOD_ROWS,
        'Line 2: the quote that opens the "ClassroomName" value is never closed',
    ),
    "unclosed quote on the last line without a newline": (
        'ClassroomName,StudentId\nALG-101,S100000\nALG-101,"S100001',
        "Line 3: the quote that opens",
    ),
    "a quote closed lines later, swallowing whole rows": (
        'ClassroomName,StudentId\nALG-101,"S100001\nALG-101,S100002\nALG-101,S100003"\n'
        "ALG-101,S100004\n",
        "closes only on line 4, taking in line 3, which looks like a whole row",
    ),
    "mis-paired quotes: text after a late closing quote": (
        'ClassroomName,StudentId\nALG-101,"S100001\nALG-101,"S100002\nALG-101,S100003\n',
        "Line 2: the quote that opens",
    ),
    "a quoted value running over many lines": (
        'ClassroomName,StudentId\nALG-101,"S1\n' + "x\n" * (MAX_CELL_LINES - 1) + '"\nA,S2\n',
        f"so {MAX_CELL_LINES + 1} lines would be read as one value",
    ),
    "a quote in the header left open": (
        'ClassroomName,"StudentId\nALG-101,S1\n',
        "Line 1: the quote that opens value 2 is never closed",
    ),
}


@pytest.mark.parametrize(("text", "expected"), UNTRUSTED.values(), ids=UNTRUSTED.keys())
def test_untrusted_quoting_refuses_the_file_naming_the_line(text, expected):
    message = refusal(text)
    assert expected in message
    assert "Nothing was sent" in message


def test_an_unclosed_quote_past_the_csv_field_limit_still_names_its_line():
    big = "".join(f"ALG-101,S{i:07d}\n" for i in range(20000))  # > 131,072 characters
    message = refusal('ClassroomName,StudentId\nALG-101,S1\nALG-101,"S2\n' + big)
    assert message.startswith('Line 3: the quote that opens the "StudentId" value')
    assert "131,072 characters" in message


def test_an_unclosed_quote_is_found_after_a_legitimate_multiline_value():
    # Line numbers are physical lines: the two-line value puts the bad quote on line 5.
    text = 'ClassroomName,StudentId,Note\nA,S1,"two\nlines"\nA,S2,ok\nA,"S3,x\nA,S4,y\n'
    assert refusal(text).startswith("Line 5: the quote that opens")


@pytest.mark.parametrize(
    "text",
    [
        'ClassroomName,StudentId\n"ALG-101","S1"\n"A ""quoted"" room",S2\n',
        'ClassroomName,StudentId,Note\nA,S1,"a note\non two lines"\n',
        'ClassroomName,StudentId\nA,S"1\n',  # a quote inside an unquoted value is text
    ],
)
def test_well_formed_quoting_is_read(text):
    roster = roster_read(text.encode(), default_org="ORG-DEMO")
    assert roster.to_send >= 1 and not roster.invalid


def test_the_quote_scanner_follows_the_csv_states():
    assert _spanning_quotes(['a,"b\n', 'c"\n'], ",")[0].close_line == 1
    assert _spanning_quotes(['a,"b""\n', "c\n"], ",")[0].close_line is None
    assert _spanning_quotes(['a,"b"\n'], ",") == []
    [span] = _spanning_quotes(['a;b;"c\n'], ";")
    assert (span.open_line, span.close_line, span.field) == (0, None, 2)


@pytest.mark.django_db
def test_enroll_apex_refuses_an_unclosed_quote_whole_and_sends_nothing(apex, tmp_path):
    sim = apex()
    path = tmp_path / "roster.csv"
    path.write_text('ClassroomName,StudentId\nALG-101,S100001\nALG-101,"S100002\n' + GOOD_ROWS)
    code, summary = enroll_json(path)
    assert (code, summary["status"]) == (2, "invalid")
    assert sim.request_log == []  # not even a token request
    run = Run.objects.get(pk=summary["run_id"])
    assert run.items.count() == 0
    assert "Line 3" in run.message and "never closed" in run.message


@pytest.mark.django_db
def test_enroll_apex_refuses_swallowed_rows_whole_and_sends_nothing(apex, tmp_path):
    sim = apex()
    path = tmp_path / "roster.csv"
    path.write_text(
        'ClassroomName,StudentId\nALG-101,"S100001\nALG-101,S100002\nALG-101,S100003"\n' + GOOD_ROWS
    )
    code, summary = enroll_json(path)
    assert (code, summary["status"]) == (2, "invalid")
    assert sim.request_log == []
    assert "looks like a whole row" in Run.objects.get(pk=summary["run_id"]).message
