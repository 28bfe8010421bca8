"""Reads of runs and their items, for the run pages, the report email and the CSV."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from reports.constants import ErrorClass
from reports.models import Run, RunItem

# Columns of the failures CSV before the items' own data fields.
FAILURE_COLUMNS = ("seq", "key", "label", "group", "outcome", "error_class", "message")

# What the runs list shows; the big JSON params and stage timings stay in the database.
_LIST_FIELDS = (
    "id",
    "kind",
    "status",
    "dry_run",
    "subject",
    "triggered_by",
    "created_at",
    "started_at",
    "finished_at",
    "counts",
    "params",
)


def run_list(
    *,
    kind: str = "",
    status: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[Run]:
    """Runs, newest first, filtered on kind, status and the local day they were created."""
    runs = Run.objects.only(*_LIST_FIELDS).order_by("-created_at", "-id")
    if kind:
        runs = runs.filter(kind=kind)
    if status:
        runs = runs.filter(status=status)
    # Dates are the operator's calendar days, so bound them in the site's time zone.
    if date_from:
        runs = runs.filter(created_at__gte=_day_start(date_from))
    if date_to:
        runs = runs.filter(created_at__lt=_day_start(date_to + timedelta(days=1)))
    return runs


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def run_get(*, pk: int) -> Run:
    return Run.objects.select_related("user").get(pk=pk)


@dataclass(frozen=True)
class GroupRow:
    group: str
    items: int
    ok: int
    failed: int


def run_group_rows(*, run: Run) -> list[GroupRow]:
    """Items per group (classroom, page, site…): how many, how many went through, failed.

    Runs whose items carry no group get an empty list, so the report skips the table.
    """
    rows = (
        RunItem.objects.filter(run=run)
        .exclude(group="")
        .values("group")
        .annotate(
            items=Count("id"),
            failed=Count("id", filter=~Q(error_class="")),
        )
        .order_by("group")
    )
    return [
        GroupRow(
            group=row["group"],
            items=row["items"],
            ok=row["items"] - row["failed"],
            failed=row["failed"],
        )
        for row in rows
    ]


def run_failures(*, run: Run) -> QuerySet[RunItem]:
    return RunItem.objects.filter(run=run).exclude(error_class="").order_by("seq", "id")


@dataclass(frozen=True)
class ErrorRow:
    error_class: str
    label: str
    count: int


def run_error_rows(*, run: Run) -> list[ErrorRow]:
    """Failed items per error class, most frequent first: what went wrong, at a glance."""
    labels = dict(ErrorClass.choices)
    rows = (
        run_failures(run=run)
        .order_by()
        .values("error_class")
        .annotate(count=Count("id"))
        .order_by("-count", "error_class")
    )
    return [
        ErrorRow(
            error_class=row["error_class"],
            label=labels.get(row["error_class"], row["error_class"]),
            count=row["count"],
        )
        for row in rows
    ]


def run_items(*, run: Run, failures_only: bool = False) -> QuerySet[RunItem]:
    items = RunItem.objects.filter(run=run).order_by("seq", "id")
    if failures_only:
        items = items.exclude(error_class="")
    return items


def run_failure_table(*, run: Run) -> tuple[list[str], Iterator[list[Any]]]:
    """Header and rows of the failures CSV: fixed columns, then every data key seen, sorted.

    Two passes over the failures: the first only collects the data keys (so the header is
    complete before the first row streams out), the second yields the rows.
    """
    failures = run_failures(run=run)
    data_keys: list[str] = []
    seen: set[str] = set()
    for data in failures.values_list("data", flat=True).iterator():
        for key in data if isinstance(data, dict) else ():
            if key not in seen:
                seen.add(key)
                data_keys.append(key)
    # Sorted: PostgreSQL's jsonb does not keep key order, and the columns must not move.
    data_keys.sort()
    # A data key named like a fixed column would be ambiguous in a spreadsheet.
    header = list(FAILURE_COLUMNS) + [
        f"data.{key}" if key in FAILURE_COLUMNS else key for key in data_keys
    ]

    def rows() -> Iterator[list[Any]]:
        for item in failures.iterator():
            data = item.data if isinstance(item.data, dict) else {}
            yield [
                item.seq,
                item.key,
                item.label,
                item.group,
                item.outcome,
                item.error_class,
                item.message,
                *(data.get(key) for key in data_keys),
            ]

    return header, rows()


def run_children(*, run: Run) -> list[Run]:
    """The runs a parent run started (params `parent_run_id`), the latest one per child key
    (`params.child_key`: a retried child replaces the one it retries), in start order."""
    latest: dict[str, Run] = {}
    for child in Run.objects.filter(params__parent_run_id=run.pk).order_by("id"):
        latest[str(child.params.get("child_key", child.pk))] = child
    return sorted(latest.values(), key=lambda c: c.pk)


def children_stats(children: list[Run]) -> dict[str, Any]:
    """Success rate and average time of a parent's finished children."""
    finished = [c for c in children if c.is_finished]
    ok = [c for c in finished if c.status in ("succeeded", "partial")]
    durations = [c.duration_seconds for c in finished if c.duration_seconds is not None]
    return {
        "total": len(children),
        "finished": len(finished),
        "succeeded": len(ok),
        "failed": len(finished) - len(ok),
        "success_rate": (len(ok) / len(finished)) if finished else None,
        "average_seconds": (sum(durations) / len(durations)) if durations else None,
    }
