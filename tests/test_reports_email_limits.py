"""The report email stays small (a capped failures CSV), and a refusal by the mail relay is
recorded on the run and shown on its page. Real local SMTP servers (aiosmtpd) refuse."""

from __future__ import annotations

import csv
import email
import io
import smtplib
import socket
from email import policy

import pytest
from django.core import mail
from django.urls import reverse

from integrations.jobs import report_deliver
from reports.constants import ErrorClass
from reports.mail import run_report_send
from reports.models import RunStatus

pytestmark = pytest.mark.django_db

RELAY_PASSWORD = "relay-pass-Q7x9z"


def failures(n: int) -> list[dict]:
    return [
        {
            "key": f"s{i}",
            "label": f"Student {i} with a fairly long label to make the rows weigh something",
            "group": "Unit 1",
            "outcome": "failed",
            "error_class": ErrorClass.NOT_FOUND,
            "message": f"Student s{i} is not in the class",
        }
        for i in range(1, n + 1)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Relay:
    """A real SMTP server on localhost; `refuse_data` makes it answer DATA with that line."""

    def __init__(self, *, refuse_data: str = "", **controller_kw):
        from aiosmtpd.controller import Controller

        self.refuse_data = refuse_data
        self.envelopes: list = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **controller_kw)

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_data:
            return self.refuse_data
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def use_relay(settings, port: int, **options) -> None:
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5, **options},
        }
    }


def attachment_rows(content: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.lstrip("\ufeff"))))


# --- the cap --------------------------------------------------------------------------
def test_the_attachment_holds_the_first_rows_then_a_link_to_the_full_csv(settings, run_factory):
    settings.REPORT_ATTACHMENT_MAX_ROWS = 10
    run = run_factory(status=RunStatus.PARTIAL, items=failures(30))
    assert run_report_send(run=run) == 1
    sent = mail.outbox[-1]
    ((_name, content, _mimetype),) = sent.attachments
    rows = attachment_rows(content)
    assert rows[0][:2] == ["seq", "key"]
    assert [r[1] for r in rows[1:11]] == [f"s{i}" for i in range(1, 11)]
    full_csv = settings.SITE_URL + reverse("reports:failures_csv", args=[run.pk])
    assert len(rows) == 12
    assert rows[11] == [f"Only the first 10 of 30 failures are attached. Every failure: {full_csv}"]
    assert "The attached CSV holds the first 10 of 30 failures" in sent.body
    assert full_csv in sent.body and full_csv in sent.alternatives[0][0]


def test_under_the_cap_every_failure_is_attached_and_no_note(settings, run_factory):
    settings.REPORT_ATTACHMENT_MAX_ROWS = 30
    run = run_factory(status=RunStatus.PARTIAL, items=failures(30))
    run_report_send(run=run)
    sent = mail.outbox[-1]
    assert len(attachment_rows(sent.attachments[0][1])) == 31
    assert "first 30" not in sent.body and "Only the first" not in sent.attachments[0][1]


def test_a_cap_of_zero_attaches_nothing_and_links_the_csv(settings, run_factory):
    settings.REPORT_ATTACHMENT_MAX_ROWS = 0
    run = run_factory(status=RunStatus.PARTIAL, items=failures(3))
    run_report_send(run=run)
    sent = mail.outbox[-1]
    assert sent.attachments == []
    assert "The failures are not attached" in sent.body
    assert reverse("reports:failures_csv", args=[run.pk]) in sent.body


# --- a relay that refuses -------------------------------------------------------------
@pytest.mark.smtp
def test_a_relay_refusing_a_large_message_is_recorded_then_the_cap_gets_it_through(
    settings, run_factory, client, admin_user
):
    run = run_factory(status=RunStatus.PARTIAL, items=failures(400))
    with Relay(data_size_limit=180_000) as relay:  # the capped report is ~150 kB
        use_relay(settings, relay.port)
        settings.REPORT_ATTACHMENT_MAX_ROWS = 1000
        report_deliver(run)  # as a job does: a mail failure never fails the run
        run.refresh_from_db()
        assert run.emailed_at is None
        assert run.email_error.startswith("The mail relay refused the message (552")
        assert "KiB: lower REPORT_ATTACHMENT_MAX_ROWS" in run.email_error
        assert relay.envelopes == []

        client.force_login(admin_user)
        page = client.get(reverse("reports:detail", args=[run.pk])).content.decode()
        assert "not sent: The mail relay refused the message (552" in page

        settings.REPORT_ATTACHMENT_MAX_ROWS = 20
        assert run_report_send(run=run) == 1
    run.refresh_from_db()
    assert run.email_error == "" and run.emailed_at is not None
    message = email.message_from_bytes(relay.envelopes[0].content, policy=policy.default)
    attachment = next(message.iter_attachments())
    assert len(attachment_rows(attachment.get_content())) == 1 + 20 + 1


@pytest.mark.smtp
def test_a_relay_refusing_the_data_is_recorded_with_its_reply(settings, run_factory):
    run = run_factory(status=RunStatus.PARTIAL, items=failures(2))
    with Relay(refuse_data="554 5.7.1 Message rejected by policy") as relay:
        use_relay(settings, relay.port)
        with pytest.raises(smtplib.SMTPDataError):
            run_report_send(run=run)
    run.refresh_from_db()
    assert (
        run.email_error
        == "The mail relay refused the message (554 5.7.1 Message rejected by policy)"
    )


@pytest.mark.smtp
def test_a_refused_sign_in_names_email_url_and_never_the_password(settings, run_factory):
    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False)

    run = run_factory(status=RunStatus.PARTIAL, items=failures(1))
    with Relay(authenticator=authenticator, auth_require_tls=False) as relay:
        use_relay(settings, relay.port, username="reports@example.com", password=RELAY_PASSWORD)
        report_deliver(run)
    run.refresh_from_db()
    assert "refused the sign-in (535" in run.email_error
    assert "EMAIL_URL" in run.email_error
    assert RELAY_PASSWORD not in run.email_error


def test_no_relay_at_all_is_recorded(settings, run_factory):
    port = free_port()
    use_relay(settings, port)
    run = run_factory()
    report_deliver(run)
    run.refresh_from_db()
    assert run.email_error.startswith(f"Could not reach the mail relay at 127.0.0.1:{port}")
    assert run.emailed_at is None
