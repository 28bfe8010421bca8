"""manage.py setup_schedules: make the pull schedules match the cohorts (idempotent)."""

from django.core.management.base import BaseCommand

from integrations.schedules import schedules_sync


class Command(BaseCommand):
    help = "Create, update or remove the per-cohort pull schedules. Safe to run any time."

    def handle(self, *args, **options) -> None:
        changes = schedules_sync()
        self.stdout.write(
            f"schedules: {changes.created} created, {changes.updated} updated, "
            f"{changes.unchanged} unchanged, {changes.removed} removed"
        )
        if changes.unsupported:
            self.stdout.write(
                f"{changes.unsupported} cohort(s) with an interval not scheduled: no "
                "registered kind pulls their source yet (see the cohort admin)."
            )
