"""The Titan client against the contract (vendor-contracts.md section 3), with `responses`."""

from __future__ import annotations

import pytest
import responses
from responses import matchers
from responses.registries import OrderedRegistry

from integrations.http import AuthError, ConfigError, MalformedResponse, ThrottledError
from integrations.titan.client import DuplicateExternalId, TitanClient, TitanValidationError

BASE = "https://titan.test"
KEY = "titan-key-do-not-print-8c1f"


@pytest.fixture
def client(settings):
    settings.TITAN_BASE_URL = BASE
    settings.TITAN_API_KEY = KEY
    settings.TITAN_PER_PAGE = 100
    return TitanClient.from_settings()


def user(n: int, ext: str | None = None) -> dict:
    return {
        "id": n,
        "external_id": ext or f"{n:06d}",
        "first_name": "F",
        "last_name": "L",
        "email": f"u{n}@d.test",
        "active": True,
    }


@responses.activate
def test_users_follow_total_pages_whatever_page_size_was_asked(client):
    # Asked for 100 a page, the server gives 2 (capped silently) over 3 pages.
    for page, ids in ((1, (1, 2)), (2, (3, 4)), (3, (5,))):
        responses.get(
            f"{BASE}/api/v1/users",
            match=[
                matchers.query_param_matcher({"page": str(page), "per_page": "100"}),
                matchers.header_matcher({"X-API-Key": KEY}),
            ],
            json={"data": [user(i) for i in ids], "meta": {"page": page, "total_pages": 3}},
        )
    users = client.users()
    assert [u.id for u in users] == [1, 2, 3, 4, 5]
    assert users[0].external_id == "000001"


@responses.activate
def test_members_are_paged_per_site(client):
    responses.get(
        f"{BASE}/api/v1/sites/7/members",
        match=[matchers.query_param_matcher({"page": "1", "per_page": "100"})],
        json={"data": [{"user_id": 1, "roles": ["Teacher"]}], "meta": {"total_pages": 2}},
    )
    responses.get(
        f"{BASE}/api/v1/sites/7/members",
        match=[matchers.query_param_matcher({"page": "2", "per_page": "100"})],
        json={"data": [{"user_id": 2, "roles": ["Staff", "Cashier"]}], "meta": {"total_pages": 2}},
    )
    assert client.members(7) == {1: ["Teacher"], 2: ["Staff", "Cashier"]}


@responses.activate
def test_the_key_header_and_paths_come_from_settings(settings):
    settings.TITAN_BASE_URL = BASE
    settings.TITAN_API_KEY = KEY
    settings.TITAN_KEY_HEADER = "X-Titan-Token"
    settings.TITAN_SITES_PATH = "/v2/schools"
    responses.get(
        f"{BASE}/v2/schools",
        match=[matchers.header_matcher({"X-Titan-Token": KEY})],
        json={"data": [{"id": 1, "name": "North"}]},
    )
    assert [s.name for s in TitanClient.from_settings().sites()] == ["North"]


@responses.activate
def test_a_refused_key_is_an_auth_error_that_never_shows_the_key(client):
    responses.get(
        f"{BASE}/api/v1/sites",
        status=401,
        json={"error": {"code": "unauthorized", "message": f"bad key {KEY}"}},
    )
    with pytest.raises(AuthError) as caught:
        client.sites()
    assert "TITAN_API_KEY" in caught.value.message
    assert KEY not in caught.value.message and KEY not in caught.value.body
    assert len(responses.calls) == 1  # permanent: not retried


@responses.activate
def test_409_on_create_is_a_duplicate_external_id_and_422_is_validation(client):
    responses.post(
        f"{BASE}/api/v1/users",
        status=409,
        json={"error": {"code": "duplicate_external_id", "message": "exists"}},
    )
    with pytest.raises(DuplicateExternalId):
        client.create_user({"external_id": "1", "first_name": "a", "last_name": "b", "email": "e"})
    responses.put(
        f"{BASE}/api/v1/sites/1/members/5",
        status=422,
        json={"error": {"code": "validation_error", "message": "Unknown role(s): Wizard."}},
    )
    with pytest.raises(TitanValidationError, match="Unknown role"):
        client.set_roles(1, 5, ["Wizard"])
    assert len(responses.calls) == 2  # neither is retried


@responses.activate(registry=OrderedRegistry)
def test_throttled_calls_wait_for_retry_after_then_go_through(client):
    responses.get(f"{BASE}/api/v1/roles", status=429, headers={"Retry-After": "3"})
    responses.get(f"{BASE}/api/v1/roles", json={"data": [{"id": 1, "name": "Teacher"}]})
    assert client.roles() == ["Teacher"]
    assert client.http.throttled == 1 and client.http.slept_seconds == 3


@responses.activate(registry=OrderedRegistry)
def test_a_create_is_retried_after_a_throttle_or_a_lost_response(client):
    body = {"external_id": "000007", "first_name": "a", "last_name": "b", "email": "e@d.test"}
    responses.post(f"{BASE}/api/v1/users", status=429, headers={"Retry-After": "1"})
    responses.post(f"{BASE}/api/v1/users", status=502)
    responses.post(f"{BASE}/api/v1/users", status=201, json=user(7))
    assert client.create_user(body).id == 7
    assert len(responses.calls) == 3


@responses.activate(registry=OrderedRegistry)
def test_throttling_that_never_ends_is_a_throttled_error(client, settings):
    for _ in range(settings.HTTP_MAX_RETRIES + 1):
        responses.get(f"{BASE}/api/v1/sites", status=429, headers={"Retry-After": "1"})
    with pytest.raises(ThrottledError):
        client.sites()


@responses.activate
def test_removing_a_membership_that_is_gone_is_not_an_error(client):
    responses.delete(f"{BASE}/api/v1/sites/1/members/5", status=204)
    responses.delete(
        f"{BASE}/api/v1/sites/1/members/6",
        status=404,
        json={"error": {"code": "not_found", "message": "not a member"}},
    )
    assert client.remove_member(1, 5) is True
    assert client.remove_member(1, 6) is False


@responses.activate
def test_a_list_without_data_is_malformed(client):
    responses.get(f"{BASE}/api/v1/users", json={"users": []})
    with pytest.raises(MalformedResponse):
        client.users()


@responses.activate
def test_find_user_reads_the_list_once(client):
    responses.get(
        f"{BASE}/api/v1/users",
        json={"data": [user(1), user(2, "000900")], "meta": {"total_pages": 1}},
    )
    assert client.find_user("000900").id == 2
    assert client.find_user("900") is None
    assert len(responses.calls) == 1


@pytest.mark.parametrize("missing", ["TITAN_BASE_URL", "TITAN_API_KEY"])
def test_a_missing_setting_is_named(settings, missing):
    settings.TITAN_BASE_URL = BASE
    settings.TITAN_API_KEY = KEY
    setattr(settings, missing, "  ")
    with pytest.raises(ConfigError, match=missing):
        TitanClient.from_settings()


@responses.activate
def test_users_fields_are_read_as_text_whatever_json_type_titan_sends(client):
    odd = [
        {"id": 1, "external_id": 900, "first_name": None, "last_name": 0, "email": "a@d.test"},
        {"id": 2, "external_id": " 000901 ", "first_name": "Ada", "active": 0},
        {"id": 3, "external_id": None, "first_name": 7, "last_name": "L", "active": "yes"},
        {"id": True, "external_id": "x"},  # a bool is an int to JSON readers: kept as before
    ]
    responses.get(f"{BASE}/api/v1/users", json={"data": odd, "meta": {"total_pages": 1}})
    got = [
        (u.id, u.external_id, u.first_name, u.last_name, u.email, u.active) for u in client.users()
    ]
    assert got == [
        (1, "900", "", "", "a@d.test", True),
        (2, "000901", "Ada", "", "", False),
        (3, "", "7", "L", "", True),
        (True, "x", "", "", "", True),
    ]


@pytest.mark.parametrize("bad", [[1], "user", {"id": "5"}, {"external_id": "x"}, {"id": 1.0}])
@responses.activate
def test_a_user_without_a_numeric_id_is_malformed(client, bad):
    responses.get(f"{BASE}/api/v1/users", json={"data": [bad], "meta": {"total_pages": 1}})
    with pytest.raises(MalformedResponse, match="without a numeric id"):
        client.users()


# --- several lists read as one stream (read_state), issue 11 ------------------------------
class Lists:
    """TitanClient._page from tables: path -> page -> (items, total_pages it claims), or an
    exception to raise. Records every page asked for."""

    def __init__(self, lists: dict[str, dict[int, object]]) -> None:
        self.lists = lists
        self.asked: list[tuple[str, int]] = []

    def __call__(self, path: str, what: str, page: int):
        self.asked.append((path, page))
        found = self.lists[path][page]
        if isinstance(found, Exception):
            raise found
        return found


def streamed(concurrency: int, lists: dict[str, dict[int, object]]):
    """(what `_page_lists` yielded, the error it ended with, the client's Lists)."""
    from types import SimpleNamespace

    http = SimpleNamespace(session=SimpleNamespace(close=lambda: None))
    client = TitanClient(http, read_concurrency=concurrency)
    client._page = Lists(lists)
    got, error = [], None
    try:
        for index, page, items in client._page_lists([(p, p) for p in lists], None):
            got.append((index, page, items))
    except MalformedResponse as exc:
        error = exc
    finally:
        client.close()
    return got, error, client._page


PAGED = {
    "/a": {1: ([1], 3), 2: ([2], 3), 3: ([3], 3), 4: ([4], 3)},
    "/b": {1: ([], 1)},  # a site without members
    "/c": {1: ([5], 4), 2: ([6], 2), 3: ([7], 4), 4: ([8], 4)},  # shrinks: ends at 2
    "/d": {1: ([9], 2), 2: ([10], 3), 3: ([11], 3)},  # grows: page 3 read when needed
}


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_several_lists_end_as_their_pages_say_whatever_the_concurrency(concurrency):
    got, error, _ = streamed(concurrency, PAGED)
    assert error is None
    assert got == [
        (0, 1, [1]),
        (0, 2, [2]),
        (0, 3, [3]),
        (1, 1, []),
        (2, 1, [5]),
        (2, 2, [6]),
        (3, 1, [9]),
        (3, 2, [10]),
        (3, 3, [11]),
    ]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_bad_page_of_a_later_list_is_raised_only_when_its_turn_comes(concurrency):
    lists = {**PAGED, "/b": {1: MalformedResponse("Titan HST: site members without data")}}
    got, error, _ = streamed(concurrency, lists)
    assert [entry[:2] for entry in got] == [(0, 1), (0, 2), (0, 3)]  # the first list whole
    assert error is not None and "without data" in str(error)


def _recording_client(lists) -> tuple[TitanClient, list[tuple[str, int]]]:
    """A client reading these canned lists (2 threads), and the (path, page) pairs it asks
    for, in the order it asks."""
    from types import SimpleNamespace

    http = SimpleNamespace(session=SimpleNamespace(close=lambda: None))
    client = TitanClient(http, read_concurrency=2)
    client._page = Lists(lists)
    submitted: list[tuple[str, int]] = []
    queue = client._submit

    def recorded(fn, *args):
        submitted.append((args[1], args[3]))  # args: _page, path, what, page
        return queue(fn, *args)

    client._submit = recorded
    return client, submitted


def test_pages_are_asked_ahead_of_their_use_within_a_bound():
    from integrations.titan.client import PAGES_AHEAD

    pages = 60
    lists = {f"/s{n}": {p: ([p], pages) for p in range(1, pages + 1)} for n in range(3)}
    client, submitted = _recording_client(lists)
    taken, ahead, queued_when = 0, [], {}
    try:
        for index, page, _items in client._page_lists([(p, p) for p in lists], None):
            taken += 1
            ahead.append(len(submitted) - taken)
            queued_when[index, page] = len(submitted)
    finally:
        client.close()
    assert taken == 3 * pages and len(submitted) == 3 * pages
    # Every list's first page, and at most 2 x PAGES_AHEAD others, asked and not yet taken.
    assert max(ahead) <= 3 + 2 * PAGES_AHEAD
    # When the first list's last page was taken, the second list's were already asked for:
    # the reading threads do not wait at the end of a list.
    assert submitted.index(("/s1", 2)) < queued_when[0, pages]


def test_a_list_ending_before_its_first_page_said_asks_no_more_of_its_pages():
    # /a's first page announces 40 pages, its second says 2: the pages the first announced
    # past the end are not asked for any more, and /b's pages still come from the threads.
    from integrations.titan.client import PAGES_AHEAD

    lists = {
        "/a": {p: ([p], 40 if p == 1 else 2) for p in range(1, 41)},
        "/b": {p: ([p], 20) for p in range(1, 21)},
    }
    client, submitted = _recording_client(lists)
    try:
        got = [entry[:2] for entry in client._page_lists([(p, p) for p in lists], None)]
    finally:
        client.close()
    assert got == [(0, 1), (0, 2), *((1, p) for p in range(1, 21))]
    # Only the pages asked before page 2 was taken (the bound ahead of it), none after.
    assert max(p for path, p in submitted if path == "/a") <= 2 + 2 * PAGES_AHEAD
    assert sorted(p for path, p in submitted if path == "/b") == list(range(1, 21))


def test_first_pages_are_asked_within_the_bound_however_many_sites():
    # A long users list, then 40 sites of one page each: the first pages are asked a
    # window at a time (the list in use and 2 x PAGES_AHEAD after it), never all at once.
    from integrations.titan.client import PAGES_AHEAD

    lists = {"/users": {p: ([p], 30) for p in range(1, 31)}}
    lists |= {f"/site{n}": {1: ([n], 1)} for n in range(40)}
    client, submitted = _recording_client(lists)
    firsts_ahead = []
    try:
        got = []
        for index, page, _items in client._page_lists([(p, p) for p in lists], None):
            got.append((index, page))
            asked = sum(1 for _path, p in submitted if p == 1)
            firsts_ahead.append(asked - (index + 1))  # first pages asked, not yet taken
    finally:
        client.close()
    assert got == [(0, p) for p in range(1, 31)] + [(n, 1) for n in range(1, 41)]
    assert sorted(submitted) == sorted({(path, p) for path in lists for p in lists[path]})
    assert max(firsts_ahead) <= 2 * PAGES_AHEAD
    assert firsts_ahead[0] == 2 * PAGES_AHEAD  # the sites after the users list: asked early
