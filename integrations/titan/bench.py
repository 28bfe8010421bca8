"""Planning at scale: a Titan state and a roster CSV of any size, and the time each step
takes (`manage.py titan_plan_bench`, docs/titan.md). No vendor, no database."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from integrations.titan.gcpause import gc_paused
from integrations.titan.plan import Limits, guardrail_check, plan_compute
from integrations.titan.records import TitanSite, TitanState, TitanUser

ROLES = ["Teacher", "Staff", "Cashier", "Kitchen Manager", "Principal"]


def bench_state(memberships: int, *, sites: int = 50) -> TitanState:
    """`memberships` users, one membership each, spread over `sites` sites."""
    site_list = [TitanSite(i + 1, f"School {i + 1:03d}") for i in range(sites)]
    users = []
    members: dict[int, dict[int, list[str]]] = {s.id: {} for s in site_list}
    for n in range(memberships):
        user_id = 100_000 + n
        users.append(TitanUser(user_id, f"{n:07d}", f"First{n}", f"Last{n}", f"u{n}@d.test"))
        members[site_list[n % sites].id][user_id] = [ROLES[n % 3]]
    return TitanState(sites=site_list, roles=ROLES, users=users, members=members)


def bench_simulator_state(memberships: int, *, sites: int = 50) -> dict[str, Any]:
    """`bench_state` in the form `TitanSimulator.load_state` takes (the simulator assigns
    its own user ids; external ids, names, sites and roles are the same)."""
    state = bench_state(memberships, sites=sites)
    by_id = {user.id: user for user in state.users}
    site_names = {site.id: site.name for site in state.sites}
    return {
        "sites": [site.name for site in state.sites],
        "roles": list(state.roles),
        "users": [
            {
                "external_id": u.external_id,
                "first_name": u.first_name,
                "last_name": u.last_name,
                "email": u.email,
            }
            for u in state.users
        ],
        "members": {
            site_names[sid]: {by_id[uid].external_id: roles for uid, roles in members.items()}
            for sid, members in state.members.items()
        },
    }


def bench_csv(path: Path, state: TitanState, *, change_every: int = 100) -> int:
    """The state as a roster, with every `change_every`-th row changed (role, email, or the
    row dropped, i.e. a removal); returns the number of rows written."""
    site_names = {s.id: s.name for s in state.sites}
    site_of = {uid: sid for sid, members in state.members.items() for uid in members}
    written = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["external_id", "first_name", "last_name", "email", "site_name", "role_names"])
        for n, user in enumerate(state.users):
            sid = site_of[user.id]
            roles = state.members[sid][user.id]
            email = user.email
            if n % change_every == 1:
                roles = [*roles, "Principal"]
            elif n % change_every == 2:
                email = f"new.{user.email}"
            elif n % change_every == 3:
                continue
            w.writerow(
                [
                    user.external_id,
                    user.first_name,
                    user.last_name,
                    email,
                    site_names[sid],
                    ";".join(roles),
                ]
            )
            written += 1
    return written


def bench_plan(path: Path, state: TitanState) -> dict[str, Any]:
    """Seconds per step: read and validate the CSV, plan, guardrail."""
    from integrations.titan.roster import titan_roster_read

    timings: dict[str, Any] = {}

    def timed(name: str, step):
        # CPU seconds too: on a shared, loaded machine the wall clock mostly measures waiting.
        wall, cpu = time.perf_counter(), time.process_time()
        result = step()
        timings[name] = (time.perf_counter() - wall, time.process_time() - cpu)
        return result

    with gc_paused():  # as the sync reads and plans
        roster = timed(
            "read_and_validate",
            lambda: titan_roster_read(
                path, sites=[s.name for s in state.sites], roles=list(state.roles)
            ),
        )
        plan = timed("plan", lambda: plan_compute(state, roster.rows))
    verdict = timed(
        "guardrail", lambda: guardrail_check(plan, Limits(max_removals=25, max_percent=10))
    )
    timings["rows"] = len(roster.rows)
    timings["memberships"] = state.membership_count
    timings["ops"] = plan["counts"]
    timings["held"] = verdict["held"]
    return timings
