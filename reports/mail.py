"""The run report email: text with an HTML alternative, and the failures as a CSV file.

Sent through Django's default mailer (settings.MAILERS["default"]). Run messages reach
this module already redacted by the jobs, and items carry no credentials, so nothing here
can leak a secret that the run record itself does not hold.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from reports import selectors
from reports.csvexport import csv_text
from reports.models import Run
from reports.render import render_run_report_email
from reports.services import run_mark_emailed

logger = logging.getLogger(__name__)


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
    """Email the run's report. Returns the number of messages sent (0 without recipients)."""
    recipients = run_report_recipients(run=run)
    if not recipients:
        logger.info("run %s: no report recipients, report not emailed", run.pk)
        return 0
    parts = render_run_report_email(run)
    message = EmailMultiAlternatives(
        subject=parts.subject,
        body=parts.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach_alternative(parts.html, "text/html")
    if selectors.run_failures(run=run).exists():
        header, rows = selectors.run_failure_table(run=run)
        message.attach(run_failures_filename(run), csv_text(header, rows), "text/csv")
    sent = message.send()
    if sent:
        run_mark_emailed(run=run)
    return sent
