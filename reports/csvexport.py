"""CSV downloads that are safe to open in a spreadsheet.

Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula, and tab or
carriage return can smuggle one past a naive check (OWASP "CSV Injection"). Every text cell
that starts with one of them gets a leading single quote, which the spreadsheet shows as
text. Numbers are written as numbers so sums still work.

Generic on purpose: run failures and the cohorts' table downloads both use it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Excel only detects UTF-8 (accents, emoji in names) when the file starts with a BOM.
BOM = "\ufeff"


def safe_cell(value: Any) -> Any:
    """One cell, ready for csv.writer: numbers stay numbers, text cannot start a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


class _Echo:
    """A file-like object whose write() hands back the line, so csv.writer can stream."""

    def write(self, value: str) -> str:
        return value


def iter_csv_lines(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The header then each row as one CSV line (CRLF-terminated, as RFC 4180 says)."""
    writer = csv.writer(_Echo())
    yield writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])


def csv_text(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
    """The whole file as one string, BOM included (for email attachments)."""
    return BOM + "".join(iter_csv_lines(header, rows))


def csv_response(
    filename: str, header: Iterable[Any], rows: Iterable[Iterable[Any]]
) -> StreamingHttpResponse:
    """A download that streams, so a large table never sits in memory whole."""

    def content() -> Iterator[bytes]:
        yield BOM.encode("utf-8")
        for line in iter_csv_lines(header, rows):
            yield line.encode("utf-8")

    response = StreamingHttpResponse(content(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    # A download of live data: never serve yesterday's copy from a cache.
    response["Cache-Control"] = "no-store"
    return response
