"""One live run per thing, by construction: a partial unique index over `Run.lock_key`
for queued and running runs, so two requests at the same moment start exactly one run
(SQLite and PostgreSQL alike), and a finished run frees its key."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, close_old_connections, connection, transaction

from cohorts.models import Cohort, Source
from integrations.openclass.pull import openclass_lock_key, openclass_run_for_cohort
from reports.models import Run, RunKind, RunStatus
from reports.services import run_create, run_get_or_create, run_lock_key

THREADS = 4


def at_once(fn, n: int = THREADS) -> list:
    """Call `fn` from n threads released together; each thread has its own connection."""
    barrier = threading.Barrier(n)

    def call(_):
        try:
            barrier.wait(timeout=30)
            return fn()
        finally:
            close_old_connections()
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(call, range(n)))


@pytest.mark.django_db(transaction=True)
def test_sync_now_pressed_four_times_at_once_makes_one_run():
    cohort = Cohort.objects.create(name="SD", source=Source.OPENCLASS, external_id="c" * 24)
    results = at_once(
        lambda: openclass_run_for_cohort(cohort_id=cohort.pk, triggered_by="user:ada")
    )
    made = [r for r in results if r is not None]
    assert len(made) == 1
    assert Run.objects.filter(kind=RunKind.OPENCLASS_SYNC).count() == 1
    assert made[0].lock_key == openclass_lock_key("c" * 24)


@pytest.mark.django_db(transaction=True)
def test_canvas_sync_now_pressed_four_times_at_once_makes_one_run():
    from integrations.canvas.pull import canvas_run_for_cohort

    cohort = Cohort.objects.create(name="Bio", source=Source.CANVAS, external_id="101")
    results = at_once(lambda: canvas_run_for_cohort(cohort_id=cohort.pk, triggered_by="user:ada"))
    made = [r for r in results if r is not None]
    assert len(made) == 1
    assert Run.objects.filter(kind=RunKind.CANVAS_SYNC).count() == 1
    assert made[0].lock_key == run_lock_key(RunKind.CANVAS_SYNC, "course", "101")


@pytest.mark.django_db(transaction=True)
def test_four_confirms_of_one_upload_at_once_make_one_run(tmp_path, settings):
    from integrations.apex.enroll import apex_run_start
    from integrations.models import RosterUpload

    settings.DATA_DIR = tmp_path
    upload = RosterUpload.objects.create(original_name="r.csv", sha256="0" * 64, size=10)

    def confirm():
        with transaction.atomic():  # as the confirm view does
            run, created = apex_run_start(upload=upload, dry_run=False, triggered_by="user:ada")
        return run.pk, created

    results = at_once(confirm)
    assert sorted(created for _, created in results) == [False] * (THREADS - 1) + [True]
    assert len({pk for pk, _ in results}) == 1  # every caller got the same run
    assert Run.objects.filter(kind=RunKind.APEX_ENROLL).count() == 1


@pytest.mark.django_db
def test_the_database_refuses_a_second_live_run_of_a_key():
    Run.objects.create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t", lock_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(
            kind=RunKind.OPENCLASS_SYNC, triggered_by="t", lock_key="k", status=RunStatus.RUNNING
        )


@pytest.mark.django_db
def test_a_finished_run_frees_its_key_and_empty_keys_never_clash():
    first, created = run_get_or_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t", lock_key="k")
    assert created
    again, created = run_get_or_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t", lock_key="k")
    assert (again.pk, created) == (first.pk, False)
    Run.objects.filter(pk=first.pk).update(status=RunStatus.SUCCEEDED)
    second, created = run_get_or_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t", lock_key="k")
    assert created and second.pk != first.pk
    a = run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t")
    b = run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t")
    assert a.pk != b.pk


@pytest.mark.django_db
def test_a_refused_insert_leaves_the_callers_transaction_usable():
    run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t", lock_key="k")
    with transaction.atomic():
        _, created = run_get_or_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="t", lock_key="k")
        assert not created
        Cohort.objects.create(name="after", source=Source.OPENCLASS, external_id="x")
    assert Cohort.objects.filter(name="after").exists()


def test_long_keys_stay_distinct_and_fit():
    a = run_lock_key("openclass_sync", "class", "x" * 300 + "a")
    b = run_lock_key("openclass_sync", "class", "x" * 300 + "b")
    assert a != b and len(a) <= 200 and len(b) <= 200
    assert run_lock_key("apex_enroll", "upload", 34) == "apex_enroll:upload:34"


@pytest.mark.django_db
def test_the_command_refuses_a_second_pull_of_a_class_being_pulled():
    import json
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    live = run_create(
        kind=RunKind.OPENCLASS_SYNC, triggered_by="user:ada", lock_key=openclass_lock_key("abc")
    )
    out = StringIO()
    with pytest.raises(CommandError, match=f"already under way: run {live.pk}") as refused:
        call_command("sync_openclass", "--class-id", "abc", "--json", stdout=out)
    assert refused.value.returncode == 2
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["run_id"] is None and f"run {live.pk}" in summary["error"]
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_a_resume_is_refused_while_another_run_of_the_file_is_live():
    from integrations.apex.enroll import ResumeRefused, apex_lock_key, apex_run_resume

    key = apex_lock_key(7)
    failed = Run.objects.create(
        kind=RunKind.APEX_ENROLL,
        triggered_by="t",
        status=RunStatus.FAILED,
        params={"roster_id": 7},
        lock_key=key,
    )
    live = run_create(
        kind=RunKind.APEX_ENROLL, triggered_by="t", params={"roster_id": 7}, lock_key=key
    )
    with pytest.raises(ResumeRefused, match=f"Run {live.pk} of this file is already under way"):
        apex_run_resume(run_id=failed.pk, triggered_by="user:ada")
    failed.refresh_from_db()
    assert failed.status == RunStatus.FAILED
