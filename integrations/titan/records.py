"""Typed records of Titan HST data (shared/vendor-contracts.md section 3), shared by the
client that reads them, the planner that compares them and the job that applies a plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class TitanUser(NamedTuple):
    """Immutable. A named tuple rather than a frozen dataclass: a state holds 100,000 of
    them, built in a quarter of the time (issue 11)."""

    id: int
    external_id: str
    first_name: str
    last_name: str
    email: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class TitanSite:
    id: int
    name: str


@dataclass
class TitanState:
    """What Titan holds when a plan is made: every user, site, role and membership."""

    sites: list[TitanSite]
    roles: list[str]
    users: list[TitanUser]
    # site id -> user id -> the role list as Titan returned it
    members: dict[int, dict[int, list[str]]] = field(default_factory=dict)

    @property
    def membership_count(self) -> int:
        return sum(len(m) for m in self.members.values())


# The user fields a roster row sets, in the order the report shows them.
USER_FIELDS = ("first_name", "last_name", "email")
