"""Titan HST API client (shared/vendor-contracts.md section 3), on integrations.http.

No public documentation of the API exists; the project's contract is the default, and the
key header and every path come from settings (TITAN_KEY_HEADER, TITAN_*_PATH), so the
vendor's real ones are a settings change. Typed records at the edge
(integrations/titan/records.py). The API key is registered with the redactor and sent only
to TITAN_BASE_URL's host.

Errors: the classifier below reads the status and the `{"error": {"code", "message"}}`
body, because 409 and 422 mean different things: 409 `duplicate_external_id` is a user
that exists (a create to reconcile, never to repeat blindly), 422 `validation_error` is
bad data (an unknown role, an empty role list, an invalid field), 401 a refused key.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import requests
from django.conf import settings

from integrations.config import require
from integrations.http import (
    AuthError,
    ConfigError,
    HttpClient,
    MalformedResponse,
    NotFoundError,
    PermissionDenied,
    VendorError,
    decode_json,
    default_classify,
    redact,
)
from integrations.titan.records import TitanSite, TitanState, TitanUser
from reports.constants import ErrorClass

logger = logging.getLogger(__name__)

VENDOR = "Titan HST"
# A guard against a server that never stops paging (total_pages keeps growing).
MAX_PAGES = 100_000
# Pages asked for ahead of the one being read, per reading thread (TITAN_READ_CONCURRENCY).
PAGES_AHEAD = 4


class DuplicateExternalId(VendorError):
    """409 duplicate_external_id: a user with this external id exists already."""

    error_class = ErrorClass.CONFLICT
    permanent = True


class TitanValidationError(VendorError):
    """422 validation_error: an unknown role, an empty role list, an invalid field."""

    error_class = ErrorClass.INVALID_DATA
    permanent = True


def _error_body(response: requests.Response) -> tuple[str, str]:
    try:
        data = response.json()
    except ValueError:
        return "", redact(response.text[:200])
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or ""), redact(str(error.get("message") or "")[:500])
    if isinstance(error, str):
        return "", redact(error[:500])
    return "", ""


def titan_classify(response: requests.Response) -> VendorError | None:
    """The vendor's classifier for the shared HTTP layer (status and body)."""
    status = response.status_code
    if status < 400:
        return None
    code, message = _error_body(response)
    detail = f": {message}" if message else ""
    body = redact(response.text[:1000])
    if status == 401:
        return AuthError(
            f"{VENDOR} refused the API key (401); check TITAN_API_KEY{detail}",
            status=status,
            body=body,
        )
    if status == 403:
        return PermissionDenied(
            f"{VENDOR} denied the request (403){detail}", status=status, body=body
        )
    if status == 404:
        return NotFoundError(f"{VENDOR}: not found (404){detail}", status=status, body=body)
    if status == 409:
        if code == "duplicate_external_id":
            return DuplicateExternalId(
                f"{VENDOR}: the external id exists already (409){detail}",
                status=status,
                body=body,
            )
        return VendorError(
            f"{VENDOR}: conflict (409 {code or 'no code'}){detail}",
            status=status,
            error_class=ErrorClass.CONFLICT,
            body=body,
        )
    if status == 422:
        return TitanValidationError(
            f"{VENDOR} refused the data (422 {code or 'validation_error'}){detail}",
            status=status,
            body=body,
        )
    error = default_classify(response, VENDOR)
    if error is not None:
        return error
    return VendorError(f"{VENDOR} answered HTTP {status}{detail}", status=status, body=body)


def _page_meta(data: Any, what: str) -> tuple[list[Any], int]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise MalformedResponse(f"{VENDOR}: {what} without a `data` list")
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    try:
        total = int(meta.get("total_pages") or 1)
    except (TypeError, ValueError):
        raise MalformedResponse(f"{VENDOR}: {what} with a bad meta.total_pages") from None
    return data["data"], total


def _text(value: Any) -> str:
    """A text field as `str(value or "")` gives it; a string (nearly always) as it is."""
    return value if type(value) is str else str(value or "")


def _user(raw: Any) -> TitanUser:
    # Called once per user (100,000 on a large district): each field read once, strings
    # kept as they are.
    if type(raw) is not dict:
        raise MalformedResponse(f"{VENDOR}: a user without a numeric id")
    get = raw.get
    user_id, ext, active = get("id"), get("external_id"), get("active", True)
    if not isinstance(user_id, int):
        raise MalformedResponse(f"{VENDOR}: a user without a numeric id")
    return TitanUser(
        user_id,
        # Ids are text: "000900" stays "000900" (a number would lose the zeros).
        "" if ext is None else (ext if type(ext) is str else str(ext)).strip(),
        _text(get("first_name")),
        _text(get("last_name")),
        _text(get("email")),
        active if type(active) is bool else bool(active),
    )


def _members_add(members: dict[int, list[str]], items: list[Any]) -> None:
    """A page of a site's members into `members` (user id -> the roles as Titan lists
    them, each as text)."""
    for raw in items:
        if not isinstance(raw, dict):
            raise MalformedResponse(f"{VENDOR}: a site member without user_id or roles")
        user_id, roles = raw.get("user_id"), raw.get("roles")
        if not isinstance(user_id, int) or not isinstance(roles, list):
            raise MalformedResponse(f"{VENDOR}: a site member without user_id or roles")
        members[user_id] = [str(r) for r in roles]


class _Prefetch:
    """The pages of several paged lists fetched `read_concurrency` at a time, ahead of
    their use (`TitanClient._page_lists` takes them in order and decides where each list
    ends, as when they are read one by one).

    A list's first page says how many pages it has: the first pages of the list in use and
    of the `read_concurrency` x PAGES_AHEAD lists after it are asked for (so a read of
    thousands of sites never holds more than that many first pages); then the other pages
    in the order they are used, 2 to the first page's total_pages of each list, at most
    `read_concurrency` x PAGES_AHEAD of them fetched and not yet taken. A page the first
    one did not announce (the list grew) is fetched when it is needed; pages past a list's
    end are dropped. An error of a page is raised when that page is taken, never earlier."""

    def __init__(self, client: TitanClient, lists: list[tuple[str, str]]) -> None:
        self.client = client
        self.lists = lists
        self.ahead = client.read_concurrency * PAGES_AHEAD
        self.futures: dict[tuple[int, int], Future] = {}
        self.firsts: dict[int, Future] = {}  # first pages asked for, until `_order` reads them
        self.next_first = 0  # the next list whose first page is to be asked for
        self.current = 0  # the list in use
        self._firsts_ask(self.ahead + 1)
        self.rest = 0  # pages after the first fetched and not yet taken
        self.ended: set[int] = set()  # the lists that ended (`done`)
        self.order = self._order()

    def _submit(self, index: int, page: int) -> Future:
        path, what = self.lists[index]
        # copy_context: the reading threads' log lines carry the run (integrations.logs).
        future = self.client._submit(
            contextvars.copy_context().run, self.client._page, path, what, page
        )
        self.futures[index, page] = future
        return future

    def _firsts_ask(self, upto: int) -> None:
        """Ask for the first pages of the lists before `upto`, in order, once each."""
        upto = min(upto, len(self.lists))
        while self.next_first < upto:
            self.firsts[self.next_first] = self._submit(self.next_first, 1)
            self.next_first += 1

    def _order(self) -> Iterator[tuple[int, int] | None]:
        """The pages after the first of each list, in the order they are used; None while
        the next one cannot be known yet without waiting (its list's first page is still
        on its way, or its list is more than the bound ahead of the list in use): the
        thread taking the pages never waits here."""
        for index in range(len(self.lists)):
            while index > self.current + self.ahead:
                yield None
            self._firsts_ask(index + 1)
            first = self.firsts[index]
            while not first.done():
                yield None
            del self.firsts[index]
            if first.exception() is not None:
                return  # raised when that page is taken; nothing after it is needed
            items, total = first.result()
            if not items:
                continue
            for page in range(2, min(total, MAX_PAGES) + 1):
                if index in self.ended:  # ended before the first page's total_pages
                    break
                yield index, page

    def _fill(self) -> None:
        while self.rest < self.ahead:
            job = next(self.order, None)
            if job is None:  # the end, or nothing to ask for yet
                return
            self._submit(*job)
            self.rest += 1

    def _take(self, index: int, page: int) -> Future | None:
        future = self.futures.pop((index, page), None)
        if page > 1 and future is not None:
            self.rest -= 1
        return future

    def page(self, index: int, page: int) -> tuple[list[Any], int]:
        self.current = index
        self._firsts_ask(index + self.ahead + 1)
        future = self._take(index, page)
        self._fill()
        if future is None:
            future = self._take(index, page)  # asked for just now
        if future is None:  # not announced by the first page: the list grew
            path, what = self.lists[index]
            return self.client._page(path, what, page)
        return future.result()

    def done(self, index: int) -> None:
        """A list ended: drop its pages fetched past its end, and ask for no more."""
        self.ended.add(index)
        for key in [key for key in self.futures if key[0] == index]:
            self.futures.pop(key).cancel()
            self.rest -= key[1] > 1

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()
        self.futures.clear()


class TitanClient:
    def __init__(self, http: HttpClient, *, per_page: int = 100, read_concurrency: int = 1) -> None:
        self.http = http
        self.per_page = per_page
        self.read_concurrency = max(1, read_concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self.users_path = settings.TITAN_USERS_PATH.rstrip("/")
        self.sites_path = settings.TITAN_SITES_PATH.rstrip("/")
        self.roles_path = settings.TITAN_ROLES_PATH.rstrip("/")
        self.members_path = settings.TITAN_MEMBERS_PATH.rstrip("/")
        self._users_by_ext: dict[str, TitanUser] | None = None

    @classmethod
    def from_settings(cls) -> TitanClient:
        config = require("TITAN_BASE_URL", "TITAN_API_KEY", secret=("TITAN_API_KEY",))
        http = HttpClient.from_settings(
            vendor=VENDOR,
            base_url=config["TITAN_BASE_URL"],
            rate_per_second=settings.TITAN_REQUESTS_PER_SECOND,
            headers={
                settings.TITAN_KEY_HEADER: config["TITAN_API_KEY"],
                "Accept": "application/json",
            },
            classify=titan_classify,
        )
        concurrency = settings.TITAN_READ_CONCURRENCY
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(
                f"TITAN_READ_CONCURRENCY must be a whole number of 1 or more, got {concurrency}"
            )
        return cls(http, per_page=settings.TITAN_PER_PAGE, read_concurrency=concurrency)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.http.session.close()

    # -- reads -----------------------------------------------------------------------
    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.read_concurrency, thread_name_prefix="titan-read"
            )
        return self._pool.submit(fn, *args)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return decode_json(self.http.request(method, path, **kwargs), VENDOR)

    def _page(self, path: str, what: str, page: int) -> tuple[list[Any], int]:
        data = self._json("GET", path, params={"page": page, "per_page": self.per_page})
        return _page_meta(data, what)

    def _page_lists(
        self, lists: list[tuple[str, str]], on_page: Callable[[], None] | None
    ) -> Iterator[tuple[int, int, list[Any]]]:
        """Every page of these paged lists ((path, what) each), list after list and each
        in order, as (list index, page number, the page's items). The server caps per_page
        without saying so, so a list follows meta.total_pages, never the size asked for:
        each page's total_pages and an empty page end it. With `read_concurrency` above 1
        the pages come from `_Prefetch` (the same pages, fetched ahead)."""
        prefetch = _Prefetch(self, lists) if self.read_concurrency > 1 else None
        try:
            for index, (path, what) in enumerate(lists):
                page = 1
                while page <= MAX_PAGES:
                    if prefetch is not None:
                        items, total = prefetch.page(index, page)
                    else:
                        items, total = self._page(path, what, page)
                    if on_page:
                        on_page()
                    yield index, page, items
                    if page >= total or not items:
                        break
                    page += 1
                else:
                    raise MalformedResponse(f"{VENDOR}: {what} did not end after {MAX_PAGES} pages")
                if prefetch is not None:
                    prefetch.done(index)
        finally:
            if prefetch is not None:
                prefetch.close()

    def _pages(self, path: str, what: str, on_page: Callable[[], None] | None) -> Iterator[Any]:
        """Every item of one paged list (`_page_lists`)."""
        for _index, _page, items in self._page_lists([(path, what)], on_page):
            yield from items

    def users(self, on_page: Callable[[], None] | None = None) -> list[TitanUser]:
        return [_user(raw) for raw in self._pages(self.users_path, "users", on_page)]

    def _lookup(self, path: str, what: str) -> list[tuple[int, str]]:
        data = self._json("GET", path)
        items, _ = _page_meta(data, what)
        found = []
        for raw in items:
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), int):
                raise MalformedResponse(f"{VENDOR}: {what} entry without a numeric id")
            found.append((raw["id"], str(raw.get("name") or "").strip()))
        return found

    def sites(self) -> list[TitanSite]:
        return [TitanSite(i, name) for i, name in self._lookup(self.sites_path, "sites")]

    def roles(self) -> list[str]:
        return [name for _, name in self._lookup(self.roles_path, "roles")]

    def members(
        self, site_id: int, on_page: Callable[[], None] | None = None
    ) -> dict[int, list[str]]:
        path = self.members_path.format(site_id=site_id)
        members: dict[int, list[str]] = {}
        for _index, _page, items in self._page_lists([(path, "site members")], on_page):
            _members_add(members, items)
        return members

    def read_state(
        self,
        on_page: Callable[[], None] | None = None,
        *,
        sites: list[TitanSite] | None = None,
        roles: list[str] | None = None,
    ) -> TitanState:
        """Every site, role, user and membership. `sites` and `roles` already read (the
        sync validates its roster with them while the rest is read) are not read again.
        The users' pages and every site's members' pages are read as one stream
        (`_page_lists`): with several reading threads, the next list's pages are on their
        way while this one's are taken, so the threads never wait at the end of a list."""
        sites = self.sites() if sites is None else sites
        roles = self.roles() if roles is None else roles
        lists = [(self.users_path, "users")]
        lists += [(self.members_path.format(site_id=site.id), "site members") for site in sites]
        users: list[TitanUser] = []
        members: dict[int, dict[int, list[str]]] = {}
        into: dict[int, list[str]] = {}
        for index, page, items in self._page_lists(lists, on_page):
            if index == 0:
                users += map(_user, items)
                continue
            if page == 1:  # a site's list starts: its own dict, as `members()` gives
                into = members[sites[index - 1].id] = {}
            _members_add(into, items)
        self._users_by_ext = {u.external_id: u for u in users if u.external_id}
        return TitanState(sites=sites, roles=roles, users=users, members=members)

    def find_user(self, external_id: str, *, refresh: bool = False) -> TitanUser | None:
        """The user with this external id (the contract offers no filter: read the list,
        once per run unless `refresh`)."""
        if refresh or self._users_by_ext is None:
            self._users_by_ext = {u.external_id: u for u in self.users() if u.external_id}
        return self._users_by_ext.get(external_id)

    # -- writes ----------------------------------------------------------------------
    def create_user(self, fields: dict[str, str]) -> TitanUser:
        """POST a user. Raises DuplicateExternalId when the external id exists: the caller
        reconciles by external id instead of creating a second account."""
        # Retried on throttling and server errors: a repeat of a create that went through
        # answers 409 duplicate_external_id (contract section 3), never a second user.
        response = self.http.request("POST", self.users_path, json=fields, idempotent=True)
        user = _user(decode_json(response, VENDOR))
        if self._users_by_ext is not None:
            self._users_by_ext[user.external_id] = user
        return user

    def update_user(self, user_id: int, changes: dict[str, str]) -> TitanUser:
        # PATCH sets absolute values: a repeat leaves the same user (safe to retry).
        response = self.http.request(
            "PATCH", f"{self.users_path}/{user_id}", json=changes, idempotent=True
        )
        return _user(decode_json(response, VENDOR))

    def set_roles(self, site_id: int, user_id: int, roles: list[str]) -> None:
        path = f"{self.members_path.format(site_id=site_id)}/{user_id}"
        self.http.request("PUT", path, json={"roles": list(roles)})

    def remove_member(self, site_id: int, user_id: int) -> bool:
        """DELETE a membership; False when it was already gone (404), e.g. a repeat."""
        path = f"{self.members_path.format(site_id=site_id)}/{user_id}"
        try:
            self.http.request("DELETE", path)
        except NotFoundError:
            return False
        return True
