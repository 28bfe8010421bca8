"""manage.py enroll_apex FILE [--dry-run] [--json] | --resume RUN_ID

Enrolls a roster CSV's students into APEX classrooms (docs/apex.md). Exit status per
shared/interfaces.md: 0 succeeded (dry runs included), 1 some rows failed, 2 invalid
input or configuration (nothing sent), 4 the run failed as a whole.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from integrations.apex.enroll import ResumeRefused, apex_run_from_path, apex_run_resume
from integrations.cli import JobCommand, os_user
from reports.models import Run, RunKind

USAGE_ERROR = 2


class Command(JobCommand):
    kind = RunKind.APEX_ENROLL
    help = "Enroll the students of a roster CSV (ClassroomName,StudentId) into APEX classrooms."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("file", nargs="?", metavar="FILE", help="The roster CSV.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate and report what would be sent; send nothing (not even a login).",
        )
        parser.add_argument(
            "--resume",
            type=int,
            metavar="RUN_ID",
            help="Finish an interrupted run: sends only the rows it did not get through.",
        )

    def create_run(self, options: dict[str, Any]) -> Run:
        triggered_by = f"cli:{os_user()}"
        if options["resume"] is not None:
            if options["file"] or options["dry_run"]:
                raise CommandError(
                    "--resume RUN_ID takes no FILE and no --dry-run: it re-reads the run's "
                    "stored roster.",
                    returncode=USAGE_ERROR,
                )
            try:
                return apex_run_resume(run_id=options["resume"], triggered_by=triggered_by)
            except Run.DoesNotExist:
                raise CommandError(
                    f"There is no run {options['resume']}.", returncode=USAGE_ERROR
                ) from None
            except ResumeRefused as exc:
                raise CommandError(str(exc), returncode=USAGE_ERROR) from None
        if not options["file"]:
            raise CommandError("Give the roster FILE (or --resume RUN_ID).", returncode=USAGE_ERROR)
        return apex_run_from_path(
            options["file"], dry_run=options["dry_run"], triggered_by=triggered_by
        )
