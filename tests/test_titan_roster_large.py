"""A 100,000-row Titan roster is read and validated whole; a 20,000-row one within a memory
bound. Times are printed (run with -s), never asserted. The measurement with peak memory
at full size is `scripts/titan_roster_bench.py`."""

from __future__ import annotations

import sys
import time
import tracemalloc

from integrations.titan.roster import titan_roster_read

SITES = [f"School {n:02d}" for n in range(1, 21)]
ROLES = ["Teacher", "Staff", "Principal", "Nurse", "Counselor", "Coach"]
USERS = 50_000  # each at two sites: 100,000 rows
BAD_EVERY = 10_000  # every 10,000th row has an invalid email
PEAK_LIMIT_PER_ROW = 2048  # bytes of Python allocations per row read (about 1 KiB today)


def write_roster(path, users: int = USERS) -> int:
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("external_id,first_name,last_name,email,site_name,role_names\n")
        for u in range(users):
            for k in range(2):
                rows += 1
                email = "not-an-email" if rows % BAD_EVERY == 0 else f"user{u}@district.example"
                site = SITES[(u + k * 7) % len(SITES)].lower()  # Titan's spelling differs
                roles = f'"{ROLES[u % 6]}, {ROLES[(u + k) % 6]}"' if u % 3 else ROLES[k]
                out.write(f"{u:07d},First{u},Last{u},{email},{site},{roles}\n")
    return rows


def test_a_hundred_thousand_rows_are_read_and_validated(tmp_path):
    path = tmp_path / "titan.csv"
    rows = write_roster(path)
    assert rows == 100_000

    began = time.perf_counter()
    roster = titan_roster_read(path, sites=SITES, roles=ROLES)
    elapsed = time.perf_counter() - began

    bad = rows // BAD_EVERY
    # A bad email makes its row invalid; the user's other row stays valid (one email seen).
    assert roster.counts["rows"] == rows
    assert roster.counts["invalid"] == bad
    assert len(roster.rows) == rows - bad
    assert roster.rows[0].external_id == "0000000"
    assert roster.rows[0].site_name == "School 01"  # Titan's spelling, not the file's
    assert roster.rows[1].roles == ("Staff",)
    assert roster.rows[3].roles == ("Principal", "Staff")  # "Staff, Principal"
    assert {r.site_name for r in roster.rows} == set(SITES)
    print(f"\n100,000 Titan rows: {elapsed:.2f} s", file=sys.stderr)


def test_memory_stays_bounded_per_row(tmp_path):
    path = tmp_path / "titan.csv"
    rows = write_roster(path, users=10_000)
    tracemalloc.start()
    try:
        roster = titan_roster_read(path, sites=SITES, roles=ROLES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(roster.rows) == rows - rows // BAD_EVERY
    assert peak < rows * PEAK_LIMIT_PER_ROW, f"peak {peak / 2**20:.1f} MiB"
