"""Shared behaviour of the job commands (sync_openclass, enroll_apex, …).

Progress and messages go to standard error (a progress bar on a terminal, plain lines
otherwise); with --json the last line of standard output is the run summary of
shared/interfaces.md; the exit status follows the run's status.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from integrations import registry
from integrations.http import redact
from reports.models import EXIT_CODES, Run, RunStatus
from reports.services import run_fail


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def run_summary(run: Run) -> dict[str, Any]:
    # Every count key the kind declares is there (0 when the run stopped before counting),
    # so a script can read counts["failed"] whatever happened.
    declared = registry.kinds().get(run.kind)
    counts = {key: 0 for key in (declared.summary_keys if declared else ("failed",))}
    counts.update(run.counts)
    return {
        "run_id": run.pk,
        "kind": run.kind,
        "status": run.status,
        "dry_run": run.dry_run,
        "counts": counts,
        "report_url": settings.SITE_URL + reverse("reports:detail", args=[run.pk]),
    }


class ProgressPrinter:
    """Shows a run's progress on standard error: tqdm on a terminal, lines elsewhere."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = None
        self._stage = None
        self._last_line = ""

    def __call__(self, run: Run) -> None:
        if run.stage != self._stage:
            self._close_bar()
            self._stage = run.stage
            if run.stage and self.tty:
                from tqdm import tqdm

                self._bar = tqdm(
                    total=run.progress_total,
                    desc=run.stage,
                    unit=f" {run.progress_unit or 'items'}",
                    file=self.stream,
                    leave=False,
                )
        if self._bar is not None:
            if run.progress_total is not None and self._bar.total != run.progress_total:
                self._bar.total = run.progress_total
            self._bar.n = run.progress_done
            self._bar.set_postfix_str(_counts_text(run.counts), refresh=False)
            self._bar.refresh()
        elif run.stage:
            if run.progress_total is not None:
                done = f"{run.progress_done}/{run.progress_total} {run.progress_unit}".rstrip()
            else:
                done = f"{run.progress_done} {run.progress_unit}" if run.progress_done else ""
            line = " ".join(p for p in (f"[{run.stage}]", done, _counts_text(run.counts)) if p)
            if line != self._last_line:
                self._last_line = line
                print(line, file=self.stream, flush=True)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        self._close_bar()


def _counts_text(counts: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in counts.items())


class JobCommand(BaseCommand):
    """Base for job commands. Subclasses build the run in `create_run` and return it."""

    requires_migrations_checks = True
    kind: str = ""  # the RunKind of the runs this command makes

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the run summary as one JSON object on the last line of stdout.",
        )

    def create_run(self, options: dict[str, Any]) -> Run:  # pragma: no cover - abstract
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        from integrations.jobs import job_execute

        try:
            run = self.create_run(options)
        except CommandError as exc:
            if options.get("json"):
                # No run could be made (e.g. nothing to resume); scripts still get their
                # one JSON line, with the reason, and the exit status of invalid input.
                self.stdout.write(
                    json.dumps(
                        {
                            "run_id": None,
                            "kind": self.kind,
                            "status": RunStatus.INVALID.value,
                            "dry_run": bool(options.get("dry_run")),
                            "counts": {},
                            "report_url": None,
                            "error": str(exc),
                        }
                    )
                )
            raise
        printer = ProgressPrinter()
        try:
            if run.status == RunStatus.QUEUED:
                run = job_execute(run.pk, on_progress=printer) or Run.objects.get(pk=run.pk)
        except KeyboardInterrupt:
            # Recorded as failed at once: left "running", the run would block the next
            # attempt and be resumed by the reaper although the user stopped it.
            printer.close()
            run = run_fail(
                run=Run.objects.get(pk=run.pk),
                message="Interrupted from the command line (Ctrl-C) before it finished.",
            )
        finally:
            printer.close()
        self.finish(run, options)

    def finish(self, run: Run, options: dict[str, Any]) -> None:
        run.refresh_from_db()
        err = self.stderr
        label = run.get_status_display()
        err.write(f"Run {run.pk} ({run.kind}): {label}{' (dry run)' if run.dry_run else ''}")
        if run.counts:
            err.write("  " + _counts_text(run.counts))
        if run.message:
            err.write("  " + redact(run.message))
        err.write(f"  report: {run_summary(run)['report_url']}")
        if options.get("json"):
            self.stdout.write(json.dumps(run_summary(run)))
        code = EXIT_CODES.get(run.status, 4)
        if code:
            sys.exit(code)
