"""Journey 2 (issue 10): a mentor signs in, sees only their cohorts, opens one (charts
drawn from our own files, no console error, no outside request), filters to at risk,
opens a student, adds a note, downloads the CSV; another mentor's cohort answers 404.
Screenshots: var/screenshots/mentor_health/."""

import csv
import io

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from cohorts.models import Cohort
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
    run = job_execute(
        openclass_run_create(class_id=SOFTWARE, triggered_by="test").pk, send_report=False
    )
    cohort = Cohort.objects.get(pk=run.params["cohort_id"])
    cohort.mentors.add(mentor_a)
    return cohort


def test_mentor_checks_cohort_health(login, live_server, pulled_cohort, mentor_b, shots):
    other = Cohort.objects.get(name="Cohort B")  # mentored by ben only
    page = login("mia", "pw-mentor-1")
    errors, foreign = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "request",
        lambda r: foreign.append(r.url) if not r.url.startswith(live_server.url) else None,
    )

    # Only their cohorts.
    page.goto(f"{live_server.url}/")
    listing = page.inner_text("main")
    assert pulled_cohort.name in listing and "Cohort A" in listing
    assert "Cohort B" not in listing
    shots(page, "1-cohorts")

    # One cohort: the charts are drawn.
    page.click(f"text={pulled_cohort.name}")
    page.wait_for_url(f"**/cohorts/{pulled_cohort.pk}/")
    expect(page).to_have_title(f"{pulled_cohort.name} · Cohorts · Classbridge")
    expect(page.locator(".chart .main-svg").first).to_be_visible(timeout=15_000)
    assert page.locator(".chart .main-svg").count() >= 3
    shots(page, "2-health", doc="cohort-health.png")

    # Filter to at risk.
    page.select_option("select[name=status]", "at_risk")
    page.click("#students button[type=submit], form[data-table-filter] button[type=submit]")
    page.wait_for_url("**status=at_risk**")
    rows = page.locator("#students-table tbody tr")
    assert rows.count() >= 1
    for row in rows.all():
        if row.is_visible():
            assert "At risk" in row.inner_text() or "at risk" in row.inner_text().lower()
    shots(page, "3-at-risk")

    # A student: add a note.
    rows.first.locator("a").first.click()
    page.wait_for_url("**/students/*/")
    page.fill("textarea", "Called on Monday; will catch up on the recursion quiz.")
    page.click("text=Add note")
    expect(page.locator("ol.notes")).to_contain_text("Called on Monday")
    shots(page, "4-student-note")

    # The CSV of the students table.
    page.go_back()
    page.go_back()
    page.goto(f"{live_server.url}/cohorts/{pulled_cohort.pk}/?status=at_risk")
    with page.expect_download() as download:
        page.click("text=Students CSV")
    body = download.value.path().read_text(encoding="utf-8-sig")
    lines = list(csv.reader(io.StringIO(body)))
    assert len(lines) >= 2 and lines[0][0]

    assert not errors, errors
    assert not foreign, foreign

    # Another mentor's cohort does not exist for this one.
    response = page.goto(f"{live_server.url}/cohorts/{other.pk}/")
    assert response.status == 404
    assert "Cohort B" not in page.content()
