"""What the technical 500 page (DEBUG) and error emails may show.

Django's filter hides settings by name (KEY, SECRET, PASS, ...). A URL setting such as
DATABASE_URL, REDIS_URL or EMAIL_URL, or a copy of one (Q_CLUSTER["redis"], a value in
request.META, a local variable), carries its password inside the value instead:
`CredentialsCleansingFilter` also replaces the `user:password@` part of every URL found in
a setting, a META value or a frame variable. Set as DEFAULT_EXCEPTION_REPORTER_FILTER in
config/settings.py.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# scheme://userinfo@ : the userinfo (user, password or token) ends at the last "@" before
# the host; it never holds "/", whitespace or quotes.
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^/\s\"'<>]*)@", re.I)
HIDDEN = "********"


def credentials_scrub(text: str) -> str:
    """`text` with the credentials of every URL in it replaced: the user stays readable,
    the password (or a lone token) does not."""

    def replace(match: re.Match) -> str:
        user, colon, _ = match["userinfo"].partition(":")
        shown = f"{user}:{HIDDEN}" if colon else HIDDEN
        return f"{match['scheme']}{shown}@"

    return _USERINFO.sub(replace, text)


class CredentialsCleansingFilter(SafeExceptionReporterFilter):
    """Django's filter, plus URL credentials scrubbed from every string it shows."""

    # Django's names, plus the URLs' own names for good measure (a URL setting without
    # credentials is still readable: only its password is replaced, see cleanse_setting).
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CREDENTIAL", flags=re.I
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        return _scrub(cleansed)

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, _scrub(value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


def _scrub(value: Any) -> Any:
    # Exact types only: a QueryDict or a namedtuple keeps its own shape (and repr).
    kind = type(value)
    if kind is str:
        return credentials_scrub(value)
    if kind is dict:
        return {k: _scrub(v) for k, v in value.items()}
    if kind in (list, tuple):
        return kind(_scrub(v) for v in value)
    return value
