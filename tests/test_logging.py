"""Secrets never reach a log handler, in text or JSON, and JSON lines carry the run."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail

from integrations import jobs
from integrations.logs import JsonFormatter, RedactingAdminEmailHandler, RedactingFormatter
from integrations.redact import RedactSecretsFilter, register_secret
from reports.models import RunKind, RunStatus
from reports.services import run_create
from tests.fake_jobs import LEAKY_SECRET

ROOT = Path(__file__).resolve().parent.parent


def configured_handlers() -> list[logging.Handler]:
    """Every handler on every logger, except pytest's own capture handlers and libraries'
    NullHandlers (which write nothing)."""
    loggers = [logging.getLogger()] + [
        item
        for item in logging.Logger.manager.loggerDict.values()
        if isinstance(item, logging.Logger)
    ]
    handlers = {id(h): h for lg in loggers for h in lg.handlers}
    return [
        h
        for h in handlers.values()
        if not type(h).__module__.startswith("_pytest") and not isinstance(h, logging.NullHandler)
    ]


def test_every_handler_redacts_django_q_included():
    import django_q.conf  # noqa: F401 - adds its own handler to a logger that has none

    handlers = configured_handlers()
    names = {h.name for h in handlers}
    assert {"console", "mail_admins"} <= names
    for handler in handlers:
        assert any(isinstance(f, RedactSecretsFilter) for f in handler.filters), handler
        if isinstance(handler, RedactingAdminEmailHandler):
            continue  # redacts what it mails (tested below)
        assert isinstance(handler.formatter, RedactingFormatter | JsonFormatter), handler
    assert logging.getLogger("django-q").propagate
    assert not [h for h in logging.getLogger("django-q").handlers if h not in handlers]


@pytest.fixture
def console():
    """The configured console handler, writing into a buffer for the test."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    buffer = io.StringIO()
    old_stream, old_formatter = handler.setStream(buffer), handler.formatter
    yield handler, buffer
    handler.setStream(old_stream)
    handler.setFormatter(old_formatter)


@pytest.mark.django_db
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_secret_carried_by_a_crashing_job_reaches_no_handler(
    fake_openclass_job, settings, console, log_format
):
    register_secret(LEAKY_SECRET)
    fake_openclass_job("leaky_job")
    settings.ADMINS = ["ops@example.com"]
    settings.DEBUG = False  # mail_admins only mails when DEBUG is off
    handler, buffer = console
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    run = run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="test", params={})
    jobs.job_execute(run.pk, send_report=False)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED

    output = buffer.getvalue()
    admin_mails = [m for m in mail.outbox if m.to == ["ops@example.com"]]
    assert admin_mails, "the crash reached mail_admins"
    texts = [output, run.message] + [m.subject + m.body for m in admin_mails]
    for text in texts:
        assert LEAKY_SECRET not in text
    # The traceback is still there, cause included, only the secret is gone.
    for text in [output, admin_mails[0].body]:
        assert "Traceback (most recent call last)" in text
        assert "RuntimeError" in text and "login with [redacted] failed" in text
        assert "ValueError" in text and "vendor said: bad password [redacted]" in text
    if log_format == "text":
        assert (
            f"integrations.jobs [run {run.pk} openclass_sync/fetch]: run {run.pk} crashed" in output
        )
    if log_format == "json":
        events = [json.loads(line) for line in output.splitlines()]
        crash = next(e for e in events if e["message"] == f"run {run.pk} crashed")
        assert crash["run_id"] == run.pk and crash["kind"] == RunKind.OPENCLASS_SYNC
        assert crash["stage"] == "fetch" and crash["level"] == "ERROR"
        assert "Traceback" in crash["exception"]


def test_json_lines_outside_a_job_carry_no_run():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    event = json.loads(JsonFormatter().format(record))
    assert event["message"] == "hello world" and "run_id" not in event


def test_an_args_secret_and_a_stack_are_redacted_by_the_filter():
    register_secret("stack-secret-123")
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "token %s",
        ("stack-secret-123",),
        None,
        sinfo="at stack-secret-123",
    )
    RedactSecretsFilter().filter(record)
    assert record.getMessage() == "token [redacted]" and "stack-secret-123" not in record.stack_info


PROBE = """
import logging, django
django.setup()
from integrations.redact import register_secret
register_secret("probe-secret-4242")
try:
    raise KeyError("probe-secret-4242")
except KeyError:
    logging.getLogger("integrations.probe").exception("failed with %s", "probe-secret-4242")
logging.getLogger("django-q").error("q says probe-secret-4242")
"""


def run_probe(tmp_path, **env) -> subprocess.CompletedProcess:
    base = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CLASSBRIDGE_DATA_DIR": str(tmp_path),
        "DEBUG": "true",
    }
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_log_format_json_writes_one_redacted_object_a_line(tmp_path):
    result = run_probe(tmp_path, LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["logger"] for e in events] == ["integrations.probe", "django-q"]
    assert "KeyError" in events[0]["exception"]
    assert "probe-secret-4242" not in result.stderr


def test_log_format_text_is_redacted_too(tmp_path):
    result = run_probe(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" in result.stderr and "q says [redacted]" in result.stderr
    assert "probe-secret-4242" not in result.stderr


def test_an_unknown_log_format_is_refused_naming_the_setting(tmp_path):
    result = run_probe(tmp_path, LOG_FORMAT="xml")
    assert result.returncode != 0 and "LOG_FORMAT" in result.stderr


@pytest.mark.django_db
def test_log_lines_from_apex_worker_threads_carry_the_run(apex, tmp_path, console):
    from integrations.apex.enroll import apex_run_from_path
    from integrations.simulator import Response

    handler, buffer = console
    handler.setFormatter(JsonFormatter())
    sim = apex()
    sim.fail_next("POST", r"^/classrooms/CLS-1/students$", Response.json({}, status=503))
    roster = tmp_path / "roster.csv"
    roster.write_text("ClassroomName,StudentId\nCLS-1,S1\n")
    run = apex_run_from_path(roster, dry_run=False, triggered_by="test")
    jobs.job_execute(run.pk, send_report=False)
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    retried = [e for e in events if e["logger"] == "integrations.http" and "503" in e["message"]]
    assert retried, events
    assert retried[0]["run_id"] == run.pk and retried[0]["stage"] == "enroll"
    assert retried[0]["kind"] == RunKind.APEX_ENROLL
