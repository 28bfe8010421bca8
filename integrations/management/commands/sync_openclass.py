"""manage.py sync_openclass: pull an OpenClass class's progressions into a cohort.

Exit status and the --json summary follow ../shared/interfaces.md (see integrations/cli.py).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from integrations.cli import JobCommand, os_user
from integrations.openclass.pull import openclass_run_start
from reports.models import Run, RunKind


class Command(JobCommand):
    kind = RunKind.OPENCLASS_SYNC
    help = (
        "Pull an OpenClass class's progressions into a cohort (created on first use). "
        "Exit status: 0 succeeded, 1 some records failed, 2 invalid input or configuration, "
        "4 the run failed (vendor unreachable, login refused, unknown class)."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--class-id", required=True, help="The OpenClass class id (24 hex characters)."
        )
        parser.add_argument(
            "--cohort-name",
            default="",
            help="Name of the cohort; default: the class's name at OpenClass.",
        )

    def create_run(self, options: dict[str, Any]) -> Run:
        # An empty --class-id still gets a run, so it is recorded as invalid (exit 2) with
        # the --json summary like every other outcome.
        class_id = (options["class_id"] or "").strip()
        run, created = openclass_run_start(
            class_id=class_id,
            cohort_name=(options["cohort_name"] or "").strip(),
            triggered_by=f"cli:{os_user()}",
        )
        if not created:
            # One live pull per class (its lock key): this one would only repeat it.
            raise CommandError(
                f"A pull of class {class_id} is already under way: run {run.pk} "
                f"({run.get_status_display().lower()}). Wait for it to finish.",
                returncode=2,
            )
        return run
