"""Logging that never leaks a secret, in text or JSON, with the run it belongs to.

Import-light on purpose: settings.LOGGING loads it before Django's apps are ready.

- `RedactSecretsFilter` (integrations.redact) sits on every handler and cleans the message,
  the exception text and the stack; `RedactingFormatter` and `JsonFormatter` redact what
  they emit once more, so nothing formatted later can bring a secret back.
- `job_log_context(tracker)` marks everything logged while a run's job executes with the
  run id, kind and current stage (`JobContextFilter` copies them onto each record).
- `RedactingAdminEmailHandler` is Django's mail_admins handler with the subject and the
  technical traceback (which lists local variables) redacted before they are mailed.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.utils.log import AdminEmailHandler

from integrations.redact import redact

_current_job: contextvars.ContextVar[Any] = contextvars.ContextVar("classbridge_job", default=None)


@contextmanager
def job_log_context(tracker: Any) -> Iterator[None]:
    """Within this block every log record carries the tracker's run id, kind and stage."""
    token = _current_job.set(tracker)
    try:
        yield
    finally:
        _current_job.reset(token)


def job_context() -> dict[str, Any]:
    """`{"run_id", "kind", "stage"}` of the job running in this context, or {}."""
    tracker = _current_job.get()
    run = getattr(tracker, "run", None)
    if run is None:
        return {}
    return {"run_id": run.pk, "kind": run.kind, "stage": run.stage or ""}


class JobContextFilter(logging.Filter):
    """Copies the running job's run_id, kind and stage onto the record (None outside)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = job_context()
        for name in ("run_id", "kind", "stage"):
            if not hasattr(record, name):
                setattr(record, name, context.get(name))
        return True


class RedactingFormatter(logging.Formatter):
    """A text formatter whose whole output (message, traceback, stack) is redacted.

    `%(job)s` in its format is ` [run 42 apex_enroll/enroll]` inside a job, else empty."""

    def format(self, record: logging.LogRecord) -> str:
        context = {name: getattr(record, name, None) for name in ("run_id", "kind", "stage")}
        if context["run_id"] is None:
            context = job_context()
        run_id, stage = context.get("run_id"), context.get("stage") or ""
        record.job = (
            f" [run {run_id} {context.get('kind') or ''}{'/' + stage if stage else ''}]"
            if run_id is not None
            else ""
        )
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the job's run_id, kind and
    stage when inside one, and the traceback as `exception`; every string redacted."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = job_context()
        for name in ("run_id", "kind", "stage"):
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name)
            if value is not None:
                event[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            event["exception"] = redact(record.exc_text)
        if record.stack_info:
            event["stack"] = redact(self.formatStack(record.stack_info))
        return redact(json.dumps(event, default=str))


class RedactingAdminEmailHandler(AdminEmailHandler):
    """mail_admins with the subject, the text and any HTML traceback redacted."""

    def emit(self, record: logging.LogRecord) -> None:
        from django.conf import settings

        if not settings.ADMINS:  # nothing would be sent: skip building the report
            return
        super().emit(record)

    def send_mail(self, subject: str, message: str, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("html_message"):
            kwargs["html_message"] = redact(kwargs["html_message"])
        super().send_mail(redact(subject), redact(message), *args, **kwargs)
