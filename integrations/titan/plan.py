"""The Titan sync plan: a pure function from Titan's current state and the roster's rows
to the operations that would bring Titan in step with the file, and the guardrail verdict.

Nothing here talks HTTP or touches the database, so the plan can be tested by hand-built
cases and measured on 100,000 rows. The plan is plain JSON-ready data; its content hash
(over the operations and the counts the guardrail divides by) is what a preview shows, an
approval names and the apply step checks, so that what is applied is exactly what was
previewed.

Operations, in the order they are applied (an interrupted run never leaves a user with
fewer sites than both the old and the new state would give):

1. `create` (a user not in Titan) and `update` (changed fields, old and new);
2. `add` (a membership the file gives and Titan lacks) and `roles` (a different role set);
3. `remove` (a membership Titan has and the file does not give).

Users who leave every site keep their Titan account: only memberships are removed. A user
with a problem row (invalid, conflicting) is "protected": none of their memberships is
removed. Titan users without an external id are not managed by the sync and never touched.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from integrations.titan.records import USER_FIELDS, TitanState

PLAN_VERSION = 1
CREATE, UPDATE, ADD, ROLES, REMOVE = "create", "update", "add", "roles", "remove"
PHASES = ((CREATE, UPDATE), (ADD, ROLES), (REMOVE,))
OP_ORDER = {kind: n for n, kind in enumerate((CREATE, UPDATE, ADD, ROLES, REMOVE))}
OP_LABELS = {
    CREATE: "users to create",
    UPDATE: "users to update",
    ADD: "memberships to add",
    ROLES: "role sets to change",
    REMOVE: "memberships to remove",
}


class RosterRowLike(Protocol):
    external_id: str
    first_name: str
    last_name: str
    email: str
    site_name: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Limits:
    """Guardrail limits: overall, and per site (a site's override, else the overall ones)."""

    max_removals: int
    max_percent: float
    # site name (as Titan spells it) -> (max removals or None, max percent or None)
    sites: Mapping[str, tuple[int | None, float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Site names compare without regard to case and spacing, as in the roster.
        object.__setattr__(self, "sites", {_key(k): v for k, v in self.sites.items()})

    def overridden(self, site: str) -> bool:
        return _key(site) in self.sites

    def for_site(self, site: str) -> tuple[int, float]:
        count, percent = self.sites.get(_key(site), (None, None))
        return (
            self.max_removals if count is None else count,
            self.max_percent if percent is None else percent,
        )


@lru_cache(maxsize=65536)
def _key(text: str) -> str:
    """Names compare without regard to case and surrounding spaces (few distinct names:
    cached, which keeps 100,000 rows fast)."""
    return " ".join(str(text).split()).casefold()


@lru_cache(maxsize=65536)
def _role_set(roles: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_key(r) for r in roles if str(r).strip())


def _canonical_roles(roles: tuple[str, ...], role_by_key: dict[str, str]) -> tuple[str, ...]:
    """The roles as Titan spells them, sorted and without duplicates."""
    return tuple(sorted({role_by_key.get(_key(r), r.strip()) for r in roles if r.strip()}))


def role_set(roles: Iterable[str]) -> frozenset[str]:
    return _role_set(tuple(roles))


def plan_compute(
    state: TitanState,
    rows: Iterable[RosterRowLike],
    *,
    protected: Iterable[str] = (),
) -> dict[str, Any]:
    """The plan as JSON-ready data (see the module docstring). `rows` are the roster's
    valid rows; `protected` the external ids with a problem row."""
    site_by_key = {_key(s.name): s for s in state.sites}
    role_by_key = {_key(r): r for r in state.roles}
    protected_ids = set(protected)

    # The file, folded per user: fields from the user's rows, and per site the roles.
    # (A roster holds few distinct site cells and role cells: each is resolved once.)
    wanted_fields: dict[str, tuple[str, str, str]] = {}
    wanted_sites: dict[str, dict[int, tuple[str, ...]]] = defaultdict(dict)
    rows_read = 0
    canonical_cache: dict[tuple[str, ...], tuple[str, ...]] = {}
    site_cache: dict[str, int | None] = {}
    for row in rows:
        rows_read += 1
        ext = row.external_id
        if ext not in wanted_fields:
            wanted_fields[ext] = (row.first_name.strip(), row.last_name.strip(), row.email.strip())
        cell = row.site_name
        try:
            site_id = site_cache[cell]
        except KeyError:
            site = site_by_key.get(_key(cell))
            site_id = site_cache[cell] = None if site is None else site.id
        if site_id is None:  # the roster reader refuses these rows; never guess
            protected_ids.add(ext)
            continue
        cell = tuple(row.roles)
        canonical = canonical_cache.get(cell)
        if canonical is None:
            canonical = canonical_cache[cell] = _canonical_roles(cell, role_by_key)
        user_sites = wanted_sites[ext]
        known = user_sites.get(site_id)
        user_sites[site_id] = canonical if known is None else tuple(sorted({*known, *canonical}))

    users_by_ext = {u.external_id: u for u in state.users if u.external_id}
    site_names = {s.id: s.name for s in state.sites}
    # user id -> site id -> roles (Titan's order)
    current: dict[int, dict[int, list[str]]] = defaultdict(dict)
    for site_id, members in state.members.items():
        for user_id, roles in members.items():
            current[user_id][site_id] = roles

    ops: list[dict[str, Any]] = []
    unchanged = 0
    no_sites: dict[int, Any] = {}
    for ext, (first, last, email) in wanted_fields.items():
        protected_user = ext in protected_ids
        wanted = wanted_sites.get(ext, no_sites)
        if protected_user and wanted is no_sites:
            continue  # every row of this user has a problem: nothing to do for them
        user = users_by_ext.get(ext)
        touched = False
        if user is None:
            ops.append(
                {
                    "op": CREATE,
                    "id": f"{CREATE}:{ext}",
                    "external_id": ext,
                    "fields": {"first_name": first, "last_name": last, "email": email},
                }
            )
            user_id = None
            have: dict[int, list[str]] = {}
            touched = True
        else:
            user_id = user.id
            have = current.get(user_id, no_sites)
            if not (
                user.first_name == first
                and user.last_name == last
                and (user.email == email or user.email.casefold() == email.casefold())
            ):
                changes = {}
                for name, new in zip(USER_FIELDS, (first, last, email), strict=True):
                    old = getattr(user, name)
                    same = old.casefold() == new.casefold() if name == "email" else old == new
                    if not same:
                        changes[name] = [old, new]
                touched = True
                ops.append(
                    {
                        "op": UPDATE,
                        "id": f"{UPDATE}:{ext}",
                        "external_id": ext,
                        "user_id": user_id,
                        "changes": changes,
                    }
                )
        for site_id, roles in wanted.items():
            before = have.get(site_id)
            if before is not None and (
                # Titan's list as the file spells it (nearly always), else compared as sets
                tuple(before) == roles or role_set(before) == role_set(roles)
            ):
                continue
            touched = True
            base = {
                "external_id": ext,
                "user_id": user_id,
                "site_id": site_id,
                "site": site_names[site_id],
                "roles": list(roles),
            }
            if before is None:
                ops.append({"op": ADD, "id": f"{ADD}:{ext}:{site_id}", **base})
            else:
                ops.append(
                    {"op": ROLES, "id": f"{ROLES}:{ext}:{site_id}", **base, "before": list(before)}
                )
        if user is not None and not protected_user:
            for site_id, before in have.items():
                if site_id not in wanted:
                    touched = True
                    ops.append(_remove(ext, user_id, site_id, site_names[site_id], before))
        if not touched:
            unchanged += 1

    # Titan users absent from the file lose every membership (their account stays).
    for ext, user in users_by_ext.items():
        if ext in wanted_fields or ext in protected_ids:
            continue
        for site_id, before in current.get(user.id, {}).items():
            ops.append(_remove(ext, user.id, site_id, site_names[site_id], before))

    return plan_assemble(
        ops,
        state,
        unchanged=unchanged,
        users_in_file=len(wanted_fields),
        rows=rows_read,
        protected=protected_ids,
    )


def plan_assemble(
    ops: list[dict[str, Any]],
    state: TitanState,
    *,
    unchanged: int = 0,
    users_in_file: int = 0,
    rows: int = 0,
    protected: Iterable[str] = (),
) -> dict[str, Any]:
    """Order the operations for applying, count them per site, and hash the plan."""
    managed_ids = {u.id for u in state.users if u.external_id}
    ops.sort(key=lambda op: (OP_ORDER[op["op"]], op["external_id"], op.get("site", "")))
    per_site = {
        s.name: {
            "current": sum(1 for uid in state.members.get(s.id, {}) if uid in managed_ids),
            ADD: 0,
            ROLES: 0,
            REMOVE: 0,
        }
        for s in state.sites
    }
    counts = dict.fromkeys(OP_ORDER, 0)
    for op in ops:
        counts[op["op"]] += 1
        if "site" in op:
            per_site[op["site"]][op["op"]] += 1
    plan = {
        "version": PLAN_VERSION,
        "ops": ops,
        "counts": counts,
        "unchanged": unchanged,
        "users_in_file": users_in_file,
        "rows": rows,
        "protected": sorted(protected),
        "current_memberships": sum(site["current"] for site in per_site.values()),
        "sites": per_site,
    }
    plan["hash"] = plan_hash(plan)
    return plan


def undo_plan(applied: Iterable[Mapping[str, Any]], state: TitanState) -> dict[str, Any]:
    """The plan that puts back what a run changed, judged against Titan's state now.

    `applied` holds the data of the run's applied items (kind, ids, the state each
    replaced). Removed memberships come back with their old roles, changed role sets go
    back, changed fields are restored; a created user keeps the account and loses the
    memberships the run added. What is already as it was needs nothing.
    """
    users = {u.id: u for u in state.users}
    site_names = {s.id: s.name for s in state.sites}
    ops: list[dict[str, Any]] = []
    for item in applied:
        kind, ext, uid = item["kind"], item["external_id"], item.get("user_id")
        if kind in (CREATE, UPDATE):
            old_fields = (
                {f: pair[0] for f, pair in item.get("changes", {}).items()}
                if kind == UPDATE
                else dict(item.get("before_fields") or {})
            )
            user = users.get(uid)
            changes = {
                f: [getattr(user, f), old]
                for f, old in old_fields.items()
                if user is not None and getattr(user, f) != old
            }
            if changes:
                ops.append(
                    {
                        "op": UPDATE,
                        "id": f"{UPDATE}:{ext}",
                        "external_id": ext,
                        "user_id": uid,
                        "changes": changes,
                    }
                )
            continue
        site_id = item["site_id"]
        if site_id not in site_names or uid is None:
            continue
        now = state.members.get(site_id, {}).get(uid)
        target = item.get("before")  # None: the run added this membership
        base = {"external_id": ext, "user_id": uid, "site_id": site_id, "site": site_names[site_id]}
        if target is None:
            if now is not None:
                ops.append(_remove(ext, uid, site_id, site_names[site_id], now))
        elif now is None:
            ops.append({"op": ADD, "id": f"{ADD}:{ext}:{site_id}", **base, "roles": list(target)})
        elif role_set(now) != role_set(target):
            ops.append(
                {
                    "op": ROLES,
                    "id": f"{ROLES}:{ext}:{site_id}",
                    **base,
                    "roles": list(target),
                    "before": list(now),
                }
            )
    return plan_assemble(ops, state)


def _remove(ext: str, user_id: int, site_id: int, site: str, before: list[str]) -> dict[str, Any]:
    return {
        "op": REMOVE,
        "id": f"{REMOVE}:{ext}:{site_id}",
        "external_id": ext,
        "user_id": user_id,
        "site_id": site_id,
        "site": site,
        "before": list(before),
    }


def plan_hash(plan: Mapping[str, Any]) -> str:
    """SHA-256 over what the plan would do and the counts its guardrail divides by."""
    content = {
        "version": plan["version"],
        "ops": plan["ops"],
        "current_memberships": plan["current_memberships"],
        "sites": {name: site["current"] for name, site in sorted(plan["sites"].items())},
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# --- the guardrail ---------------------------------------------------------------------
def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else (100.0 if part else 0.0)


def guardrail_check(plan: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """Held when planned removals exceed the count or the percent limit, overall or at any
    site. Returns the verdict, its reasons and the per-site figures the preview shows."""
    reasons: list[str] = []
    removals = plan["counts"][REMOVE]
    current = plan["current_memberships"]
    percent = _percent(removals, current)
    if removals > limits.max_removals:
        reasons.append(
            f"{removals} memberships would be removed in all, more than "
            f"TITAN_MAX_REMOVALS={limits.max_removals}."
        )
    if percent > limits.max_percent:
        reasons.append(
            f"{removals} of {current} memberships ({percent:g}%) would be removed in all, "
            f"more than TITAN_MAX_REMOVAL_PERCENT={limits.max_percent:g}%."
        )
    sites = []
    for name, site in sorted(plan["sites"].items()):
        site_max, site_percent_max = limits.for_site(name)
        site_removals = site[REMOVE]
        site_percent = _percent(site_removals, site["current"])
        over = []
        if site_removals > site_max:
            over.append(f"{site_removals} removals, more than the site's limit of {site_max}")
        if site_percent > site_percent_max:
            over.append(
                f"{site_percent:g}% of its {site['current']} memberships, more than "
                f"the site's limit of {site_percent_max:g}%"
            )
        if over:
            reasons.append(f"{name}: {' and '.join(over)}.")
        sites.append(
            {
                "site": name,
                "current": site["current"],
                "add": site[ADD],
                "roles": site[ROLES],
                "remove": site_removals,
                "percent": site_percent,
                "max_removals": site_max,
                "max_percent": site_percent_max,
                "over": bool(over),
                "overridden": limits.overridden(name),
            }
        )
    return {
        "held": bool(reasons),
        "reasons": reasons,
        "removals": removals,
        "current": current,
        "percent": percent,
        "max_removals": limits.max_removals,
        "max_percent": limits.max_percent,
        "sites": sites,
    }


def ops_of(plan: Mapping[str, Any], *kinds: str) -> list[dict[str, Any]]:
    return [op for op in plan["ops"] if op["op"] in kinds]
