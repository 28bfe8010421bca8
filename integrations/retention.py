"""Retention: what Classbridge keeps, and for how long.

`retention_prune()` runs daily (declared by integrations.schedules.schedules_sync) and
deletes what has outlived its setting (0 keeps it forever):

- stored rosters (DATA_DIR/rosters and their RosterUpload rows) older than
  RETENTION_ROSTER_DAYS, except those a queued, running or held run still needs;
- the items of runs finished more than RETENTION_RUN_ITEMS_DAYS ago (held runs excepted).
  The run itself keeps its status, counts, message and stage timings, and is marked
  `items_pruned_at`, so its page says the items were pruned;
- stored Titan plans (DATA_DIR/titan/plans) with the run items, after
  RETENTION_RUN_ITEMS_DAYS: a plan goes once it is older than that and no run still open
  (queued, running, held) or finished within that time names it;
- captured mail (the `filemail://` directory's `.log` files) older than
  RETENTION_MAIL_DAYS.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from integrations.models import RosterUpload
from integrations.titan.store import plan_dir
from reports.models import FINISHED_STATUSES, Run, RunItem, RunKind, RunStatus

logger = logging.getLogger(__name__)

BATCH = 500
# A stored roster whose upload is older than this may still be a partial write in progress.
PART_FILE_GRACE = timedelta(days=1)


@dataclass
class PruneCounts:
    rosters: int = 0
    roster_files: int = 0
    runs: int = 0
    items: int = 0
    plan_files: int = 0
    mail_files: int = 0


def retention_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Prune everything past its retention setting; returns what was deleted."""
    now = now or timezone.now()
    counts = PruneCounts()
    _prune_rosters(now, counts)
    _prune_run_items(now, counts)
    _prune_plans(now, counts)
    _prune_mail(now, counts)
    logger.info(
        "retention: %d rosters (%d files), items of %d runs (%d items), %d plans, "
        "%d mail files pruned",
        counts.rosters,
        counts.roster_files,
        counts.runs,
        counts.items,
        counts.plan_files,
        counts.mail_files,
    )
    return asdict(counts)


def _cutoff(now: datetime, setting: str) -> datetime | None:
    days = int(getattr(settings, setting))
    return now - timedelta(days=days) if days > 0 else None


def _prune_rosters(now: datetime, counts: PruneCounts) -> None:
    cutoff = _cutoff(now, "RETENTION_ROSTER_DAYS")
    if cutoff is None:
        return
    # Rosters that a run not yet finished (or held, waiting for a person) will read again.
    open_runs = Run.objects.exclude(status__in=FINISHED_STATUSES - {RunStatus.HELD})
    needed_ids: set[int] = set()
    needed_hashes: set[str] = set()
    for params in open_runs.values_list("params", flat=True).iterator():
        if isinstance(params, dict):
            if isinstance(params.get("roster_id"), int):
                needed_ids.add(params["roster_id"])
            if isinstance(params.get("sha256"), str):
                needed_hashes.add(params["sha256"])
    old = RosterUpload.objects.filter(created_at__lt=cutoff).exclude(pk__in=needed_ids)
    old = old.exclude(sha256__in=needed_hashes)
    candidates = list(old.values_list("pk", "sha256"))
    if candidates:
        RosterUpload.objects.filter(pk__in=[pk for pk, _sha in candidates]).delete()
        counts.rosters = len(candidates)
    # A file goes once no upload row (kept or recent) names it any more.
    still_named = set(RosterUpload.objects.values_list("sha256", flat=True))
    directory = Path(settings.DATA_DIR) / "rosters"
    if not directory.is_dir():
        return
    oldest_allowed = cutoff.timestamp()
    for path in directory.iterdir():
        if not path.is_file() or path.stem in still_named or path.stem in needed_hashes:
            continue
        if path.suffix not in (".csv", ".part"):
            continue
        mtime = path.stat().st_mtime
        if path.suffix == ".part":
            # A crashed upload's leftover, or one being written right now.
            oldest_allowed_part = (now - PART_FILE_GRACE).timestamp()
            if mtime >= oldest_allowed_part:
                continue
        elif mtime >= oldest_allowed:
            continue
        path.unlink(missing_ok=True)
        counts.roster_files += 1


def _prune_run_items(now: datetime, counts: PruneCounts) -> None:
    cutoff = _cutoff(now, "RETENTION_RUN_ITEMS_DAYS")
    if cutoff is None:
        return
    runs = (
        Run.objects.filter(
            status__in=FINISHED_STATUSES - {RunStatus.HELD},
            finished_at__lt=cutoff,
            items_pruned_at__isnull=True,
        )
        .filter(Exists(RunItem.objects.filter(run=OuterRef("pk"))))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    while True:
        batch = list(runs[:BATCH])
        if not batch:
            return
        deleted, _per_model = RunItem.objects.filter(
            run_id__in=batch, run__finished_at__lt=cutoff, run__items_pruned_at__isnull=True
        ).delete()
        # Conditional on the same state, so a run resumed meanwhile is left alone.
        counts.runs += Run.objects.filter(
            pk__in=batch, items_pruned_at__isnull=True, finished_at__lt=cutoff
        ).update(items_pruned_at=now)
        counts.items += deleted


def _prune_plans(now: datetime, counts: PruneCounts) -> None:
    cutoff = _cutoff(now, "RETENTION_RUN_ITEMS_DAYS")
    directory = plan_dir()
    if cutoff is None or not directory.is_dir():
        return
    # A plan is a Titan run's per-row detail, like its items: kept while a run open or
    # finished within the retention names it (a held run's plan waits for its approval).
    recent = Run.objects.filter(kind=RunKind.TITAN_SYNC).exclude(
        status__in=FINISHED_STATUSES - {RunStatus.HELD}, finished_at__lt=cutoff
    )
    needed = {
        params.get("plan_hash")
        for params in recent.values_list("params", flat=True).iterator()
        if isinstance(params, dict)
    }
    oldest_allowed = cutoff.timestamp()
    for path in directory.iterdir():
        if path.suffix not in (".json", ".part") or not path.is_file() or path.stem in needed:
            continue
        if path.stat().st_mtime < oldest_allowed:
            path.unlink(missing_ok=True)
            counts.plan_files += path.suffix == ".json"


def _prune_mail(now: datetime, counts: PruneCounts) -> None:
    cutoff = _cutoff(now, "RETENTION_MAIL_DAYS")
    directory = captured_mail_dir()
    if cutoff is None or directory is None or not directory.is_dir():
        return
    oldest_allowed = cutoff.timestamp()
    for path in directory.iterdir():
        # Django's file backend writes <timestamp>-<id>.log; nothing else is ours to delete.
        if path.suffix == ".log" and path.is_file() and path.stat().st_mtime < oldest_allowed:
            path.unlink(missing_ok=True)
            counts.mail_files += 1


def captured_mail_dir() -> Path | None:
    """The directory `filemail://` mail is written to, or None with another mailer."""
    mailer = settings.MAILERS.get("default", {})
    if not str(mailer.get("BACKEND", "")).endswith("filebased.EmailBackend"):
        return None
    file_path = mailer.get("OPTIONS", {}).get("file_path")
    return Path(file_path) if file_path else None
