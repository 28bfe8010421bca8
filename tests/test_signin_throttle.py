"""Sign-in throttle: per account and per client address, on the site's and the admin's
sign-in. Past the limit the password is not checked; the lock ends on time; a success
clears the account's failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import time_machine
from django.contrib.auth.backends import ModelBackend
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from accounts import throttle

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SITE = "/login/"
ADMIN = "/admin/login/"


@pytest.fixture(autouse=True)
def limits(settings, db):
    settings.SIGNIN_MAX_FAILURES_PER_ACCOUNT = 3
    settings.SIGNIN_MAX_FAILURES_PER_ADDRESS = 5
    settings.SIGNIN_LOCKOUT_SECONDS = 600
    settings.SIGNIN_TRUSTED_PROXIES = 0
    caches["signin"].clear()


def attempt(client, username, password, *, path=SITE, address="10.0.0.1", **extra):
    client.logout()
    return client.post(
        path, {"username": username, "password": password}, REMOTE_ADDR=address, **extra
    )


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def fail(client, username, times, **kw):
    for _ in range(times):
        response = attempt(client, username, "wrong-password", **kw)
        assert response.status_code == 200  # the form again, with its error
        assert not signed_in(client)


def test_past_the_account_limit_even_the_right_password_is_refused_unchecked(client, admin_user):
    fail(client, "ada", 3)
    with (
        mock.patch.object(ModelBackend, "authenticate", autospec=True) as backend,
        mock.patch.object(type(admin_user), "check_password", autospec=True) as check,
    ):
        response = attempt(client, "ada", "pw-admin-1")
    assert response.status_code == 429
    backend.assert_not_called()
    check.assert_not_called()
    assert not signed_in(client)
    body = response.content.decode()
    assert "Too many failed sign-ins" in body and "Try again after" in body
    assert 0 < int(response["Retry-After"]) <= 600
    assert "no-store" in response["Cache-Control"]
    # And for real, without the spies: the right password is still refused.
    assert attempt(client, "ada", "pw-admin-1").status_code == 429
    assert not signed_in(client)


def test_under_the_limit_the_right_password_signs_in(client, admin_user):
    fail(client, "ada", 2)
    response = attempt(client, "ada", "pw-admin-1")
    assert response.status_code == 302 and signed_in(client)


def test_the_lock_ends_on_time_and_the_page_says_when(client, admin_user, settings):
    settings.TIME_ZONE = "UTC"
    with time_machine.travel(T0, tick=False) as clock:
        fail(client, "ada", 3)
        response = attempt(client, "ada", "pw-admin-1")
        assert response.status_code == 429
        assert "Try again after" in response.content.decode()
        assert "09:10 (UTC)" in response.content.decode()  # T0 + 600 s
        assert "in about 10 minutes" in response.content.decode()
        assert response["Retry-After"] == "600"

        clock.move_to(T0 + timedelta(seconds=599))
        assert attempt(client, "ada", "pw-admin-1").status_code == 429
        clock.move_to(T0 + timedelta(seconds=601))
        response = attempt(client, "ada", "pw-admin-1")
        assert response.status_code == 302 and signed_in(client)


def test_attempts_while_locked_neither_count_nor_extend_the_lock(client, admin_user):
    with time_machine.travel(T0, tick=False) as clock:
        fail(client, "ada", 3)
        clock.move_to(T0 + timedelta(seconds=300))
        for _ in range(5):
            assert attempt(client, "ada", "wrong-password").status_code == 429
        clock.move_to(T0 + timedelta(seconds=601))
        assert attempt(client, "ada", "pw-admin-1").status_code == 302


def test_failures_older_than_the_window_are_forgotten(client, admin_user):
    with time_machine.travel(T0, tick=False) as clock:
        fail(client, "ada", 2)
        clock.move_to(T0 + timedelta(seconds=700))
        fail(client, "ada", 2)  # 4 failures, but never 3 within 600 s
        assert attempt(client, "ada", "pw-admin-1").status_code == 302


def test_a_success_clears_the_accounts_failures(client, admin_user):
    fail(client, "ada", 2)
    assert attempt(client, "ada", "pw-admin-1").status_code == 302
    fail(client, "ada", 2)  # without the reset this would be 4 of 3
    assert attempt(client, "ada", "pw-admin-1").status_code == 302


def test_per_account_limit_holds_across_addresses(client, admin_user):
    for n in range(3):
        fail(client, "ada", 1, address=f"10.0.1.{n}")
    response = attempt(client, "ada", "pw-admin-1", address="10.0.2.1")
    assert response.status_code == 429
    # Other accounts are untouched, from any address.
    assert attempt(client, "ada-other", "x", address="10.0.2.1").status_code == 200


def test_account_names_differing_in_case_or_spaces_share_a_count(client, admin_user):
    fail(client, "Ada", 1)
    fail(client, " ADA ", 1)
    fail(client, "ada", 1)
    assert attempt(client, "ada", "pw-admin-1").status_code == 429


def test_per_address_limit_holds_across_accounts(client, admin_user, mentor_a):
    for n in range(5):
        fail(client, f"guess-{n}", 1, address="10.9.9.9")
    # Every account is refused from that address, the right password included ...
    response = attempt(client, "mia", "pw-mentor-1", address="10.9.9.9")
    assert response.status_code == 429 and not signed_in(client)
    # ... while the same account signs in from elsewhere.
    assert attempt(client, "mia", "pw-mentor-1", address="10.8.8.8").status_code == 302


def test_a_success_does_not_clear_the_addresss_failures(client, admin_user):
    for n in range(4):
        fail(client, f"guess-{n}", 1, address="10.9.9.9")
    assert attempt(client, "ada", "pw-admin-1", address="10.9.9.9").status_code == 302
    fail(client, "guess-x", 1, address="10.9.9.9")  # the fifth from this address
    assert attempt(client, "ada", "pw-admin-1", address="10.9.9.9").status_code == 429


def test_forged_forwarded_for_does_not_escape_the_address_limit(client, admin_user):
    for n in range(5):
        fail(client, f"guess-{n}", 1, address="10.9.9.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    response = attempt(
        client, "ada", "pw-admin-1", address="10.9.9.9", HTTP_X_FORWARDED_FOR="198.51.100.7"
    )
    assert response.status_code == 429


def test_admin_sign_in_is_throttled_with_the_same_counts(client, admin_user):
    fail(client, "ada", 2, path=ADMIN)
    fail(client, "ada", 1, path=SITE)
    with mock.patch.object(ModelBackend, "authenticate", autospec=True) as backend:
        response = attempt(client, "ada", "pw-admin-1", path=ADMIN)
    assert response.status_code == 429
    backend.assert_not_called()
    assert "Try again after" in response.content.decode()
    assert attempt(client, "ada", "pw-admin-1", path=SITE).status_code == 429
    assert not signed_in(client)


def test_the_refusal_page_links_back_to_the_sign_in_it_came_from(client, admin_user):
    fail(client, "ada", 3, path=ADMIN)
    body = attempt(client, "ada", "x", path=ADMIN + "?next=/admin/").content.decode()
    assert 'href="/admin/login/?next=/admin/"' in body


def test_the_sign_in_form_still_shows_while_locked(client, admin_user):
    fail(client, "ada", 3)
    assert client.get(SITE).status_code == 200


def test_a_limit_of_zero_turns_that_limit_off(client, admin_user, settings):
    settings.SIGNIN_MAX_FAILURES_PER_ACCOUNT = 0
    fail(client, "ada", 4, address="10.0.0.1")
    fail(client, "ada", 1, address="10.0.0.2")
    assert attempt(client, "ada", "pw-admin-1", address="10.0.0.3").status_code == 302


def test_signin_unlock_lifts_a_lock(client, admin_user, capsys):
    fail(client, "ada", 3, address="10.0.0.1")
    for n in range(2):
        fail(client, f"guess-{n}", 1, address="10.0.0.1")  # the address is locked too
    call_command("signin_unlock", "--user", "ada")
    assert attempt(client, "ada", "pw-admin-1", address="10.0.0.9").status_code == 302
    assert attempt(client, "ada", "pw-admin-1", address="10.0.0.1").status_code == 429
    call_command("signin_unlock", "--address", "10.0.0.1")
    assert attempt(client, "ada", "pw-admin-1", address="10.0.0.1").status_code == 302
    assert "Cleared sign-in failures" in capsys.readouterr().out
    with pytest.raises(CommandError, match="not an IP address"):
        call_command("signin_unlock", "--address", "nowhere")
    with pytest.raises(CommandError, match="--user"):
        call_command("signin_unlock")


def test_a_lock_is_logged_naming_only_real_accounts(client, admin_user, caplog):
    caplog.set_level("WARNING", logger="accounts.throttle")
    fail(client, "ada", 3, address="10.0.0.1")
    fail(client, "my-secret-password", 2, address="10.0.0.1")
    fail(client, "my-secret-password", 1, address="10.0.0.2")
    messages = [r.getMessage() for r in caplog.records if r.name == "accounts.throttle"]
    assert messages[0] == (
        "Sign-in locked for account 'ada' for 600 s after 3 failures (last from 10.0.0.1)."
    )
    assert "address 10.0.0.1" in messages[1]  # the address's fifth failure
    assert "an unknown username" in messages[2]
    assert not any("my-secret-password" in m for m in messages)


# --- the client address -----------------------------------------------------------------
def address_of(settings, remote="10.0.0.1", forwarded=None, trusted=0) -> str:
    settings.SIGNIN_TRUSTED_PROXIES = trusted
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return throttle.client_address(RequestFactory().post("/login/", **extra))


def test_forwarded_for_is_ignored_without_trusted_proxies(settings):
    assert address_of(settings, forwarded="198.51.100.7") == "10.0.0.1"


def test_one_trusted_proxy_takes_the_rightmost_entry(settings):
    # The client forged the first entry; our proxy appended the address it saw.
    got = address_of(settings, forwarded="203.0.113.9, 198.51.100.7", trusted=1)
    assert got == "198.51.100.7"


def test_two_trusted_proxies_take_the_second_entry_from_the_right(settings):
    got = address_of(settings, forwarded="203.0.113.9, 198.51.100.7, 172.16.0.5", trusted=2)
    assert got == "198.51.100.7"


def test_a_short_or_malformed_forwarded_for_falls_back_to_remote_addr(settings):
    assert address_of(settings, forwarded="198.51.100.7", trusted=2) == "10.0.0.1"
    assert address_of(settings, forwarded="", trusted=1) == "10.0.0.1"
    assert address_of(settings, forwarded="not-an-ip", trusted=1) == "10.0.0.1"


def test_an_ipv6_client_counts_as_its_slash_64(settings):
    one = address_of(settings, remote="2001:db8:1:2:aaaa::1")
    other = address_of(settings, remote="2001:db8:1:2:bbbb::2")
    assert one == other == "2001:db8:1:2::/64"
    assert address_of(settings, remote="2001:db8:1:3::1") != one
    assert address_of(settings, remote="::ffff:10.0.0.7") == "10.0.0.7"
