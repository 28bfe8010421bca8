"""manage.py retention_prune: apply the retention settings now (the schedule does it daily)."""

import json

from django.core.management.base import BaseCommand

from integrations.retention import retention_prune


class Command(BaseCommand):
    help = (
        "Delete stored rosters, run items and captured mail older than RETENTION_ROSTER_DAYS, "
        "RETENTION_RUN_ITEMS_DAYS and RETENTION_MAIL_DAYS; runs keep their summary and counts."
    )

    def handle(self, *args, **options) -> None:
        self.stdout.write(json.dumps(retention_prune()))
