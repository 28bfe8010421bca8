"""The CSV writer every download uses: spreadsheet formulas cannot ride in on a cell."""

import csv
import io
from decimal import Decimal

import pytest

from reports.csvexport import BOM, csv_response, csv_text, iter_csv_lines, safe_cell


@pytest.mark.parametrize(
    "value",
    [
        "=1+1",
        '=HYPERLINK("http://evil.example","click")',
        "+41 79 000 00 00",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_formula_cells_are_neutralised(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["Ada Lovelace", "a=b", "x+y", "mail@example.com", "café", ""])
def test_normal_text_is_untouched(value):
    assert safe_cell(value) == value


def test_numbers_stay_numbers():
    for value in (3, -2, 0.5, -0.25, Decimal("1.50")):
        assert safe_cell(value) is value
    line = "".join(iter_csv_lines(["n", "x"], [[-2, 0.5]])).splitlines()[1]
    assert line == "-2,0.5"


def test_none_bool_and_structures_become_text():
    assert safe_cell(None) == ""
    assert safe_cell(True) == "true"
    assert safe_cell({"b": 1, "a": "=x"}) == '{"a": "=x", "b": 1}'
    assert safe_cell(["-1"]) == '["-1"]'


def test_header_is_neutralised_too():
    header = next(iter_csv_lines(["=cmd", "ok"], []))
    assert header == "'=cmd,ok\r\n"


def test_commas_quotes_and_newlines_round_trip():
    rows = [["a,b", 'say "hi"', "two\nlines", "=bad"]]
    parsed = list(csv.reader(io.StringIO(csv_text(["w", "x", "y", "z"], rows).lstrip(BOM))))
    assert parsed == [["w", "x", "y", "z"], ["a,b", 'say "hi"', "two\nlines", "'=bad"]]


def test_csv_response_streams_utf8_with_bom_as_an_attachment():
    response = csv_response(
        "run-7-failures.csv", ["name", "grade"], iter([["Zoë", 0.5], ["@evil", -1]])
    )
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="run-7-failures.csv"'
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "grade"],
        ["Zoë", "0.5"],
        ["'@evil", "-1"],
    ]


def test_csv_response_quotes_an_awkward_filename():
    response = csv_response('we"ird; name.csv', ["a"], [])
    assert response["Content-Disposition"].startswith("attachment;")
    assert "\n" not in response["Content-Disposition"]
