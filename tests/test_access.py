"""Who sees what: admins everything, a mentor only their cohorts, anonymous nothing."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_sign_in(client, cohort_a):
    for url in (reverse("cohorts:list"), reverse("cohorts:detail", args=[cohort_a.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_mentor_sees_only_their_cohorts(client, mentor_a, cohort_a, cohort_b):
    client.force_login(mentor_a)
    page = client.get(reverse("cohorts:list")).content.decode()
    assert "Cohort A" in page
    assert "Cohort B" not in page
    assert client.get(reverse("cohorts:detail", args=[cohort_a.pk])).status_code == 200


def test_mentor_of_a_gets_404_on_b(client, mentor_a, cohort_b):
    client.force_login(mentor_a)
    assert client.get(reverse("cohorts:detail", args=[cohort_b.pk])).status_code == 404


def test_admin_sees_every_cohort(client, admin_user, cohort_a, cohort_b):
    client.force_login(admin_user)
    page = client.get(reverse("cohorts:list")).content.decode()
    assert "Cohort A" in page and "Cohort B" in page


def test_mentor_cannot_reach_runs_or_start_a_pull(client, mentor_a, cohort_a):
    client.force_login(mentor_a)
    assert client.get(reverse("reports:list")).status_code == 404
    response = client.post(reverse("integrations:openclass_sync", args=[cohort_a.pk]))
    assert response.status_code == 404
    from reports.models import Run

    assert not Run.objects.exists()
