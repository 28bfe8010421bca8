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
from reports.models import Approval, Run, RunKind, RunStatus
from reports.sections import report_sections

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

# Totals describe the input ("20 rows", "13 pages"); outcomes are where each item ended,
# one outcome per item, so the outcomes add up to the items. Unknown keys follow,
# alphabetically, as outcomes.
TOTAL_KEYS = ("rows", "pages", "fetched", "classrooms", "requests", "students", "assignments")
OUTCOME_KEYS = (
    "created",
    "updated",
    "unchanged",
    "enrolled",
    "already_enrolled",
    "would_send",
    "removed",
    "skipped",
    "failed",
)
COUNT_ORDER = TOTAL_KEYS + OUTCOME_KEYS
# A part of another count, never a tile of its own (that would count it twice): it is
# named in the note of the count that includes it ("9 failed, of which 4 invalid rows").
INCLUDED_IN = {"invalid": ("failed", "invalid")}
# Labels in words: no code of the database reaches a person.
COUNT_LABELS = {
    "already_enrolled": "already enrolled",
    "would_send": "would be sent",
    "rows": "rows in the file",
    "fetched": "records fetched",
    "requests": "requests",
}
OUTCOME_LABELS = {
    "already_enrolled": "already enrolled",
    "would_send": "would be sent",
    "invalid": "invalid",
    "skipped": "skipped",
}
# What a status means when the run was a dry run: nothing was sent, so nothing "went through".
DRY_RUN_LABELS = {
    RunStatus.SUCCEEDED: "Dry run passed",
    RunStatus.PARTIAL: "Dry run found problems",
}
DRY_RUN_MEANINGS = {
    RunStatus.SUCCEEDED: (
        "A rehearsal: the input was checked and nothing was sent to the vendor. "
        "The counts say what would be sent."
    ),
    RunStatus.PARTIAL: (
        "A rehearsal: nothing was sent to the vendor, and some items would fail: "
        "they are listed below."
    ),
}
DRY_RUN_LIMITS = (
    "A dry run cannot know what only the vendor can answer (for example an unknown "
    "classroom or student, or an enrollment that already exists): those are found "
    "when the run is sent for real."
)


@dataclass(frozen=True)
class CountRow:
    key: str
    label: str
    value: Any
    note: str = ""
    total: bool = False

    @property
    def bad(self) -> bool:
        return self.key == "failed" and bool(self.value)

    # Templates written for (label, value) pairs still unpack a row.
    def __iter__(self):
        return iter((self.label, self.value))


def count_label(key: str) -> str:
    return COUNT_LABELS.get(key, key.replace("_", " "))


def outcome_label(code: str) -> str:
    """An item's outcome in words: "already_enrolled" → "already enrolled"."""
    return OUTCOME_LABELS.get(code, (code or "").replace("_", " "))


_TRIGGERS = {
    "user": "{name}, from a page",
    "cli": "{name}, from the command line",
    "schedule": "the schedule {name}",
    "system": "Classbridge ({name})",
}


def trigger_words(triggered_by: str) -> str:
    """Who started a run, in words: "user:ada" → "ada, from a page"."""
    prefix, _, name = (triggered_by or "").partition(":")
    template = _TRIGGERS.get(prefix)
    if template is None or not name:
        return triggered_by
    return template.format(name=name)


def status_label(run: Run) -> str:
    status = RunStatus(run.status)
    if run.dry_run and status in DRY_RUN_LABELS:
        return DRY_RUN_LABELS[status]
    return status.label


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


def count_rows(counts: dict[str, Any]) -> list[CountRow]:
    """The counts in reading order, totals first; a part of another count is a note on
    that count, not a row of its own, so the outcome rows add up to the items."""
    counts = counts or {}
    notes: dict[str, list[str]] = {}
    hidden = set()
    for key, (parent, noun) in INCLUDED_IN.items():
        if key in counts and parent in counts:
            hidden.add(key)
            if counts[key]:
                notes.setdefault(parent, []).append(f"of which {counts[key]} {noun}")
    # An outcome that did not happen is not a tile ("0 enrolled" in a dry run misleads);
    # failures are always shown, even none.
    hidden |= {key for key in OUTCOME_KEYS if key != "failed" and counts.get(key) == 0}
    known = [key for key in COUNT_ORDER if key in counts and key not in hidden]
    others = sorted(key for key in counts if key not in COUNT_ORDER and key not in hidden)
    return [
        CountRow(
            key=key,
            label=count_label(key),
            value=counts[key],
            note=", ".join(notes.get(key, [])),
            total=key in TOTAL_KEYS,
        )
        for key in known + others
    ]


def counts_summary(counts: dict[str, Any]) -> str:
    """What happened, in words, out of what: "10 already enrolled, 9 failed of 20 rows".

    Each outcome that happened is named once (a part of another count is not added to
    it); the total is the input's rows when the run had a file."""
    counts = counts or {}
    outcomes = [
        key
        for key in OUTCOME_KEYS + tuple(sorted(counts))
        if key not in TOTAL_KEYS and key not in INCLUDED_IN
    ]
    parts, seen = [], set()
    for key in outcomes:
        if key in seen or not isinstance(counts.get(key), int) or not counts.get(key):
            continue
        seen.add(key)
        parts.append(f"{counts[key]} {count_label(key)}")
    text = ", ".join(parts) if parts else "nothing recorded"
    if counts.get("rows"):
        text += f" of {counts['rows']} rows"
    return text


def run_title(run: Run) -> str:
    """The kind and what it was about ("OpenClass pull of Cohort A"), or just the kind."""
    kind = run.get_kind_display()
    return f"{kind} of {run.subject}" if run.subject else kind


def run_links(run: Run, *, absolute: bool = True) -> list[dict[str, str]]:
    """What the run touched, as links a person can follow: the cohort it pulled, the file
    it sent. From the run's stored parameters only (reports never imports integrations)."""
    params = run.params or {}
    site = settings.SITE_URL if absolute else ""
    links = []
    if params.get("cohort_id"):
        links.append(
            {
                "label": "Cohort",
                "text": params.get("cohort_name") or run.subject or f"Cohort {params['cohort_id']}",
                "url": site + reverse("cohorts:detail", args=[params["cohort_id"]]),
            }
        )
    # The APEX preview of the stored file (another kind's files have pages of their own).
    if params.get("roster_id") and run.kind == RunKind.APEX_ENROLL:
        links.append(
            {
                "label": "File",
                "text": params.get("file_name") or run.subject or "the uploaded file",
                "url": site + reverse("integrations:apex_preview", args=[params["roster_id"]]),
            }
        )
    # A Titan run: its plan of the file (the plan page), the preview it applied, and the
    # run it undoes.
    if params.get("roster_id") and run.kind == RunKind.TITAN_SYNC:
        links.append(
            {
                "label": "File",
                "text": params.get("file_name") or run.subject or "the uploaded file",
                "url": site + reverse("integrations:titan_plan", args=[run.pk]),
            }
        )
    for key, label in (("preview_of", "Preview"), ("undo_of", "Undoes")):
        if params.get(key):
            links.append(
                {
                    "label": label,
                    "text": f"run #{params[key]}",
                    "url": site + reverse("reports:detail", args=[params[key]]),
                }
            )
    return links


# A run that touched many cohorts (a bulk pull) links this many of them, from its items.
ITEM_LINKS = 20


def item_links(run: Run, *, absolute: bool = True) -> list[dict[str, str]]:
    """The cohorts a run's items name (`data.cohort_id`), e.g. each course of a bulk
    Canvas pull; empty when the run's own parameters name its cohort."""
    if (run.params or {}).get("cohort_id"):
        return []
    site = settings.SITE_URL if absolute else ""
    rows = (
        run.items.filter(data__has_key="cohort_id")
        .order_by("seq", "id")
        .values_list("label", "key", "data")[:ITEM_LINKS]
    )
    links, seen = [], set()
    for label, key, data in rows:
        cohort_id = (data or {}).get("cohort_id")
        if not isinstance(cohort_id, int) or cohort_id in seen:
            continue
        seen.add(cohort_id)
        links.append(
            {
                "label": "Cohort",
                "text": label or key or f"Cohort {cohort_id}",
                "url": site + reverse("cohorts:detail", args=[cohort_id]),
            }
        )
    return links


def subject_url(run: Run) -> str:
    """Where the runs list's subject points: the thing the run touched, else the run."""
    links = run_links(run, absolute=False)
    return links[0]["url"] if links else reverse("reports:detail", args=[run.pk])


def run_url(run: Run) -> str:
    return settings.SITE_URL + reverse("reports:detail", args=[run.pk])


def run_report(run: Run, *, failure_limit: int = EMAIL_FAILURE_LIMIT) -> dict[str, Any]:
    """Everything a report shows, from stored data only (a few queries, never a vendor)."""
    status = RunStatus(run.status)
    failures_total = selectors.run_failures(run=run).count()
    failures = list(selectors.run_failures(run=run)[:failure_limit]) if failures_total else []
    error_labels = dict(ErrorClass.choices)
    colour, background = STATUS_COLOURS.get(status, _DEFAULT_COLOURS)
    approvals = list(Approval.objects.filter(run=run).order_by("decided_at", "id"))
    plan_hash = (run.params or {}).get("plan_hash")
    awaiting_approval = (
        status == RunStatus.HELD
        and bool(plan_hash)
        and not any(a.plan_hash == plan_hash for a in approvals)
    )
    label = status_label(run)
    summary = counts_summary(run.counts)
    headline = f"{label.lower()} ({summary})"
    if awaiting_approval:
        headline = f"held, waiting for approval ({summary})"
    title = run_title(run)
    meaning = (
        DRY_RUN_MEANINGS.get(status, STATUS_MEANINGS[status])
        if run.dry_run
        else STATUS_MEANINGS[status]
    )
    return {
        "run": run,
        "title": title,
        "kind_label": run.get_kind_display(),
        "status": status.value,
        "status_label": label,
        "status_meaning": meaning,
        "summary": summary,
        "dry_run_label": label != status.label,
        "dry_run_limits": DRY_RUN_LIMITS if run.dry_run else "",
        "status_colour": colour,
        "status_background": background,
        "headline": headline,
        "dry_run": run.dry_run,
        "subject": run.subject,
        "triggered_by": trigger_words(run.triggered_by),
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
        "approvals": approvals,
        "awaiting_approval": awaiting_approval,
        "sections": report_sections(run, row_limit=EMAIL_FAILURE_LIMIT),
        "error_class": run.error_class,
        "error_class_label": error_labels.get(run.error_class, run.error_class),
        "run_url": run_url(run),
        "links": run_links(run) + item_links(run),
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
