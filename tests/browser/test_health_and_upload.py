"""Issues 3 and 4 in Chromium: the health page draws its charts from our own plotly.js
under the CSP, reads on a phone and without JavaScript; an admin uploads a roster,
previews it and confirms the enrollment."""

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from cohorts.models import Cohort
from integrations.demo import DEMO_ROSTER
from integrations.jobs import job_execute
from integrations.openclass.pull import openclass_run_create
from integrations.openclass.simulator import SOFTWARE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="session", autouse=True)
def plotly_in_static():
    call_command("vendor_plotly", verbosity=0)


@pytest.fixture
def pulled_cohort(openclass, settings, mentor_a):
    openclass()
    settings.OPENCLASS_REQUESTS_PER_SECOND = 0
    run = job_execute(openclass_run_create(class_id=SOFTWARE, triggered_by="test").pk)
    cohort = Cohort.objects.get(pk=run.params["cohort_id"])
    cohort.mentors.add(mentor_a)
    return cohort


def test_health_page_draws_charts_from_our_own_static_files(login, live_server, pulled_cohort):
    page = login("mia", "pw-mentor-1")
    errors, foreign = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "request",
        lambda r: foreign.append(r.url) if not r.url.startswith(live_server.url) else None,
    )
    page.goto(f"{live_server.url}/cohorts/{pulled_cohort.pk}/")
    expect(page.locator(".chart .main-svg").first).to_be_visible(timeout=15_000)
    assert page.locator(".chart .main-svg").count() >= 3
    assert "At risk" in page.inner_text("main")
    assert not errors
    assert not foreign


def test_health_page_fits_a_phone(browser, live_server, pulled_cohort, mentor_a):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "pw-mentor-1")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/cohorts/{pulled_cohort.pk}/")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1
    context.close()


def test_health_page_works_without_javascript(browser, live_server, pulled_cohort):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "pw-mentor-1")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/cohorts/{pulled_cohort.pk}/?status=at_risk")
    body = page.inner_text("main")
    assert "the chart needs JavaScript" in body
    rows = page.locator("table").filter(has_text="Reasons").locator("tbody tr")
    assert rows.count() >= 1
    assert "At risk" in rows.first.inner_text()
    context.close()


def test_admin_uploads_previews_and_confirms_a_roster(login, live_server, admin_user, apex):
    simulator = apex()
    page = login("ada", "pw-admin-1")
    page.goto(f"{live_server.url}/integrations/apex/")
    page.set_input_files("input[type=file]", str(DEMO_ROSTER))
    page.click("text=Upload and preview")
    page.wait_for_url("**/apex/rosters/*/")
    preview = page.inner_text("main")
    assert "ALG-101" in preview and "Problems found" in preview
    assert simulator.request_log == []  # nothing is sent before the admin confirms
    page.click("text=Confirm and enroll")
    page.wait_for_url("**/runs/*/")
    expect(page.locator(".report-summary")).to_be_visible(timeout=30_000)
    assert "Partly failed" in page.inner_text(".report-summary")
    assert simulator.request_log
