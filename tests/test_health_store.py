"""The stored health (cohorts/health_store.py): what it serves equals the live computation,
and it is never served stale: new data (a pull's end, a single save, leavers reconciled),
other thresholds, time passing, an unreadable payload. Mentor notes are read live.

Cohort A holds the hand-built cohort of tests/health_cohort.py; `now` is frozen at its
"now" (12:00 UTC, 20 Mar 2026), and Cat Cole has had no activity for 9 days (watch).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from cohorts import health_store
from cohorts.analytics import CohortHealth, Thresholds
from cohorts.changes import snapshot_after, snapshot_before, snapshot_take
from cohorts.models import Cohort, MentorNote, StoredHealth, Student
from cohorts.selectors import cohort_frames
from cohorts.services import enrollments_reconcile
from tests import health_cohort as hc

pytestmark = pytest.mark.django_db

CAT = 3  # Cat Cole's spec id: 9 days inactive, "watch"


@pytest.fixture(autouse=True)
def frozen_now(health_now):
    yield


def fresh(cohort: Cohort) -> Cohort:
    return Cohort.objects.get(pk=cohort.pk)


def page(client, cohort: Cohort, query: str = "") -> str:
    """The health page, its CSRF tokens (new on every request) blanked."""
    response = client.get(reverse("cohorts:detail", args=[cohort.pk]) + query)
    assert response.status_code == 200
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def stored(cohort: Cohort) -> StoredHealth:
    return StoredHealth.objects.get(cohort=cohort)


# --- what it serves -------------------------------------------------------------------------


def test_the_stored_health_equals_the_live_computation(ids, cohort_a):
    computed = health_store.health_served(fresh(cohort_a))
    assert not computed.stored
    served = health_store.health_served(fresh(cohort_a))
    assert served.stored and served.computed_at == hc.NOW
    live, leavers = health_store.health_compute(fresh(cohort_a), now=hc.NOW)
    restored = served.health
    for name in CohortHealth._FIGURES:
        mine, theirs = getattr(restored, name), getattr(live, name)
        if isinstance(theirs, pd.DataFrame):
            pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
        else:
            assert mine == theirs, name
    for name in ("stamps", "progressions_count", "last_activity", "reviewed_kinds", "units"):
        assert getattr(restored, name) == getattr(live, name), name
    pd.testing.assert_frame_equal(served.leavers, leavers)
    assert served.charts == health_store.charts_for(live)
    # A restored health keeps no rows, and says so rather than computing anything.
    assert not restored.has_rows
    with pytest.raises(AttributeError):
        restored.progressions  # noqa: B018


def test_the_page_from_storage_is_the_page_computed_live(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    computed = page(client, cohort_a)
    assert StoredHealth.objects.filter(cohort=cohort_a).exists()
    assert page(client, cohort_a) == computed
    assert "Figures as of" in computed and "12:00 UTC" in computed
    # Filtered views are computed live, and agree with the stored one where they overlap.
    student = reverse("cohorts:student", args=[cohort_a.pk, ids[CAT]])
    first = client.get(student).content.decode()
    assert "no activity for 9 days" in first and "Status and standing as of" in first


def test_every_api_metric_from_storage_equals_the_live_answer(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    urls = [
        reverse(f"cohorts:api_metrics_{name}", args=[cohort_a.pk])
        for name in ("completion", "blockers", "student_health", "progress_over_time")
    ]
    urls += [
        reverse("cohorts:api_progress_summary", args=[cohort_a.pk]),
        reverse("cohorts:api_metrics_progress_over_time", args=[cohort_a.pk])
        + f"?student={ids[CAT]}",
    ]
    live = {}
    for url in urls:
        StoredHealth.objects.all().delete()  # computed by this very request
        live[url] = json.loads(client.get(url).content)
    for url in urls:
        assert json.loads(client.get(url).content) == live[url], url
    assert live[urls[-1]]["student"]["series"][-1]["cumulative"] == 3


# --- new data -------------------------------------------------------------------------------


def test_a_pull_end_makes_the_stored_health_stale(openclass, admin_user, client, monkeypatch):
    from integrations import changes
    from integrations.jobs import job_execute
    from integrations.openclass.pull import openclass_run_create
    from integrations.openclass.simulator import WEB

    sim = openclass()
    run = job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk)
    cohort = Cohort.objects.get(pk=run.params["cohort_id"])
    client.force_login(admin_user)
    page(client, cohort)
    before = stored(cohort).data_version
    done = sum(1 for p in sim.progressions(WEB) if p.completed_at)

    def broken(*args, **kwargs):
        raise RuntimeError("no change report today")

    # Even when the change report (and the store it makes) fails, the pull's end says the
    # data changed: the page computes the health again, with the new completion.
    monkeypatch.setattr(changes, "snapshot_after", broken)
    target = next(p for p in sim.progressions(WEB) if p.completed_at is None and p.started_at)
    target.completed_at = timezone.now() - timedelta(hours=1)
    assert job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk).status == (
        "succeeded"
    )
    assert fresh(cohort).data_version > before
    text = page(client, cohort)
    assert f"({done + 1} of " in text
    assert stored(cohort).data_version == fresh(cohort).data_version


def test_a_pull_stores_the_health_the_pages_then_serve(openclass, admin_user, client):
    from integrations.jobs import job_execute
    from integrations.openclass.pull import openclass_run_create
    from integrations.openclass.simulator import WEB

    openclass()
    run = job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk)
    cohort = fresh(Cohort.objects.get(pk=run.params["cohort_id"]))
    row = stored(cohort)
    assert row.data_version == cohort.data_version and row.computed_at == hc.NOW
    assert health_store.health_served(cohort).stored  # the first view computes nothing


def test_a_single_save_makes_it_stale(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    assert "Cat Cole" in page(client, cohort_a)
    cat = Student.objects.get(pk=ids[CAT])
    cat.first_name = "Catherine"
    cat.save()  # the Django admin, the shell
    text = page(client, cohort_a)
    assert "Catherine Cole" in text and "Cat Cole" not in text


def test_a_delete_makes_it_stale(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    assert "Cat Cole" in page(client, cohort_a)
    Student.objects.get(pk=ids[CAT]).delete()  # the admin: cascades to her enrollment
    assert "Cat Cole" not in page(client, cohort_a)
    assignment = cohort_a.assignments.get(name="Recursion quiz")
    assignment.delete()
    assert "Recursion quiz" not in page(client, cohort_a)


def test_leavers_reconciled_make_it_stale(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    assert "left the cohort" not in page(client, cohort_a)
    seen = [pk for spec, pk in ids.items() if spec != CAT]
    enrollments_reconcile(cohort=cohort_a, seen_student_ids=seen)
    text = page(client, cohort_a)
    assert "1 student left the cohort" in text
    assert f'<div class="value">{len(seen)}</div><div class="label">students' in text
    assert fresh(cohort_a).data_version == stored(cohort_a).data_version


def test_thresholds_changed_make_it_stale(client, admin_user, ids, cohort_a):
    client.force_login(admin_user)
    assert "no activity for 9 days" in page(client, cohort_a)  # watch at 7 days
    cohort_a.inactive_days = 10
    cohort_a.save()
    assert "no activity for 9 days" not in page(client, cohort_a)  # on track now


def test_mentor_notes_are_read_live(client, mentor_a, ids, cohort_a, django_assert_num_queries):
    client.force_login(mentor_a)
    assert "note-mark" not in page(client, cohort_a)
    MentorNote.objects.create(
        cohort=cohort_a, student_id=ids[CAT], author=mentor_a, author_name="Mia", body="Called."
    )
    with django_assert_num_queries(5):  # the stored health, read, not computed again
        text = page(client, cohort_a)
    assert "1 note" in text


# --- time passing -------------------------------------------------------------------------


def test_it_is_computed_again_when_older_than_the_bound(client, mentor_a, ids, cohort_a, settings):
    settings.HEALTH_MAX_AGE_SECONDS = 600
    client.force_login(mentor_a)
    page(client, cohort_a)
    with time_machine.travel(hc.NOW + timedelta(minutes=9), tick=False):
        page(client, cohort_a)
        assert stored(cohort_a).computed_at == hc.NOW  # within the bound: served
    later = hc.NOW + timedelta(days=1, minutes=1)
    with time_machine.travel(later, tick=False):
        text = page(client, cohort_a)
        assert stored(cohort_a).computed_at == later
    assert "no activity for 10 days" in text and "12:01 UTC" in text


def test_it_is_computed_again_on_a_new_day(client, mentor_a, ids, cohort_a, settings):
    settings.HEALTH_MAX_AGE_SECONDS = 3600
    client.force_login(mentor_a)
    evening = datetime(2026, 3, 20, 23, 55, tzinfo=hc.NOW.tzinfo)
    with time_machine.travel(evening, tick=False):
        page(client, cohort_a)
    with time_machine.travel(evening + timedelta(minutes=10), tick=False):
        page(client, cohort_a)  # ten minutes later, but the charts must end today
        assert stored(cohort_a).computed_at == evening + timedelta(minutes=10)


def test_a_stored_health_from_the_future_is_not_served(ids, cohort_a):
    with time_machine.travel(hc.NOW + timedelta(minutes=1), tick=False):
        health_store.health_served(fresh(cohort_a))
    assert not health_store.health_served(fresh(cohort_a)).stored


# --- trust ----------------------------------------------------------------------------------


def test_a_payload_that_does_not_verify_is_never_served(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    expected = page(client, cohort_a)
    row = stored(cohort_a)
    blob = bytearray(row.payload)
    blob[40] ^= 0xFF
    StoredHealth.objects.filter(pk=row.pk).update(payload=bytes(blob))
    assert not health_store.health_served(fresh(cohort_a)).stored
    assert page(client, cohort_a) == expected
    with pytest.raises(ValueError, match="bad signature"):
        health_store._unseal(bytes(blob))


def test_a_store_never_replaces_a_newer_one(ids, cohort_a):
    old = fresh(cohort_a)
    health, leavers = health_store.health_compute(old, now=hc.NOW)
    health_store.cohort_data_changed(cohort_a.pk)
    newer = fresh(cohort_a)
    health_store.health_refresh(newer)
    health_store.health_store(old, health, leavers)  # a slow request, read before the change
    assert stored(cohort_a).data_version == newer.data_version
    assert health_store.health_served(newer).stored


# --- the change report ----------------------------------------------------------------------


def counting_computations(monkeypatch) -> list:
    moments = []
    compute = health_store.health_compute

    def counted(cohort, *, now, frames=None):
        moments.append(now)
        return compute(cohort, now=now, frames=frames)

    monkeypatch.setattr(health_store, "health_compute", counted)
    return moments


def test_the_before_is_read_from_storage_and_the_after_is_as_of_its_moment(
    ids, cohort_a, django_assert_num_queries, monkeypatch
):
    health_store.health_served(fresh(cohort_a))
    cohort = fresh(cohort_a)
    with django_assert_num_queries(1):  # the stored health and its pairs: no rows read
        before = snapshot_before(cohort)
    assert before == snapshot_take(fresh(cohort_a), now=hc.NOW)
    # Half a minute on, the after is still as of the before's moment (no change from time
    # passing). That moment is recent: the health is computed once, and stored as of it.
    moments = counting_computations(monkeypatch)
    later = hc.NOW + timedelta(seconds=30)
    with time_machine.travel(later, tick=False):
        after = snapshot_after(fresh(cohort_a), at=before.at)
        assert after == snapshot_take(fresh(cohort_a), now=hc.NOW)
        assert moments == [before.at]
        assert stored(cohort_a).computed_at == hc.NOW
        assert health_store.health_served(fresh(cohort_a)).stored  # served, not recomputed


def test_a_before_read_from_an_older_stored_health_stores_one_as_of_the_pulls_end(
    ids, cohort_a, monkeypatch, settings
):
    # The before comes from a health stored nine minutes and fifty seconds before the
    # pull's end (fresh, HEALTH_MAX_AGE_SECONDS 600): the after compares as of that moment,
    # and the pages get a health as of the pull's end, with its whole life ahead of it.
    settings.HEALTH_MAX_AGE_SECONDS = 600
    health_store.health_served(fresh(cohort_a))
    before = snapshot_before(fresh(cohort_a))
    moments = counting_computations(monkeypatch)
    later = hc.NOW + timedelta(minutes=9, seconds=50)
    with time_machine.travel(later, tick=False):
        after = snapshot_after(fresh(cohort_a), at=before.at)
        assert after == snapshot_take(fresh(cohort_a), now=hc.NOW)
        assert moments == [later, before.at]
        assert stored(cohort_a).computed_at == later
    with time_machine.travel(later + timedelta(minutes=1), tick=False):
        assert health_store.health_served(fresh(cohort_a)).stored  # still fresh


def test_a_pull_longer_than_the_max_age_stores_a_health_as_of_its_end(
    ids, cohort_a, monkeypatch, settings
):
    settings.HEALTH_MAX_AGE_SECONDS = 600
    health_store.health_served(fresh(cohort_a))
    before = snapshot_before(fresh(cohort_a))
    moments = counting_computations(monkeypatch)
    later = hc.NOW + timedelta(minutes=11)  # the before's moment is stale by now
    with time_machine.travel(later, tick=False):
        after = snapshot_after(fresh(cohort_a), at=before.at)
        assert after == snapshot_take(fresh(cohort_a), now=hc.NOW)  # the diff: as of before
        assert moments == [later, before.at]  # the pages' health, then the diff's
        assert stored(cohort_a).computed_at == later
        assert health_store.health_served(fresh(cohort_a)).stored


@pytest.mark.parametrize(
    "filters",
    [
        {"unit": "U2"},
        {"date_from": date(2026, 3, 5)},
        {"freq": "W"},
        {"unit": "U1", "freq": "D", "date_from": date(2026, 3, 2)},
        {"unit": "no such unit"},
    ],
)
def test_a_narrowed_view_equals_the_live_computation(ids, cohort_a, filters):
    health_store.health_served(fresh(cohort_a))
    cohort = fresh(cohort_a)
    served = health_store.health_served(cohort)
    assert served.stored
    narrowed = health_store.health_narrowed(cohort, served, **filters)
    live = CohortHealth(
        *cohort_frames(cohort=cohort),
        thresholds=Thresholds.of(cohort),
        now=hc.NOW,
        starts_on=cohort.starts_on,
        ends_on=cohort.ends_on,
        source=cohort.source,
        **filters,
    )
    for name in (*CohortHealth._FIGURES, "progressions_count", "window", "freq", "freq_capped"):
        mine, theirs = getattr(narrowed, name), getattr(live, name)
        if isinstance(theirs, pd.DataFrame):
            pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
        else:
            assert mine == theirs, name


def test_a_store_that_fails_still_answers(client, mentor_a, ids, cohort_a, monkeypatch):
    from django.db import OperationalError
    from django.db.models.query import QuerySet

    real_update = QuerySet.update

    def locked(self, **kwargs):
        if self.model is StoredHealth:
            raise OperationalError("database is locked")
        return real_update(self, **kwargs)

    monkeypatch.setattr(QuerySet, "update", locked)
    client.force_login(mentor_a)
    assert "no activity for 9 days" in page(client, cohort_a)  # computed, served
    assert not StoredHealth.objects.exists()  # the next request computes it again


def test_api_metrics_run_a_fixed_number_of_queries(
    client, mentor_a, ids, cohort_a, django_assert_num_queries
):
    client.force_login(mentor_a)
    names = ("completion", "blockers", "student_health", "progress_over_time")
    urls = [reverse(f"cohorts:api_metrics_{n}", args=[cohort_a.pk]) for n in names]
    urls.append(reverse("cohorts:api_progress_summary", args=[cohort_a.pk]))
    client.get(urls[0])  # computes the stored health
    for url in urls:
        # Session, user, the cohort through the access rule, its stored health.
        with django_assert_num_queries(4):
            assert client.get(url).status_code == 200
    # A unit: one more, its rows; a student's series: one more, their rows.
    with django_assert_num_queries(5):
        assert client.get(urls[0] + "?unit=U2").status_code == 200
    with django_assert_num_queries(5):
        assert client.get(urls[3] + f"?student={ids[CAT]}").status_code == 200
