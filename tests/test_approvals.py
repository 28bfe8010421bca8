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
    assert held.queued_at >= approval.decided_at  # the lost-task reaper waits from here
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


def test_a_held_run_waiting_for_a_decision_is_reported_as_such(held):
    from reports.render import render_run_report_email

    parts = render_run_report_email(held)
    assert "held, waiting for approval" in parts.subject
    assert "HELD, WAITING FOR APPROVAL" in parts.text and "Held, waiting for approval" in parts.html
    decide(held, decision="discarded", reason="Wrong file")
    parts = render_run_report_email(held)
    assert "waiting for approval" not in parts.subject
    assert "Discarded by user:ada" in parts.text and "Wrong file" in parts.html


def test_a_failing_report_section_costs_only_itself(held):
    from reports.sections import (
        _PROVIDERS,
        ReportSection,
        register_report_sections,
        report_sections,
    )

    def broken(run, *, row_limit):
        raise RuntimeError("boom")

    def fine(run, *, row_limit):
        return [ReportSection("Fine", lines=(f"limit {row_limit}",))]

    saved = dict(_PROVIDERS)
    try:
        _PROVIDERS.pop(held.kind, None)
        register_report_sections(held.kind, broken)
        register_report_sections(held.kind, fine)
        assert [s.title for s in report_sections(held, row_limit=5)] == ["Fine"]
    finally:
        _PROVIDERS.clear()
        _PROVIDERS.update(saved)


@pytest.mark.django_db(transaction=True)
def test_two_approvals_at_the_same_moment_start_the_run_once(run_factory):
    import threading

    run = run_factory(kind=RunKind.TITAN_SYNC, status=RunStatus.HELD, params={"plan_hash": H1})
    barrier = threading.Barrier(2)
    results: list[str] = []

    def approve(who: str) -> None:
        from django.db import connections

        try:
            barrier.wait(timeout=5)
            approval_decide(
                run_id=run.pk, plan_hash=H1, decision="approved", decided_by=who, reason="ok"
            )
            results.append("approved")
        except ApprovalRefused:
            results.append("refused")
        except Exception as exc:  # a database lock error counts as refused, never as twice
            results.append(f"error {type(exc).__name__}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=approve, args=(f"user:{n}",)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results.count("approved") == 1, results
    assert Approval.objects.filter(run=run).count() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
