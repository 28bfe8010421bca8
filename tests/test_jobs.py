"""The job runner maps what a job does to the run's status, and claims runs once."""

import pytest

from integrations.jobs import job_execute
from reports.models import EXIT_CODES, Run, RunKind, RunStatus
from reports.services import run_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def use_job(fake_openclass_job):
    def _use(name: str) -> Run:
        fake_openclass_job(name)
        return run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="test")

    return _use


@pytest.mark.parametrize(
    ("job", "status", "exit_code"),
    [
        ("ok_job", RunStatus.SUCCEEDED, 0),
        ("partial_job", RunStatus.PARTIAL, 1),
        ("invalid_job", RunStatus.INVALID, 2),
        ("held_job", RunStatus.HELD, 3),
        ("auth_job", RunStatus.FAILED, 4),
        ("crash_job", RunStatus.FAILED, 4),
    ],
)
def test_status_and_exit_code_follow_the_job(use_job, job, status, exit_code):
    run = job_execute(use_job(job).pk)
    assert run.status == status
    assert EXIT_CODES[run.status] == exit_code
    assert run.finished_at is not None


def test_ok_job_records_stage_timings_counts_and_progress(use_job):
    run = job_execute(use_job("ok_job").pk)
    run.refresh_from_db()
    assert run.counts == {"created": 3}
    assert set(run.stage_timings) >= {"fetch", "report"}
    assert run.progress_done == 2 and run.progress_total == 2


def test_failed_run_names_the_error_class(use_job):
    run = job_execute(use_job("auth_job").pk)
    assert run.error_class == "auth"
    assert "refused" in run.message


def test_crash_is_recorded_not_raised(use_job):
    run = job_execute(use_job("crash_job").pk)
    assert run.error_class == "internal"
    assert "boom" in run.message


def test_duplicate_delivery_does_nothing(use_job):
    run = use_job("ok_job")
    assert job_execute(run.pk) is not None
    assert job_execute(run.pk) is None  # already claimed and finished
    run.refresh_from_db()
    assert run.counts == {"created": 3}


def test_partial_job_items_are_stored(use_job):
    run = job_execute(use_job("partial_job").pk)
    item = run.items.get()
    assert item.failed and item.key == "42"


def test_resumed_pull_starts_again_from_scratch(use_job):
    from reports.models import RunItem, RunStatus

    run = use_job("ok_job")
    run.params = {"resumes": 1}
    run.counts = {"created": 40}
    run.save()
    RunItem.objects.create(run=run, outcome="page", key="0")
    run = job_execute(run.pk)
    assert run.status == RunStatus.SUCCEEDED
    assert run.counts == {"created": 3}
    assert not run.items.filter(outcome="page").exists()


def test_progress_lines_off_a_terminal():
    import io

    from integrations.cli import ProgressPrinter

    stream = io.StringIO()
    printer = ProgressPrinter(stream)
    run = Run(kind=RunKind.OPENCLASS_SYNC, stage="authenticate", counts={})
    printer(run)
    run.stage, run.progress_total, run.progress_done, run.progress_unit = "fetch", 4, 1, "pages"
    run.counts = {"created": 10}
    printer(run)
    printer(run)  # unchanged: not printed twice
    assert stream.getvalue().splitlines() == ["[authenticate]", "[fetch] 1/4 pages created=10"]


def test_ctrl_c_on_the_command_line_records_the_run_as_failed(use_job, capsys):
    import json

    from django.core.management import call_command

    use_job("interrupted_job").delete()  # the command makes its own run
    with pytest.raises(SystemExit) as exit_info:
        call_command("sync_openclass", "--class-id", "abc", "--json")
    assert exit_info.value.code == 4
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = Run.objects.get(pk=summary["run_id"])
    assert run.status == RunStatus.FAILED and "Ctrl-C" in run.message
    assert summary["status"] == "failed"


def test_summary_always_carries_the_kind_count_keys(use_job):
    from integrations.cli import run_summary

    run = job_execute(use_job("auth_job").pk)
    assert run.counts == {}
    assert run_summary(run)["counts"] == {
        "fetched": 0,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
    }
