"""The Titan planner on hand-built cases, each plan written out in full."""

from __future__ import annotations

from typing import NamedTuple

from integrations.titan.plan import Limits, guardrail_check, plan_compute, plan_hash
from integrations.titan.records import TitanSite, TitanState, TitanUser

NORTH, SOUTH = TitanSite(1, "North High"), TitanSite(2, "South Middle")


class Row(NamedTuple):
    external_id: str
    first_name: str
    last_name: str
    email: str
    site_name: str
    roles: tuple[str, ...]


def state(users, members) -> TitanState:
    return TitanState(
        sites=[NORTH, SOUTH],
        roles=["Teacher", "Staff", "Principal"],
        users=[TitanUser(uid, ext, f, last, e) for uid, ext, f, last, e in users],
        members=members,
    )


ADA = (10, "000900", "Ada", "Lovelace", "ada@d.test")
BOB = (11, "000901", "Bob", "Babbage", "bob@d.test")
CY = (12, "900", "Cy", "Short", "cy@d.test")


def row(ext, first, last, email, site, *roles) -> Row:
    return Row(ext, first, last, email, site, tuple(roles))


def test_in_step_file_plans_nothing_and_counts_unchanged_users():
    s = state([ADA, BOB], {1: {10: ["Teacher", "Staff"]}, 2: {11: ["Staff"]}})
    rows = [
        # order, case and spacing of roles and site names are not changes
        row("000900", "Ada", "Lovelace", "ADA@d.test", " north high ", "staff", "Teacher"),
        row("000901", "Bob", "Babbage", "bob@d.test", "South Middle", "Staff"),
    ]
    plan = plan_compute(s, rows)
    assert plan["ops"] == []
    assert plan["unchanged"] == 2
    assert plan["counts"] == {"create": 0, "update": 0, "add": 0, "roles": 0, "remove": 0}


def test_creates_updates_adds_role_changes_and_removals_in_apply_order():
    s = state(
        [ADA, BOB],
        {1: {10: ["Teacher"], 11: ["Staff"]}, 2: {11: ["Staff", "Teacher"]}},
    )
    rows = [
        row("000900", "Ada", "King", "ada@d.test", "North High", "Teacher", "Principal"),
        row("000900", "Ada", "King", "ada@d.test", "South Middle", "Staff"),
        row("000902", "Dee", "New", "dee@d.test", "South Middle", "Teacher"),
        row("000901", "Bob", "Babbage", "bob@d.test", "South Middle", "Teacher", "Staff"),
    ]
    plan = plan_compute(s, rows)
    assert plan["ops"] == [
        {
            "op": "create",
            "id": "create:000902",
            "external_id": "000902",
            "fields": {"first_name": "Dee", "last_name": "New", "email": "dee@d.test"},
        },
        {
            "op": "update",
            "id": "update:000900",
            "external_id": "000900",
            "user_id": 10,
            "changes": {"last_name": ["Lovelace", "King"]},
        },
        {
            "op": "add",
            "id": "add:000900:2",
            "external_id": "000900",
            "user_id": 10,
            "site_id": 2,
            "site": "South Middle",
            "roles": ["Staff"],
        },
        {
            "op": "add",
            "id": "add:000902:2",
            "external_id": "000902",
            "user_id": None,
            "site_id": 2,
            "site": "South Middle",
            "roles": ["Teacher"],
        },
        {
            "op": "roles",
            "id": "roles:000900:1",
            "external_id": "000900",
            "user_id": 10,
            "site_id": 1,
            "site": "North High",
            "roles": ["Principal", "Teacher"],
            "before": ["Teacher"],
        },
        # Bob leaves North High; his South Middle roles only differ in order: unchanged.
        {
            "op": "remove",
            "id": "remove:000901:1",
            "external_id": "000901",
            "user_id": 11,
            "site_id": 1,
            "site": "North High",
            "before": ["Staff"],
        },
    ]
    assert plan["unchanged"] == 0
    assert plan["sites"]["North High"] == {"current": 2, "add": 0, "roles": 1, "remove": 1}
    assert plan["sites"]["South Middle"] == {"current": 1, "add": 2, "roles": 0, "remove": 0}


def test_a_user_who_leaves_every_site_keeps_the_account():
    s = state([ADA, BOB], {1: {10: ["Teacher"]}, 2: {11: ["Staff"], 10: ["Staff"]}})
    plan = plan_compute(s, [row("000901", "Bob", "Babbage", "bob@d.test", "South Middle", "Staff")])
    assert [(op["op"], op["external_id"], op["site"]) for op in plan["ops"]] == [
        ("remove", "000900", "North High"),
        ("remove", "000900", "South Middle"),
    ]
    assert not [op for op in plan["ops"] if op["op"] not in ("remove",)]


def test_leading_zeros_are_kept_000900_is_not_900():
    s = state([ADA, CY], {1: {10: ["Teacher"], 12: ["Staff"]}})
    rows = [
        row("000900", "Ada", "Lovelace", "ada@d.test", "North High", "Teacher"),
        row("900", "Cy", "Short", "cy@d.test", "North High", "Staff"),
        row("0900", "Zero", "Led", "z@d.test", "North High", "Staff"),
    ]
    plan = plan_compute(s, rows)
    assert [(op["op"], op["external_id"]) for op in plan["ops"]] == [
        ("create", "0900"),
        ("add", "0900"),
    ]
    assert plan["unchanged"] == 2


def test_protected_users_lose_no_membership():
    s = state([ADA, BOB], {1: {10: ["Teacher"], 11: ["Staff"]}})
    # Bob's row had a problem (e.g. no roles): he is protected, not removed.
    plan = plan_compute(
        s, [row("000900", "Ada", "Lovelace", "ada@d.test", "North High", "Teacher")],
        protected={"000901"},
    )  # fmt: skip
    assert plan["ops"] == []
    assert plan["protected"] == ["000901"]


def test_unmanaged_titan_users_without_external_id_are_never_touched():
    s = state([(13, "", "Root", "Admin", "root@d.test")], {1: {13: ["Principal"]}})
    plan = plan_compute(s, [])
    assert plan["ops"] == []
    assert plan["current_memberships"] == 0


def test_email_case_is_not_a_change_but_a_name_case_is():
    s = state([ADA], {1: {10: ["Teacher"]}})
    plan = plan_compute(
        s, [row("000900", "ada", "Lovelace", "Ada@D.test", "North High", "Teacher")]
    )
    assert plan["ops"][0]["changes"] == {"first_name": ["Ada", "ada"]}


def test_the_hash_follows_the_operations_and_the_state_they_replace():
    s1 = state([ADA], {1: {10: ["Teacher"]}})
    s2 = state([ADA], {1: {10: ["Staff"]}})
    rows = [row("000900", "Ada", "Lovelace", "ada@d.test", "North High", "Principal")]
    p1, p1_again, p2 = plan_compute(s1, rows), plan_compute(s1, rows), plan_compute(s2, rows)
    assert p1["hash"] == p1_again["hash"] == plan_hash(p1)
    assert p1["hash"] != p2["hash"]  # same change, different old role set


# --- the guardrail ---------------------------------------------------------------------
def big_state(per_site: int) -> TitanState:
    users, north, south = [], {}, {}
    for n in range(per_site * 2):
        users.append(TitanUser(n + 1, f"{n:05d}", "F", "L", f"u{n}@d.test"))
        (north if n < per_site else south)[n + 1] = ["Teacher"]
    return TitanState(
        sites=[NORTH, SOUTH], roles=["Teacher"], users=users, members={1: north, 2: south}
    )


def keep_all_but(s: TitanState, drop: set[str]) -> list[Row]:
    site = {1: "North High", 2: "South Middle"}
    return [
        row(u.external_id, "F", "L", u.email, site[sid], "Teacher")
        for sid, members in s.members.items()
        for uid in members
        for u in [next(x for x in s.users if x.id == uid)]
        if u.external_id not in drop
    ]


def test_within_every_limit_is_not_held():
    s = big_state(100)
    plan = plan_compute(s, keep_all_but(s, {"00000", "00001", "00100"}))
    verdict = guardrail_check(plan, Limits(max_removals=25, max_percent=10))
    assert verdict["held"] is False
    assert verdict["removals"] == 3 and verdict["current"] == 200 and verdict["percent"] == 1.5
    assert [(x["site"], x["remove"], x["percent"]) for x in verdict["sites"]] == [
        ("North High", 2, 2.0),
        ("South Middle", 1, 1.0),
    ]


def test_overall_count_limit_holds():
    s = big_state(100)
    plan = plan_compute(s, keep_all_but(s, {f"{n:05d}" for n in (*range(3), *range(100, 103))}))
    verdict = guardrail_check(plan, Limits(max_removals=5, max_percent=50))
    assert verdict["held"] is True
    assert verdict["reasons"] == [
        "6 memberships would be removed in all, more than TITAN_MAX_REMOVALS=5."
    ]


def test_exactly_at_the_limit_is_not_held():
    s = big_state(100)
    plan = plan_compute(s, keep_all_but(s, {f"{n:05d}" for n in range(5)}))
    assert guardrail_check(plan, Limits(max_removals=5, max_percent=5))["held"] is False


def test_overall_percent_limit_holds():
    s = big_state(10)
    plan = plan_compute(s, keep_all_but(s, {"00000", "00010", "00011"}))
    verdict = guardrail_check(plan, Limits(max_removals=100, max_percent=10, sites={
        "North High": (None, 50), "South Middle": (None, 50)}))  # fmt: skip
    assert verdict["held"] is True
    assert verdict["reasons"] == [
        "3 of 20 memberships (15%) would be removed in all, more than "
        "TITAN_MAX_REMOVAL_PERCENT=10%."
    ]


def test_per_site_percent_holds_a_small_site_though_overall_is_fine():
    s = big_state(100)
    # South Middle alone loses 12 of 100 (12%); overall 12 of 200 is 6%.
    plan = plan_compute(s, keep_all_but(s, {f"{n:05d}" for n in range(100, 112)}))
    verdict = guardrail_check(plan, Limits(max_removals=25, max_percent=10))
    assert verdict["held"] is True
    assert verdict["reasons"] == [
        "South Middle: 12% of its 100 memberships, more than the site's limit of 10%."
    ]


def test_per_site_count_override_holds_and_another_override_lets_through():
    s = big_state(100)
    plan = plan_compute(s, keep_all_but(s, {"00000", "00001", "00002", "00100"}))
    strict = Limits(max_removals=25, max_percent=10, sites={"North High": (2, None)})
    assert guardrail_check(plan, strict)["reasons"] == [
        "North High: 3 removals, more than the site's limit of 2."
    ]
    # A large site allowed more: the same plan goes through.
    s2 = big_state(100)
    plan2 = plan_compute(s2, keep_all_but(s2, {f"{n:05d}" for n in range(12)}))
    held = guardrail_check(plan2, Limits(max_removals=25, max_percent=10))
    assert held["held"] is True
    loose = Limits(max_removals=25, max_percent=10, sites={"North High": (None, 20)})
    assert guardrail_check(plan2, loose)["held"] is False


def test_the_bench_plans_a_generated_roster(tmp_path):
    from integrations.titan.bench import bench_csv, bench_plan, bench_state

    state = bench_state(1000, sites=5)
    rows = bench_csv(tmp_path / "bench.csv", state)
    result = bench_plan(tmp_path / "bench.csv", state)
    assert result["rows"] == rows == 990
    assert result["ops"] == {"create": 0, "update": 10, "add": 0, "roles": 10, "remove": 10}
