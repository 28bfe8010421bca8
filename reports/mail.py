"""The run report email: text with an HTML alternative, and the failures as a CSV file.

Sent through Django's default mailer (settings.MAILERS["default"]). Run messages reach
this module already redacted by the jobs, and items carry no credentials, so nothing here
can leak a secret that the run record itself does not hold.

The attachment holds at most REPORT_ATTACHMENT_MAX_ROWS failures, then a line with the link
to the full CSV on the run page, so a run with 100,000 failures still sends a small mail.
When the relay refuses the message, why is recorded on the run (`Run.email_error`) and
shown on the run page.
"""

from __future__ import annotations

import logging
import smtplib
from itertools import islice

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from reports import selectors
from reports.csvexport import csv_text
from reports.models import Run
from reports.render import render_email, run_report

logger = logging.getLogger(__name__)

EMAIL_ERROR_MAX_CHARS = 1000


def run_report_recipients(*, run: Run) -> list[str]:
    """REPORT_RECIPIENTS, then the user who started the run; each address once."""
    candidates = list(getattr(settings, "REPORT_RECIPIENTS", []) or [])
    if run.user_id and run.user and run.user.email:
        candidates.append(run.user.email)
    recipients: list[str] = []
    seen: set[str] = set()
    for address in candidates:
        address = address.strip()
        # Mailboxes are case-insensitive in practice; one person, one copy.
        if address and address.lower() not in seen:
            seen.add(address.lower())
            recipients.append(address)
    return recipients


def run_failures_filename(run: Run) -> str:
    return f"run-{run.pk}-failures.csv"


def run_report_send(*, run: Run) -> int:
    """Email the run's report. Returns the number of messages sent (0 without recipients).

    A refusal by the mail relay (or no relay at all) is recorded on the run as
    `email_error` and raised again; a later successful send clears it.
    """
    recipients = run_report_recipients(run=run)
    if not recipients:
        logger.info("run %s: no report recipients, report not emailed", run.pk)
        return 0
    context = run_report(run)
    failures_total = context["failures_total"]
    cap = max(0, int(settings.REPORT_ATTACHMENT_MAX_ROWS))
    attached = min(failures_total, cap)
    context["attachment_rows"] = attached
    context["attachment_capped"] = failures_total > cap
    parts = render_email("run_report", context)
    message = EmailMultiAlternatives(
        subject=parts.subject,
        body=parts.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach_alternative(parts.html, "text/html")
    if attached:
        header, rows = selectors.run_failure_table(run=run)
        rows = list(islice(rows, attached))
        if failures_total > attached:
            rows.append(
                [
                    f"Only the first {attached} of {failures_total} failures are attached. "
                    f"Every failure: {context['failures_csv_url']}"
                ]
            )
        message.attach(run_failures_filename(run), csv_text(header, rows), "text/csv")
    try:
        sent = message.send()
    except (smtplib.SMTPException, OSError) as exc:
        _record_email_error(run, relay_error_text(exc, size=len(message.message().as_bytes())))
        raise
    if sent:
        run.emailed_at = timezone.now()
        run.email_error = ""
        Run.objects.filter(pk=run.pk).update(emailed_at=run.emailed_at, email_error="")
    return sent


def _record_email_error(run: Run, text: str) -> None:
    run.email_error = text
    Run.objects.filter(pk=run.pk).update(email_error=text)


def relay_error_text(exc: BaseException, *, size: int | None = None) -> str:
    """What an operator needs to know about a refused report, without the relay password.
    `size`: the message's size in bytes, named when the relay refused it as too large."""
    options = settings.MAILERS.get("default", {}).get("OPTIONS", {})
    where = f"{options.get('host', '?')}:{options.get('port', '?')}" if "host" in options else ""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(
            f"{address} ({code} {_decode(reply)})"
            for address, (code, reply) in exc.recipients.items()
        )
        text = f"The mail relay refused every recipient: {refused}"
    elif isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == 552:
        # 552: too large (RFC 5321), answered to MAIL FROM (SIZE) or to DATA.
        text = f"The mail relay refused the message ({exc.smtp_code} {_decode(exc.smtp_error)})"
        if size:
            text += (
                f"; it was {size // 1024} KiB: lower REPORT_ATTACHMENT_MAX_ROWS to send a "
                "smaller failures attachment"
            )
    elif isinstance(exc, smtplib.SMTPSenderRefused):
        text = (
            f"The mail relay refused the sender {exc.sender} ({exc.smtp_code} "
            f"{_decode(exc.smtp_error)}); check DEFAULT_FROM_EMAIL"
        )
    elif isinstance(exc, smtplib.SMTPAuthenticationError):
        text = (
            f"The mail relay refused the sign-in ({exc.smtp_code} {_decode(exc.smtp_error)}); "
            "check the user and password in EMAIL_URL"
        )
    elif isinstance(exc, smtplib.SMTPResponseException):
        text = f"The mail relay refused the message ({exc.smtp_code} {_decode(exc.smtp_error)})"
    elif isinstance(exc, smtplib.SMTPException):
        text = f"The mail relay failed: {exc}"
    else:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        text = f"Could not reach the mail relay{f' at {where}' if where else ''}: {reason}"
    password = options.get("password") or ""
    if password:
        text = text.replace(password, "[redacted]")
    text = " ".join(text.split())
    return text[:EMAIL_ERROR_MAX_CHARS]


def _decode(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
