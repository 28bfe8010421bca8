"""Journey 1 (issue 10): an admin uploads an APEX roster with bad rows, reads the
preview, confirms, watches the run go from queued to its report live, opens it and downloads the
failures CSV; then uploads a Titan roster that trips the guardrail, reads the held plan and its
removal list, approves it with a reason, and reads the applied run's report.
Screenshots: var/screenshots/admin_roster/.
"""

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import expect

from integrations import views as integration_views
from integrations.demo import DEMO_ROSTER
from integrations.jobs import job_execute
from tests.browser.conftest import stat_values

pytestmark = pytest.mark.django_db(transaction=True)

TITAN_GUARDRAIL = (
    Path(__file__).resolve().parents[2] / "integrations/titan/demo/roster_guardrail.csv"
)


def test_admin_uploads_a_roster_with_bad_rows_and_reads_the_report(
    login, live_server, admin_user, apex, shots, tmp_path, monkeypatch
):
    # The worker is this test: confirming queues the run, and the test runs it once the
    # page is following it, so the page is seen going from queued to its report.
    queued = []
    monkeypatch.setattr(integration_views, "enqueue_run", queued.append)
    simulator = apex()
    # The demo roster (bad rows, a duplicate, an unknown classroom and student), plus a
    # student whose OrgId differs between two classrooms, and a column APEX ignores.
    roster = tmp_path / "fall-roster.csv"
    lines = DEMO_ROSTER.read_text().splitlines()
    lines = [lines[0] + ",Teacher", *(line + "," if line else line for line in lines[1:])]
    roster.write_text("\n".join([*lines, "ENG-090,S100001,ORG-NORTH,Jones"]) + "\n")
    page = login("ada", "pw-admin-1")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # Upload.
    page.goto(f"{live_server.url}/integrations/apex/")
    expect(page).to_have_title("APEX enrollment · Classbridge")
    page.set_input_files("input[type=file]", str(roster))
    shots(page, "1-upload")
    page.click("text=Upload and preview")
    page.wait_for_url("**/apex/rosters/*/")

    # The preview: what would be sent, the bad rows, the cross-row warning.
    preview = stat_values(page)
    assert preview["rows read"] == 21
    assert preview["enrollments to send"] < preview["rows read"]
    assert preview["distinct students"] < preview["enrollments to send"]
    assert preview["invalid rows"] >= 1
    main = page.inner_text("main")
    assert "Problems found" in main and "Warnings across rows" in main
    assert "Student S100001 has different OrgIds in different classrooms" in main
    assert "Columns ignored\nTeacher" in main
    assert simulator.request_log == []  # nothing is sent before the admin confirms
    shots(page, "2-preview", doc="apex-preview.png")

    # Confirm; the run page follows the run live and turns into its report.
    page.click("text=Confirm and enroll")
    page.wait_for_url("**/runs/*/")
    expect(page.locator("[data-run-badge]")).to_have_text("Queued")
    expect(page.locator(".run-progress .badge")).to_have_text("Queued")
    assert "Waiting for a worker" in page.inner_text(".run-progress")
    shots(page, "3-queued")
    (run_id,) = queued
    job_execute(run_id)
    expect(page.locator(".report-summary")).to_be_visible(timeout=30_000)
    header_badge = page.locator("[data-run-badge]").inner_text()
    assert header_badge == page.locator(".report-summary .badge").first.inner_text()
    assert header_badge == "Partly failed"
    assert simulator.calls("POST", r"^/classrooms/")

    # The tiles add up: each row of the file has one outcome, invalid rows inside "failed".
    tiles = stat_values(page)
    rows = tiles.pop("rows in the file")
    tiles.pop("classrooms", None)
    tiles.pop("requests", None)
    assert sum(tiles.values()) == rows == 21
    failed = tiles["failed"]
    summary = page.inner_text(".summary-line")
    assert f"{failed} failed of 21 rows" in summary
    assert "already_enrolled" not in page.inner_text("main")
    assert "invalid_data" not in page.inner_text("main")
    shots(page, "4-report", doc="run-report.png")

    # The failures CSV holds one line per failed row.
    with page.expect_download() as download:
        page.click("text=Download failures CSV")
    body = download.value.path().read_text(encoding="utf-8-sig")
    lines = list(csv.reader(io.StringIO(body)))
    assert len(lines) - 1 == failed
    # The file link goes back to the preview.
    page.click(".run-links a")
    page.wait_for_url("**/apex/rosters/*/")
    assert "same content (SHA-256) as one already run" in page.inner_text("main")
    shots(page, "5-preview-after-run")
    assert not errors


def test_admin_approves_a_held_titan_plan_once_and_reads_the_report(
    login, live_server, admin_user, titan, shots
):
    # The continuation of the journey: a Titan roster that removes more than the limits
    # allow is held, nothing is sent, and the admin approves it with a reason.
    simulator = titan()
    page = login("ada", "pw-admin-1")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server.url}/integrations/titan/")
    page.set_input_files("input[type=file]", str(TITAN_GUARDRAIL))
    shots(page, "6-titan-upload")
    page.click("text=Upload and plan")
    page.wait_for_url("**/runs/*/")
    expect(page.locator(".report-summary")).to_be_visible(timeout=30_000)
    shots(page, "7-titan-planned")

    # The held plan: the verdict and the list of students it would remove.
    page.click("text=Review the plan and decide")
    page.wait_for_url("**/titan/runs/*/plan/")
    assert "Held: this plan removes more than the limits allow" in page.inner_text("#verdict")
    # Every removal is listed, one row each, and the site over its limit is marked.
    assert "Central Kitchen" in page.inner_text("#verdict")
    removals = page.locator("h2#remove + .table-wrap tbody tr")
    removed = int(page.inner_text("h2#remove .muted").strip("()"))
    assert removals.count() == removed > 0
    assert "Central Kitchen" in removals.first.inner_text()
    expect(page.locator("tr.row-failed .badge.held")).not_to_have_count(0)
    shots(page, "8-titan-plan-held")
    assert simulator.mutations() == []  # nothing is sent while the plan is held

    # Approve with a reason; the run applies the plan and its report names who and why.
    page.fill("textarea[name=reason]", "Central Kitchen closes this summer")
    page.click("text=Approve and apply")
    page.wait_for_url("**/runs/*/")
    expect(page.locator(".report-summary")).to_be_visible(timeout=30_000)
    report = page.inner_text("main")
    assert "Central Kitchen closes this summer" in report and "by user:ada" in report
    assert len(simulator.mutations()) == 50
    shots(page, "9-titan-run-applied")
    assert not errors, errors
