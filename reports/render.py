"""A run's report: one context, rendered as the email (subject, text, HTML) and the run page.

The email and the page read the same `run_report(run)` dict so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from reports import selectors
from reports.changes import run_changes_context
from reports.constants import ErrorClass
from reports.models import Run, RunStatus

# The email lists this many failures; the rest are in the attached CSV and on the run page.
EMAIL_FAILURE_LIMIT = 200

STATUS_MEANINGS = {
    RunStatus.QUEUED: "Waiting for a worker to pick it up.",
    RunStatus.RUNNING: "In progress.",
    RunStatus.SUCCEEDED: "Finished, and every item went through.",
    RunStatus.PARTIAL: "Finished, but some items failed: they are listed below.",
    RunStatus.FAILED: "Stopped as a whole before finishing: the message says why.",
    RunStatus.HELD: "Held by a guardrail before anything was sent: nothing changed.",
    RunStatus.INVALID: "The input or configuration could not be used: nothing was sent.",
}

# Colours of app.css (--ok, --warn, --bad, --brand), inlined for email clients.
STATUS_COLOURS = {
    RunStatus.SUCCEEDED: ("#1e7b4a", "#e3f4ea"),
    RunStatus.PARTIAL: ("#8a5a00", "#fff3d6"),
    RunStatus.HELD: ("#8a5a00", "#fff3d6"),
    RunStatus.FAILED: ("#a3242a", "#fde7e8"),
    RunStatus.INVALID: ("#a3242a", "#fde7e8"),
}
_DEFAULT_COLOURS = ("#1f5f8b", "#e6f0f8")

# Counts read best in the order a job produces them; unknown keys follow, alphabetically.
COUNT_ORDER = (
    "rows",
    "pages",
    "fetched",
    "created",
    "updated",
    "unchanged",
    "enrolled",
    "already_enrolled",
    "removed",
    "skipped",
    "failed",
)
# The subject line names only what changed, and always the failures.
_SUBJECT_COUNTS = ("created", "updated", "enrolled", "removed")


@dataclass(frozen=True)
class EmailParts:
    subject: str
    text: str
    html: str


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def count_rows(counts: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) pairs in reading order: "already_enrolled" → "already enrolled"."""
    known = [key for key in COUNT_ORDER if key in counts]
    others = sorted(key for key in counts if key not in COUNT_ORDER)
    return [(key.replace("_", " "), counts[key]) for key in known + others]


def counts_summary(counts: dict[str, Any]) -> str:
    """What changed, then the failures, which are always named: "3 created, 0 failed"."""
    parts = [f"{counts[key]} {key}" for key in _SUBJECT_COUNTS if counts.get(key)]
    parts.append(f"{counts.get('failed', 0)} failed")
    return ", ".join(parts)


def run_title(run: Run) -> str:
    """The kind and what it was about ("OpenClass pull of Cohort A"), or just the kind."""
    kind = run.get_kind_display()
    return f"{kind} of {run.subject}" if run.subject else kind


def run_url(run: Run) -> str:
    return settings.SITE_URL + reverse("reports:detail", args=[run.pk])


def run_report(run: Run, *, failure_limit: int = EMAIL_FAILURE_LIMIT) -> dict[str, Any]:
    """Everything a report shows, from stored data only (a few queries, never a vendor)."""
    status = RunStatus(run.status)
    failures_total = selectors.run_failures(run=run).count()
    failures = list(selectors.run_failures(run=run)[:failure_limit]) if failures_total else []
    error_labels = dict(ErrorClass.choices)
    colour, background = STATUS_COLOURS.get(status, _DEFAULT_COLOURS)
    headline = f"{status.label.lower()} ({counts_summary(run.counts)})"
    title = run_title(run)
    return {
        "run": run,
        "title": title,
        "kind_label": run.get_kind_display(),
        "status": status.value,
        "status_label": status.label,
        "status_meaning": STATUS_MEANINGS[status],
        "status_colour": colour,
        "status_background": background,
        "headline": headline,
        "dry_run": run.dry_run,
        "subject": run.subject,
        "triggered_by": run.triggered_by,
        "user_email": run.user.email if run.user_id and run.user else "",
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration": format_duration(run.duration_seconds),
        "exit_code": run.exit_code,
        "stage_timings": [
            {"name": name, "duration": format_duration(seconds)}
            for name, seconds in (run.stage_timings or {}).items()
        ],
        "counts": count_rows(run.counts or {}),
        "groups": selectors.run_group_rows(run=run),
        "error_rows": selectors.run_error_rows(run=run) if failures_total else [],
        "failures": failures,
        "failures_total": failures_total,
        "failures_more": max(failures_total - len(failures), 0),
        "message": run.message,
        "error_class": run.error_class,
        "error_class_label": error_labels.get(run.error_class, run.error_class),
        "run_url": run_url(run),
        "failures_csv_url": settings.SITE_URL + reverse("reports:failures_csv", args=[run.pk]),
        **run_changes_context(run),
    }


def render_email(name: str, context: dict[str, Any]) -> EmailParts:
    """emails/<name>_subject.txt, <name>.txt and <name>.html, rendered with one context."""
    return EmailParts(
        subject=_one_line(render_to_string(f"emails/{name}_subject.txt", context)),
        text=render_to_string(f"emails/{name}.txt", context),
        html=render_to_string(f"emails/{name}.html", context),
    )


def _one_line(text: str) -> str:
    # A header is one line: template whitespace and a subject holding a newline collapse.
    return " ".join(text.split())


def render_run_report_email(run: Run) -> EmailParts:
    return render_email("run_report", run_report(run))


def render_run_report_subject(run: Run) -> str:
    return _one_line(render_to_string("emails/run_report_subject.txt", run_report(run)))


def render_run_report_text(run: Run) -> str:
    return render_to_string("emails/run_report.txt", run_report(run))


def render_run_report_html(run: Run) -> str:
    return render_to_string("emails/run_report.html", run_report(run))
