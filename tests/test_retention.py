"""Retention: stored rosters, run items and captured mail are pruned after their settings;
runs keep their summary and counts and say that their items were pruned."""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from integrations.apex.enroll import apex_resume_problem
from integrations.models import RosterUpload
from integrations.retention import retention_prune
from integrations.rosters import roster_store
from integrations.schedules import RETENTION, schedules_sync
from reports.constants import ErrorClass
from reports.models import Run, RunItem, RunKind, RunStatus

pytestmark = pytest.mark.django_db

DAY = 86400


@pytest.fixture(autouse=True)
def retention(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.RETENTION_ROSTER_DAYS = 90
    settings.RETENTION_RUN_ITEMS_DAYS = 180
    settings.RETENTION_MAIL_DAYS = 30


def age(path: Path, days: float) -> None:
    when = timezone.now().timestamp() - days * DAY
    os.utime(path, (when, when))


def stored(text: str, *, days: float) -> RosterUpload:
    upload = roster_store(io.BytesIO(text.encode()), name="roster.csv", origin="cli")
    RosterUpload.objects.filter(pk=upload.pk).update(
        created_at=timezone.now() - timedelta(days=days)
    )
    age(upload.path, days)
    return upload


def items(n: int) -> list[dict]:
    return [
        {"key": f"s{i}", "outcome": "failed", "error_class": ErrorClass.NOT_FOUND} for i in range(n)
    ]


# --- schedule -------------------------------------------------------------------------
def test_the_prune_is_scheduled_daily_beside_the_reaper():
    schedules_sync()
    schedules_sync()
    schedule = Schedule.objects.get(name=RETENTION)
    assert schedule.schedule_type == Schedule.DAILY and schedule.repeats == -1
    assert import_string(schedule.func) is retention_prune


# --- rosters --------------------------------------------------------------------------
def test_old_rosters_go_recent_and_needed_ones_stay(run_factory, tmp_path):
    old = stored("ClassroomName,StudentId\nA,1\n", days=120)
    recent = stored("ClassroomName,StudentId\nA,2\n", days=10)
    held_for = stored("ClassroomName,StudentId\nA,3\n", days=120)
    queued_for = stored("ClassroomName,StudentId\nA,4\n", days=120)
    for upload, status in ((held_for, RunStatus.HELD), (queued_for, RunStatus.QUEUED)):
        run_factory(
            kind=RunKind.APEX_ENROLL,
            status=status,
            params={"roster_id": upload.pk, "sha256": upload.sha256},
        )
    leftover = tmp_path / "rosters" / "tmpab12cd.part"
    leftover.write_text("half a file")
    age(leftover, 2)
    other = tmp_path / "rosters" / "notes.txt"
    other.write_text("not ours")
    age(other, 400)

    counts = retention_prune()

    assert counts["rosters"] == 1 and counts["roster_files"] == 2
    assert not RosterUpload.objects.filter(pk=old.pk).exists() and not old.path.exists()
    assert not leftover.exists()
    for kept in (recent, held_for, queued_for):
        assert RosterUpload.objects.filter(pk=kept.pk).exists() and kept.path.exists()
    assert other.exists()


def test_a_file_shared_with_a_recent_upload_of_the_same_bytes_stays():
    text = "ClassroomName,StudentId\nA,1\n"
    old = stored(text, days=120)
    again = roster_store(io.BytesIO(text.encode()), name="again.csv", origin="cli")
    retention_prune()
    assert not RosterUpload.objects.filter(pk=old.pk).exists()
    assert again.path.exists()


def test_a_resume_after_the_roster_went_says_so(run_factory):
    upload = stored("ClassroomName,StudentId\nA,1\n", days=120)
    run = run_factory(
        kind=RunKind.APEX_ENROLL, status=RunStatus.FAILED, params={"roster_id": upload.pk}
    )
    retention_prune()
    from integrations.jobs import InvalidInput
    from integrations.rosters import roster_stored

    with pytest.raises(InvalidInput, match="upload the file again"):
        roster_stored(run.params["roster_id"])


# --- run items ------------------------------------------------------------------------
def finished_days_ago(run: Run, days: int) -> Run:
    Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days))
    run.refresh_from_db()
    return run


def test_old_run_items_go_and_the_run_keeps_its_summary(run_factory, client, admin_user):
    counts = {"rows": 3, "enrolled": 0, "failed": 3}
    old = finished_days_ago(
        run_factory(status=RunStatus.PARTIAL, counts=counts, message="3 failed", items=items(3)),
        200,
    )
    recent = finished_days_ago(run_factory(status=RunStatus.PARTIAL, items=items(2)), 100)
    held = finished_days_ago(run_factory(status=RunStatus.HELD, items=items(2)), 400)
    running = run_factory(status=RunStatus.RUNNING, items=items(2))

    result = retention_prune()

    assert result["runs"] == 1 and result["items"] == 3
    old.refresh_from_db()
    assert old.items.count() == 0 and old.items_pruned_at is not None
    assert old.counts == counts and old.message == "3 failed" and old.status == RunStatus.PARTIAL
    for kept in (recent, held, running):
        assert RunItem.objects.filter(run=kept).count() == 2
        kept.refresh_from_db()
        assert kept.items_pruned_at is None
    assert retention_prune()["runs"] == 0  # nothing left to do

    client.force_login(admin_user)
    page = client.get(reverse("reports:detail", args=[old.pk])).content.decode()
    assert "items were pruned on" in page and "3 failed" in page


def test_a_pruned_apex_run_is_not_resumed(run_factory):
    run = finished_days_ago(
        run_factory(
            kind=RunKind.APEX_ENROLL,
            status=RunStatus.FAILED,
            params={"roster_id": 1},
            items=items(1),
        ),
        200,
    )
    assert apex_resume_problem(run) is None
    retention_prune()
    run.refresh_from_db()
    assert "items were pruned" in apex_resume_problem(run)


# --- captured mail --------------------------------------------------------------------
def test_old_captured_mail_goes(settings, tmp_path):
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": str(mail_dir)},
        }
    }
    old, recent, other = mail_dir / "1-1.log", mail_dir / "2-2.log", mail_dir / "keep.txt"
    for path, days in ((old, 40), (recent, 5), (other, 400)):
        path.write_text("Subject: x\n")
        age(path, days)
    assert retention_prune()["mail_files"] == 1
    assert not old.exists() and recent.exists() and other.exists()


def test_another_mailer_leaves_files_alone(settings, tmp_path):
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    old = mail_dir / "1-1.log"
    old.write_text("x")
    age(old, 400)
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    assert retention_prune()["mail_files"] == 0 and old.exists()


# --- settings -------------------------------------------------------------------------
def test_zero_keeps_everything_forever(settings, run_factory, tmp_path):
    settings.RETENTION_ROSTER_DAYS = settings.RETENTION_RUN_ITEMS_DAYS = 0
    settings.RETENTION_MAIL_DAYS = 0
    upload = stored("ClassroomName,StudentId\nA,1\n", days=4000)
    run = finished_days_ago(run_factory(status=RunStatus.PARTIAL, items=items(1)), 4000)
    assert set(retention_prune().values()) == {0}
    assert upload.path.exists() and run.items.count() == 1


def test_a_negative_retention_is_refused_naming_the_setting(tmp_path):
    from tests.test_logging import run_probe

    result = run_probe(tmp_path, RETENTION_RUN_ITEMS_DAYS="-1")
    assert result.returncode != 0 and "RETENTION_RUN_ITEMS_DAYS" in result.stderr


def test_the_command_prunes_now_and_prints_what_it_deleted(run_factory, capsys):
    import json

    from django.core.management import call_command

    finished_days_ago(run_factory(status=RunStatus.PARTIAL, items=items(2)), 200)
    call_command("retention_prune")
    printed = json.loads(capsys.readouterr().out)
    assert printed["runs"] == 1 and printed["items"] == 2


# --- Titan plans ----------------------------------------------------------------------
def _plan_file(name: str, days: float) -> Path:
    from integrations.titan.store import plan_dir

    path = plan_dir() / f"{name}.json"
    path.write_text("{}")
    age(path, days)
    return path


def test_old_titan_plans_go_unless_a_run_still_needs_them(run_factory):
    old_done = finished_days_ago(
        run_factory(kind=RunKind.TITAN_SYNC, status=RunStatus.SUCCEEDED, params={"plan_hash": "a"}),
        200,
    )
    recent_done = finished_days_ago(
        run_factory(kind=RunKind.TITAN_SYNC, status=RunStatus.SUCCEEDED, params={"plan_hash": "b"}),
        10,
    )
    run_factory(kind=RunKind.TITAN_SYNC, status=RunStatus.HELD, params={"plan_hash": "c"})
    files = {name: _plan_file(name, 300) for name in "abcd"}
    files["new"] = _plan_file("e", 5)  # no run names it yet: a preview being made
    assert old_done.params["plan_hash"] == "a" and recent_done.pk
    assert retention_prune()["plan_files"] == 2
    assert [n for n, path in files.items() if path.exists()] == ["b", "c", "new"]


def test_a_pruned_plan_page_says_why(run_factory, admin_client):
    run = finished_days_ago(
        run_factory(kind=RunKind.TITAN_SYNC, status=RunStatus.SUCCEEDED, params={"plan_hash": "a"}),
        200,
    )
    _plan_file("a", 300)
    retention_prune()
    response = admin_client.get(reverse("integrations:titan_plan", args=[run.pk]), follow=True)
    assert response.redirect_chain == [(reverse("reports:detail", args=[run.pk]), 302)]
    assert "retention deleted it" in response.content.decode()


def test_zero_keeps_titan_plans(settings, run_factory):
    settings.RETENTION_RUN_ITEMS_DAYS = 0
    path = _plan_file("a", 4000)
    assert retention_prune()["plan_files"] == 0 and path.exists()
