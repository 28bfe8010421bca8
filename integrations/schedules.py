"""Per-cohort pull schedules, declared in one idempotent place.

`schedules_sync()` makes the django-q2 Schedule rows match the cohorts: one schedule per
cohort with `sync_interval_hours` set whose source has a pull kind in the registry (a
`JobKind` with a `schedule`, integrations/registry.py), none for the others. Every
schedule calls the same task, `integrations.tasks.cohort_pull_scheduled(cohort_id)`,
which starts the pull of the cohort's source. It is called by `manage.py setup_schedules`
and when an admin saves a cohort — never from `AppConfig.ready()`, which would duplicate
schedules and break `migrate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from cohorts.models import Cohort
from integrations import registry
from notifications.schedules import notification_schedules_sync

PREFIX = "classbridge:cohort-pull:cohort-"
TASK = "integrations.tasks.cohort_pull_scheduled"
# Before every source could be scheduled, OpenClass pulls had their own names and task;
# such rows are renamed (kept, not duplicated) by the next schedules_sync().
LEGACY_PREFIX = "classbridge:openclass-pull:cohort-"
REAPER = "classbridge:runs-reap"
HEARTBEAT = "classbridge:worker-heartbeat"
RETENTION = "classbridge:retention-prune"


@dataclass
class ScheduleChanges:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    # Cohorts with an interval whose source no registered kind pulls: no schedule.
    unsupported: int = 0


def schedule_name(cohort_id: int) -> str:
    return f"{PREFIX}{cohort_id}"


@transaction.atomic
def schedules_sync() -> ScheduleChanges:
    changes = ScheduleChanges()
    Schedule.objects.update_or_create(
        name=REAPER,
        defaults={
            "func": "integrations.tasks.runs_reap",
            "schedule_type": Schedule.MINUTES,
            "minutes": 5,
            "repeats": -1,
        },
    )
    Schedule.objects.update_or_create(
        name=HEARTBEAT,
        defaults={
            "func": "integrations.tasks.worker_heartbeat",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
            # Not kept among the task results: one a minute would crowd out the runs'.
            "kwargs": "q_options={'save': False}",
        },
    )
    notification_schedules_sync()  # mentor digests and stale-data alerts
    Schedule.objects.update_or_create(
        name=RETENTION,
        defaults={
            "func": "integrations.retention.retention_prune",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )
    pulled = set(registry.scheduled_sources())
    wanted: dict[str, Cohort] = {}
    for cohort in Cohort.objects.filter(sync_interval_hours__gt=0).order_by("pk"):
        if cohort.source in pulled:
            wanted[schedule_name(cohort.pk)] = cohort
        else:
            changes.unsupported += 1
    existing = {s.name: s for s in Schedule.objects.filter(name__startswith=PREFIX)}
    for legacy in Schedule.objects.filter(name__startswith=LEGACY_PREFIX):
        suffix = legacy.name.removeprefix(LEGACY_PREFIX)
        name = schedule_name(int(suffix)) if suffix.isdigit() else None
        if name in wanted and name not in existing:
            legacy.name = name  # brought up to date (task, args, interval) below
            legacy.save(update_fields=["name"])
            existing[name] = legacy
        else:
            legacy.delete()
            changes.removed += 1
    for name, schedule in existing.items():
        if name not in wanted:
            schedule.delete()
            changes.removed += 1
    for name, cohort in wanted.items():
        minutes = cohort.sync_interval_hours * 60
        current = existing.get(name)
        if (
            current
            and current.func == TASK
            and current.args == repr(cohort.pk)
            and current.minutes == minutes
            and current.schedule_type == Schedule.MINUTES
        ):
            changes.unchanged += 1
            continue
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": TASK,
                "args": repr(cohort.pk),
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
                # First pull one interval after the last one (or soon, if never pulled).
                "next_run": (cohort.last_synced_at or timezone.now())
                + (timedelta(minutes=minutes) if cohort.last_synced_at else timedelta(minutes=1)),
            },
        )
        if current:
            changes.updated += 1
        else:
            changes.created += 1
    return changes
