"""What the technical 500 page (DEBUG) and error emails may show.

Django's filter hides settings by name (KEY, SECRET, PASS, ...). A URL setting such as
DATABASE_URL, REDIS_URL or EMAIL_URL, or a copy of one (Q_CLUSTER["redis"], a value in
request.META, a local variable), carries its password inside the value instead:
`CredentialsCleansingFilter` also replaces the `user:password@` part of every URL found in
a setting, a META value or a frame variable. Set as DEFAULT_EXCEPTION_REPORTER_FILTER in
config/settings.py.

The exception's own message can carry one too (a driver error quoting its DSN, a requests
error quoting a URL): `CredentialsCleansingReporter` (DEFAULT_EXCEPTION_REPORTER) scrubs
the message, its notes and every chained exception shown on the page, in its text
traceback and in the error mail.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

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


class CredentialsCleansingReporter(ExceptionReporter):
    """Django's reporter, with URL credentials scrubbed from the exception messages."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        # Django hands the page the exception object (and its cause) and prints them with
        # str(): hand it the same text, scrubbed.
        for key in ("exception_value", "exception_notes"):
            if data.get(key) is not None:
                data[key] = credentials_scrub(str(data[key]))
        for frame in data.get("frames", ()):
            if frame.get("exc_cause") is not None:
                frame["exc_cause"] = credentials_scrub(str(frame["exc_cause"]))
            # Variables arrive here already formatted: an exception object in a variable
            # (the filter sees only strings, dicts, lists) is scrubbed as text.
            if "vars" in frame:
                frame["vars"] = [(k, credentials_scrub(str(v))) for k, v in frame["vars"]]
        return data


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
