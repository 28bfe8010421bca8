"""The Titan part of a run's report (page and email): the guardrail verdict per site, the
plan's counts, the removals and the column changes since the last sync."""

from __future__ import annotations

from integrations.titan.plan import ADD, CREATE, REMOVE, ROLES, UPDATE
from integrations.titan.store import plan_load
from reports.models import Run, RunStatus
from reports.sections import ReportSection


def titan_report_sections(run: Run, *, row_limit: int | None = None) -> list[ReportSection]:
    """The report's Titan part: the guardrail verdict per site, the plan, the removals."""
    verdict = run.params.get("verdict")
    if not verdict:
        return []
    approved = run.approvals.filter(
        plan_hash=run.params.get("plan_hash", ""), decision="approved"
    ).exists()
    if verdict["held"] and approved:
        lines = ["Over the limits, sent under the approval recorded for this plan: "]
        lines[0] += " ".join(verdict["reasons"])
    elif verdict["held"]:
        lines = ["Held: " + " ".join(verdict["reasons"])]
    else:
        lines = [
            f"Within limits: {verdict['removals']} of {verdict['current']} memberships "
            f"({verdict['percent']:g}%) removed; limits {verdict['max_removals']} and "
            f"{verdict['max_percent']:g}% overall and per site."
        ]
    site_rows = tuple(
        (
            s["site"],
            s["current"],
            s["add"],
            s["roles"],
            s["remove"],
            f"{s['percent']:g}%",
            f"{s['max_removals']} / {s['max_percent']:g}%" + (" (site)" if s["overridden"] else ""),
        )
        for s in verdict["sites"]
    )
    sections = [
        ReportSection(
            "Guardrail",
            lines=tuple(lines),
            columns=("site", "current", "add", "role changes", "remove", "share", "limits"),
            rows=site_rows,
            warning=verdict["held"],
        )
    ]
    plan = plan_load(run.params.get("plan_hash"))
    if plan is not None:
        c = plan["counts"]
        sections.append(
            ReportSection(
                "Plan",
                lines=(
                    f"Plan {plan['hash'][:12]}: {c[CREATE]} users to create, {c[UPDATE]} to "
                    f"update, {c[ADD]} memberships to add, {c[ROLES]} role sets to change, "
                    f"{c[REMOVE]} memberships to remove; {plan['unchanged']} users unchanged.",
                ),
            )
        )
        removals = [op for op in plan["ops"] if op["op"] == REMOVE]
        if removals:
            shown = removals[:row_limit] if row_limit else removals
            sections.append(
                ReportSection(
                    "Memberships to remove"
                    if run.dry_run or run.status == RunStatus.HELD
                    else "Memberships removed (as planned)",
                    columns=("external_id", "site", "roles it had"),
                    rows=tuple(
                        (op["external_id"], op["site"], ", ".join(op["before"])) for op in shown
                    ),
                    more=len(removals) - len(shown),
                )
            )
    since = run.params.get("since_last") or {}
    if since.get("column_changes"):
        sections.append(
            ReportSection(
                "Columns changed since the last sync",
                lines=(
                    f"Compared with the file of run #{since['run']}:",
                    *since["column_changes"],
                ),
                warning=True,
            )
        )
    return sections
