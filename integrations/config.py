"""Validation of the settings a job needs, before any vendor call.

A missing, empty or malformed value raises ConfigError naming the variable; the job then
stops with status `invalid` (exit 2). Secret values are never echoed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from integrations.http import ConfigError, register_secret


def require(*names: str, secret: tuple[str, ...] = ()) -> dict[str, str]:
    values: dict[str, str] = {}
    missing = [n for n in names if not str(getattr(settings, n, "") or "").strip()]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set "
            "(environment or .env); see docs/configuration.md"
        )
    for name in names:
        value = str(getattr(settings, name)).strip()
        if name.endswith("_BASE_URL"):
            value = base_url(name, value)
        if name in secret:
            register_secret(value)
        values[name] = value
    return values


def base_url(name: str, value: str) -> str:
    """A *_BASE_URL is scheme and host (and port) only; the client appends the paths."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be a URL like https://host, got {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            f"{name} must be the scheme and host only (e.g. https://api.example.com), "
            f"without a path; got {value!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"
