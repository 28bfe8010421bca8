"""Jobs for tests of the job runner itself (no vendor involved)."""

from integrations.http import AuthError
from integrations.jobs import HeldByGuardrail, InvalidInput
from reports.constants import ErrorClass


def ok_job(tracker):
    with tracker.stage("fetch", total=2, unit="pages"):
        tracker.advance()
        tracker.count("created", 3)
        tracker.advance()


def partial_job(tracker):
    tracker.count("created", 1)
    tracker.count("failed", 1)
    tracker.item(
        outcome="failed", key="42", error_class=ErrorClass.INVALID_DATA, message="no user id"
    )


def auth_job(tracker):
    raise AuthError("vendor refused the credentials")


def invalid_job(tracker):
    raise InvalidInput("row 3, column StudentId: empty")


def held_job(tracker):
    raise HeldByGuardrail("would remove 40 memberships (limit 25)")


def crash_job(tracker):
    raise RuntimeError("boom")


def interrupted_job(tracker):
    tracker.count("created", 2)
    raise KeyboardInterrupt


def fake_pull_start(*, cohort_id: int, triggered_by: str, user=None):
    """A cohort-pull starter for a kind registered in a test (any source): queues a run
    of kind canvas_sync unless one of the cohort is queued or running."""
    from cohorts.models import Cohort
    from reports.models import RunKind
    from reports.services import run_active_for, run_create

    cohort = Cohort.objects.get(pk=cohort_id)
    if run_active_for(kind=RunKind.CANVAS_SYNC, subject_key="course_id", value=cohort.external_id):
        return None
    return run_create(
        kind=RunKind.CANVAS_SYNC,
        triggered_by=triggered_by,
        user=user,
        subject=cohort.name,
        params={"course_id": cohort.external_id},
    )


LEAKY_SECRET = "hunter2-very-secret-value"


def leaky_job(tracker):
    """Fails with the secret in a local variable, the exception and its cause."""
    password = LEAKY_SECRET  # noqa: F841 - a local the technical traceback would list
    with tracker.stage("fetch", total=1):
        try:
            raise ValueError(f"vendor said: bad password {LEAKY_SECRET}")
        except ValueError as exc:
            raise RuntimeError(f"login with {LEAKY_SECRET} failed") from exc
