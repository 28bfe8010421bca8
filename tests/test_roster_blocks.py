"""The roster reader reads blocks of plain rows column by column (`_columns_reader`, issue
11) and any block holding a problem row row by row. Both ways must give exactly what
reading every row on its own gives: the same rows, problems (row numbers, columns,
messages, cells), counts and notes, for APEX and Titan schemas alike."""

from __future__ import annotations

import random

import pytest

from integrations import rosters
from integrations.apex.roster import apex_schema
from integrations.rosters import table_read
from integrations.titan.roster import titan_roster_read, titan_schema

SITES = ["North High", "South Middle", "Central Kitchen", "East Elementary"]
ROLES = ["Teacher", "Staff", "Cashier"]


def row_by_row(monkeypatch) -> None:
    """Every block read row by row: the reference."""
    monkeypatch.setattr(rosters, "_columns_reader", lambda *a, **kw: lambda block: None)


def counting_blocks(monkeypatch) -> list[int]:
    """The number of rows of each block read by columns (so a test knows that way ran)."""
    read: list[int] = []
    original = rosters._columns_reader

    def reader(*args, **kwargs):
        values = original(*args, **kwargs)

        def counted(block):
            found = values(block)
            if found is not None:
                read.append(len(found))
            return found

        return counted

    monkeypatch.setattr(rosters, "_columns_reader", reader)
    return read


def titan_file(rng: random.Random, rows: int, bad_every: int) -> bytes:
    lines = ["external_id,first_name,last_name,email,site_name,role_names"]
    for i in range(rows):
        n = rng.randrange(rows)  # repeats: duplicates and conflicts
        # A site not seen before row 300 (a memo value first met in the middle of a block).
        site = rng.choice(SITES[:3] if i < 300 else SITES)
        row = [
            f" {n:06d} " if i % 3 else f"{n:06d}",  # trimmed either way
            " Ana  Maria ",
            "Ruiz",
            f"u{n}@d.test",
            site,
            rng.choice(["Teacher", "Staff;Teacher", "teacher | staff"]),
        ]
        if i % bad_every == bad_every - 1:
            k = rng.randrange(8)
            if k == 0:
                row[3] = "not-an-email"
            elif k == 1:
                row[1] = ""
            elif k == 2:
                row[4] = "Nowhere"
            elif k == 3:
                row[2] = "x" * 101
            elif k == 4:
                row[0] = "=1+1"
            elif k == 5:
                row = row[:4]  # short
            elif k == 6:
                row.append("")  # one empty value more than the header: still used
            else:
                row[5] = ";;"
        lines.append(",".join(row))
        if i % 97 == 0:
            lines.append("")  # a blank line
    return ("\n".join(lines) + "\n").encode()


def apex_file(rng: random.Random, rows: int, bad_every: int, *, org: bool) -> bytes:
    header = ["ClassroomName", "StudentId"] + (["OrgId"] if org else [])
    lines = [",".join(header)]
    for i in range(rows):
        row = [f"CLS-{rng.randrange(5):04d}", f" S{100000 + rng.randrange(rows)}\t"]
        if org:
            row.append(rng.choice(["", "", "ORG-A", "ORG-B"]))  # blank allowed
        if i % bad_every == bad_every - 1:
            k = rng.randrange(4)
            if k == 0:
                row[1] = ""
            elif k == 1:
                row[0] = ".."
            elif k == 2:
                row[1] = "S1\x07" + row[1]  # a control character: allowed in APEX ids
            else:
                row[0] = "C" * 101
        lines.append(",".join(row))
    return ("\n".join(lines) + "\n").encode()


def tables(data: bytes, schema, monkeypatch):
    """(by blocks, row by row) for both keep_rows, and the blocks read by columns."""
    with monkeypatch.context() as patch:
        blocks = counting_blocks(patch)
        fast = [table_read(data, schema, keep_rows=keep) for keep in (True, False)]
    with monkeypatch.context() as patch:
        row_by_row(patch)
        slow = [table_read(data, schema, keep_rows=keep) for keep in (True, False)]
    return fast, slow, blocks


def assert_same(fast, slow) -> None:
    for a, b in zip(fast, slow, strict=True):
        assert a.problems == b.problems
        assert a.accepted == b.accepted
        assert a.accepted_count == b.accepted_count
        for name in ("rows", "blank_rows", "notes", "header", "encoding", "delimiter"):
            assert getattr(a, name) == getattr(b, name), name


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bad_every", [150, 400])
def test_titan_rows_read_by_blocks_are_what_row_by_row_gives(seed, bad_every, monkeypatch):
    rng = random.Random(seed)
    data = titan_file(rng, 1200, bad_every)
    fast, slow, blocks = tables(data, titan_schema(sites=SITES, roles=ROLES), monkeypatch)
    assert_same(fast, slow)
    assert blocks, "no block was read by columns"
    assert any(p.kind == "invalid" for p in slow[0].problems)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("org", [True, False])
def test_apex_rows_read_by_blocks_are_what_row_by_row_gives(seed, org, monkeypatch):
    rng = random.Random(100 + seed)
    data = apex_file(rng, 1500, 150, org=org)
    fast, slow, blocks = tables(data, apex_schema("ORG-DEMO"), monkeypatch)
    assert_same(fast, slow)
    assert blocks, "no block was read by columns"
    # The control character is kept (APEX allows it), whichever way its block was read.
    assert any("\x07" in row[2] for row in fast[0].accepted)


def test_a_clean_file_is_read_by_blocks_with_its_rows_in_file_order(monkeypatch):
    data = (
        "external_id,first_name,last_name,email,site_name,role_names\n"
        + "".join(f"{i:06d},Ana,Ruiz,u{i}@D.TEST,north high,Staff;teacher\n" for i in range(300))
    ).encode()
    blocks = counting_blocks(monkeypatch)
    roster = titan_roster_read(data, sites=SITES, roles=ROLES)
    # The first block meets the site and the roles for the first time: it is read row by
    # row (which checks and remembers them); the next ones by columns.
    assert blocks == [rosters.BLOCK_ROWS, 300 - 2 * rosters.BLOCK_ROWS]
    assert [r.row for r in roster.rows] == list(range(2, 302))
    first = roster.rows[0]
    assert first.email == "u0@d.test" and first.site_name == "North High"
    assert first.roles == ("Staff", "Teacher") and roster.problems == []


def test_a_bad_cell_sends_its_block_row_by_row_and_is_worded_as_before(monkeypatch):
    lines = ["external_id,first_name,last_name,email,site_name,role_names"]
    lines += [f"{i:06d},Ana,Ruiz,u{i}@d.test,North High,Staff" for i in range(300)]
    lines[200] = "000199,Ana,Ruiz,not-an-email,North High,Staff"
    blocks = counting_blocks(monkeypatch)
    roster = titan_roster_read("\n".join(lines).encode(), sites=SITES, roles=ROLES)
    # Rows 2-129: the first block, row by row (the site and roles met for the first time);
    # rows 130-257 hold the bad row (row by row); rows 258-301 by columns.
    assert blocks == [300 - 2 * rosters.BLOCK_ROWS]
    (problem,) = roster.problems
    assert problem.row == 201 and problem.column == "email"
    assert problem.message == 'Row 201: email "not-an-email" is not a valid email address.'
    assert len(roster.rows) == 299
