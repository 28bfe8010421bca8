"""Signing in through the real form in Chromium; a mentor sees only their cohorts."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_mentor_signs_in_and_sees_their_cohorts(login, live_server, mentor_a, cohort_b):
    page = login("mia", "pw-mentor-1")
    assert page.url.rstrip("/") == live_server.url
    body = page.inner_text("main")
    assert "Cohort A" in body
    assert "Cohort B" not in body
    response = page.goto(f"{live_server.url}/cohorts/{cohort_b.pk}/")
    assert response.status == 404


def test_wrong_password_is_refused(login, mentor_a):
    page = login("mia", "wrong")
    assert "did not match" in page.inner_text("main")


def test_pages_load_css_under_csp(login, live_server, admin_user):
    page = login("ada", "pw-admin-1")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.reload()
    color = page.eval_on_selector(".topbar", "el => getComputedStyle(el).backgroundColor")
    assert color == "rgb(31, 95, 139)"
    assert not [e for e in errors if "Content Security Policy" in e]
