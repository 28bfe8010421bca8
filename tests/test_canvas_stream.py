"""A course pull stores the submissions pages as they arrive (issue 11), with the same
counts, and a clear rule for a pull that fails half-way."""

from __future__ import annotations

import threading

import pytest

from cohorts.models import Cohort, Progression, Student
from integrations import batches
from integrations.canvas import client as client_module
from integrations.canvas import pull as pull_module
from integrations.canvas.client import CanvasClient
from integrations.canvas.pull import canvas_params_for, canvas_run_create
from integrations.canvas.simulator import BIOLOGY
from integrations.http import TransientError
from integrations.jobs import job_execute
from reports.models import Run, RunStatus

pytestmark = pytest.mark.django_db


def pull(*course_ids, **params) -> Run:
    run = canvas_run_create(
        params={**canvas_params_for(course_ids=list(course_ids)), **params}, triggered_by="t"
    )
    return job_execute(run.pk, send_report=False)


@pytest.fixture
def small_pages(monkeypatch):
    """Pages of 10, so a test course has many submissions pages."""
    monkeypatch.setattr(client_module, "PER_PAGE", 10)


@pytest.fixture
def events(monkeypatch):
    """What happened in which order: ("page", n) when the client hands over page n, and
    ("write", rows) when the pull writes submissions."""
    log: list[tuple[str, int]] = []
    lock = threading.Lock()
    real_pages = CanvasClient.submission_pages

    def pages(self, course_id, *, since=""):
        for n, page in enumerate(real_pages(self, course_id, since=since), start=1):
            with lock:
                log.append(("page", n))
            yield page

    real_upsert = pull_module.progressions_upsert

    def upsert(**kwargs):
        with lock:
            log.append(("write", len(kwargs["records"])))
        return real_upsert(**kwargs)

    monkeypatch.setattr(CanvasClient, "submission_pages", pages)
    monkeypatch.setattr(pull_module, "progressions_upsert", upsert)
    return log


def test_submissions_are_written_while_later_pages_are_still_being_read(
    canvas, small_pages, events
):
    sim = canvas()
    run = pull(BIOLOGY)
    assert run.status == RunStatus.SUCCEEDED, run.message
    pages = [n for kind, n in events if kind == "page"]
    assert len(pages) > 3
    first_write = next(i for i, (kind, _) in enumerate(events) if kind == "write")
    last_page = events.index(("page", pages[-1]))
    assert first_write < last_page  # not everything read before the first write
    # Nothing held back: at most a statement's worth of rows in any one write.
    assert max(n for kind, n in events if kind == "write") <= pull_module.WRITE_ROWS
    expected = sim.course_counts(BIOLOGY)
    assert run.counts["submissions"] == expected["submissions_served"]
    assert (
        Progression.objects.filter(cohort__external_id=BIOLOGY).count() == (expected["submissions"])
    )
    # The stages as before, the waits for Canvas's pages booked as "submissions".
    assert {"course", "students", "assignments", "submissions", "modules", "store"} <= set(
        run.stage_timings
    )


def test_streamed_counts_match_a_pull_that_reads_everything_first(canvas, small_pages, monkeypatch):
    canvas()
    streamed = pull(BIOLOGY)
    Cohort.objects.all().delete()
    Student.objects.all().delete()
    real_fetch = pull_module.course_fetch
    monkeypatch.setattr(
        pull_module,
        "course_fetch",
        lambda *args, **kwargs: real_fetch(*args, **{**kwargs, "stream": False}),
    )
    whole = pull(BIOLOGY)
    keys = ("submissions", "fetched", "created", "updated", "unchanged", "skipped", "failed")
    assert {k: streamed.counts[k] for k in keys} == {k: whole.counts[k] for k in keys}


def test_a_pair_read_twice_by_an_incremental_pull_is_counted_once(canvas, small_pages, monkeypatch):
    sim = canvas()
    pull(BIOLOGY)
    student = sim.active_students(BIOLOGY)[0]
    quiz = next(a for a in sim.course(BIOLOGY).assignments if a.quiz_id)
    sim.submit(BIOLOGY, quiz.id, student)  # submitted since ...
    sim.set_score(BIOLOGY, quiz.id, student, 7.0)  # ... and graded since: in both reads
    mapped: list[str] = []
    real_map = pull_module.map_submissions

    def map_submissions(*args, **kwargs):
        out = real_map(*args, **kwargs)
        mapped.extend(r.external_id for r in out.records)
        return out

    monkeypatch.setattr(pull_module, "map_submissions", map_submissions)
    # The next page is never there: a write a page.
    monkeypatch.setattr(pull_module.Prefetch, "ready", lambda self, timeout=0.0: False)
    run = pull(BIOLOGY)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.params["since"]
    assert mapped.count(f"{quiz.id}:{student}") == 2  # served twice
    assert run.counts["updated"] == 1 and run.counts["created"] == 0
    counted = sum(run.counts[k] for k in ("created", "updated", "unchanged"))
    assert counted == run.counts["students"] + run.counts["assignments"] + len(set(mapped))
    assert Progression.objects.get(external_id=f"{quiz.id}:{student}").score == 7.0


def _failing_after(monkeypatch, good_pages: int) -> None:
    real_pages = CanvasClient.submission_pages

    def pages(self, course_id, *, since=""):
        for n, page in enumerate(real_pages(self, course_id, since=since)):
            if n == good_pages:
                raise TransientError("Canvas: could not connect for GET /submissions (test)")
            yield page

    monkeypatch.setattr(CanvasClient, "submission_pages", pages)


def test_a_pull_failing_before_its_first_commit_stores_nothing(canvas, small_pages, monkeypatch):
    canvas()
    monkeypatch.setattr(batches, "BATCH_SECONDS", 3600.0)
    # The next page is always there: never waits.
    monkeypatch.setattr(pull_module.Prefetch, "ready", lambda self, timeout=0.0: True)
    _failing_after(monkeypatch, good_pages=3)
    run = pull(BIOLOGY)
    assert run.status == RunStatus.FAILED and "could not connect" in run.message
    assert not Cohort.objects.filter(external_id=BIOLOGY).exists()
    assert not Progression.objects.exists()
    assert "stored_partially" not in run.params
    assert not run.items.filter(outcome="change").exists()


def test_a_pull_failing_half_way_keeps_what_it_committed_and_the_next_reads_all(
    canvas, small_pages, monkeypatch
):
    sim = canvas()
    first = pull(BIOLOGY)
    assert first.status == RunStatus.SUCCEEDED
    Progression.objects.all().delete()
    # The next page is never there: commit each page.
    monkeypatch.setattr(pull_module.Prefetch, "ready", lambda self, timeout=0.0: False)
    params = {"full_refresh": True}
    with monkeypatch.context() as patch:
        _failing_after(patch, good_pages=3)
        failed = pull(BIOLOGY, **params)
    failed.refresh_from_db()
    assert failed.status == RunStatus.FAILED
    assert failed.params["stored_partially"] is True
    kept = Progression.objects.filter(cohort__external_id=BIOLOGY).count()
    assert 0 < kept < sim.course_counts(BIOLOGY)["submissions"]
    assert failed.counts["created"] == kept
    # The next (incremental) pull does not trust what the failed one left: it reads all.
    again = pull(BIOLOGY)
    assert again.status == RunStatus.SUCCEEDED, again.message
    assert "since" not in again.params and again.params["full_read"] is True
    assert (
        Progression.objects.filter(cohort__external_id=BIOLOGY).count()
        == (sim.course_counts(BIOLOGY)["submissions"])
    )


def test_no_transaction_is_open_while_the_pull_waits_for_canvas(canvas, small_pages, monkeypatch):
    from django.db import connection

    canvas()
    # The next page is never there: always waits.
    monkeypatch.setattr(pull_module.Prefetch, "ready", lambda self, timeout=0.0: False)
    depths: list[int] = []
    real_next = pull_module.Prefetch.__next__

    def next_page(self):
        depths.append(len(connection.atomic_blocks))
        return real_next(self)

    monkeypatch.setattr(pull_module.Prefetch, "__next__", next_page)
    run = pull(BIOLOGY)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert len(depths) > 3
    # As deep as before the first write (the test's own transaction): nothing of the pull.
    assert set(depths) == {depths[0]}


def test_an_unchanged_rerun_keeps_the_stored_health_and_reads_the_progressions_once(
    canvas, small_pages
):
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cohorts.models import StoredHealth

    canvas()
    first = pull(BIOLOGY)
    cohort = Cohort.objects.get(pk=first.params["cohort_id"])
    stored = StoredHealth.objects.get(cohort=cohort)
    with CaptureQueriesContext(connection) as queries:
        again = pull(BIOLOGY, full_refresh=True)
    assert again.status == RunStatus.SUCCEEDED, again.message
    assert again.counts["created"] == again.counts["updated"] == 0
    reads = [
        q["sql"]
        for q in queries
        if re.match(r"^\s*SELECT", q["sql"], re.IGNORECASE)
        and 'FROM "cohorts_progression"' in q["sql"]
    ]
    assert len(reads) == 1  # the cohort's stored rows, once for the whole pull
    assert Cohort.objects.get(pk=cohort.pk).data_version == cohort.data_version
    row = StoredHealth.objects.get(cohort=cohort)
    assert (row.data_version, row.computed_at) == (stored.data_version, stored.computed_at)
    assert again.items.get(outcome="change", key="summary").message == "no change"


def test_a_rerun_that_changes_one_grade_marks_the_cohort_changed(canvas):
    sim = canvas()
    first = pull(BIOLOGY)
    cohort = Cohort.objects.get(pk=first.params["cohort_id"])
    student = sim.active_students(BIOLOGY)[0]
    quiz = next(a for a in sim.course(BIOLOGY).assignments if a.quiz_id)
    sim.set_score(BIOLOGY, quiz.id, student, 3.0)
    again = pull(BIOLOGY, full_refresh=True)
    assert again.counts["updated"] == 1
    assert Cohort.objects.get(pk=cohort.pk).data_version > cohort.data_version
