"""Sign-in throttle: failed sign-ins are counted per account and per client address in the
"signin" cache (a database table, shared by every web process).

- `SIGNIN_MAX_FAILURES_PER_ACCOUNT` failures for one username, or
  `SIGNIN_MAX_FAILURES_PER_ADDRESS` from one client address, within
  `SIGNIN_LOCKOUT_SECONDS` of the first of them lock that account or address for
  `SIGNIN_LOCKOUT_SECONDS`.
- While locked, `SignInThrottleMiddleware` answers the site's and the admin's sign-in POSTs
  with a 429 page before the view runs: the password is not checked at all, and refused
  attempts do not extend the lock.
- A successful sign-in clears its account's failures. It does not clear its address's:
  otherwise one valid account would let an address guess others' passwords for ever.

Times come from `time.time()` and are stored in the entries, so a lock ends on time on any
cache backend (the cache's own expiry only collects old entries). Counting is a read and a
write, not atomic: simultaneous failures may be counted once each only approximately, which
password hashing and the per-address limit keep small.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches

logger = logging.getLogger(__name__)

CACHE_ALIAS = "signin"
ACCOUNT = "account"
ADDRESS = "address"


@dataclass(frozen=True)
class Scope:
    kind: str  # ACCOUNT or ADDRESS
    key: str
    limit: int


def cache():
    return caches[CACHE_ALIAS]


def lockout_seconds() -> int:
    return int(settings.SIGNIN_LOCKOUT_SECONDS)


def client_address(request) -> str:
    """The address a sign-in came from.

    With SIGNIN_TRUSTED_PROXIES = N > 0, the N-th X-Forwarded-For entry from the right (the
    one our nearest trusted proxy's chain recorded); entries further left are whatever the
    client sent and are never used. Otherwise, or when the header is shorter than N, or not
    an IP address: REMOTE_ADDR. An IPv6 address stands for its /64, which one host can
    usually draw addresses from at will.
    """
    remote = request.META.get("REMOTE_ADDR", "") or ""
    candidate = remote
    trusted = int(settings.SIGNIN_TRUSTED_PROXIES)
    if trusted:
        raw = request.META.get("HTTP_X_FORWARDED_FOR", "")
        forwarded = [part.strip() for part in raw.split(",") if part.strip()]
        if len(forwarded) >= trusted:
            candidate = forwarded[-trusted]
    return normalize_address(candidate) or normalize_address(remote) or "unknown"


def normalize_address(value: str) -> str | None:
    """An IPv4 address as is, an IPv6 one as its /64; None when `value` is not an address."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(getattr(address, "ipv4_mapped", None) or address)


def normalize_username(username: str | None) -> str:
    return (username or "").strip().casefold()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:40]


def account_scope(username: str | None) -> Scope:
    return Scope(
        ACCOUNT,
        f"signin:account:{_digest(normalize_username(username))}",
        int(settings.SIGNIN_MAX_FAILURES_PER_ACCOUNT),
    )


def address_scope(address: str) -> Scope:
    return Scope(
        ADDRESS, f"signin:address:{_digest(address)}", int(settings.SIGNIN_MAX_FAILURES_PER_ADDRESS)
    )


def scopes(request, username: str | None) -> list[Scope]:
    found = [account_scope(username), address_scope(client_address(request))]
    return [scope for scope in found if scope.limit > 0]


def locked_until(request, username: str | None) -> float | None:
    """When the later of the account's and the address's locks ends (epoch seconds), or
    None when neither is locked."""
    now = time.time()
    entries = cache().get_many([scope.key for scope in scopes(request, username)])
    ends = [entry.get("locked_until", 0) for entry in entries.values() if entry]
    latest = max(ends, default=0)
    return latest if latest > now else None


def record_failure(request, username: str | None) -> None:
    now = time.time()
    window = lockout_seconds()
    store = cache()
    for scope in scopes(request, username):
        entry = store.get(scope.key) or {}
        if entry.get("locked_until", 0) > now:
            continue  # refused while locked: the lock ends when it said it would
        if entry.get("locked_until") or now - entry.get("since", now) >= window:
            entry = {}  # a lock that ended, or failures from an older window
        failures = entry.get("failures", 0) + 1
        if failures >= scope.limit:
            entry = {"locked_until": now + window}
            _log_lock(scope, request, username, failures, window)
        else:
            entry = {"failures": failures, "since": entry.get("since", now)}
        store.set(scope.key, entry, timeout=window + 60)


def _log_lock(scope: Scope, request, username: str | None, failures: int, window: int) -> None:
    """Tell operators who is locked. A username is named only when such a user exists: what
    people type there is sometimes their password."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    name = (username or "").strip()
    known = (
        bool(name)
        and User._default_manager.filter(**{f"{User.USERNAME_FIELD}__iexact": name}).exists()
    )
    who = f"account {name!r}" if known else "an unknown username"
    if scope.kind == ADDRESS:
        who = f"address {client_address(request)}"
    logger.warning(
        "Sign-in locked for %s for %d s after %d failures (last from %s).",
        who,
        window,
        failures,
        client_address(request),
    )


def record_success(username: str | None) -> None:
    cache().delete(account_scope(username).key)


def unlock(*, username: str | None = None, address: str | None = None) -> None:
    """Clear an account's or an address's failures and lock (manage.py signin_unlock)."""
    if username is not None:
        cache().delete(account_scope(username).key)
    if address is not None:
        cache().delete(address_scope(normalize_address(address) or address).key)


# --- signal receivers (connected in accounts/apps.py) -----------------------------------
def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    if request is None:
        return  # authenticate() called outside a request: nothing to attribute it to
    from django.contrib.auth import get_user_model

    record_failure(request, credentials.get(get_user_model().USERNAME_FIELD))


def on_logged_in(sender, request, user, **kwargs) -> None:
    record_success(user.get_username())
