"""The one HTTP layer every vendor client uses.

A session with a timeout on every call, bounded retries with exponential backoff that
honour `Retry-After`, a polite request rate, typed errors that say whether a retry can
help, and redaction of secrets from anything that reaches a log or a report.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from integrations.redact import redact, register_secret  # noqa: F401 - re-exported
from reports.constants import ErrorClass

logger = logging.getLogger("integrations.http")

MAX_RETRY_AFTER_SECONDS = 120.0


class VendorError(Exception):
    """A vendor call that did not work. `permanent` says whether retrying can help."""

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
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body[:2000]
        if error_class is not None:
            self.error_class = error_class
        if permanent is not None:
            self.permanent = permanent


class TransientError(VendorError):
    """Network failure, timeout or 5xx: worth retrying."""

    error_class = ErrorClass.TRANSIENT
    permanent = False


class ThrottledError(TransientError):
    error_class = ErrorClass.THROTTLED

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class AuthError(VendorError):
    error_class = ErrorClass.AUTH


class NotFoundError(VendorError):
    error_class = ErrorClass.NOT_FOUND


class MalformedResponse(VendorError):
    error_class = ErrorClass.MALFORMED


class ConfigError(Exception):
    """A setting a job needs is missing or malformed. The message names the variable."""


# --- Rate limiting --------------------------------------------------------------------
class RateLimiter:
    """At most `per_second` calls a second across threads (0 or less: no limit)."""

    def __init__(self, per_second: float, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_second if per_second and per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._sleep = sleep

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            self._sleep(delay)


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
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    # Off in tests: backoff and Retry-After are computed and recorded, not slept.
    sleep: Callable[[float], None] = field(default=time.sleep)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_SECONDS)
        base = min(self.backoff_max, self.backoff_base * (2**attempt))
        return base * (0.5 + random.random() / 2)


class HttpClient:
    """requests.Session with timeout, retries, a rate limit and typed errors."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rate_per_second: float = 0.0,
        headers: dict[str, str] | None = None,
        vendor: str = "vendor",
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.limiter = RateLimiter(rate_per_second, sleep=self.retry.sleep)
        self.vendor = vendor
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": "Classbridge/0.1", **(headers or {})})
        self.retries_done = 0
        self.throttled = 0
        self.slept_seconds = 0.0

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        retry_on: Iterable[int] | None = None,
        retry_methods_ok: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request; retry transient failures; return a 2xx (or a non-retryable)
        response. Raises TransientError/ThrottledError when retries run out.

        `retry_methods_ok=False` makes a non-idempotent call try once only.
        """
        kwargs.setdefault("timeout", self.timeout)
        # Vendor APIs answer in place; following a redirect could carry a credential header
        # (OpenClass's custom `bearer`, which requests does not strip) to another host.
        kwargs.setdefault("allow_redirects", False)
        statuses = frozenset(retry_on) if retry_on is not None else self.retry.retry_statuses
        attempts = (self.retry.max_retries if retry_methods_ok else 0) + 1
        url = self.url(path)
        last_error: VendorError | None = None
        for attempt in range(attempts):
            self.limiter.wait()
            try:
                response = self.session.request(method, url, **kwargs)
            except requests.Timeout as exc:
                last_error = TransientError(f"{self.vendor}: timed out after {self.timeout}s")
                logger.warning("%s %s timed out (attempt %d): %s", method, path, attempt + 1, exc)
                retry_after = None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                # ChunkedEncodingError: the connection dropped while the body was read.
                last_error = TransientError(f"{self.vendor}: could not connect ({_short(exc)})")
                logger.warning("%s %s connection error (attempt %d)", method, path, attempt + 1)
                retry_after = None
            else:
                if response.status_code not in statuses:
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if response.status_code == 429:
                    self.throttled += 1
                    last_error = ThrottledError(
                        f"{self.vendor}: throttled (429)",
                        status=429,
                        retry_after=retry_after,
                        body=redact(response.text),
                    )
                else:
                    last_error = TransientError(
                        f"{self.vendor}: server error {response.status_code}",
                        status=response.status_code,
                        body=redact(response.text),
                    )
                logger.info(
                    "%s %s -> %s (attempt %d/%d)",
                    method,
                    path,
                    response.status_code,
                    attempt + 1,
                    attempts,
                )
            if attempt + 1 < attempts:
                delay = self.retry.delay(attempt, retry_after)
                self.retries_done += 1
                self.slept_seconds += delay
                self.retry.sleep(delay)
        assert last_error is not None
        raise last_error


def _short(exc: Exception) -> str:
    text = str(exc)
    return redact(text[:200])


def retry_policy_from_settings() -> RetryPolicy:
    """The retry policy every vendor client uses: HTTP_MAX_RETRIES, and no real sleeping
    when HTTP_RETRY_SLEEP is off (tests), while delays are still computed and counted."""
    from django.conf import settings

    return RetryPolicy(
        max_retries=settings.HTTP_MAX_RETRIES,
        sleep=time.sleep if settings.HTTP_RETRY_SLEEP else (lambda _seconds: None),
    )
