"""Issue 2 end to end in Chromium: an admin presses Sync now, the pull runs through the
queue against the OpenClass simulator over HTTP, the run page shows the report, the
report is emailed, and the mentor then sees the cohort filled."""

import pytest
from django.core import mail

from cohorts.models import Cohort, Source
from integrations.openclass.simulator import DEMO_CLASSES

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_syncs_a_cohort_and_the_mentor_sees_it_filled(
    login, live_server, admin_user, openclass, settings, browser
):
    openclass()
    settings.OPENCLASS_REQUESTS_PER_SECOND = 0
    class_id, name = DEMO_CLASSES[0]
    cohort = Cohort.objects.create(name=name, source=Source.OPENCLASS, external_id=class_id)
    mentor = admin_user.__class__.objects.create_user("mo", password="pw-mentor-2")
    cohort.mentors.add(mentor)

    page = login("ada", "pw-admin-1")
    page.goto(f"{live_server.url}/cohorts/{cohort.pk}/")
    page.click("text=Sync now")
    page.wait_for_url("**/runs/*/")
    page.wait_for_selector(".report-summary", timeout=30_000)
    report = page.inner_text("main")
    assert "Succeeded" in report
    assert "created" in report

    cohort.refresh_from_db()
    assert cohort.last_sync_status == "succeeded"
    assert cohort.progressions.count() > 500
    assert len(mail.outbox) == 1
    assert settings.REPORT_RECIPIENTS[0] in mail.outbox[0].to

    context = browser.new_context()
    mentor_page = context.new_page()
    mentor_page.goto(f"{live_server.url}/login/")
    mentor_page.fill("#id_username", "mo")
    mentor_page.fill("#id_password", "pw-mentor-2")
    mentor_page.click("button[type=submit]")
    mentor_page.goto(f"{live_server.url}/cohorts/{cohort.pk}/")
    students = cohort.students.count()
    assert students > 10
    body = mentor_page.inner_text("main")
    first = cohort.students.order_by("last_name").first()
    assert first.last_name in body
    assert "Sync now" not in body  # mentors do not start pulls
    context.close()
