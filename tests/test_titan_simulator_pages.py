"""The Titan simulator's user list, joined from each user's stored JSON text, answers the
very bytes encoding the page whole would, and follows every change of a user."""

from __future__ import annotations

import json

from integrations.simulator import Request
from integrations.titan.simulator import DEMO_API_KEY, build


def get(sim, path: str, **query) -> bytes:
    request = Request(
        "GET", path, {k: [str(v)] for k, v in query.items()}, {"x-api-key": DEMO_API_KEY}, b""
    )
    response = sim.dispatch(request)
    assert response.status == 200
    return response.body


def whole(sim, page: int, per_page: int) -> bytes:
    ids = sorted(sim.users)
    chunk = [sim.users[i].as_json() for i in ids[(page - 1) * per_page : page * per_page]]
    total = max(1, -(-len(ids) // per_page))
    return json.dumps({"data": chunk, "meta": {"page": page, "total_pages": total}}).encode()


def test_user_pages_are_the_bytes_of_the_whole_page_encoded_at_once():
    sim = build()
    sim.users[1001].first_name = 'Zo\u00eb "Q" \u2603'  # escaped as json.dumps escapes
    for per_page, page in ((100, 1), (100, 3), (100, 4), (7, 5), (25, 99)):
        assert get(sim, "/api/v1/users", page=page, per_page=per_page) == whole(sim, page, per_page)


def test_a_changed_or_new_user_is_listed_as_it_is_now():
    sim = build()
    get(sim, "/api/v1/users", page=1, per_page=100)  # every text of page 1 stored
    sim.dispatch(
        Request(
            "PATCH",
            "/api/v1/users/1002",
            {},
            {"x-api-key": DEMO_API_KEY},
            json.dumps({"email": "moved@d.test"}).encode(),
        )
    )
    sim.users[1003].active = False  # a change made straight on the record
    sim._add_user(
        {"external_id": "N1", "first_name": "New", "last_name": "One", "email": "n@d.test"}
    )
    body = json.loads(get(sim, "/api/v1/users", page=1, per_page=100))
    by_id = {u["id"]: u for u in body["data"]}
    assert by_id[1002]["email"] == "moved@d.test"
    assert by_id[1003]["active"] is False
    last = json.loads(get(sim, "/api/v1/users", page=4, per_page=100))["data"][-1]
    assert last["external_id"] == "N1"
    assert get(sim, "/api/v1/users", page=4, per_page=100) == whole(sim, 4, 100)
