"""manage.py sync_titan FILE [--dry-run] [--approve --reason TEXT] [--json]

Syncs a roster CSV's users and site roles into Titan HST (docs/titan.md). Exit status per
shared/interfaces.md: 0 succeeded (dry runs included), 1 some rows or changes failed,
2 invalid input or configuration (nothing sent), 3 held by the guardrail (nothing sent),
4 the run failed as a whole (Titan unreachable, the API key refused).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from integrations.cli import JobCommand, os_user
from integrations.titan.sync import TitanBusy, titan_run_from_path
from reports.models import Run, RunKind

USAGE_ERROR = 2


class Command(JobCommand):
    kind = RunKind.TITAN_SYNC
    help = (
        "Sync the users and site roles of a roster CSV "
        "(external_id,first_name,last_name,email,site_name,role_names) into Titan HST."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("file", metavar="FILE", help="The roster CSV.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Read Titan and plan; report what would change; send no change.",
        )
        parser.add_argument(
            "--approve",
            action="store_true",
            help="Let this run's plan through the removal guardrail, once (needs --reason). "
            "Recorded with your OS user name; never carried over to a later run.",
        )
        parser.add_argument("--reason", default="", metavar="TEXT", help="Why (with --approve).")

    def create_run(self, options: dict[str, Any]) -> Run:
        reason = (options["reason"] or "").strip()
        if options["approve"] and not reason:
            raise CommandError(
                "--approve needs --reason TEXT: the approval is recorded with why.",
                returncode=USAGE_ERROR,
            )
        if reason and not options["approve"]:
            raise CommandError("--reason goes with --approve.", returncode=USAGE_ERROR)
        if options["approve"] and options["dry_run"]:
            raise CommandError(
                "--approve and --dry-run do not go together: a dry run sends nothing.",
                returncode=USAGE_ERROR,
            )
        try:
            return titan_run_from_path(
                options["file"],
                dry_run=options["dry_run"],
                triggered_by=f"cli:{os_user()}",
                approve_reason=reason if options["approve"] else "",
            )
        except TitanBusy as exc:
            raise CommandError(str(exc), returncode=USAGE_ERROR) from None
