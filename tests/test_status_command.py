"""manage.py status prints counts per cohort and the last run of each kind."""

import pytest
from django.core.management import call_command
from django.utils import timezone

from cohorts.models import Assignment, Enrollment, Progression, Student
from reports.models import Run, RunKind, RunStatus

pytestmark = pytest.mark.django_db


def test_status_lists_cohorts_and_last_runs(cohort_a, capsys, monkeypatch):
    monkeypatch.setenv("OPENCLASS_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("OPENCLASS_EMAIL", "ops@example.com")
    student = Student.objects.create(source="openclass", external_id="s1", first_name="Jo")
    Enrollment.objects.create(cohort=cohort_a, student=student)
    assignment = Assignment.objects.create(cohort=cohort_a, external_id="a1", name="Intro")
    Progression.objects.create(
        cohort=cohort_a,
        student=student,
        assignment=assignment,
        source="openclass",
        external_id="p1",
        synced_at=timezone.now(),
    )
    cohort_a.last_synced_at = timezone.now()
    cohort_a.last_sync_status = "succeeded"
    cohort_a.save()
    Run.objects.create(
        kind=RunKind.OPENCLASS_SYNC, status=RunStatus.SUCCEEDED, triggered_by="t", subject="A"
    )
    call_command("status")
    out = capsys.readouterr().out
    assert "Cohort A" in out
    assert "students:     1" in out
    assert "assignments:  1" in out
    assert "progressions: 1" in out
    assert "(succeeded)" in out
    assert "OpenClass config: environment" in out
    assert "OpenClass pull" in out and "succeeded" in out
    assert "APEX enrollment" in out and "none" in out
    assert "hunter2-secret" not in out


def test_status_without_cohorts(capsys):
    call_command("status")
    assert "No cohorts yet" in capsys.readouterr().out
