"""The run report email: who gets it, what it holds, and that it really goes out by SMTP."""

import csv
import email
import io
import socket
from email import policy

import pytest
from django.core import mail

from reports.constants import ErrorClass
from reports.mail import run_report_recipients, run_report_send
from reports.models import RunStatus

pytestmark = pytest.mark.django_db

SECRETS = ("oc-pass-Zq81xx", "canvas-token-77abcdef", "apex-secret-Kk12")


def partial_items():
    return [
        {"key": "s1", "label": "Ada L", "group": "Unit 1", "outcome": "created"},
        {
            "key": "s2",
            "label": "=HYPERLINK(1)",
            "group": "Unit 1",
            "outcome": "failed",
            "error_class": ErrorClass.NOT_FOUND,
            "message": "Student s2 is not in the class",
            "data": {"email": "s2@example.com", "grade": 0.5},
        },
        {"key": "s3", "label": "Cy D", "group": "Unit 2", "outcome": "created"},
    ]


@pytest.fixture
def vendor_secrets(settings):
    settings.OPENCLASS_PASSWORD, settings.CANVAS_TOKEN, settings.APEX_CLIENT_SECRET = SECRETS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Collector:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.mark.smtp
def test_report_goes_out_over_real_smtp(settings, run_factory, admin_user, vendor_secrets):
    from aiosmtpd.controller import Controller

    port = free_port()
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.MAILERS = {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": "127.0.0.1", "port": port},
            }
        }
        settings.REPORT_RECIPIENTS = ["ops@example.com", "ADA@example.com"]
        run = run_factory(
            status=RunStatus.PARTIAL,
            user=admin_user,
            counts={"fetched": 3, "created": 2, "failed": 1},
            items=partial_items(),
        )
        assert run_report_send(run=run) == 1
    finally:
        controller.stop()

    assert len(handler.envelopes) == 1
    envelope = handler.envelopes[0]
    # ada@example.com is the run's user and already listed (other case): one copy only.
    assert envelope.rcpt_tos == ["ops@example.com", "ADA@example.com"]
    raw = envelope.content.decode("utf-8", "replace")
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    # A long subject is folded onto a continuation line; unfolded it keeps a leading space.
    assert message["Subject"].strip() == (
        "[Classbridge] OpenClass pull of Cohort A: partly failed (2 created, 1 failed)"
    )
    alternative = next(
        part for part in message.walk() if part.get_content_type() == "multipart/alternative"
    )
    kinds = [part.get_content_type() for part in alternative.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    text = alternative.get_body(("plain",)).get_content()
    html = alternative.get_body(("html",)).get_content()
    for body in (text, html):
        assert "Partly failed" in body
        assert "Student s2 is not in the class" in body
        assert "Unit 2" in body
        assert f"/runs/{run.pk}/" in body
    assert "fetched" in text and "created" in text
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == f"run-{run.pk}-failures.csv"
    for secret in SECRETS:
        assert secret not in raw
    assert "password" not in raw.lower()
    run.refresh_from_db()
    assert run.emailed_at is not None


def test_no_recipients_sends_nothing(settings, run_factory):
    settings.REPORT_RECIPIENTS = []
    run = run_factory()
    assert run_report_send(run=run) == 0
    assert mail.outbox == []
    run.refresh_from_db()
    assert run.emailed_at is None


def test_run_user_alone_gets_the_report(settings, run_factory, mentor_a):
    settings.REPORT_RECIPIENTS = []
    run = run_factory(user=mentor_a)
    assert run_report_send(run=run) == 1
    assert mail.outbox[0].to == ["mia@example.com"]


def test_recipients_are_deduplicated_and_blank_addresses_dropped(settings, run_factory, admin_user):
    settings.REPORT_RECIPIENTS = [
        "reports@example.com",
        " ",
        "Reports@Example.com",
        "ada@example.com",
    ]
    run = run_factory(user=admin_user)
    assert run_report_recipients(run=run) == ["reports@example.com", "ada@example.com"]


def test_user_without_email_adds_nobody(run_factory, django_user_model):
    user = django_user_model.objects.create_user("noemail", password="x", is_staff=True)
    run = run_factory(user=user)
    assert run_report_recipients(run=run) == ["reports@example.com"]


def test_failures_csv_attached_only_when_there_are_failures(run_factory):
    clean = run_factory(counts={"created": 1}, items=partial_items()[:1])
    run_report_send(run=clean)
    assert mail.outbox[-1].attachments == []

    partial = run_factory(status=RunStatus.PARTIAL, items=partial_items())
    run_report_send(run=partial)
    sent = mail.outbox[-1]
    assert len(sent.attachments) == 1
    name, content, mimetype = sent.attachments[0]
    assert (name, mimetype) == (f"run-{partial.pk}-failures.csv", "text/csv")
    assert content.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(content.lstrip("\ufeff"))))
    assert rows[0][:7] == ["seq", "key", "label", "group", "outcome", "error_class", "message"]
    assert rows[0][7:] == ["email", "grade"]
    assert len(rows) == 2
    # The label started a formula: it arrives as text.
    assert rows[1][1:3] == ["s2", "'=HYPERLINK(1)"]
    assert rows[1][7:] == ["s2@example.com", "0.5"]


def test_report_is_multipart_with_html_and_marks_the_run_emailed(run_factory):
    run = run_factory(counts={"created": 3, "failed": 0})
    assert run_report_send(run=run) == 1
    sent = mail.outbox[0]
    assert sent.to == ["reports@example.com"]
    assert sent.subject == "[Classbridge] OpenClass pull of Cohort A: succeeded (3 created)"
    assert "Succeeded" in sent.body
    ((html, mimetype),) = sent.alternatives
    assert mimetype == "text/html" and "<table" in html and "<script" not in html
    run.refresh_from_db()
    assert run.emailed_at is not None


def test_a_failed_send_leaves_the_run_unmarked(settings, run_factory):
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        }
    }
    run = run_factory()
    with pytest.raises(OSError):
        run_report_send(run=run)
    run.refresh_from_db()
    assert run.emailed_at is None
