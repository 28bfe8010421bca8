"""manage.py generate_bench_cohort: the shape of the data it makes, small.

The full-size case (500 x 400 with a million progressions in the database) is measured by
hand (docs/cohort-health.md), never timed in tests.
"""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from cohorts import analytics
from cohorts.models import Cohort, Progression
from cohorts.selectors import cohort_frames

pytestmark = pytest.mark.django_db

SMALL = ["--students", "40", "--assignments", "60", "--units", "6", "--seed", "3"]


def test_generates_one_row_per_pair_with_the_course_dates():
    call_command("generate_bench_cohort", *SMALL)
    cohort = Cohort.objects.get(external_id="bench-40x60")
    assert cohort.students.count() == 40
    assert cohort.assignments.count() == 60
    assert Progression.objects.filter(cohort=cohort).count() == 40 * 60
    assert (cohort.ends_on - cohort.starts_on).days == 6 * 7 - 1
    assert set(cohort.assignments.values_list("unit", flat=True)) == {
        f"Week {n}" for n in range(1, 7)
    }


def test_every_chart_has_something_to_say():
    call_command("generate_bench_cohort", *SMALL)
    cohort = Cohort.objects.get(external_id="bench-40x60")
    health = analytics.CohortHealth(
        *cohort_frames(cohort=cohort),
        thresholds=analytics.Thresholds.of(cohort),
        now=timezone.now(),
        starts_on=cohort.starts_on,
        ends_on=cohort.ends_on,
    )
    reasons = " ".join(health.health["reason"])
    # At risk for different reasons.
    for words in ("no activity for", "behind the cohort median", "quiz average"):
        assert words in reasons
    assert health.health_counts[analytics.AT_RISK] > 0
    assert health.health_counts[analytics.ON_TRACK] > 0
    # A clear blocker, with at-risk students stuck on it.
    top, second = health.blockers.iloc[0], health.blockers.iloc[1]
    assert top["name"] == "Recursion checkpoint"
    assert top["score"] > 2 * second["score"]
    assert top["stuck_at_risk"]
    # The cohort runs behind the pace.
    assert health.headline["pace_gap"] < 0


def test_padding_and_replacing(mentor_a):
    call_command(
        "generate_bench_cohort", "--students", "3", "--assignments", "5", "--mentor", "mia"
    )
    cohort = Cohort.objects.get(external_id="bench-3x5")
    assert sorted(m.username for m in cohort.mentors.all()) == ["bench-mentor", "mia"]
    with pytest.raises(CommandError, match="--replace"):
        call_command("generate_bench_cohort", "--students", "3", "--assignments", "5")
    call_command(
        "generate_bench_cohort",
        "--students",
        "3",
        "--assignments",
        "5",
        "--replace",
        "--total-progressions",
        "1000",
    )
    # 15 of the cohort, then padding cohorts of 400 assignments until the total is reached.
    assert Progression.objects.count() >= 1000
    assert Cohort.objects.filter(external_id__startswith="bench-3x5-pad-").exists()
    assert Progression.objects.filter(cohort__external_id="bench-3x5").count() == 15


def test_the_generated_cohort_renders(client, admin_user):
    call_command("generate_bench_cohort", *SMALL)
    cohort = Cohort.objects.get(external_id="bench-40x60")
    client.force_login(admin_user)
    page = client.get(reverse("cohorts:detail", args=[cohort.pk])).content.decode()
    assert "Recursion checkpoint" in page


def test_the_bench_mentor_signs_in_and_sees_the_cohort(client):
    call_command("generate_bench_cohort", "--students", "3", "--assignments", "5")
    cohort = Cohort.objects.get(external_id="bench-3x5")
    assert client.login(username="bench-mentor", password="bench-mentor-password")
    assert client.get(reverse("cohorts:detail", args=[cohort.pk])).status_code == 200
    mentor = cohort.mentors.get()
    assert not mentor.is_staff and not mentor.is_superuser
    # No mentor: ''.
    call_command(
        "generate_bench_cohort", "--students", "2", "--assignments", "2", "--bench-mentor", ""
    )
    assert not Cohort.objects.get(external_id="bench-2x2").mentors.exists()


def test_the_rows_are_stored_as_django_stores_them():
    call_command("generate_bench_cohort", *SMALL)
    cohort = Cohort.objects.get(external_id="bench-40x60")
    row = Progression.objects.filter(cohort=cohort, completed_at__isnull=False).first()
    # Read back through the ORM (its converters) and compared with a lookup the ORM builds.
    assert Progression.objects.filter(pk=row.pk, completed_at=row.completed_at).exists()
    assert row.completed_at.tzinfo is not None and row.synced_at is not None
