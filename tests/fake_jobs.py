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


LEAKY_SECRET = "hunter2-very-secret-value"


def leaky_job(tracker):
    """Fails with the secret in a local variable, the exception and its cause."""
    password = LEAKY_SECRET  # noqa: F841 - a local the technical traceback would list
    with tracker.stage("fetch", total=1):
        try:
            raise ValueError(f"vendor said: bad password {LEAKY_SECRET}")
        except ValueError as exc:
            raise RuntimeError(f"login with {LEAKY_SECRET} failed") from exc
