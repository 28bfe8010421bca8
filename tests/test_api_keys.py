"""An API key is shown once, on the page that answers its creation in the admin: never in a
cookie (the messages cookie is signed, not encrypted), never again, stored as a hash."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from cohorts.models import ApiToken

pytestmark = pytest.mark.django_db

ADD = "/admin/cohorts/apitoken/add/"


def create(client, user, **extra):
    return client.post(ADD, {"user": user.pk, "name": "weekly export", **extra})


@pytest.mark.parametrize("button", [{}, {"_continue": "1"}, {"_addanother": "1"}])
def test_the_key_is_on_the_response_page_and_in_no_cookie(client, admin_user, mentor_a, button):
    client.force_login(admin_user)
    response = create(client, mentor_a, **button)
    assert response.status_code == 200  # a page, not a redirect carrying a message
    token = ApiToken.objects.get(name="weekly export")
    key = response.context["key"]
    assert key in response.content.decode()
    assert token.key_hash == ApiToken.hash_key(key)
    assert {"private", "no-store"} <= {d.strip() for d in response["Cache-Control"].split(",")}
    for morsel in response.cookies.values():
        assert key not in morsel.value and token.prefix not in morsel.value
    assert "messages" not in client.cookies or key not in client.cookies["messages"].value
    assert not list(response.wsgi_request._messages)  # nothing queued for a later page


def test_the_key_is_never_shown_again(client, admin_user, mentor_a):
    client.force_login(admin_user)
    key = create(client, mentor_a).context["key"]
    token = ApiToken.objects.get()
    for url in (
        reverse("admin:cohorts_apitoken_changelist"),
        reverse("admin:cohorts_apitoken_change", args=[token.pk]),
        reverse("admin:cohorts_apitoken_history", args=[token.pk]),
        reverse("admin:index"),  # recent actions
        reverse("cohorts:list"),  # where a queued message would surface
    ):
        page = client.get(url)
        assert page.status_code == 200
        assert key not in page.content.decode(), url


def test_only_the_hash_is_stored(client, admin_user, mentor_a):
    client.force_login(admin_user)
    key = create(client, mentor_a).context["key"]
    token = ApiToken.objects.values().get()
    assert token["key_hash"] == ApiToken.hash_key(key)
    assert key not in repr(token)
    assert key not in repr(list(LogEntry.objects.values()))


def test_the_key_works_for_the_api(client, admin_user, mentor_a, cohort_a):
    client.force_login(admin_user)
    key = create(client, mentor_a).context["key"]
    client.logout()
    response = client.get(reverse("cohorts:api_cohorts"), HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    assert [c["name"] for c in response.json()["results"]] == ["Cohort A"]


def test_an_invalid_form_shows_no_key_and_creates_nothing(client, admin_user):
    client.force_login(admin_user)
    response = client.post(ADD, {"name": "no user"})
    assert response.status_code == 200
    assert "key" not in response.context or response.context.get("key") is None
    assert not ApiToken.objects.exists()


def test_editing_a_token_shows_no_key(client, admin_user, mentor_a):
    client.force_login(admin_user)
    key = create(client, mentor_a).context["key"]
    token = ApiToken.objects.get()
    response = client.post(
        reverse("admin:cohorts_apitoken_change", args=[token.pk]), {"name": "renamed"}
    )
    assert response.status_code == 302
    assert ApiToken.objects.get().key_hash == ApiToken.hash_key(key)  # unchanged
    assert key not in client.get(response["Location"]).content.decode()
