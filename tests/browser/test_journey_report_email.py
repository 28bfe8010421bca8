"""Journey 3 (issue 10): a report recipient reads the HTML report email, rendered in the
browser as it was captured: it shows the same counts as the run page, and its links open
the run and the cohort. Screenshots: var/screenshots/report_email/."""

import pytest

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
