"""Pages shown to a signed-in user carry `Cache-Control: private, no-store` (one middleware,
accounts.middleware.PrivatePagesMiddleware), so no shared cache or back button keeps a
cohort's, a student's or a run's data."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def directives(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part}


def assert_private(response) -> None:
    assert response.status_code == 200, response.status_code
    assert {"private", "no-store"} <= directives(response), response.get("Cache-Control")
    assert "public" not in directives(response)


@pytest.fixture
def student_pk(health_now, ids) -> int:
    return next(iter(ids.values()))


def test_mentor_pages_with_student_data_are_private(client, mentor_a, cohort_a, student_pk):
    client.force_login(mentor_a)
    for url in (
        reverse("cohorts:list"),
        reverse("cohorts:list_csv"),
        reverse("cohorts:detail", args=[cohort_a.pk]),
        reverse("cohorts:table_csv", args=[cohort_a.pk, "students"]),
        reverse("cohorts:student", args=[cohort_a.pk, student_pk]),
    ):
        assert_private(client.get(url))


def test_admin_pages_runs_and_uploads_are_private(client, admin_user, cohort_a, run_factory):
    run = run_factory()
    client.force_login(admin_user)
    for url in (
        reverse("reports:list"),
        reverse("reports:detail", args=[run.pk]),
        reverse("integrations:apex_upload"),
        reverse("admin:index"),
        reverse("admin:cohorts_student_changelist"),
    ):
        assert_private(client.get(url))


def test_directives_a_view_set_are_kept(client, admin_user, run_factory):
    run = run_factory()
    client.force_login(admin_user)
    response = client.get(reverse("reports:detail", args=[run.pk]))  # @never_cache
    assert {"private", "no-store", "no-cache", "max-age=0"} <= directives(response)
