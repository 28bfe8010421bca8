"""The next page fetched in a thread while the job stores the last one
(integrations.prefetch), and what the OpenClass pull makes of a failure there."""

from __future__ import annotations

import contextvars
import threading

import pytest

from cohorts.models import Progression
from integrations import batches
from integrations.http import TransientError, VendorError
from integrations.jobs import job_execute
from integrations.openclass import pull
from integrations.openclass.pull import openclass_run_create
from integrations.openclass.simulator import WEB
from integrations.prefetch import Prefetch
from reports.models import RunStatus


class Source:
    """An iterator that counts what it produced and on which thread."""

    def __init__(self, n: int, *, fail_at: int | None = None, error: BaseException | None = None):
        self.n, self.fail_at, self.error = n, fail_at, error
        self.produced = 0
        self.threads: set[str] = set()

    def __iter__(self):
        for i in range(self.n):
            self.threads.add(threading.current_thread().name)
            if i == self.fail_at:
                raise self.error
            self.produced += 1
            yield i


def test_items_come_in_order_at_most_one_ahead_from_another_thread():
    source = Source(6)
    seen = []
    with Prefetch(source, name="test-prefetch") as items:
        for item in items:
            # The thread is asked for item N+1 only once N is taken, and waits for N+1 to
            # be taken before asking for N+2.
            assert source.produced <= item + 2
            seen.append(item)
    assert seen == list(range(6))
    assert source.threads == {"test-prefetch"}


def test_an_error_is_raised_after_the_items_before_it_as_the_same_object():
    error = TransientError("OpenClass: server error 500 on GET /x")
    seen = []
    with (
        pytest.raises(TransientError) as raised,
        Prefetch(Source(5, fail_at=3, error=error)) as items,
    ):
        for item in items:
            seen.append(item)
    assert raised.value is error
    assert seen == [0, 1, 2]


def test_leaving_early_stops_the_thread():
    source = Source(1000)
    with Prefetch(source, name="test-early") as items:
        for item in items:
            if item == 2:
                break
    for thread in threading.enumerate():
        if thread.name == "test-early":
            thread.join(timeout=5)
            assert not thread.is_alive()
    assert source.produced <= 4


def test_the_thread_runs_in_a_copy_of_the_callers_context():
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="")
    marker.set("run 42")
    seen = []

    def items():
        for i in range(2):
            seen.append(marker.get())
            yield i

    with Prefetch(items()) as pages:
        assert list(pages) == [0, 1]
    assert seen == ["run 42", "run 42"]


def test_iterating_outside_a_with_block_is_refused():
    with pytest.raises(RuntimeError):
        next(iter(Prefetch([1])))


@pytest.mark.django_db
def test_a_vendor_error_on_a_prefetched_page_names_that_page_and_keeps_those_before(
    openclass, settings, monkeypatch
):
    sim = openclass()
    settings.OPENCLASS_PAGE_SIZE = 20
    real_page = pull.OpenClassClient.progression_page

    def page(self, class_id, number, page_size):
        if number == 3:
            raise VendorError("OpenClass: GET /v1/classes/x/progressions answered 418")
        return real_page(self, class_id, number, page_size)

    monkeypatch.setattr(pull.OpenClassClient, "progression_page", page)
    run = job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk)
    assert run.status == RunStatus.FAILED and run.error_class == "vendor_error"
    assert run.message == (
        "OpenClass: GET /v1/classes/x/progressions answered 418 "
        "(at page 3; the pages before it are stored)"
    )
    stored = set(Progression.objects.values_list("external_id", flat=True))
    assert stored == {p.id for p in sim.progressions(WEB)[:60]}
    assert run.progress_done == 3
    assert list(run.items.filter(outcome="page").values_list("key", flat=True)) == ["0", "1", "2"]


@pytest.mark.django_db
def test_a_bug_in_the_fetch_thread_fails_the_run_naming_the_page(openclass, monkeypatch):
    openclass()
    real_parse = pull.OpenClassClient.progression_page

    def page(self, class_id, number, page_size):
        if number == 1:
            raise KeyError("metadata")
        return real_parse(self, class_id, number, page_size)

    monkeypatch.setattr(pull.OpenClassClient, "progression_page", page)
    run = job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk)
    assert run.status == RunStatus.FAILED and run.error_class == "internal"
    assert "KeyError: 'metadata' (at page 1; the pages before it are stored)" in run.message
    assert Progression.objects.count() == 100


@pytest.mark.django_db
def test_a_failure_inside_a_batch_of_pages_keeps_the_pages_before_it(openclass, monkeypatch):
    from django.db import OperationalError

    sim = openclass()
    # Every page in one transaction: the next one is always there, the batch never ages.
    monkeypatch.setattr(batches, "BATCH_SECONDS", 3600)
    monkeypatch.setattr(Prefetch, "ready", lambda self, timeout=0.0: True)
    real_upsert = pull.progressions_upsert
    calls = []

    def upsert_then_crash(**kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OperationalError("disk I/O error")
        return real_upsert(**kwargs)

    monkeypatch.setattr(pull, "progressions_upsert", upsert_then_crash)
    run = job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk)
    assert run.status == RunStatus.FAILED
    assert "(at page 2; the pages before it are stored)" in run.message
    stored = set(Progression.objects.values_list("external_id", flat=True))
    assert stored == {p.id for p in sim.progressions(WEB)[:200]}


@pytest.mark.django_db
def test_pages_share_a_transaction_only_while_the_next_one_is_waiting():
    from django.db import connection

    batch = batches.WriteBatches()
    depth = len(connection.atomic_blocks)
    asked = []

    def ready(answer):
        return lambda timeout: asked.append(timeout) or answer

    batch.before_wait(ready(False))  # nothing open: nothing to commit, nothing asked
    assert asked == [] and not batch.open
    batch.begin()
    batch.page_done()  # younger than BATCH_SECONDS: stays open
    batch.before_wait(ready(True))
    assert len(connection.atomic_blocks) == depth + 1  # still open: the next page is there
    assert asked == [batches.WAIT_OPEN_SECONDS]
    batch.begin()  # the next page joins it
    assert len(connection.atomic_blocks) == depth + 1
    assert not batch.committed
    batch.before_wait(ready(False))  # not there within the wait: commit rather than hold it
    assert len(connection.atomic_blocks) == depth and batch.committed
    batch.end()  # nothing open: nothing to do
    assert len(connection.atomic_blocks) == depth


@pytest.mark.django_db
def test_a_batch_commits_once_it_is_old_and_rolls_back_when_ended_with_an_error(monkeypatch):
    from django.db import connection

    from cohorts.models import Cohort, Source

    clock = [100.0]
    monkeypatch.setattr(batches.time, "monotonic", lambda: clock[0])
    batch = batches.WriteBatches()
    depth = len(connection.atomic_blocks)
    batch.begin()
    Cohort.objects.create(name="kept", source=Source.OPENCLASS, external_id="k")
    clock[0] += batches.BATCH_SECONDS
    batch.page_done()  # open for BATCH_SECONDS: committed however soon the next page is
    assert len(connection.atomic_blocks) == depth and batch.committed
    batch.begin()
    Cohort.objects.create(name="dropped", source=Source.OPENCLASS, external_id="d")
    batch.end(RuntimeError("the store failed"))
    assert len(connection.atomic_blocks) == depth
    assert list(Cohort.objects.values_list("name", flat=True)) == ["kept"]


def test_ready_waits_up_to_its_timeout_for_the_next_item():
    release = threading.Event()

    def slow():
        yield 0
        release.wait()
        yield 1

    with Prefetch(slow()) as items:
        assert next(items) == 0
        assert items.ready(timeout=0.01) is False  # item 1 is held back: not there
        release.set()
        assert items.ready(timeout=30) is True  # there as soon as it is made
        assert next(items) == 1
        assert items.ready(timeout=30) is True  # the end is there to take too
        assert list(items) == []
    assert items.ready(timeout=30) is False  # closed: nothing comes, no wait


@pytest.mark.django_db
def test_the_pull_waits_briefly_for_the_next_page_before_committing(openclass, monkeypatch):
    openclass()
    real_ready = Prefetch.ready
    timeouts = []

    def ready(self, timeout=0.0):
        timeouts.append(timeout)
        return real_ready(self, timeout)

    monkeypatch.setattr(Prefetch, "ready", ready)
    run = job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk)
    assert run.status == RunStatus.SUCCEEDED
    assert timeouts and set(timeouts) == {batches.WAIT_OPEN_SECONDS}
    assert 0 < batches.WAIT_OPEN_SECONDS <= batches.BATCH_SECONDS
