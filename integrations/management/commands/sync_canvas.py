"""manage.py sync_canvas: pull Canvas courses into cohorts (docs/canvas.md).

One `--course` makes one course run; several, or `--all`, make a bulk run with one child
run per course. Exit status and the --json summary follow ../shared/interfaces.md (see
integrations/cli.py).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from integrations.canvas.profiles import COURSE_STATES, DEFAULT_PROFILE, DEFAULT_STATE, PROFILES
from integrations.canvas.pull import canvas_params_for, canvas_run_create
from integrations.cli import JobCommand, os_user
from reports.models import Run, RunKind


class Command(JobCommand):
    kind = RunKind.CANVAS_SYNC
    help = (
        "Pull Canvas courses into cohorts: --course ID (one or more) or --all (the "
        "account's courses, filtered by --state and --term, at most --max-courses). "
        "Exit status: 0 succeeded, 1 some courses or records failed, 2 invalid input or "
        "configuration (nothing sent), 4 the run failed (token refused, Canvas unreachable)."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--course", nargs="+", metavar="ID", help="Canvas course id(s), or sis_course_id:X."
        )
        which.add_argument("--all", action="store_true", help="Every course of the account.")
        parser.add_argument(
            "--state",
            default=DEFAULT_STATE,
            help=f"With --all: course state ({', '.join(COURSE_STATES)}); default {DEFAULT_STATE}.",
        )
        parser.add_argument("--term", default="", help="With --all: enrollment term id.")
        parser.add_argument(
            "--max-courses", type=int, default=None, help="With --all: pull at most N courses."
        )
        parser.add_argument(
            "--profile",
            default=DEFAULT_PROFILE,
            help=f"What to read: {', '.join(PROFILES)} (default {DEFAULT_PROFILE}).",
        )
        parser.add_argument(
            "--full-refresh",
            action="store_true",
            help="Read every submission, not only those changed since the last pull.",
        )

    def create_run(self, options: dict[str, Any]) -> Run:
        if options["course"] and (options["max_courses"] is not None or options["term"]):
            raise CommandError("--term and --max-courses go with --all, not --course", returncode=2)
        # Bad values still get a run, recorded as invalid (exit 2) with its --json summary.
        params = canvas_params_for(
            course_ids=options["course"],
            all_courses=options["all"],
            state=options["state"],
            term=options["term"],
            max_courses=options["max_courses"],
            profile=options["profile"],
        )
        if options["full_refresh"]:
            params["full_refresh"] = True
        return canvas_run_create(params=params, triggered_by=f"cli:{os_user()}")
