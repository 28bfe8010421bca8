"""The one HTTP layer every vendor client uses.

One way to build a client (`HttpClient.from_settings`), a timeout on every call, bounded
retries with exponential backoff that honour `Retry-After`, a polite request rate, and a
per-vendor response classifier that turns a response (status, headers and body) into a
typed error. Only idempotent calls are retried unless the caller says a repeat is harmless.
Absolute URLs are followed only to the configured host, redirects never. Vendor JSON is read
through `decode_json`, which strips the control characters PostgreSQL refuses. Everything
that reaches a log or an error is redacted.
"""

from __future__ import annotations

import collections
import email.utils
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from integrations.redact import redact, register_secret  # noqa: F401 - re-exported
from reports.constants import ErrorClass

logger = logging.getLogger("integrations.http")

MAX_RETRY_AFTER_SECONDS = 120.0
# Methods whose repeat leaves the vendor as one call would (RFC 9110 section 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class VendorError(Exception):
    """A vendor call that did not work. `permanent` says whether retrying can help.

    The message and body are redacted here, so no error can carry a registered secret.
    """

    error_class: str = ErrorClass.VENDOR_ERROR
    permanent: bool = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_class: str | None = None,
        permanent: bool | None = None,
        body: str = "",
    ) -> None:
        message = clean_text(redact(message))
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = clean_text(redact(body or ""))[:2000]
        if error_class is not None:
            self.error_class = error_class
        if permanent is not None:
            self.permanent = permanent


class TransientError(VendorError):
    """Network failure, timeout or 5xx: worth retrying (after `retry_after` seconds when
    the vendor said so, e.g. a 503 with Retry-After)."""

    error_class = ErrorClass.TRANSIENT
    permanent = False

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ThrottledError(TransientError):
    error_class = ErrorClass.THROTTLED


class AuthError(VendorError):
    error_class = ErrorClass.AUTH


class PermissionDenied(VendorError):
    """The credentials are good but not allowed to do this (e.g. Canvas 403 unauthorized)."""

    error_class = ErrorClass.PERMISSION


class NotFoundError(VendorError):
    error_class = ErrorClass.NOT_FOUND


class MalformedResponse(VendorError):
    error_class = ErrorClass.MALFORMED


class ConfigError(Exception):
    """A setting a job needs is missing or malformed. The message names the variable."""


Classifier = Callable[[requests.Response], VendorError | None]


# --- Clean vendor strings -------------------------------------------------------------
# NUL and the other C0 controls except tab, newline and carriage return. PostgreSQL refuses
# NUL in text and jsonb; the rest only garble pages and CSVs.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Lone UTF-16 surrogates ("\ud800" in JSON) cannot be encoded as UTF-8, so the database
# driver would refuse them too.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


_DIRTY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def clean_text(value: str) -> str:
    """`value` without NUL and other C0 controls (tab, newline, CR kept); lone surrogates
    become U+FFFD."""
    if _DIRTY.search(value) is None:  # nearly always: one scan, no copy
        return value
    value = _CONTROL.sub("", value)
    return _SURROGATE.sub("\ufffd", value)


def clean_strings(value: Any) -> Any:
    """`value` (decoded JSON) with every string cleaned by `clean_text`, keys included."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {
            (clean_text(key) if isinstance(key, str) else key): clean_strings(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [clean_strings(item) for item in value]
    return value


def describe(response: requests.Response) -> str:
    """`METHOD /path` of the request that got `response`, for messages (no query string,
    which may carry a credential)."""
    request = response.request
    method = getattr(request, "method", None) or "?"
    path = urlsplit(getattr(request, "url", None) or response.url or "").path or "/"
    return f"{method} {path}"


# The escape of a C0 control or of a surrogate: only a text holding one (or a raw control
# character, which strict parsing refuses) can decode to a string that needs cleaning. Tab,
# newline and CR escapes match too and only cost the walk.
_DIRTY_ESCAPE = re.compile(r"\\u(?:00[01]|[dD][89a-fA-F])")


def loads_clean(text: str | bytes) -> Any:
    """json.loads, with every string cleaned by `clean_strings` when the text can hold
    anything to clean (most texts cannot, and are not walked). Raw control characters inside
    strings, which strict JSON refuses, are accepted and stripped; bytes that are not valid
    in the text's encoding become U+FFFD."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = json.loads(text, strict=False)  # still invalid: raises ValueError
        return clean_strings(data)
    return clean_strings(data) if "\\u" in text and _DIRTY_ESCAPE.search(text) else data


def decode_json(response: requests.Response, vendor: str) -> Any:
    """The response's JSON with every string cleaned; MalformedResponse when it is not JSON."""
    try:
        return loads_clean(response.content or b"")
    except (ValueError, UnicodeDecodeError):
        raise MalformedResponse(
            f"{vendor}: {describe(response)} answered HTTP {response.status_code} with a "
            "body that is not JSON",
            status=response.status_code,
            body=_body_text(response),
        ) from None


def _body_text(response: requests.Response) -> str:
    try:
        return response.content[:4000].decode("utf-8", "replace")
    except Exception:  # a streamed or consumed body: nothing to show
        return ""


# --- Classification -------------------------------------------------------------------
def default_classify(response: requests.Response, vendor: str) -> VendorError | None:
    """429 -> ThrottledError (with Retry-After), 5xx -> TransientError, else None."""
    status = response.status_code
    if status == 429:
        return ThrottledError(
            f"{vendor}: throttled (HTTP 429) on {describe(response)}",
            status=429,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            body=_body_text(response),
        )
    if status >= 500:
        return TransientError(
            f"{vendor}: server error {status} on {describe(response)}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            body=_body_text(response),
        )
    return None


# --- Rate limiting --------------------------------------------------------------------
class RateLimiter:
    """At most `per_second` calls in any second, as the vendor counts them (0 or less: no
    limit), across threads.

    A vendor counts a call when it arrives, which is somewhere between the moment it left
    here and the moment its answer came back, so spacing the starts alone is not enough:
    network and scheduling jitter can bring two spaced calls closer on arrival. Hence two
    rules: starts are paced `1 / per_second` apart on average (smooth pacing), and a call
    starts only a full window after the call `burst` places before it *finished* (`done`).
    So any window of that length receives at most `burst` calls whatever the jitter:
    `burst = floor(per_second)` calls a second, or, below one a second, one call every
    `1 / per_second` seconds. Call `wait()` before sending and `done(slot)` once the answer
    (or the error) is back.

    The pacing lets starts run ahead of the even spacing by up to a tenth of a second's
    calls (`BURST_SECONDS`; none below ten a second): threads whose answers come back
    together are not each held another `1 / per_second` when the rate is far from binding
    (issue 11: at 250 a second, four APEX threads waited about 2 ms a request for the
    spacing alone). The window rule above is what keeps the rate, and it is unchanged.
    """

    BURST_SECONDS = 0.1

    def __init__(
        self,
        per_second: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        limited = bool(per_second and per_second > 0)
        self.interval = 1.0 / per_second if limited else 0.0
        self.burst = max(1, math.floor(per_second)) if limited else 0
        self.window = max(1.0, self.interval)
        # How far a start may run ahead of the even spacing (a tenth of a second's calls).
        ahead = min(self.burst, math.floor(per_second * self.BURST_SECONDS)) if limited else 0
        self.tolerance = max(0, ahead - 1) * self.interval
        self._next = 0.0
        self._cond = threading.Condition()
        # The last `burst` slots: [end time], None while that call is still under way.
        self._slots: collections.deque[list[float | None]] = collections.deque()
        self._sleep = sleep
        self._clock = clock

    def wait(self) -> list[float | None] | None:
        """Wait for this call's turn; returns its slot, for `done`."""
        if not self.interval:
            return None
        with self._cond:
            while len(self._slots) >= self.burst and self._slots[0][0] is None:
                self._cond.wait()
            now = self._clock()
            # _next: when this start would be due under even spacing.
            start = max(now, self._next - self.tolerance)
            if len(self._slots) >= self.burst:
                ended = self._slots.popleft()[0]
                assert ended is not None
                start = max(start, ended + self.window)
            self._next = max(self._next, start) + self.interval
            slot: list[float | None] = [None]
            self._slots.append(slot)
        if start > now:
            self._sleep(start - now)
        return slot

    def done(self, slot: list[float | None] | None) -> None:
        """The call of `slot` is over (answered, failed or timed out)."""
        if slot is None:
            return
        with self._cond:
            slot[0] = self._clock()
            self._cond.notify_all()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class RetryPolicy:
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    # Off in tests: backoff and Retry-After are computed and recorded, not slept.
    sleep: Callable[[float], None] = field(default=time.sleep)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_SECONDS)
        base = min(self.backoff_max, self.backoff_base * (2**attempt))
        return base * (0.5 + random.random() / 2)


def retry_policy_from_settings() -> RetryPolicy:
    """The retry policy every vendor client uses: HTTP_MAX_RETRIES, and no real sleeping
    when HTTP_RETRY_SLEEP is off (tests), while delays are still computed and counted."""
    from django.conf import settings

    return RetryPolicy(
        max_retries=settings.HTTP_MAX_RETRIES,
        sleep=time.sleep if settings.HTTP_RETRY_SLEEP else (lambda _seconds: None),
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # a malformed port never matches the configured one
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


_ABSOLUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?//")


class HttpClient:
    """requests.Session with timeout, retries, a rate limit and typed errors."""

    def __init__(
        self,
        base_url: str,
        *,
        vendor: str = "vendor",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rate_per_second: float = 0.0,
        headers: dict[str, str] | None = None,
        session: requests.Session | None = None,
        classify: Classifier | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = _origin(self.base_url)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.limiter = RateLimiter(rate_per_second, sleep=self.retry.sleep)
        self.vendor = vendor
        self.classify: Classifier = classify or (lambda r: default_classify(r, vendor))
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": "Classbridge/0.1", **(headers or {})})
        _environment_read_once(self.session, self.base_url)
        self.retries_done = 0
        self.throttled = 0
        self.slept_seconds = 0.0

    @classmethod
    def from_settings(
        cls,
        *,
        vendor: str,
        base_url: str,
        rate_per_second: float = 0.0,
        headers: dict[str, str] | None = None,
        classify: Classifier | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> HttpClient:
        """THE way a vendor client builds its HTTP client: the retry policy from settings
        (HTTP_MAX_RETRIES, HTTP_RETRY_SLEEP) and the timeout (HTTP_TIMEOUT_SECONDS) unless
        given. `retry` is for tests that want their own policy."""
        from django.conf import settings

        return cls(
            base_url,
            vendor=vendor,
            timeout=settings.HTTP_TIMEOUT_SECONDS if timeout is None else timeout,
            retry=retry or retry_policy_from_settings(),
            rate_per_second=rate_per_second,
            headers=headers,
            session=session,
            classify=classify,
        )

    def url(self, path: str) -> str:
        """The full URL of `path`. An absolute URL (a vendor's paging link) must point at the
        configured scheme, host and port; anything else is refused before it is sent."""
        if not _ABSOLUTE.match(path):
            return f"{self.base_url}/{path.lstrip('/')}"
        url = path if not path.startswith("//") else f"{self.origin[0]}:{path}"
        if _origin(url) != self.origin:
            raise VendorError(
                f"{self.vendor}: refused to follow a link to another host "
                f"({urlsplit(url).hostname or '?'}); only {self.base_url} is called",
                error_class=ErrorClass.MALFORMED,
                permanent=True,
            )
        return url

    def request(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> requests.Response:
        """Send a request and return its response once the classifier finds no error.

        A classified error is raised; when it is not permanent and the call may be repeated
        (`idempotent`, by default True for GET, HEAD, OPTIONS, PUT, DELETE and False for
        POST, PATCH), the call is retried first, up to the policy's limit. Network failures
        and timeouts are TransientErrors, retried the same way; a connection that was never
        made (refused, connect timeout) is retried whatever the method: nothing was sent.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        url = self.url(path)  # before anything is sent
        kwargs.setdefault("timeout", self.timeout)
        # Vendor APIs answer in place; following a redirect could carry a credential header
        # (OpenClass's custom `bearer`, which requests does not strip) to another host.
        kwargs["allow_redirects"] = False
        attempts = self.retry.max_retries + 1
        shown = urlsplit(url).path
        for attempt in range(attempts):
            slot = self.limiter.wait()
            never_sent = False
            try:
                response = self.session.request(method, url, **kwargs)
            except requests.Timeout as exc:
                # A connect timeout means no byte of the request left: safe to repeat.
                never_sent = isinstance(exc, requests.ConnectTimeout)
                error: VendorError = TransientError(
                    f"{self.vendor}: {method} {shown} timed out after {self.timeout}s"
                )
                logger.warning(
                    "%s %s timed out (attempt %d): %s", method, shown, attempt + 1, _short(exc)
                )
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                # ChunkedEncodingError: the connection dropped while the body was read.
                never_sent = _connection_refused(exc)
                error = TransientError(
                    f"{self.vendor}: could not connect for {method} {shown} ({_short(exc)})"
                )
                logger.warning("%s %s connection error (attempt %d)", method, shown, attempt + 1)
            else:
                classified = self.classify(response)
                if classified is None:
                    return response
                error = classified
                if isinstance(error, ThrottledError):
                    self.throttled += 1
                logger.info(
                    "%s %s -> %s, %s (attempt %d)",
                    method,
                    shown,
                    response.status_code,
                    error.error_class,
                    attempt + 1,
                )
            finally:
                self.limiter.done(slot)  # whatever happened: the vendor may have counted it
            # A call that is not idempotent is repeated only when it never left this host.
            if error.permanent or attempt + 1 >= attempts or not (idempotent or never_sent):
                raise error
            retry_after = error.retry_after if isinstance(error, TransientError) else None
            delay = self.retry.delay(attempt, retry_after)
            self.retries_done += 1
            self.slept_seconds += delay
            self.retry.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _environment_read_once(session: requests.Session, base_url: str) -> None:
    """What requests reads from the environment on every call when `trust_env` is on (the
    proxies for the URL, honouring NO_PROXY; REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE; ~/.netrc
    credentials when a call has no auth of its own), read once for the client's one origin
    (`url()` refuses any other) and set on the session. Same settings, without scanning the
    environment and looking for ~/.netrc on each call (about a sixth of requests' own CPU
    per call, issue 11)."""
    if not session.trust_env:
        return
    merged = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies = merged["proxies"]
    session.verify = merged["verify"]
    session.cert = merged["cert"]
    if session.auth is None:
        session.auth = requests.utils.get_netrc_auth(base_url)
    session.trust_env = False


def _connection_refused(exc: Exception) -> bool:
    """True when the TCP connection was never made (refused, no route, DNS): nothing of the
    request was sent, so even a create may be tried again."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3 MaxRetryError wraps the cause
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _short(exc: Exception) -> str:
    return redact(str(exc)[:200])
