"""OpenClass.ai API client: login, classes, class detail, progressions.

Contract: ../shared/vendor-contracts.md section 2, taken from the public Cohort Tracker
(github.com/cj-taylor/codeyou-cohort-tracker), whose later code corrects its README.
OpenClass publishes no API reference; every quirk handled here is named after that contract.

Responses are parsed into the dataclasses below at this edge, so the pull job never walks
raw vendor dictionaries. A progression that cannot be used (no user id, a grade that is not
a number, ...) is reported as an `InvalidRecord` beside the good ones instead of failing
its whole page. A pull reads the same students and assignments on every page: each is
parsed once per client and shared (`RecordCache`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from integrations.config import require
from integrations.http import (
    AuthError,
    HttpClient,
    MalformedResponse,
    NotFoundError,
    VendorError,
    decode_json,
    default_classify,
    describe,
    loads_clean,
    register_secret,
)

logger = logging.getLogger("integrations.openclass")

VENDOR = "OpenClass"
LOGIN_PATH = "/v1/auth/login"
# The longest external id the cohorts tables hold; a longer "id" is not an OpenClass id.
MAX_ID_LENGTH = 100


# --- Typed records --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OpenClassClass:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class CurriculumItem:
    """An assignment's place in the class: its unit and its order."""

    assignment_id: str
    unit: str
    unit_position: int  # 1-based order of the unit
    position: int  # 1-based order of the assignment across the whole curriculum


@dataclass(frozen=True, slots=True)
class ClassDetail:
    id: str
    name: str
    curriculum: tuple[CurriculumItem, ...]


@dataclass(frozen=True, slots=True)
class OpenClassUser:
    id: str
    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True, slots=True)
class OpenClassAssignment:
    id: str
    name: str
    type: str  # "lesson" or "quiz"


# Not frozen: one is built per row (100,000 in a large pull), and a frozen dataclass takes
# three times as long to build. Nothing changes one after parsing.
@dataclass(slots=True, eq=True)
class OpenClassProgression:
    id: str
    user: OpenClassUser
    assignment: OpenClassAssignment
    grade: float | None
    started_at: datetime | None
    completed_at: datetime | None
    reviewed_at: datetime | None


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A progression skipped because `field` is missing or unusable."""

    key: str
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ProgressionPage:
    page: int
    total: int | None
    results_per_page: int
    can_load_more: bool
    progressions: tuple[OpenClassProgression, ...]
    invalid: tuple[InvalidRecord, ...]

    @property
    def fetched(self) -> int:
        return len(self.progressions) + len(self.invalid)

    @property
    def page_count(self) -> int | None:
        """Pages the whole list takes, from metadata (None when the vendor omits it)."""
        if self.total is None or self.results_per_page <= 0:
            return None
        return max(1, math.ceil(self.total / self.results_per_page))


class RecordCache:
    """Users and assignments already parsed, by their raw fields: every page of a class
    repeats them, and the pull then sees the same object again (cheap to compare).
    Bounded: emptied when it holds `limit` entries."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        # (the id's type, the id) -> (the raw object, what it parsed to)
        self.users: dict[tuple, tuple[dict, OpenClassUser]] = {}
        self.assignments: dict[tuple, tuple[dict, OpenClassAssignment]] = {}

    def user(self, raw: dict[str, Any]) -> OpenClassUser:
        return _cached(self.users, raw, _parse_user, self.limit)

    def assignment(self, raw: dict[str, Any]) -> OpenClassAssignment:
        return _cached(self.assignments, raw, _parse_assignment, self.limit)


def _cached(cache: dict, raw: dict[str, Any], parse, limit: int):
    # Found by the id and its type (1 == True == 1.0 as keys, but only an int is an id),
    # then every raw field compared (a dict compare, cheaper than building a key of them
    # all): other fields count only as strings, which equal nothing else, so equal raw
    # objects parse alike.
    ident = raw.get("id", raw.get("_id"))
    key = (type(ident), ident)
    try:
        entry = cache.get(key)
    except TypeError:  # an unhashable id ({"$oid": ...}): parse it every time
        return parse(raw)
    if entry is not None and entry[0] == raw:
        return entry[1]
    found = parse(raw)  # raises _BadField: nothing cached
    if len(cache) >= limit:
        cache.clear()
    cache[key] = (raw, found)
    return found


class _BadField(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


# --- Parsing helpers (pure) -----------------------------------------------------------
def unwrap(body: Any, *, what: str) -> dict[str, Any]:
    """The payload of a response, whichever of the contract's shapes it came in.

    Contract section 2: the payload is a JSON *string* in `result.objects`, or in
    `result.objects[0]`, and must be parsed again; the seed README shows it plain, at the
    top level. Both are accepted.
    """
    if not isinstance(body, dict):
        raise MalformedResponse(f"OpenClass: {what} is not a JSON object")
    result = body.get("result")
    if not isinstance(result, dict) or "objects" not in result:
        return body
    objects = result["objects"]
    if isinstance(objects, list):
        if not objects:
            raise MalformedResponse(f"OpenClass: {what} has an empty result.objects")
        objects = objects[0]
    if isinstance(objects, str):
        try:
            # A string inside the JSON: decode_json cleaned its text, not what it encodes.
            objects = loads_clean(objects)
        except ValueError:
            raise MalformedResponse(
                f"OpenClass: {what} has a result.objects string that is not JSON"
            ) from None
    if not isinstance(objects, dict):
        raise MalformedResponse(f"OpenClass: {what} has no JSON object in result.objects")
    return objects


def parse_id(value: Any, field: str) -> str:
    """An id given as {"$oid": "..."} or as a plain string (both occur, contract section 2)."""
    if isinstance(value, dict):
        value = value.get("$oid")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _BadField(field, "is missing")
    value = value.strip()
    if len(value) > MAX_ID_LENGTH:
        raise _BadField(field, f"is longer than {MAX_ID_LENGTH} characters")
    return value


_fromisoformat = datetime.fromisoformat


def parse_time(value: Any, field: str) -> datetime | None:
    """ISO 8601 (`2025-12-11T23:02:51.781Z`) or null, in UTC; naive times are taken as UTC.

    A value out of range (an epoch beyond year 9999, a date that leaves 1..9999 once moved
    to UTC) is an unusable field, not a crash of the whole page.
    """
    if type(value) is str:
        # As OpenClass sends them ("...Z", no spaces around): one call. Anything else
        # (spaces, another zone, not a date) takes the long way below.
        try:
            parsed = _fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is UTC:
                return parsed
    if value is None or value == "":
        return None
    if isinstance(value, dict) and "$date" in value:  # MongoDB extended JSON, just in case
        value = value["$date"]
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise _BadField(field, f"is not a date ({value!r})") from None
    if not isinstance(value, str):
        raise _BadField(field, "is not a date")
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.tzinfo is UTC:  # "...Z", as OpenClass sends them: nothing to move
            return parsed
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _BadField(field, f"is not a date ({value[:40]!r})") from None


def parse_grade(value: Any) -> float | None:
    if type(value) is float and 0.0 <= value <= 1.0:  # most grades (NaN fails this)
        return value
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadField("grade", "is not a number")
    grade = float(value)
    if not 0.0 <= grade <= 1.0 or math.isnan(grade):
        raise _BadField("grade", f"is {grade}, outside 0..1")
    return grade


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _parse_user(user: dict[str, Any]) -> OpenClassUser:
    return OpenClassUser(
        id=parse_id(user.get("id", user.get("_id")), "user.id"),
        first_name=_text(user.get("first_name")),
        last_name=_text(user.get("last_name")),
        email=_text(user.get("email")),
    )


def _parse_assignment(assignment: dict[str, Any]) -> OpenClassAssignment:
    return OpenClassAssignment(
        id=parse_id(assignment.get("id", assignment.get("_id")), "assignment.id"),
        name=_text(assignment.get("name")),
        type=_text(assignment.get("type")).lower(),
    )


def parse_progression(raw: Any, cache: RecordCache | None = None) -> OpenClassProgression:
    if not isinstance(raw, dict):
        raise _BadField("_id", "is missing (the record is not an object)")
    progression_id = parse_id(raw.get("_id", raw.get("id")), "_id")
    user = raw.get("user")
    if not isinstance(user, dict):
        raise _BadField("user", "is missing")
    assignment = raw.get("assignment")
    if not isinstance(assignment, dict):
        raise _BadField("assignment", "is missing")
    # Positional: a row is built per progression (field order of OpenClassProgression).
    return OpenClassProgression(
        progression_id,
        cache.user(user) if cache is not None else _parse_user(user),
        cache.assignment(assignment) if cache is not None else _parse_assignment(assignment),
        parse_grade(raw.get("grade")),
        parse_time(raw.get("started_assignment_at"), "started_assignment_at"),
        parse_time(raw.get("completed_assignment_at"), "completed_assignment_at"),
        parse_time(raw.get("reviewed_at"), "reviewed_at"),
    )


def _metadata_int(metadata: dict[str, Any], name: str) -> int | None:
    value = metadata.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def parse_progression_page(
    payload: dict[str, Any], *, page: int, page_size: int, cache: RecordCache | None = None
) -> ProgressionPage:
    what = f"progressions page {page}"
    metadata = payload.get("metadata")
    data = payload.get("data")
    if not isinstance(metadata, dict) or not isinstance(data, list):
        raise MalformedResponse(f"OpenClass: {what} lacks metadata or data")
    can_load_more = metadata.get("can_load_more")
    if not isinstance(can_load_more, bool):
        # Paging stops on this flag; guessing could silently cut a sync short.
        raise MalformedResponse(f"OpenClass: {what} lacks metadata.can_load_more")
    good: list[OpenClassProgression] = []
    invalid: list[InvalidRecord] = []
    for index, raw in enumerate(data):
        try:
            good.append(parse_progression(raw, cache))
        except _BadField as exc:
            key = _record_key(raw) or f"page {page} record {index + 1}"
            invalid.append(InvalidRecord(key=key, field=exc.field, message=str(exc)))
    return ProgressionPage(
        page=page,
        total=_metadata_int(metadata, "total"),
        results_per_page=_metadata_int(metadata, "results_per_page") or page_size,
        can_load_more=can_load_more,
        progressions=tuple(good),
        invalid=tuple(invalid),
    )


def _record_key(raw: Any) -> str:
    if not isinstance(raw, dict):
        return ""
    try:
        return parse_id(raw.get("_id", raw.get("id")), "_id")
    except _BadField:
        return ""


def parse_class_detail(payload: dict[str, Any], *, class_id: str) -> ClassDetail:
    data = payload.get("data", payload)
    if not isinstance(data, dict):
        raise MalformedResponse(f"OpenClass: class {class_id} detail has no data object")
    units = data.get("units") or []
    if not isinstance(units, list):
        raise MalformedResponse(f"OpenClass: class {class_id} detail has units that are no list")
    items: list[CurriculumItem] = []
    seen: set[str] = set()
    for unit_index, unit in enumerate(units, start=1):
        if not isinstance(unit, dict):
            continue
        unit_name = _text(unit.get("name")) or f"Unit {unit_index}"
        for entry in unit.get("assignments") or []:
            # The contract lists bare ids; {"$oid"} or an object with an id is accepted too.
            raw_id = entry
            if isinstance(entry, dict) and "$oid" not in entry:
                raw_id = entry.get("id", entry.get("_id"))
            try:
                assignment_id = parse_id(raw_id, "units.assignments")
            except _BadField:
                logger.warning(
                    "class %s: unit %r lists an unusable assignment id", class_id, unit_name
                )
                continue
            if assignment_id in seen:
                continue
            seen.add(assignment_id)
            items.append(
                CurriculumItem(
                    assignment_id=assignment_id,
                    unit=unit_name[:200],
                    unit_position=unit_index,
                    position=len(items) + 1,
                )
            )
    return ClassDetail(id=class_id, name=_text(data.get("name")), curriculum=tuple(items))


def parse_classes(payload: dict[str, Any]) -> list[OpenClassClass]:
    data = payload.get("data")
    if not isinstance(data, list):
        raise MalformedResponse("OpenClass: the class list has no data list")
    classes = []
    for raw in data:
        if not isinstance(raw, dict):
            continue
        try:
            class_id = parse_id(raw.get("id", raw.get("_id")), "id")
        except _BadField:
            continue
        classes.append(OpenClassClass(id=class_id, name=_text(raw.get("name"))))
    return classes


# --- Client ---------------------------------------------------------------------------
def classify_response(response: requests.Response) -> VendorError | None:
    """OpenClass's response classifier (contract section 2), used on every call.

    429 and 5xx are retried (default_classify); a refused login names the settings to
    check; a 401 on a call is an AuthError with status 401, on which the client signs in
    again once; 403, 404 and any other non-2xx (a redirect included: it is never followed)
    are permanent errors naming the call.
    """
    error = default_classify(response, VENDOR)
    status = response.status_code
    if error is not None or 200 <= status < 300:
        return error
    call = describe(response)
    body = response.text
    if call.endswith(LOGIN_PATH) and status in (401, 403):
        check = "OPENCLASS_EMAIL and OPENCLASS_PASSWORD"
        if status == 403:  # e.g. an app id the API does not know
            check = "OPENCLASS_EMAIL, OPENCLASS_PASSWORD and OPENCLASS_APP_ID"
        return AuthError(
            f"OpenClass refused the login ({status}); check {check}", status=status, body=body
        )
    if status == 401:
        return AuthError(f"OpenClass refused the token on {call} (401)", status=401, body=body)
    if status == 403:
        return AuthError(f"OpenClass refused access to {call} (403)", status=403, body=body)
    if status == 404:
        return NotFoundError(f"OpenClass: {call} was not found (404)", status=404, body=body)
    return VendorError(f"OpenClass: {call} answered {status}", status=status, body=body)


class OpenClassClient:
    def __init__(
        self,
        base_url: str,
        *,
        email: str,
        password: str,
        app_id: str = "",
        origin: str = "",
        **http: Any,
    ) -> None:
        register_secret(password)
        self.http = HttpClient.from_settings(
            vendor=VENDOR, base_url=base_url, classify=classify_response, **http
        )
        self.email = email
        self._password = password
        self.app_id = app_id
        self.origin = origin
        self._token = ""
        self.logins = 0
        self.records = RecordCache()

    @classmethod
    def from_settings(cls) -> OpenClassClient:
        """A client configured from settings; a missing setting raises ConfigError first."""
        values = require(
            "OPENCLASS_BASE_URL",
            "OPENCLASS_EMAIL",
            "OPENCLASS_PASSWORD",
            secret=("OPENCLASS_PASSWORD",),
        )
        return cls(
            values["OPENCLASS_BASE_URL"],
            email=values["OPENCLASS_EMAIL"],
            password=values["OPENCLASS_PASSWORD"],
            app_id=str(getattr(settings, "OPENCLASS_APP_ID", "") or "").strip(),
            origin=str(getattr(settings, "OPENCLASS_ORIGIN", "") or "").strip(),
            rate_per_second=settings.OPENCLASS_REQUESTS_PER_SECOND,
        )

    # -- authentication ------------------------------------------------------------
    def login(self) -> None:
        """Sign in and keep the token (a JWT, about 30 days)."""
        headers = {}
        # The web app sends these two; the API may check them (contract section 2).
        if self.origin:
            headers["Origin"] = self.origin
        if self.app_id:
            headers["X-OpenClass-App-Id"] = self.app_id
        # Form-encoded, with the empty invite codes the web app sends (contract section 2).
        # idempotent=True: a repeated sign-in only issues another token; it creates and
        # changes nothing we sync. Only 429, 5xx and network failures are retried; a
        # refusal (401/403) is permanent and sent once, so a retry never adds failed
        # attempts towards a lockout of the mentor's account.
        response = self.http.request(
            "POST",
            LOGIN_PATH,
            idempotent=True,
            data={
                "email": self.email,
                "password": self._password,
                "invite_code": "",
                "instructor_invite_code": "",
                "mentor_invite_code": "",
            },
            headers=headers,
        )
        self.logins += 1
        body = decode_json(response, VENDOR)
        result = body.get("result") if isinstance(body, dict) else None
        token = result.get("token") if isinstance(result, dict) else None
        if token is None and isinstance(body, dict):
            token = body.get("token")  # plain shape, as the seed README has it
        if not isinstance(token, str) or not token.strip():
            raise MalformedResponse("OpenClass: the login response has no result.token")
        self._token = token.strip()
        register_secret(self._token)
        logger.info("signed in to OpenClass")

    # -- calls ---------------------------------------------------------------------
    def _get(self, path: str, *, params: dict[str, Any] | None = None, what: str) -> Any:
        """GET with the token; a 401 signs in again once and repeats the call."""
        if not self._token:
            self.login()
        try:
            response = self._send_get(path, params)
        except AuthError as exc:
            if exc.status != 401:
                raise
            logger.info("OpenClass refused the token on %s (401); signing in again", what)
            self._token = ""
            self.login()
            try:
                response = self._send_get(path, params)
            except AuthError as again:
                if again.status != 401:
                    raise
                raise AuthError(
                    f"OpenClass refused a fresh token on {what} (401)", status=401, body=again.body
                ) from None
        return unwrap(decode_json(response, VENDOR), what=what)

    def _send_get(self, path: str, params: dict[str, Any] | None) -> requests.Response:
        # The token goes in a header literally named `bearer` (contract section 2).
        return self.http.request("GET", path, params=params, headers={"bearer": self._token})

    def list_classes(self) -> list[OpenClassClass]:
        return parse_classes(self._get("/v1/classes", what="the class list"))

    def class_detail(self, class_id: str) -> ClassDetail:
        what = f"class {class_id}"
        payload = self._get(f"/v1/classes/{quote(class_id, safe='')}", what=what)
        return parse_class_detail(payload, class_id=class_id)

    def progression_page(self, class_id: str, page: int, page_size: int) -> ProgressionPage:
        payload = self._get(
            f"/v1/classes/{quote(class_id, safe='')}/progressions",
            params={"page": page, "return_count": page_size, "sort_by_completed_at": -1},
            what=f"class {class_id} progressions page {page}",
        )
        return parse_progression_page(payload, page=page, page_size=page_size, cache=self.records)

    def iter_progression_pages(self, class_id: str, page_size: int) -> Iterator[ProgressionPage]:
        """One parsed page at a time (0-based), while `metadata.can_load_more` holds."""
        page = 0
        while True:
            result = self.progression_page(class_id, page, page_size)
            yield result
            if not result.can_load_more:
                return
            if not result.fetched:
                # More promised but nothing given: asking on would never end.
                logger.warning(
                    "class %s: page %d was empty but can_load_more was true; stopping",
                    class_id,
                    page,
                )
                return
            page += 1
