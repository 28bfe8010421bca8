"""Approvals of held runs: a first-class record, applied once, never carried over."""

from __future__ import annotations

import pytest

from reports.models import Approval, ApprovalDecision, RunKind, RunStatus
from reports.services import (
    ApprovalRefused,
    approval_decide,
    approval_for,
    approval_record,
)

pytestmark = pytest.mark.django_db
H1, H2 = "a" * 64, "b" * 64


@pytest.fixture
def held(run_factory):
    return run_factory(kind=RunKind.TITAN_SYNC, status=RunStatus.HELD, params={"plan_hash": H1})


def decide(run, decision="approved", plan_hash=H1, reason="District merger, checked", **kw):
    return approval_decide(
        run_id=run.pk,
        plan_hash=plan_hash,
        decision=decision,
        decided_by="user:ada",
        reason=reason,
        **kw,
    )


def test_approving_records_who_why_and_which_plan_and_queues_the_run(held, admin_user):
    approval = decide(held, user=admin_user)
    held.refresh_from_db()
    assert held.status == RunStatus.QUEUED and held.finished_at is None
    assert (approval.plan_hash, approval.decision, approval.decided_by, approval.user) == (
        H1,
        ApprovalDecision.APPROVED,
        "user:ada",
        admin_user,
    )
    assert approval.reason == "District merger, checked"
    assert approval_for(run=held, plan_hash=H1) == approval
    assert approval_for(run=held, plan_hash=H2) is None


def test_a_held_run_is_approved_exactly_once(held):
    decide(held)
    with pytest.raises(ApprovalRefused, match="not held"):
        decide(held)
    assert Approval.objects.count() == 1


def test_the_same_plan_cannot_be_decided_twice_even_if_held_again(held):
    decide(held)
    held.status = RunStatus.HELD  # the job held it again with the same plan
    held.save()
    with pytest.raises(ApprovalRefused, match="already been decided"):
        decide(held)
    held.refresh_from_db()
    assert held.status == RunStatus.HELD


def test_a_reason_is_required(held):
    with pytest.raises(ApprovalRefused, match="reason"):
        decide(held, reason="   ")
    held.refresh_from_db()
    assert held.status == RunStatus.HELD and not Approval.objects.exists()


def test_a_stale_plan_hash_is_refused(held):
    with pytest.raises(ApprovalRefused, match="recomputed"):
        decide(held, plan_hash=H2)
    assert not Approval.objects.exists()


def test_discarding_keeps_the_run_held_and_blocks_approval(held):
    decide(held, decision="discarded", reason="Wrong file")
    held.refresh_from_db()
    assert held.status == RunStatus.HELD
    with pytest.raises(ApprovalRefused, match="already been decided"):
        decide(held)


def test_a_run_that_is_not_held_cannot_be_approved(run_factory):
    run = run_factory(kind=RunKind.TITAN_SYNC, status=RunStatus.SUCCEEDED, params={"plan_hash": H1})
    with pytest.raises(ApprovalRefused, match="not held"):
        decide(run)


def test_an_approval_given_with_the_request_covers_that_run_only(run_factory):
    run = run_factory(kind=RunKind.TITAN_SYNC, status=RunStatus.RUNNING)
    other = run_factory(kind=RunKind.TITAN_SYNC, status=RunStatus.RUNNING)
    first = approval_record(run=run, plan_hash=H1, decided_by="cli:ops", reason="ok")
    again = approval_record(run=run, plan_hash=H1, decided_by="cli:ops", reason="ok")
    assert first == again
    assert approval_for(run=run, plan_hash=H1) is not None
    assert approval_for(run=other, plan_hash=H1) is None
