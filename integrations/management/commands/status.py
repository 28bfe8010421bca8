"""manage.py status: what the Cohort Tracker's status printed, per cohort, plus the last
run of each kind."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db.models import Count

from cohorts.models import Cohort, Progression
from reports.models import Run, RunKind


def config_source(names: tuple[str, ...]) -> str:
    """Where a vendor's settings come from, without revealing any value."""
    in_env = [n for n in names if os.environ.get(n)]
    if not in_env:
        return "not configured"
    env_file = settings.ENV_FILE
    if env_file.exists():
        text = env_file.read_text(encoding="utf-8", errors="replace")
        from_file = [
            n for n in in_env if any(ln.strip().startswith(f"{n}=") for ln in text.splitlines())
        ]
        if from_file:
            return f"{env_file}"
    return "environment"


class Command(BaseCommand):
    help = "Counts per cohort (students, assignments, progressions, last sync) and last runs."

    def handle(self, *args, **options) -> None:
        out = self.stdout
        out.write(f"Database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
        out.write(
            "OpenClass config: "
            + config_source(("OPENCLASS_EMAIL", "OPENCLASS_PASSWORD", "OPENCLASS_BASE_URL"))
            + f" (base {settings.OPENCLASS_BASE_URL})"
        )
        cohorts = Cohort.objects.annotate(
            n_students=Count("enrollments", distinct=True),
            n_assignments=Count("assignments", distinct=True),
        ).order_by("name")
        progression_counts = dict(
            Progression.objects.values("cohort").annotate(n=Count("id")).values_list("cohort", "n")
        )
        if not cohorts:
            out.write("No cohorts yet. Pull one: manage.py sync_openclass --class-id ID")
        for c in cohorts:
            last = c.last_synced_at.isoformat(timespec="seconds") if c.last_synced_at else "never"
            status = f" ({c.last_sync_status})" if c.last_sync_status else ""
            out.write("")
            out.write(f"{c.name}  [{c.source} {c.external_id}]")
            out.write(f"  students:     {c.n_students}")
            out.write(f"  assignments:  {c.n_assignments}")
            out.write(f"  progressions: {progression_counts.get(c.pk, 0)}")
            out.write(f"  last sync:    {last}{status}")
            if c.sync_interval_hours:
                out.write(f"  schedule:     every {c.sync_interval_hours} h")
        out.write("")
        out.write("Last runs:")
        for kind in RunKind:
            run = Run.objects.filter(kind=kind).order_by("-created_at", "-id").first()
            if run is None:
                out.write(f"  {kind.label:<16} none")
                continue
            when = (run.finished_at or run.created_at).isoformat(timespec="seconds")
            out.write(f"  {kind.label:<16} #{run.pk} {run.status} at {when} ({run.subject})")
