"""The run page offers the actions the job's integration registers (APEX: the seed's
error_log.csv and Resume), and none for runs of other kinds."""

import pytest
from django.urls import reverse
from django.utils import timezone

from reports.models import Run, RunItem, RunKind, RunStatus

pytestmark = pytest.mark.django_db


def make_run(kind, status, **params):
    run = Run.objects.create(
        kind=kind, status=status, triggered_by="t", finished_at=timezone.now(), params=params
    )
    RunItem.objects.create(
        run=run, outcome="failed", key="s1", error_class="vendor_error", message="No Order"
    )
    return run


def test_failed_apex_run_offers_error_log_and_resume(client, admin_user):
    run = make_run(RunKind.APEX_ENROLL, RunStatus.FAILED, roster_id=1)
    client.force_login(admin_user)
    page = client.get(reverse("reports:detail", args=[run.pk])).content.decode()
    assert reverse("integrations:apex_error_log", args=[run.pk]) in page
    assert reverse("integrations:apex_resume", args=[run.pk]) in page


def test_partial_apex_run_offers_the_error_log_only(client, admin_user):
    run = make_run(RunKind.APEX_ENROLL, RunStatus.PARTIAL, roster_id=1)
    client.force_login(admin_user)
    page = client.get(reverse("reports:detail", args=[run.pk])).content.decode()
    assert reverse("integrations:apex_error_log", args=[run.pk]) in page
    assert reverse("integrations:apex_resume", args=[run.pk]) not in page


def test_other_kinds_get_no_apex_actions(client, admin_user):
    run = make_run(RunKind.OPENCLASS_SYNC, RunStatus.FAILED)
    client.force_login(admin_user)
    page = client.get(reverse("reports:detail", args=[run.pk])).content.decode()
    assert "error_log.csv" not in page
    assert "Resume" not in page
