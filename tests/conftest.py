"""Shared fixtures: personas, cohorts, and the vendor simulators over real HTTP."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from cohorts.models import Cohort, Source


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_user(
        "ada", email="ada@example.com", password="pw-admin-1", is_staff=True, is_superuser=True
    )


@pytest.fixture
def cohort_a(db) -> Cohort:
    return Cohort.objects.create(name="Cohort A", source=Source.OPENCLASS, external_id="class-a")


@pytest.fixture
def cohort_b(db) -> Cohort:
    return Cohort.objects.create(name="Cohort B", source=Source.OPENCLASS, external_id="class-b")


def _mentor(username: str, cohort: Cohort) -> User:
    user = User.objects.create_user(
        username, email=f"{username}@example.com", password="pw-mentor-1"
    )
    group, _ = Group.objects.get_or_create(name="mentors")
    user.groups.add(group)
    cohort.mentors.add(user)
    return user


@pytest.fixture
def mentor_a(cohort_a) -> User:
    """Mentors cohort A only."""
    return _mentor("mia", cohort_a)


@pytest.fixture
def mentor_b(cohort_b) -> User:
    """Mentors cohort B only: must see nothing of A."""
    return _mentor("ben", cohort_b)
