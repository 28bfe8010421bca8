"""Journey 3 (issue 10): a report recipient reads the HTML report email, rendered in the
browser as it was captured: it shows the same counts as the run page, and its links open
the run and the cohort. A mentor reads their digest the same way: its counts and the students
who need attention match the cohort health page, and its links open the cohort and the
student. Screenshots: var/screenshots/report_email/."""

import pytest
from django.utils import timezone

from cohorts.models import Cohort
from integrations.jobs import job_execute
from integrations.openclass.pull import openclass_run_create
from integrations.openclass.simulator import SOFTWARE
from notifications.digest import ITEMS_SHOWN, digests_send
from reports.constants import ErrorClass
from reports.mail import run_report_send
from reports.models import RunStatus
from tests.browser.conftest import stat_values

pytestmark = pytest.mark.django_db(transaction=True)


def email_counts(page) -> dict[str, int]:
    counts = {}
    for row in page.locator("tr[data-count]").all():
        label, value = row.locator("td").all()
        counts[label.inner_text().split(" (")[0].strip()] = int(value.inner_text())
    return counts


def test_report_email_matches_the_run_page_and_links_the_run_and_cohort(
    login, live_server, settings, admin_user, cohort_a, ids, run_factory, mailoutbox, shots
):
    settings.SITE_URL = live_server.url
    items = [
        {"key": f"s{n}", "label": f"Student {n}", "group": "Unit 1", "outcome": "created"}
        for n in range(3)
    ] + [
        {
            "key": "s9",
            "label": "Student 9",
            "group": "Unit 2",
            "outcome": "failed",
            "error_class": ErrorClass.INVALID_DATA,
            "message": "Grade 140 is not between 0 and 100.",
        }
    ]
    run = run_factory(
        status=RunStatus.PARTIAL,
        subject="Cohort A",
        params={"class_id": "class-a", "cohort_name": "Cohort A", "cohort_id": cohort_a.pk},
        counts={"fetched": 4, "created": 3, "unchanged": 0, "failed": 1},
        items=items,
    )
    assert run_report_send(run=run) == 1
    (message,) = mailoutbox
    html = message.alternatives[0][0]
    assert message.subject.endswith("partly failed (3 created, 1 failed)")

    page = login("ada", "pw-admin-1")
    page.set_content(html)
    in_email = email_counts(page)
    assert in_email == {"records fetched": 4, "created": 3, "failed": 1}
    summary = page.inner_text("[data-summary]")
    assert summary == "3 created, 1 failed."
    assert "invalid_data" not in page.inner_text("body")
    shots(page, "1-email", doc="run-report-email.png")

    # The run page shows the same counts and the same summary.
    page.click("text=Open the run page")
    page.wait_for_url(f"{live_server.url}/runs/{run.pk}/")
    assert stat_values(page) == in_email
    assert page.inner_text(".summary-line") == summary
    shots(page, "2-run-page")

    # The email's cohort link opens the cohort.
    page.set_content(html)
    page.click("a:text('Cohort A')")
    page.wait_for_url(f"{live_server.url}/cohorts/{cohort_a.pk}/")
    assert page.title().startswith("Cohort A")
    shots(page, "3-cohort")


@pytest.fixture
def pulled_cohort(openclass, settings, mentor_a):
    """A cohort pulled from the OpenClass simulator (its data ends today), mentored by mia."""
    openclass()
    settings.OPENCLASS_REQUESTS_PER_SECOND = 0
    run = job_execute(
        openclass_run_create(class_id=SOFTWARE, triggered_by="test").pk, send_report=False
    )
    cohort = Cohort.objects.get(pk=run.params["cohort_id"])
    mentor_a.mentored_cohorts.set([cohort])  # this cohort only: the digest has one section
    return cohort


def health_statuses(page, url: str, status: str) -> dict[str, str]:
    """{name: status label} of the health page's students table filtered to `status`,
    every page of it."""
    found = {}
    page.goto(f"{url}?status={status}")
    while True:
        for row in page.locator("#students-table tbody tr").all():
            cells = row.locator("td")
            if cells.count() < 2:
                continue
            name = cells.nth(0).locator("a").first.inner_text().strip()
            found[name] = cells.nth(1).inner_text().strip()
        following = page.locator("a[rel=next]")
        if not following.count():
            return found
        following.first.click()
        page.wait_for_load_state()


def test_mentor_digest_matches_the_health_page_and_links_the_cohort_and_students(
    login, live_server, settings, pulled_cohort, mailoutbox, shots
):
    settings.SITE_URL = live_server.url
    settings.DIGEST_HOUR = 0
    settings.DIGEST_DEFAULT_FREQUENCY = "daily"
    assert digests_send(now=timezone.now()) == {"sent": 1}
    (message,) = mailoutbox
    assert message.to == ["mia@example.com"]
    html = message.alternatives[0][0]

    page = login("mia", "pw-mentor-1")
    page.set_content(html)
    heading = page.locator(f"h2:has(a:text-is('{pulled_cohort.name}'))")
    line = heading.locator("xpath=following-sibling::p[1]").inner_text()
    listed = {}
    newly = heading.locator("xpath=following-sibling::ul[1]/li[a]")
    for item in newly.all():
        name, rest = item.inner_text().split(": ", 1)
        listed[name] = rest.split(",", 1)[0]
    assert listed, "the first digest lists everyone who needs attention"
    shots(page, "4-digest", doc="digest.png")

    # The health page, as the mentor sees it now: the same counts and the same statuses.
    detail = f"{live_server.url}/cohorts/{pulled_cohort.pk}/"
    page.goto(detail)
    students, at_risk, watch = (
        int(page.locator(f".stats .stat:has(.label:text-matches('^{label}')) .value").inner_text())
        for label in ("students", "at risk", "to watch")
    )
    assert line.startswith(f"{students} students: {at_risk} at risk, {watch} to watch.")
    on_page = {
        **health_statuses(page, detail, "at_risk"),
        **health_statuses(page, detail, "watch"),
    }
    assert len(on_page) == at_risk + watch
    if len(on_page) <= ITEMS_SHOWN:
        assert set(listed) == set(on_page)
    for name, status in listed.items():
        assert on_page[name].lower() == status, name

    # The digest's links open the cohort and a student for the signed-in mentor.
    page.set_content(html)
    heading.locator("a").click()
    page.wait_for_url(detail)
    assert page.title().startswith(pulled_cohort.name)
    page.set_content(html)
    first = newly.first.locator("a")
    name = first.inner_text()
    first.click()
    page.wait_for_url(f"{detail}students/*/")
    assert page.locator("h1").inner_text().startswith(name)
    assert page.locator("h1 .badge").inner_text().lower() == listed[name]
    shots(page, "5-digest-student")
