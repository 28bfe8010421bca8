"""The Titan sync in a real browser: upload, a held plan, approve with a reason, the report."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import expect

GUARDRAIL = Path(__file__).resolve().parents[2] / "integrations/titan/demo/roster_guardrail.csv"
SHOTS = os.environ.get("TITAN_SCREENSHOTS")  # a folder: keep screenshots to look at


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def test_admin_uploads_a_guardrail_file_approves_it_once_and_reads_the_report(
    login, live_server, admin_user, titan
):
    sim = titan()
    page = login("ada", "pw-admin-1")
    page.goto(f"{live_server.url}/integrations/titan/")
    page.set_input_files("input[type=file]", str(GUARDRAIL))
    page.click("text=Upload and plan")
    page.wait_for_url("**/runs/*/")
    expect(page.locator(".report-summary")).to_be_visible(timeout=30_000)
    page.click("text=Review the plan and decide")
    page.wait_for_url("**/titan/runs/*/plan/")
    shot(page, "titan-plan-held")
    assert "Held: this plan removes more than the limits allow" in page.inner_text("#verdict")
    assert sim.mutations() == []
    page.fill("textarea[name=reason]", "Central Kitchen closes this summer")
    page.click("text=Approve and apply")
    page.wait_for_url("**/runs/*/")
    expect(page.locator(".report-summary")).to_be_visible(timeout=30_000)
    shot(page, "titan-run-applied")
    report = page.inner_text("main")
    assert "Central Kitchen closes this summer" in report and "by user:ada" in report
    assert len(sim.mutations()) == 50
