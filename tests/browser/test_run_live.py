"""The run page follows a running run live (static run.js polling the progress
fragment) and turns into the report when the run finishes."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from reports.models import Run, RunKind, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_progress_moves_and_the_report_appears(login, live_server, admin_user):
    run = Run.objects.create(
        kind=RunKind.OPENCLASS_SYNC,
        status=RunStatus.RUNNING,
        triggered_by="user:ada",
        subject="Cohort A",
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        stage="fetch",
        progress_done=3,
        progress_total=10,
        progress_unit="pages",
        counts={"created": 30},
    )
    page = login("ada", "pw-admin-1")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    assert "3" in page.inner_text(".run-progress-done")

    Run.objects.filter(pk=run.pk).update(progress_done=7, counts={"created": 70})
    expect(page.locator(".run-progress-done")).to_contain_text("7", timeout=10_000)
    expect(page.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "70")

    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED, finished_at=timezone.now(), stage="", progress_done=10
    )
    page.wait_for_selector(".report-summary", timeout=10_000)
    assert "Succeeded" in page.inner_text(".report-summary")
    assert not errors


def test_header_badge_follows_the_progress_box_and_elapsed_time_moves(
    login, live_server, admin_user
):
    run = Run.objects.create(
        kind=RunKind.APEX_ENROLL,
        status=RunStatus.QUEUED,
        triggered_by="user:ada",
        subject="fall.csv",
    )
    page = login("ada", "pw-admin-1")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(page.locator("[data-run-badge]")).to_have_text("Queued")
    first = page.locator("[data-elapsed-since]").inner_text()
    # The elapsed time moves between polls, without a reload.
    expect(page.locator("[data-elapsed-since]")).not_to_have_text(first, timeout=10_000)

    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        stage="enroll",
        progress_done=4,
        progress_total=20,
        progress_unit="rows",
    )
    # One state on the page: the header's badge follows the progress box.
    expect(page.locator(".run-progress .badge")).to_have_text("Running", timeout=10_000)
    expect(page.locator("[data-run-badge]")).to_have_text("Running")
    expect(page.locator(".run-progress-done")).to_contain_text("4 / 20 rows")
    assert not errors
