"""The plan of a generated case is pinned: the same state and roster give the very same plan
(every operation, count, per-site figure and the hash) before and after the planning-speed
work of issue 11, both from the planner alone and through the dry-run sync job, which reads
Titan's state over HTTP from the simulator. The constants below were computed by the code
as it stood before that work (commit b392803)."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from integrations.jobs import job_execute
from integrations.rosters import roster_store_path
from integrations.titan.plan import Limits, guardrail_check, plan_compute
from integrations.titan.records import TitanSite, TitanState, TitanUser
from integrations.titan.roster import titan_roster_read
from integrations.titan.store import plan_load
from integrations.titan.sync import titan_run_create
from reports.models import RunStatus

SITES = ["North High", "South Middle", "East Elementary", "West Academy", "Central Kitchen"]
ROLES = ["Teacher", "Staff", "Principal", "Nurse", "Cashier"]
USERS = 1_500


def generated_state(seed: int = 11) -> dict[str, Any]:
    """Users at one to three sites with one to three roles each (in any order), some
    without an external id (not managed), ids with leading zeros; the simulator's form."""
    rng = random.Random(seed)
    users, members = [], {site: {} for site in SITES}
    for n in range(USERS):
        ext = "" if n % 97 == 5 else f"{n:06d}"
        users.append(
            {
                "external_id": ext or f"unmanaged-{n}",
                "first_name": f"First{n % 50}",
                "last_name": f"Last {n}",
                "email": f"User.{n}@District.test",
            }
        )
        if not ext:
            continue
        for site in rng.sample(SITES, rng.choice((1, 1, 1, 2, 3))):
            members[site][ext] = rng.sample(ROLES, rng.choice((1, 1, 2, 3)))
    return {"sites": SITES, "roles": ROLES, "users": users, "members": members}


def generated_csv(path: Path, state: dict[str, Any], seed: int = 12) -> None:
    """The state as a roster with every kind of change: role changes, names and emails
    changed (or only re-cased), memberships dropped and added, users left out, new users,
    duplicates, conflicts and invalid rows, sites and roles spelled loosely."""
    rng = random.Random(seed)
    rows = []
    for n, user in enumerate(state["users"]):
        ext = user["external_id"]
        if ext.startswith("unmanaged") or n % 83 == 7:  # not managed, or left out
            continue
        first, last, email = user["first_name"], user["last_name"], user["email"]
        if n % 61 == 3:
            last = f"{last}-Smith"
        if n % 59 == 4:
            email = email.lower()  # the same address: not a change
        if n % 67 == 5:
            email = f"new.{n}@district.test"
        for site, got in state["members"].items():
            roles = got.get(ext)
            if roles is None:
                continue
            if n % 41 == 9:  # this membership dropped: a removal
                continue
            roles = list(roles)
            if n % 23 == 1:
                roles = [*roles, "Principal"]
            if n % 29 == 2:
                roles = [r.upper() for r in reversed(roles)]
            spelled = site.lower() if n % 13 == 0 else site
            rows.append([ext, first, last, email, spelled, ";".join(roles)])
        if n % 31 == 6:  # a membership added
            rows.append([ext, first, last, email, rng.choice(SITES), "Staff"])
        if n % 101 == 8:  # an exact duplicate row
            rows.append(rows[-1])
        if n % 103 == 10:  # the same user and site with other roles: a conflict
            rows.append([*rows[-1][:5], "Nurse"])
        if n % 107 == 11:  # an invalid row: this user is protected from removals
            rows.append([ext, first, last, "not-an-email", SITES[0], "Teacher"])
    for k in range(40):  # new users
        rows.append(
            [f"N{k:05d}", f"New{k}", "Person", f"new{k}@d.test", SITES[k % 5], ROLES[k % 5]]
        )
    rows.append(["N99999", "Bad", "Site", "bad@d.test", "Nowhere High", "Teacher"])
    with path.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["external_id", "first_name", "last_name", "email", "site_name", "role_names"])
        w.writerows(rows)


def as_titan_state(state: dict[str, Any]) -> TitanState:
    """The state as the client reads it from the simulator (ids as the simulator assigns)."""
    sites = [TitanSite(n, name) for n, name in enumerate(state["sites"], start=1)]
    users = [
        TitanUser(1001 + n, u["external_id"], u["first_name"], u["last_name"], u["email"])
        for n, u in enumerate(state["users"])
    ]
    uid = {u.external_id: u.id for u in users}
    members = {
        site.id: {uid[ext]: roles for ext, roles in state["members"][site.name].items()}
        for site in sites
    }
    return TitanState(sites=sites, roles=list(state["roles"]), users=users, members=members)


def fingerprint(plan: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


PLAN_HASH = "03a2baf93552a02a7925e8f01c9e6fdda78df24d5def5e19555a4f4709bcfe52"
# SHA-256 of the whole plan as JSON (sorted keys): every field of every operation.
PLAN_FINGERPRINT = "a4de1b8ed91ef09228dd903f2d17c937e05b366e5cd0b79b41cd2938fcd31d3b"
COUNTS = {"create": 40, "update": 45, "add": 72, "roles": 69, "remove": 86}


def test_the_plan_of_a_generated_case_is_the_one_computed_before(tmp_path):
    state = generated_state()
    path = tmp_path / "roster.csv"
    generated_csv(path, state)
    roster = titan_roster_read(path, sites=SITES, roles=ROLES, aliases="")
    plan = plan_compute(as_titan_state(state), roster.rows, protected=roster.users_with_problems)
    assert roster.counts["invalid"] == 67 and roster.counts["duplicates"] == 17
    assert plan["counts"] == COUNTS and plan["unchanged"] == 1299
    assert plan["hash"] == PLAN_HASH
    assert fingerprint(plan) == PLAN_FINGERPRINT
    verdict = guardrail_check(plan, Limits(max_removals=25, max_percent=10))
    assert verdict["held"] and verdict["removals"] == COUNTS["remove"]


@pytest.mark.django_db
def test_the_dry_run_sync_over_http_plans_the_same(titan, settings, tmp_path):
    state = generated_state()
    sim = titan(demo_data=False)
    sim.load_state(state)
    settings.TITAN_PER_PAGE = 100
    settings.TITAN_REQUESTS_PER_SECOND = 0
    path = tmp_path / "roster.csv"
    generated_csv(path, state)
    upload, refusal = roster_store_path(path)
    assert upload is not None, refusal
    run = titan_run_create(upload=upload, dry_run=True, triggered_by="test")
    run = job_execute(run.pk, send_report=False)
    # Partial: the invalid rows count as failed; the plan is held by the guardrail.
    assert run.status == RunStatus.PARTIAL, run.message
    assert run.counts["invalid"] == 67 and run.counts["fetched"] == USERS
    assert run.params["plan_hash"] == PLAN_HASH
    assert fingerprint(plan_load(PLAN_HASH)) == PLAN_FINGERPRINT
    assert sim.mutations() == []  # a preview sends nothing
