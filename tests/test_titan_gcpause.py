"""The collector is paused while a Titan plan is read and computed, and comes back after."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

from integrations.jobs import job_execute
from integrations.titan import sync
from integrations.titan.gcpause import gc_paused
from integrations.titan.sync import titan_run_from_path
from reports.models import RunStatus

DEMO = Path(__file__).resolve().parent.parent / "integrations/titan/demo"


@pytest.fixture(autouse=True)
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_a_pause_turns_the_collector_off_and_back_on_even_on_an_error():
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_pauses_nest_and_overlap_across_threads():
    inner_started, outer_done = threading.Event(), threading.Event()
    seen = []

    def other():
        with gc_paused():
            inner_started.set()
            outer_done.wait(5)
            seen.append(gc.isenabled())  # the first pause ended: still off for this one
        seen.append("done")

    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
        thread = threading.Thread(target=other)
        thread.start()
        inner_started.wait(5)
    assert not gc.isenabled()
    outer_done.set()
    thread.join(5)
    assert seen == [False, "done"]
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


@pytest.mark.django_db
def test_the_sync_reads_and_plans_with_the_collector_off_then_turns_it_on(titan, monkeypatch):
    titan()
    seen = {}
    real_plan = sync.plan_compute

    def plan_compute(*args, **kwargs):
        seen["planning"] = gc.isenabled()
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(sync, "plan_compute", plan_compute)
    run = titan_run_from_path(DEMO / "roster.csv", dry_run=True, triggered_by="test")
    run = job_execute(run.pk, send_report=False)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert seen == {"planning": False}
    assert gc.isenabled()
