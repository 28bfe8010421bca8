"""A local Titan HST API (shared/vendor-contracts.md section 3), quirks included.

- Auth by the `X-API-Key` header; a missing or wrong key is a 401 whose body never echoes it.
- `GET /api/v1/users` and `GET /api/v1/sites/{id}/members` are paged (`page` 1-based,
  `per_page` default 25 and silently capped at `max_per_page`, 100), with
  `meta.total_pages`.
- `POST /api/v1/users` answers 201, or 409 `duplicate_external_id` when the external id
  exists; `PATCH /api/v1/users/{id}` answers 200; invalid fields are 422
  `validation_error`.
- `PUT /api/v1/sites/{site}/members/{user}` sets the whole role list (422 on an unknown
  role or an empty list); `DELETE` removes the membership (204), the account stays.
- Errors are `{"error": {"code", "message"}}`; throttling is a 429 with `Retry-After`
  (`throttle_rate`: that share of requests, chosen by a seeded random), and the base
  class's `fail_rate` adds 429s and 500s.

Test helpers: `snapshot()` (the state as comparable plain data), `mutations()` (the
mutating calls that went through), `lose_next_responses()` (carry the call out, then
answer 502, as a lost response does), `load_state()`.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from integrations.simulator import Request, Response, Simulator, route

DEMO_API_KEY = "titan-demo-key-5d21e8"
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USER_FIELDS = ("external_id", "first_name", "last_name", "email")

DEMO_SITES = (
    "Northside Elementary",
    "Lincoln Middle School",
    "Roosevelt High School",
    "Eastside Elementary",
    "Central Kitchen",
    "District Office",
)
DEMO_ROLES = (
    "Teacher",
    "Staff",
    "Cashier",
    "Kitchen Manager",
    "Principal",
    "Nurse",
    "Administrator",
)
_FIRST = (
    "Ada", "Grace", "Alan", "Katherine", "Edsger", "Barbara", "Donald", "Frances",
    "John", "Margaret", "Dennis", "Radia", "Ken", "Shafi", "Leslie", "Tim", "Hedy",
    "Claude", "Mary", "Niklaus", "Sophie", "Guido", "Anita", "Vint",
)  # fmt: skip
_LAST = (
    "Lovelace", "Hopper", "Turing", "Johnson", "Dijkstra", "Liskov", "Knuth", "Allen",
    "McCarthy", "Hamilton", "Ritchie", "Perlman", "Thompson", "Goldwasser", "Lamport",
    "Berners-Lee", "Lamarr", "Shannon", "Keller", "Wirth", "Wilson", "van Rossum", "Borg",
    "Cerf",
)  # fmt: skip
DEMO_USERS = 300


@dataclass
class User:
    id: int
    external_id: str
    first_name: str
    last_name: str
    email: str
    active: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "external_id": self.external_id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "active": self.active,
        }

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_text", None)  # any change: encoded again when listed

    def as_json_text(self) -> str:
        """`json.dumps(self.as_json())`, kept until the user changes: a page of the user
        list joins these instead of encoding 100 users again on every request."""
        text = self.__dict__.get("_text")
        if text is None:
            text = json.dumps(self.as_json())
            object.__setattr__(self, "_text", text)
        return text


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    return Response.json({"error": {"code": code, "message": message}}, status, headers)


class TitanSimulator(Simulator):
    name = "titan"

    def __init__(
        self,
        *,
        seed: int = 7,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        api_key: str = DEMO_API_KEY,
        key_header: str = "X-API-Key",
        throttle_rate: float = 0.0,
        max_per_page: int = MAX_PER_PAGE,
        demo_data: bool = True,
        users: int = DEMO_USERS,
    ) -> None:
        super().__init__(seed=seed, latency_ms=latency_ms, fail_rate=fail_rate)
        self.api_key = api_key
        self.key_header = key_header.lower()
        self.throttle_rate = throttle_rate
        self.throttle_random = random.Random(seed * 104729 + 3)
        self.max_per_page = max_per_page
        self.sites: dict[int, str] = {}
        self.roles: dict[int, str] = {}
        self.users: dict[int, User] = {}
        self.by_external: dict[str, int] = {}
        self.members: dict[int, dict[int, list[str]]] = {}
        self.next_user_id = 1001
        self._lose: list[tuple[str, re.Pattern[str]]] = []
        self.mutation_log: list[tuple[str, str, int]] = []
        self._sorted_user_ids: list[int] = []
        if demo_data:
            self.load_state(demo_state(seed=seed, users=users))

    @property
    def demo_settings(self) -> dict[str, str]:
        return {"TITAN_API_KEY": self.api_key}

    # -- state -----------------------------------------------------------------------
    def load_state(self, state: dict[str, Any]) -> None:
        """Replace everything: `{"sites": [names], "roles": [names], "users": [{...}],
        "members": {site name: {external_id: [roles]}}}` (ids are assigned here)."""
        with self.lock:
            self.sites = {n: name for n, name in enumerate(state["sites"], start=1)}
            self.roles = {n: name for n, name in enumerate(state["roles"], start=1)}
            self.users, self.by_external = {}, {}
            self._sorted_user_ids = []
            self.next_user_id = 1001
            for fields in state["users"]:
                self._add_user({k: fields[k] for k in USER_FIELDS}, fields.get("active", True))
            site_ids = {name: sid for sid, name in self.sites.items()}
            self.members = {sid: {} for sid in self.sites}
            for site, members in state.get("members", {}).items():
                for external_id, roles in members.items():
                    self.members[site_ids[site]][self.by_external[external_id]] = list(roles)

    def _add_user(self, fields: dict[str, str], active: bool = True) -> User:
        user = User(id=self.next_user_id, active=active, **fields)
        self.next_user_id += 1
        self.users[user.id] = user
        self.by_external[user.external_id] = user.id
        return user

    def snapshot(self) -> dict[str, Any]:
        """Users by external id and memberships by (external id, site), roles as sets."""
        with self.lock:
            return {
                "users": {
                    u.external_id: (u.first_name, u.last_name, u.email) for u in self.users.values()
                },
                "members": {
                    (self.users[uid].external_id, self.sites[sid]): frozenset(roles)
                    for sid, members in self.members.items()
                    for uid, roles in members.items()
                },
            }

    def mutations(self) -> list[tuple[str, str, int]]:
        """Mutating calls that reached the handlers (faults and 401s excluded)."""
        with self.lock:
            return list(self.mutation_log)

    def lose_next_responses(self, method: str, path_regex: str, times: int = 1) -> None:
        """The next matching calls are carried out, then answered 502 (a lost response)."""
        with self.lock:
            self._lose.extend([(method.upper(), re.compile(path_regex))] * times)

    # -- plumbing --------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        if request.header(self.key_header) != self.api_key:
            return _error(401, "unauthorized", "Missing or invalid API key.")
        if self.throttle_rate:
            with self.lock:
                throttled = self.throttle_random.random() < self.throttle_rate
            if throttled:
                return self.throttled_response()
        response = super().dispatch(request)
        if request.method in MUTATING and response.status < 500 and response.status != 429:
            with self.lock:
                self.mutation_log.append((request.method, request.path, response.status))
                for i, (method, regex) in enumerate(self._lose):
                    if method == request.method and regex.search(request.path):
                        del self._lose[i]
                        return _error(502, "bad_gateway", "Upstream connection lost.")
        return response

    def throttled_response(self) -> Response:
        return _error(429, "rate_limited", "Too many requests.", {"Retry-After": "1"})

    def not_found(self, request: Request) -> Response:
        return _error(404, "not_found", f"No route {request.method} {request.path}.")

    def _page(
        self, request: Request, keys: list[Any], render: Callable[[Any], dict[str, Any]]
    ) -> Response:
        """One page of `keys` (in order), each rendered by `render` (to a dict, or to its
        JSON text): only that page's items are built, so a listing of 100,000 users costs a
        page, not the whole list."""
        try:
            page = max(1, int(request.arg("page", "1") or 1))
            per_page = max(1, int(request.arg("per_page", str(DEFAULT_PER_PAGE)) or 1))
        except ValueError:
            return _error(422, "validation_error", "page and per_page must be whole numbers.")
        per_page = min(per_page, self.max_per_page)  # capped without saying so (contract)
        total_pages = max(1, math.ceil(len(keys) / per_page))
        chunk = [render(key) for key in keys[(page - 1) * per_page : page * per_page]]
        meta = {"page": page, "total_pages": total_pages}
        if chunk and isinstance(chunk[0], str):  # items encoded already (`as_json_text`)
            # The very bytes json.dumps gives for {"data": [...], "meta": {...}}.
            text = f'{{"data": [{", ".join(chunk)}], "meta": {json.dumps(meta)}}}'
            return Response(200, text.encode(), {"Content-Type": "application/json"})
        return Response.json({"data": chunk, "meta": meta})

    def _user_ids(self) -> list[int]:
        """Every user id in order, kept between pages (users are added, never deleted)."""
        if len(self._sorted_user_ids) != len(self.users):
            self._sorted_user_ids = sorted(self.users)
        return self._sorted_user_ids

    def _body(self, request: Request) -> dict[str, Any] | None:
        try:
            data = request.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _user_problem(self, data: dict[str, Any], *, partial: bool) -> str | None:
        unknown = sorted(set(data) - set(USER_FIELDS))
        if unknown:
            return f"Unknown field(s): {', '.join(unknown)}."
        if partial and "external_id" in data:
            return "external_id cannot be changed."
        for name in USER_FIELDS:
            if name not in data:
                if partial:
                    continue
                return f"{name} is required."
            value = data[name]
            if not isinstance(value, str) or not value.strip():
                return f"{name} must be a non-empty string."
        if "email" in data and not EMAIL.match(data["email"]):
            return "email is not a valid address."
        return None

    # -- routes ----------------------------------------------------------------------
    @route("GET", "/api/v1/users")
    def list_users(self, request: Request) -> Response:
        return self._page(request, self._user_ids(), lambda uid: self.users[uid].as_json_text())

    @route("POST", "/api/v1/users")
    def create_user(self, request: Request) -> Response:
        data = self._body(request)
        if data is None:
            return _error(422, "validation_error", "The body must be a JSON object.")
        problem = self._user_problem(data, partial=False)
        if problem:
            return _error(422, "validation_error", problem)
        if data["external_id"] in self.by_external:
            return _error(
                409,
                "duplicate_external_id",
                f"A user with external_id {data['external_id']} already exists.",
            )
        user = self._add_user({k: data[k] for k in USER_FIELDS})
        return Response.json(user.as_json(), 201)

    @route("PATCH", "/api/v1/users/{user_id}")
    def update_user(self, request: Request, user_id: str) -> Response:
        user = self.users.get(int(user_id)) if user_id.isdigit() else None
        if user is None:
            return _error(404, "not_found", f"No user {user_id}.")
        data = self._body(request)
        if data is None:
            return _error(422, "validation_error", "The body must be a JSON object.")
        problem = self._user_problem(data, partial=True)
        if problem:
            return _error(422, "validation_error", problem)
        for name, value in data.items():
            setattr(user, name, value)
        return Response.json(user.as_json())

    @route("GET", "/api/v1/sites")
    def list_sites(self, request: Request) -> Response:
        return Response.json({"data": [{"id": k, "name": v} for k, v in self.sites.items()]})

    @route("GET", "/api/v1/roles")
    def list_roles(self, request: Request) -> Response:
        return Response.json({"data": [{"id": k, "name": v} for k, v in self.roles.items()]})

    def _site(self, site_id: str) -> int | None:
        return int(site_id) if site_id.isdigit() and int(site_id) in self.sites else None

    @route("GET", "/api/v1/sites/{site_id}/members")
    def list_members(self, request: Request, site_id: str) -> Response:
        sid = self._site(site_id)
        if sid is None:
            return _error(404, "not_found", f"No site {site_id}.")
        members = self.members[sid]
        return self._page(
            request, sorted(members), lambda uid: {"user_id": uid, "roles": list(members[uid])}
        )

    @route("PUT", "/api/v1/sites/{site_id}/members/{user_id}")
    def set_member(self, request: Request, site_id: str, user_id: str) -> Response:
        sid = self._site(site_id)
        if sid is None:
            return _error(404, "not_found", f"No site {site_id}.")
        uid = int(user_id) if user_id.isdigit() else None
        if uid not in self.users:
            return _error(404, "not_found", f"No user {user_id}.")
        data = self._body(request)
        roles = data.get("roles") if data else None
        if not isinstance(roles, list) or not roles:
            return _error(422, "validation_error", "roles must be a non-empty list.")
        known = set(self.roles.values())
        unknown = [r for r in roles if r not in known]
        if unknown:
            return _error(
                422, "validation_error", f"Unknown role(s): {', '.join(map(str, unknown))}."
            )
        self.members[sid][uid] = list(dict.fromkeys(roles))
        return Response.json({"user_id": uid, "roles": self.members[sid][uid]})

    @route("DELETE", "/api/v1/sites/{site_id}/members/{user_id}")
    def remove_member(self, request: Request, site_id: str, user_id: str) -> Response:
        sid = self._site(site_id)
        uid = int(user_id) if user_id.isdigit() else None
        if sid is None or uid not in self.members[sid]:
            return _error(404, "not_found", f"User {user_id} is not a member of site {site_id}.")
        del self.members[sid][uid]
        return Response(status=204)


def demo_state(*, seed: int = 7, users: int = DEMO_USERS) -> dict[str, Any]:
    """A few hundred users over six sites: most at one site, some at two, one to two roles
    each. External ids keep leading zeros (`000123`)."""
    rng = random.Random(seed)
    state: dict[str, Any] = {
        "sites": list(DEMO_SITES),
        "roles": list(DEMO_ROLES),
        "users": [],
        "members": {site: {} for site in DEMO_SITES},
    }
    for n in range(1, users + 1):
        first, last = _FIRST[n % len(_FIRST)], _LAST[(n * 7) % len(_LAST)]
        external_id = f"{n:06d}"
        slug = f"{first}.{last}".lower().replace(" ", "").replace("-", "")
        state["users"].append(
            {
                "external_id": external_id,
                "first_name": first,
                "last_name": last,
                "email": f"{slug}{n}@district.test",
            }
        )
        home = DEMO_SITES[n % len(DEMO_SITES)]
        sites = [home]
        if n % 9 == 0:
            sites.append(DEMO_SITES[(n + 2) % len(DEMO_SITES)])
        for site in sites:
            roles = [DEMO_ROLES[rng.randrange(3)]]
            if rng.random() < 0.25:
                roles.append(DEMO_ROLES[3 + rng.randrange(len(DEMO_ROLES) - 3)])
            state["members"][site][external_id] = roles
    return state


def build(
    seed: int = 7,
    latency_ms: int = 0,
    fail_rate: float = 0.0,
    token_lifetime: int | None = None,
    bench_memberships: int = 0,
    **kw: Any,
) -> TitanSimulator:
    """The sandbox's Titan HST (demo data, key `DEMO_API_KEY`). Titan authenticates by
    API key, so `token_lifetime` (given to every simulator by the sandbox) is not used.
    `bench_memberships`: instead of the demo data, the planning benchmark's state of that
    many users with one membership each (`integrations.titan.bench.bench_state`)."""
    if not bench_memberships:
        return TitanSimulator(seed=seed, latency_ms=latency_ms, fail_rate=fail_rate, **kw)
    from integrations.titan.bench import bench_simulator_state

    simulator = TitanSimulator(
        seed=seed, latency_ms=latency_ms, fail_rate=fail_rate, demo_data=False, **kw
    )
    simulator.load_state(bench_simulator_state(bench_memberships))
    return simulator
