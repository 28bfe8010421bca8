"""The sign-in throttle as a person meets it in Chromium: after the allowed failures the
right password is refused by a page that says when to try again."""

import pytest
from django.core.cache import caches

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def low_limits(settings):
    settings.SIGNIN_MAX_FAILURES_PER_ACCOUNT = 2
    settings.SIGNIN_MAX_FAILURES_PER_ADDRESS = 50
    settings.SIGNIN_LOCKOUT_SECONDS = 600
    caches["signin"].clear()
    yield
    caches["signin"].clear()  # the cache table outlives a transactional test's flush


def test_locked_account_sees_when_to_try_again(login, live_server, mentor_a, low_limits):
    for _ in range(2):
        assert "did not match" in login("mia", "wrong").inner_text("main")
    page = login("mia", "pw-mentor-1")
    text = page.inner_text("main")
    assert "Too many failed sign-ins" in text and "Try again after" in text
    assert page.url.startswith(f"{live_server.url}/login/")
    page.click("text=Back to sign in")
    assert page.locator("#id_username").is_visible()
