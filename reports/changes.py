"""The "what changed" section of a pull's report, from its `change` run items.

A pull records one `summary` item per cohort (the counts, in reading order, with their
labels) and one item per change (`integrations.changes`); this module reads them back for
the report email and the run page, for any pull kind, without knowing any vendor: counts
first, then the top few items of each kind, then a link to the full list.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from reports.models import Run, RunItem

CHANGE_OUTCOME = "change"
# Items of each kind the report shows; the full list has them all.
TOP_ITEMS = 5


def _url(name: str, *args: Any) -> str:
    try:
        return settings.SITE_URL + reverse(name, args=args)
    except NoReverseMatch:
        return ""


def changes_url(run: Run) -> str:
    return _url("reports:changes", run.pk)


def run_changes(run: Run, *, top: int | None = TOP_ITEMS) -> list[dict[str, Any]]:
    """Per cohort the pull touched: name, link, counts (label, n) and, per kind of change,
    its first `top` items (all with `top=None`) and how many more there are."""
    cohorts: dict[Any, dict[str, Any]] = {}
    sections: dict[tuple[Any, str], dict[str, Any]] = {}
    rows = (
        RunItem.objects.filter(run=run, outcome=CHANGE_OUTCOME)
        .order_by("seq", "id")
        .values_list("key", "label", "message", "data")
    )
    for key, label, message, data in rows.iterator():
        data = data if isinstance(data, dict) else {}
        cohort_id = data.get("cohort_id")
        cohort = cohorts.get(cohort_id)
        if cohort is None:
            cohort = cohorts[cohort_id] = {
                "cohort_id": cohort_id,
                "name": data.get("cohort") or label,
                "url": _url("cohorts:detail", cohort_id) if cohort_id else "",
                "counts": [],
                "summary": "",
                "sections": [],
            }
        if data.get("change") == "summary":
            cohort["counts"] = [
                {"key": k, "label": lab, "n": n} for k, lab, n in data.get("counts", []) if n
            ]
            cohort["summary"] = message
            continue
        category = str(data.get("change") or "other")
        section = sections.get((cohort_id, category))
        if section is None:
            section = sections[(cohort_id, category)] = {
                "key": category,
                "label": data.get("change_label") or category,
                "items": [],
                "more": 0,
            }
            cohort["sections"].append(section)
        if top is not None and len(section["items"]) >= top:
            section["more"] += 1
            continue
        student_id = data.get("student_id")
        section["items"].append(
            {
                "key": key,
                "label": label,
                "message": message,
                "url": _url("cohorts:student", cohort_id, student_id)
                if cohort_id and student_id
                else "",
            }
        )
    return list(cohorts.values())


def run_changes_context(run: Run, *, top: int | None = TOP_ITEMS) -> dict[str, Any]:
    """What the report templates read: `changes` (per cohort) and `changes_url`."""
    changes = run_changes(run, top=top)
    return {
        "changes": changes,
        "changes_url": changes_url(run) if changes else "",
        "changes_truncated": any(s["more"] for c in changes for s in c["sections"]),
    }
