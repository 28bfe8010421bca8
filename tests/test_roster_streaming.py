"""Validation without keeping the rows (`table_read(..., keep_rows=False)`, issue 11) finds
exactly what reading them does: the same problems, in the same order, with the same
messages and cells, and the same counts. The duplicate and conflict rules keep only a hash
of each row's key; rows whose hash comes back are checked exactly, so even keys whose
hashes collide give the same result."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from integrations import rosters
from integrations.apex.roster import apex_schema
from integrations.rosters import table_read
from integrations.titan.roster import titan_schema

SITES = ["North High", "South Middle", "Central Kitchen"]
ROLES = ["Teacher", "Staff", "Cashier"]


def apex_file(rng: random.Random, rows: int, delimiter: str) -> bytes:
    lines = [delimiter.join(["ClassroomName", "StudentId", "OrgId"])]
    for _ in range(rows):
        kind = rng.random()
        classroom = f"CLS-{rng.randrange(4):04d}"
        student = f"S{100000 + rng.randrange(25)}"  # few students: many repeats
        org = rng.choice(["", "", "", "ORG-DEMO", "ORG-NORTH"])
        if kind < 0.05:
            student = ""  # an empty id
        elif kind < 0.08:
            lines.append("")  # a blank line
            continue
        elif kind < 0.10:
            lines.append(delimiter.join([classroom, student, org, "extra"]))  # too many
            continue
        elif kind < 0.12:
            student = f"S1\x07{rng.randrange(9)}"  # a control character
        elif kind < 0.14:
            classroom = ".."  # an unusable import id
        elif kind < 0.16 and delimiter == ",":
            lines.append(f'{classroom},"S1\n2",{org}')  # a short quoted line break
            continue
        lines.append(delimiter.join([classroom, student, org]))
    return ("\n".join(lines) + "\n").encode()


def titan_file(rng: random.Random, rows: int) -> bytes:
    lines = ["external_id,first_name,last_name,email,site_name,role_names"]
    for _ in range(rows):
        n = rng.randrange(30)
        first = rng.choice(["Ana", "Ana", "Ana", "Anna"])  # sometimes a conflict
        email = rng.choice([f"u{n}@d.test", f"u{n}@d.test", f"U{n}@D.test", "not-an-email"])
        site = rng.choice([*SITES, "north high ", "Nowhere"])
        roles = rng.choice(["Teacher", "Staff;Teacher", "teacher | staff", "Cook", ";;"])
        row = [f"{n:06d}", first, "Ruiz", email, site, f'"{roles}"' if "," in roles else roles]
        if rng.random() < 0.05:
            row = row[:4]  # a short row
        lines.append(",".join(row))
    return ("\n".join(lines) + "\n").encode()


def same_reading(data: bytes, schema) -> None:
    kept = table_read(data, schema)
    streamed = table_read(data, schema, keep_rows=False)
    assert streamed.problems == kept.problems
    assert streamed.accepted == [] and streamed.accepted_count == len(kept.accepted)
    assert kept.accepted_count == len(kept.accepted)
    for name in ("rows", "blank_rows", "notes", "header", "encoding", "delimiter"):
        assert getattr(streamed, name) == getattr(kept, name), name


@pytest.mark.parametrize("seed", range(40))
def test_apex_rosters_validate_the_same_with_and_without_keeping_rows(seed, settings):
    rng = random.Random(seed)
    delimiter = rng.choice([",", ";", "\t"])
    data = apex_file(rng, rng.randrange(5, 120), delimiter)
    same_reading(data, apex_schema("ORG-DEMO"))


@pytest.mark.parametrize("seed", range(20))
def test_titan_rosters_validate_the_same_with_and_without_keeping_rows(seed):
    rng = random.Random(1000 + seed)
    data = titan_file(rng, rng.randrange(5, 120))
    same_reading(data, titan_schema(sites=SITES, roles=ROLES))


@pytest.mark.parametrize("seed", range(10))
def test_keys_whose_hashes_collide_are_told_apart_exactly(seed, monkeypatch):
    rng = random.Random(2000 + seed)
    apex_data = apex_file(rng, 80, ",")
    titan_data = titan_file(rng, 80)
    apex, titan = apex_schema("ORG-DEMO"), titan_schema(sites=SITES, roles=ROLES)
    expected = [table_read(apex_data, apex), table_read(titan_data, titan)]
    monkeypatch.setattr(rosters, "hash", lambda key: 7, raising=False)  # every key collides
    for data, schema, before in zip((apex_data, titan_data), (apex, titan), expected, strict=True):
        for keep in (True, False):
            after = table_read(data, schema, keep_rows=keep)
            assert after.problems == before.problems
            assert after.accepted_count == before.accepted_count
        assert table_read(data, schema).accepted == before.accepted


def test_a_file_without_repeated_keys_is_read_once_and_keeps_no_row(settings, tmp_path):
    # 20,000 distinct rows: reading them keeps every row; validating keeps 16 bytes a row.
    path = tmp_path / "big.csv"
    path.write_text(
        "ClassroomName,StudentId\n"
        + "".join(f"CLS-{i % 50:04d},S{1_000_000 + i}\n" for i in range(20_000))
    )
    schema = apex_schema("ORG-DEMO")

    def peak(**kw) -> int:
        tracemalloc.start()
        try:
            table = table_read(path, schema, **kw)
            return tracemalloc.get_traced_memory()[1], table
        finally:
            tracemalloc.stop()

    kept_peak, kept = peak()
    streamed_peak, streamed = peak(keep_rows=False)
    assert streamed.accepted_count == len(kept.accepted) == 20_000
    assert streamed_peak < kept_peak / 4
