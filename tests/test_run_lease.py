"""A run has one owner: the lease written at claim time. A worker that lost its run
(reaped and claimed by another worker, or resumed by hand) has every write refused —
progress, counts, items, the final status — and stops quietly; the new owner's land.

Run on SQLite and on PostgreSQL (the suite's second pass), with real threads."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from integrations.jobs import job_execute
from reports.models import Run, RunItem, RunKind, RunStatus
from reports.services import (
    RunLeaseLost,
    RunTracker,
    run_claim,
    run_create,
    run_requeue,
    runs_stale,
)

pytestmark = pytest.mark.django_db(transaction=True)


def reap(run_id: int, settings) -> None:
    """What the scheduled reaper does to a run whose worker went quiet."""
    stale = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS + 1)
    Run.objects.filter(pk=run_id).update(heartbeat_at=stale)
    [found] = [r for r in runs_stale(older_than_seconds=settings.RUN_STALE_SECONDS)]
    assert run_requeue(run=found, max_resumes=2)


def test_each_claim_takes_a_new_lease():
    run = run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t")
    assert run.lease == 0
    assert run_claim(run_id=run.pk).lease == 1
    assert run_claim(run_id=run.pk) is None  # running: a duplicate delivery claims nothing


def test_worker_a_is_refused_everything_once_b_owns_the_run(settings):
    run = run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t")
    a = RunTracker(run_claim(run_id=run.pk), flush_seconds=0)
    a.count("created", 1)  # A owns it: lands
    assert Run.objects.get(pk=run.pk).counts == {"created": 1}

    reap(run.pk, settings)
    with pytest.raises(RunLeaseLost):
        a.advance()  # queued again: A no longer holds a running run

    b = RunTracker(run_claim(run_id=run.pk), flush_seconds=0)
    assert b.lease == a.lease + 1
    b.count("created", 5)
    a.item(outcome="failed", key="from-a", error_class="internal", message="A's item")
    with pytest.raises(RunLeaseLost):
        a.flush_items()
    with pytest.raises(RunLeaseLost):
        a.count("created", 100)
    with pytest.raises(RunLeaseLost):
        a.finish(status=RunStatus.FAILED, message="A's verdict")
    b.item(outcome="created", key="from-b")
    b.finish()
    with pytest.raises(RunLeaseLost):
        a.finish(status=RunStatus.FAILED, message="A's verdict, late")

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.counts == {"created": 1 + 5}  # what A wrote while it owned the run, then B's
    assert "verdict" not in run.message
    assert list(run.items.values_list("key", flat=True)) == ["from-b"]


def test_a_resume_by_hand_takes_the_run_from_its_worker(settings):
    from integrations.apex.enroll import apex_run_resume

    run = run_create(kind=RunKind.APEX_ENROLL, triggered_by="t", params={"roster_id": 1})
    a = RunTracker(run_claim(run_id=run.pk), flush_seconds=0)
    stale = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS + 1)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=stale)
    apex_run_resume(run_id=run.pk, triggered_by="user:ada")  # from the run page
    with pytest.raises(RunLeaseLost):
        a.count("enrolled", 3)
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED


# --- two workers running job_execute on one run, in two threads ------------------------
A_WAITS = threading.Event()
A_GOES = threading.Event()
AFTER_FINISH: list[int] = []


def two_worker_job(tracker):
    """Worker A (first to run) counts, then hangs until told to go on; B runs through."""
    if threading.current_thread().name == "worker-a":
        tracker.count("created", 1)
        A_WAITS.set()
        assert A_GOES.wait(timeout=60)
        tracker.item(outcome="created", key="late-from-a")
        tracker.count("created", 1000)  # refused here: the run is B's
        raise AssertionError("unreachable: A's write must be refused")
    tracker.item(outcome="created", key="from-b")
    tracker.count("created", 7)


def record_after_finish(run):
    AFTER_FINISH.append(run.pk)


def test_two_workers_on_one_run_only_the_owner_lands(register_kind, settings, caplog):
    from dataclasses import replace

    from integrations import registry

    declared = registry.kind_get(RunKind.OPENCLASS_SYNC)
    register_kind(
        replace(
            declared,
            job=f"{__name__}.two_worker_job",
            after_finish=f"{__name__}.record_after_finish",
        )
    )
    A_WAITS.clear()
    A_GOES.clear()
    AFTER_FINISH.clear()
    run = run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t")
    outcome: dict[str, object] = {}

    def worker_a():
        try:
            outcome["a"] = job_execute(run.pk, send_report=False)
        except BaseException as exc:
            outcome["a"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=worker_a, name="worker-a")
    caplog.set_level(logging.WARNING, logger="integrations.jobs")
    thread.start()
    try:
        assert A_WAITS.wait(timeout=60)
        reap(run.pk, settings)  # A went quiet: the reaper re-queues the run
        b = job_execute(run.pk, send_report=False)  # worker B claims and finishes it
        assert b is not None and b.status == RunStatus.SUCCEEDED
    finally:
        A_GOES.set()
        thread.join(timeout=60)
    assert outcome["a"] is None  # A stopped quietly: no exception, no run returned

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.counts == {"created": 7}
    assert run.lease == 2
    assert list(RunItem.objects.filter(run=run).values_list("key", flat=True)) == ["from-b"]
    assert [run.pk] == AFTER_FINISH  # B's only
    assert any("no longer held" in r.getMessage() for r in caplog.records)
