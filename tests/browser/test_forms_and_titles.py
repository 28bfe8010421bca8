"""Issue 10: every page title says where you are, every form field has a label, and the
focus order follows the page (no positive tabindex)."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea")]
  .filter((el) => el.type !== "hidden" && el.type !== "submit" && el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                  && !el.getAttribute("aria-labelledby"))
  .map((el) => el.name || el.id)"""
POSITIVE_TABINDEX = """() => [...document.querySelectorAll("[tabindex]")]
  .filter((el) => parseInt(el.getAttribute("tabindex"), 10) > 0).length"""


def test_titles_labels_and_focus_order(login, live_server, admin_user, cohort_a, ids):
    # `ids` fills cohort A with the hand-built cohort of tests/health_cohort.py.
    student = cohort_a.students.order_by("pk").first()
    page = login("ada", "pw-admin-1")
    pages = {
        "/": "Cohorts · Classbridge",
        "/runs/": "Runs · Classbridge",
        "/integrations/apex/": "APEX enrollment · Classbridge",
        f"/cohorts/{cohort_a.pk}/": "Cohort A · Cohorts · Classbridge",
    }
    pages[f"/cohorts/{cohort_a.pk}/students/{student.pk}/"] = " · Cohort A · Cohorts"
    for path, title in pages.items():
        page.goto(f"{live_server.url}{path}")
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        assert title in page.title(), (path, page.title())
        assert page.evaluate(UNLABELLED) == [], path
        assert page.evaluate(POSITIVE_TABINDEX) == 0, path
    # The first Tab from the top reaches the skip link, before the navigation.
    page.goto(f"{live_server.url}/runs/")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Skip to content"
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/login/")
    assert page.title() == "Sign in · Classbridge"
    assert page.evaluate(UNLABELLED) == []
