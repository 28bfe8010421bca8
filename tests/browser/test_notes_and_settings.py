"""Issue 10 in Chromium: a mentor's note shows as a marker on the health table, and a mentor
chooses their digest on their own settings page (linked from the top bar).
Screenshots go to var/screenshots/notifications/."""

from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from cohorts.models import Cohort
from notifications.models import NotificationSettings
from tests import health_cohort as hc

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots" / "notifications"


@pytest.fixture
def cohort(mentor_a) -> Cohort:
    cohort = Cohort.objects.get(external_id="class-a")
    hc.build(cohort)
    return cohort


def test_a_note_marks_the_student_and_the_digest_is_chosen(login, live_server, cohort, mentor_a):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = login("mia", "pw-mentor-1")
    page.goto(f"{live_server.url}/cohorts/{cohort.pk}/")
    table = page.locator("#students-table")
    expect(table.locator(".note-mark")).to_have_count(0)

    table.get_by_role("link", name="Cat Cole", exact=True).click()
    page.get_by_label("Note", exact=False).first.fill("Called her; back on Monday.")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_text("Note added.")).to_be_visible()

    page.goto(f"{live_server.url}/cohorts/{cohort.pk}/")
    marker = page.locator("#students-table .note-mark")
    expect(marker).to_have_count(1)
    expect(marker).to_contain_text("1 note")
    expect(marker).to_have_accessible_name("1 mentor note on Cat Cole")
    assert marker.get_attribute("href").endswith("#notes")
    marker.screenshot(path=str(SHOTS / "note-marker.png"))

    page.get_by_role("link", name="My settings").click()
    expect(page).to_have_title("My settings · Classbridge")
    page.get_by_label("Daily").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    page.screenshot(path=str(SHOTS / "settings.png"), full_page=True)
    assert NotificationSettings.objects.get(user=mentor_a).digest == "daily"
