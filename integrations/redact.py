"""Redaction of secrets from anything that reaches a log, a report or a page.

Import-light on purpose: the logging config loads it before Django's apps are ready.
"""

from __future__ import annotations

import logging
import re
import threading

_registered_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_TOKENISH = re.compile(
    r"(?i)(bearer[\"']?\s*[:=]?\s*|access_token[\"']?\s*[:=]\s*[\"']?|"
    r"password=|client_secret[\"']?\s*[:=]\s*[\"']?|api[-_]key[\"']?\s*[:=]\s*[\"']?)"
    r"([A-Za-z0-9._~+/=-]{6,})"
)


def register_secret(value: str | None) -> None:
    """Remember a secret so redact() removes it from any text (logs, reports, errors)."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _registered_secrets.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    with _secrets_lock:
        secrets = sorted(_registered_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return _TOKENISH.sub(lambda m: m.group(1) + "[redacted]", text)


class RedactSecretsFilter(logging.Filter):
    """Logging filter on every handler: no registered secret or token-looking value reaches
    it, in the message, the exception text (traceback included) or the stack."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            message = None
        if message is not None:
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Formatters use exc_text when it is set, so the traceback they print is this one.
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
