"""THROWAWAY until wt-roster lands integrations/titan/roster.py: a minimal reader with the
agreed signature, installed only when the real module is missing. Delete on merge."""

from __future__ import annotations

import csv
import sys
import types
from dataclasses import dataclass, field


@dataclass
class _Row:
    row: int
    external_id: str
    first_name: str
    last_name: str
    email: str
    site_name: str
    roles: tuple[str, ...]


@dataclass
class _Problem:
    row: int
    column: str
    message: str
    external_id: str = ""
    kind: str = "invalid"


@dataclass
class _Roster:
    header: list[str]
    rows: list[_Row] = field(default_factory=list)
    problems: list[_Problem] = field(default_factory=list)


def titan_roster_read(source, *, sites, roles, aliases=None):
    site_keys = {s.casefold().strip(): s for s in sites}
    role_keys = {r.casefold().strip(): r for r in roles}
    with open(source, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader)
        roster = _Roster(header=header)
        for n, values in enumerate(reader, start=2):
            rec = dict(zip(header, values, strict=False))
            ext = rec.get("external_id", "").strip()
            site = site_keys.get(rec.get("site_name", "").casefold().strip())
            names = [
                x.strip()
                for x in rec.get("role_names", "").replace("|", ";").replace(",", ";").split(";")
            ]
            names = [x for x in names if x]
            if site is None:
                roster.problems.append(_Problem(n, "site_name", "unknown site", ext))
                continue
            if not names or any(x.casefold() not in role_keys for x in names):
                roster.problems.append(_Problem(n, "role_names", "bad roles", ext))
                continue
            roster.rows.append(
                _Row(
                    n,
                    ext,
                    rec["first_name"].strip(),
                    rec["last_name"].strip(),
                    rec["email"].strip(),
                    site,
                    tuple(role_keys[x.casefold()] for x in names),
                )
            )
    return roster


def install() -> None:
    try:
        import integrations.titan.roster  # noqa: F401
    except ImportError:
        module = types.ModuleType("integrations.titan.roster")
        module.titan_roster_read = titan_roster_read
        sys.modules["integrations.titan.roster"] = module
