"""Running a job: one entry point for the queue, the schedule and the command line.

A job is a function `job(tracker) -> None` declared for a run kind in its vendor's
`kind.py` (integrations/registry.py). It reads its
parameters from `tracker.run.params`, talks to its vendor client and writes through the
`cohorts` / `reports` services. `job_execute` maps what it raises to the run's final
status and sends the report.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from django.utils.module_loading import import_string

from integrations import registry
from integrations.http import ConfigError, VendorError, redact
from integrations.logs import job_log_context
from integrations.registry import Resume
from reports.models import ErrorClass, Run, RunStatus
from reports.services import RunLeaseLost, RunTracker, run_claim

logger = logging.getLogger(__name__)


class InvalidInput(Exception):
    """The job's input cannot be used at all (nothing was sent). Status `invalid`."""


class HeldByGuardrail(Exception):
    """A guardrail held the job before anything was sent. Status `held`."""


def _stops_quietly_when_the_lease_is_lost(execute):
    """A worker whose run was re-queued (reaper, or a resume by hand) and perhaps claimed
    elsewhere gets `RunLeaseLost` from its next write: it stops there, logs it, and
    touches the run no more (no after-finish hook, no report)."""

    @functools.wraps(execute)
    def wrapper(run_id: int, **kwargs) -> Run | None:
        try:
            return execute(run_id, **kwargs)
        except RunLeaseLost as exc:
            logger.warning("%s; this worker stops", exc)
            return None

    return wrapper


@_stops_quietly_when_the_lease_is_lost
def job_execute(
    run_id: int,
    *,
    on_progress: Callable[[Run], None] | None = None,
    send_report: bool = True,
) -> Run | None:
    """Run the job of a queued run. Returns None when another worker already took it, or
    took it over meanwhile."""
    run = run_claim(run_id=run_id)
    if run is None:
        logger.info("run %s was not queued any more; duplicate delivery ignored", run_id)
        return None
    declared = registry.kinds().get(run.kind)
    if run.params.get("resumes") and declared and declared.resume == Resume.RESTART:
        _reset_for_restart(run)
    tracker = RunTracker(run, on_progress=on_progress)
    with job_log_context(tracker):  # run id, kind and stage on every log line
        try:
            job = import_string(registry.kind_get(run.kind).job)
            job(tracker)
        except ConfigError as exc:
            tracker.finish(
                status=RunStatus.INVALID, message=redact(str(exc)), error_class=ErrorClass.CONFIG
            )
        except InvalidInput as exc:
            tracker.finish(
                status=RunStatus.INVALID,
                message=redact(str(exc)),
                error_class=ErrorClass.INVALID_DATA,
            )
        except HeldByGuardrail as exc:
            tracker.finish(status=RunStatus.HELD, message=redact(str(exc)))
        except VendorError as exc:
            logger.warning("run %s failed: %s", run.pk, redact(exc.message))
            tracker.finish(
                status=RunStatus.FAILED, message=redact(exc.message), error_class=exc.error_class
            )
        except Exception as exc:
            logger.exception("run %s crashed", run.pk)
            tracker.finish(
                status=RunStatus.FAILED,
                message=redact(f"Internal error: {type(exc).__name__}: {exc}"),
                error_class=ErrorClass.INTERNAL,
            )
        else:
            if not tracker.run.is_finished:
                tracker.finish()
        run = tracker.run
        _after_finish(run)
        if send_report:
            report_deliver(run)
    return run


def _reset_for_restart(run: Run) -> None:
    run.items.all().delete()
    run.counts = {}
    run.stage_timings = {}
    run.progress_done = 0
    run.progress_total = None
    Run.objects.filter(pk=run.pk, lease=run.lease).update(
        counts={}, stage_timings={}, progress_done=0, progress_total=None
    )


def _after_finish(run: Run) -> None:
    """Kind-specific bookkeeping once a run is closed (e.g. cohort freshness)."""
    declared = registry.kinds().get(run.kind)
    hook = declared.after_finish if declared else None
    if hook:
        try:
            import_string(hook)(run)
        except Exception:
            logger.exception("after-finish hook of run %s failed", run.pk)


def report_deliver(run: Run) -> None:
    """Email the run's report; a mail failure is logged, never fails the run."""
    from reports.mail import run_report_send

    began = time.monotonic()
    try:
        run_report_send(run=run)
    except Exception:
        logger.exception("could not email the report of run %s", run.pk)
    timings = dict(run.stage_timings)
    timings["report"] = round(time.monotonic() - began, 3)
    run.stage_timings = timings
    Run.objects.filter(pk=run.pk).update(stage_timings=timings)
