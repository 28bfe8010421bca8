"""The demo's data step: users, cohorts, schedules and a first pull of every class."""

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django_q.models import Schedule

from cohorts.models import Cohort
from cohorts.selectors import cohorts_visible_to
from integrations.openclass.simulator import DEMO_CLASSES
from integrations.schedules import PREFIX as SCHEDULE_PREFIX
from reports.models import Run, RunKind, RunStatus

pytestmark = pytest.mark.django_db


def test_demo_seed_fills_every_cohort_and_is_idempotent(openclass, apex, titan, settings):
    openclass()
    apex()
    titan()
    settings.OPENCLASS_REQUESTS_PER_SECOND = 0
    call_command("demo_seed")
    assert Cohort.objects.count() == len(DEMO_CLASSES) >= 3
    assert all(c.progressions.exists() for c in Cohort.objects.all())
    pulls = Run.objects.filter(kind=RunKind.OPENCLASS_SYNC)
    assert set(pulls.values_list("status", flat=True)) == {RunStatus.SUCCEEDED}
    enrollment = Run.objects.get(kind=RunKind.APEX_ENROLL)
    # The demo roster exercises every outcome, failures included.
    assert enrollment.status == RunStatus.PARTIAL
    assert {"enrolled", "already_enrolled", "failed"} <= set(enrollment.counts)
    # A Titan run of the small demo roster sits in the run list.
    sync = Run.objects.get(kind=RunKind.TITAN_SYNC)
    assert sync.status == RunStatus.SUCCEEDED and sync.counts["created"] == 2
    admin, mentor = User.objects.get(username="admin"), User.objects.get(username="mentor")
    assert admin.is_staff and not mentor.is_staff
    assert admin.check_password("classbridge-admin")
    assert cohorts_visible_to(mentor).count() == 2
    assert Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).count() == 3

    progressions = sum(c.progressions.count() for c in Cohort.objects.all())
    call_command("demo_seed")
    assert Cohort.objects.count() == len(DEMO_CLASSES)
    assert sum(c.progressions.count() for c in Cohort.objects.all()) == progressions
    assert Run.objects.filter(kind=RunKind.APEX_ENROLL).count() == 1
    assert Run.objects.filter(kind=RunKind.TITAN_SYNC).count() == 1
    rerun = pulls.order_by("-id").first()
    assert rerun.counts.get("created", 0) == 0 and rerun.counts.get("updated", 0) == 0


def test_demo_schedules_start_one_interval_after_the_first_pulls(openclass, apex, settings):
    from datetime import timedelta

    from django.utils import timezone

    openclass()
    apex()
    settings.OPENCLASS_REQUESTS_PER_SECOND = 0
    call_command("demo_seed")
    schedules = Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX)
    assert schedules.count() == 3
    # Not a re-pull of every cohort one minute after the demo starts.
    soonest = min(s.next_run for s in schedules)
    assert soonest > timezone.now() + timedelta(hours=5)


def test_demo_help_needs_no_settings(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    manage = Path(__file__).resolve().parent.parent / "manage.py"
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(manage), "demo", "--help"],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: manage.py demo" in result.stdout


def test_file_mail_writes_each_report_to_its_own_file(tmp_path):
    from django.core.mail import EmailMessage

    from reports.mailfiles import EmailBackend

    backend = EmailBackend(file_path=str(tmp_path))
    messages = [
        EmailMessage(f"Report {n}", "body", "a@example.com", ["b@example.com"]) for n in range(3)
    ]
    assert backend.send_messages(messages) == 3
    assert EmailBackend(file_path=str(tmp_path)).send_messages(messages[:1]) == 1
    files = sorted(tmp_path.iterdir())
    assert len(files) == 4 and all(f.suffix == ".eml" for f in files)
    assert sum("Subject: Report 0" in f.read_text() for f in files) == 2


def test_demo_seed_pulls_canvas_beside_openclass_and_one_student_shows_both(
    openclass, canvas, settings, client
):
    from cohorts.models import Source, Student
    from integrations.canvas.simulator import openclass_demo_email

    openclass()
    sim = canvas()
    settings.OPENCLASS_REQUESTS_PER_SECOND = 0
    settings.APEX_CLIENT_ID = ""
    call_command("demo_seed")
    canvas_cohorts = Cohort.objects.filter(source=Source.CANVAS)
    assert canvas_cohorts.count() == 2  # Biology and Chemistry; World History is refused
    bulk = Run.objects.filter(kind=RunKind.CANVAS_SYNC, params__mode="bulk").get()
    assert bulk.status == RunStatus.PARTIAL and bulk.counts["succeeded"] == 2
    assert all(c.sync_interval_hours == 6 for c in canvas_cohorts)
    assert Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).count() == 5
    records = Student.objects.filter(email__iexact=openclass_demo_email(sim.seed))
    assert records.count() == 2 and len({r.person_id for r in records}) == 1
    canvas_record = records.get(source=Source.CANVAS)
    cohort = canvas_record.cohorts.order_by("name").first()
    client.force_login(User.objects.get(username="admin"))
    page = client.get(f"/cohorts/{cohort.pk}/students/{canvas_record.pk}/").content.decode()
    assert "Software Development 1" in page and "In every cohort" in page
