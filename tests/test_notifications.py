"""Mentor digests, stale-data alerts and the settings page (docs/notifications.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from cohorts.models import Cohort, MentorNote, Progression
from notifications.alerts import stale_alerts_check
from notifications.digest import digests_send, period_due
from notifications.models import AlertEvent, CohortAlert, Digest, NotificationSettings
from notifications.schedules import DIGESTS, STALE_ALERTS
from reports.models import RunStatus
from tests import health_cohort as hc
from tests.test_settings import load

pytestmark = pytest.mark.django_db

NOW = hc.NOW  # Friday 2026-03-20 12:00 UTC


@pytest.fixture
def two_cohorts(settings, cohort_a, cohort_b, mentor_a, mentor_b):
    """Cohorts A and B filled with the hand-built cohort, one mentor each (daily)."""
    settings.TIME_ZONE = "UTC"
    settings.DIGEST_HOUR = 7
    settings.DIGEST_WEEKDAY = 0
    settings.DIGEST_DEFAULT_FREQUENCY = "daily"
    cohort_b.name = "Cohort Bravo"
    cohort_b.save()
    return hc.build(cohort_a), hc.build(cohort_b)


def digest_to(address):
    return [m for m in mail.outbox if m.to == [address]]


# --- when a digest is due -----------------------------------------------------------------


def test_daily_is_due_from_the_hour_weekly_from_the_weekday(settings):
    settings.TIME_ZONE, settings.DIGEST_HOUR, settings.DIGEST_WEEKDAY = "UTC", 7, 4
    friday_6 = NOW.replace(hour=6)
    assert period_due("daily", friday_6) is None
    assert period_due("daily", NOW) == "D2026-03-20"
    assert period_due("weekly", friday_6) is None  # Friday, before the hour
    assert period_due("weekly", NOW) == "W2026-12"
    assert period_due("weekly", NOW + timedelta(days=1)) == "W2026-12"  # catches up
    assert period_due("weekly", NOW - timedelta(days=1)) is None  # Thursday
    assert period_due("off", NOW) is None


def test_the_period_is_the_sites_local_day(settings):
    settings.TIME_ZONE, settings.DIGEST_HOUR = "America/Los_Angeles", 7
    # 12:00 UTC is 05:00 in Los Angeles: not yet.
    assert period_due("daily", NOW) is None
    assert period_due("daily", NOW + timedelta(hours=3)) == "D2026-03-20"


# --- the digest ---------------------------------------------------------------------------


def test_each_mentor_gets_their_own_cohorts_only(two_cohorts, cohort_a, cohort_b, settings):
    outcomes = digests_send(now=NOW)
    assert outcomes == {"sent": 2}
    (mia,) = digest_to("mia@example.com")
    (ben,) = digest_to("ben@example.com")
    html = mia.alternatives[0][0]
    assert "Cohort A" in mia.body and "Cohort Bravo" not in mia.body
    assert "Cohort Bravo" not in html and f"/cohorts/{cohort_b.pk}/" not in html
    assert f"/cohorts/{cohort_a.pk}/" in html
    assert "Cohort Bravo" in ben.body and "Cohort A" not in ben.body
    # The first digest lists everyone who needs attention, with the reasons in words.
    assert "Your first digest" in mia.body
    for name in ("Bob Baker", "Cat Cole", "Dan Dunn", "Eve Evans"):
        assert name in mia.body
    assert "Ann Archer" not in mia.body
    assert "watch (no activity for 9 days; quiz average 65%)" in mia.body
    assert "Top blockers" in mia.body and "Data: " in mia.body
    assert mia.subject == "Classbridge digest: 4 need attention"
    # Links are absolute, and the settings page is one of them.
    site = settings.SITE_URL
    assert f"{site}/cohorts/{cohort_a.pk}/" in mia.body
    assert f"{site}/cohorts/{cohort_a.pk}/students/" in html
    assert f"{site}{reverse('notifications:settings')}" in mia.body


def test_never_twice_for_one_period_and_never_empty(two_cohorts, cohort_a):
    digests_send(now=NOW)
    assert len(mail.outbox) == 2
    assert digests_send(now=NOW + timedelta(hours=3)) == {"done": 2}
    assert len(mail.outbox) == 2
    assert Digest.objects.filter(status="sent").count() == 2

    # The next day nothing is new: nothing is sent, and the day is recorded as empty.
    tomorrow = NOW + timedelta(days=1)
    assert digests_send(now=tomorrow) == {"empty": 2}
    assert len(mail.outbox) == 2

    # The day after, Cat (watch) is back: only her mentor hears, and only that.
    cat = cohort_a.students.get(first_name="Cat")
    Progression.objects.filter(student=cat, assignment__name="Loops quiz").update(grade=0.95)
    Progression.objects.filter(student=cat, assignment__name="Project").update(
        completed_at=tomorrow, reviewed_at=tomorrow + timedelta(hours=1)
    )
    mail.outbox.clear()
    assert digests_send(now=tomorrow + timedelta(days=1)) == {"sent": 1, "empty": 1}
    (mia,) = mail.outbox
    assert "Recovered (1)" in mia.body and "Cat Cole: now on track (was watch" in mia.body
    assert "Newly needs attention" not in mia.body
    assert mia.subject == "Classbridge digest: 1 recovered"
    # Only the latest digest keeps the statuses the next one compares with.
    kept = Digest.objects.filter(user__username="mia").exclude(statuses={})
    assert list(kept.values_list("period", flat=True)) == ["D2026-03-22"]


def test_weekly_waits_for_its_day(two_cohorts, mentor_a, settings):
    settings.DIGEST_WEEKDAY = 5  # Saturday
    NotificationSettings.objects.create(user=mentor_a, digest="weekly")
    digests_send(now=NOW)  # Friday: the daily mentor only
    assert [m.to for m in mail.outbox] == [["ben@example.com"]]
    digests_send(now=NOW + timedelta(days=1))  # Saturday noon
    assert len(digest_to("mia@example.com")) == 1
    assert Digest.objects.get(user=mentor_a).period == "W2026-12"
    digests_send(now=NOW + timedelta(days=2))  # Sunday: same week
    assert len(digest_to("mia@example.com")) == 1


def test_opted_out_or_without_email_gets_nothing(two_cohorts, mentor_a, mentor_b):
    NotificationSettings.objects.create(user=mentor_a, digest="off")
    mentor_b.email = ""
    mentor_b.save()
    assert digests_send(now=NOW) == {"off": 1}
    assert mail.outbox == []
    assert not Digest.objects.exists()


def test_a_failed_send_frees_the_period(two_cohorts, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise OSError("relay refused")

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse)
    assert digests_send(now=NOW) == {"failed": 2}
    assert not Digest.objects.exists()
    monkeypatch.undo()
    assert digests_send(now=NOW) == {"sent": 2}


# --- the settings page --------------------------------------------------------------------


def test_settings_page_is_linked_and_saves_the_choice(client, two_cohorts, mentor_a):
    client.force_login(mentor_a)
    page = client.get(reverse("cohorts:list")).content.decode()
    assert reverse("notifications:settings") in page
    page = client.get(reverse("notifications:settings")).content.decode()
    assert "Cohort A" in page and "Cohort Bravo" not in page
    assert (
        'value="daily" checked' in page.replace('" id', '"').replace("  ", " ") or "checked" in page
    )
    response = client.post(reverse("notifications:settings"), {"digest": "off"})
    assert response.status_code == 302
    assert NotificationSettings.objects.get(user=mentor_a).digest == "off"
    bad = client.post(reverse("notifications:settings"), {"digest": "hourly"})
    assert (
        bad.status_code == 400 and NotificationSettings.objects.get(user=mentor_a).digest == "off"
    )


def test_settings_page_needs_a_sign_in(client):
    response = client.get(reverse("notifications:settings"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_malformed_digest_settings_name_the_variable(tmp_path):
    with pytest.raises(AssertionError, match="DIGEST_HOUR must be an hour"):
        load(tmp_path, DIGEST_HOUR="25")
    with pytest.raises(AssertionError, match="DIGEST_DEFAULT_FREQUENCY"):
        load(tmp_path, DIGEST_DEFAULT_FREQUENCY="hourly")


# --- stale-data alerts --------------------------------------------------------------------


@pytest.fixture
def scheduled(settings, cohort_a, cohort_b, admin_user):
    settings.REPORT_RECIPIENTS = ["ops@example.com", "ADA@example.com"]
    settings.STALE_ALERT_GRACE_MINUTES = 60
    settings.STALE_ALERT_FAILED_PULLS = 2
    User.objects.create_user("quiet", email="", is_staff=True)
    for cohort in (cohort_a, cohort_b):
        cohort.sync_interval_hours = 6
        cohort.last_synced_at = NOW - timedelta(hours=6, minutes=30)
        cohort.last_sync_status = "succeeded"
        cohort.save()
    return cohort_a, cohort_b


def test_one_email_for_several_cohorts_then_silence(scheduled, cohort_a, cohort_b):
    assert stale_alerts_check(now=NOW) == 0  # within schedule + grace
    later = NOW + timedelta(hours=1)
    assert stale_alerts_check(now=later) == 1
    (message,) = mail.outbox
    # Staff with an address, then REPORT_RECIPIENTS, each once.
    assert message.to == ["ada@example.com", "ops@example.com"]
    assert "2 cohorts need attention" in message.subject
    assert "Cohort A" in message.body and "Cohort B" in message.body
    assert "Last success: 2026-03-20 05:30 UTC" in message.body
    for minutes in (15, 30, 45):
        assert stale_alerts_check(now=later + timedelta(minutes=minutes)) == 0
    assert len(mail.outbox) == 1


def test_failing_pulls_name_the_last_error_and_link_the_run(scheduled, cohort_a, run_factory):
    run_factory(status=RunStatus.FAILED, params={"cohort_id": cohort_a.pk}, message="first")
    assert stale_alerts_check(now=NOW) == 0  # one failure: not yet
    failed = run_factory(
        status=RunStatus.FAILED,
        params={"cohort_id": cohort_a.pk},
        message="OpenClass refused the sign-in (401)",
        error_class="auth",
    )
    assert stale_alerts_check(now=NOW) == 1
    (message,) = mail.outbox
    assert "Cohort A: the last 2 pulls failed" in message.body
    assert "OpenClass refused the sign-in (401)" in message.body
    assert f"/runs/{failed.pk}/" in message.body
    assert "Cohort B" not in message.body
    assert CohortAlert.objects.get(cohort=cohort_a).problem == "failing"


def test_recovery_is_reported_once(scheduled, cohort_a, cohort_b, run_factory):
    later = NOW + timedelta(hours=2)
    stale_alerts_check(now=later)
    Cohort.objects.filter(pk=cohort_a.pk).update(last_synced_at=later)
    mail.outbox.clear()
    assert stale_alerts_check(now=later + timedelta(minutes=15)) == 1
    (message,) = mail.outbox
    assert "1 recovered" in message.subject and "needs" not in message.subject
    assert "Cohort A: fine again (data was stale since" in message.body
    assert "Still open, reported before: Cohort B" in message.body
    assert stale_alerts_check(now=later + timedelta(minutes=30)) == 0
    assert len(mail.outbox) == 1


def test_a_failed_alert_email_is_tried_again(scheduled, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise OSError("relay refused")

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse)
    later = NOW + timedelta(hours=2)
    assert stale_alerts_check(now=later) == 0
    assert AlertEvent.objects.filter(sent_at=None, claim=None).count() == 2
    monkeypatch.undo()
    assert stale_alerts_check(now=later + timedelta(minutes=15)) == 1
    assert "2 cohorts need attention" in mail.outbox[0].subject


def test_a_failed_pull_before_the_cohort_was_looked_up_still_counts(openclass, cohort_a, settings):
    from integrations.jobs import job_execute
    from integrations.openclass.pull import openclass_run_create

    openclass()
    settings.OPENCLASS_PASSWORD = "wrong"
    run = openclass_run_create(class_id=cohort_a.external_id, triggered_by="test")
    run = job_execute(run.pk, send_report=False)
    assert run.status == RunStatus.FAILED
    run.refresh_from_db()
    assert run.params["cohort_id"] == cohort_a.pk
    cohort_a.refresh_from_db()
    assert cohort_a.last_sync_status == "failed" and cohort_a.last_sync_run_id == run.pk


# --- schedules ----------------------------------------------------------------------------


def test_setup_schedules_declares_the_digest_and_alert_tasks(db):
    from django_q.models import Schedule

    from integrations.schedules import schedules_sync

    schedules_sync()
    schedules_sync()
    assert Schedule.objects.get(name=DIGESTS).func == "notifications.tasks.digests_send"
    assert Schedule.objects.get(name=STALE_ALERTS).func == "notifications.tasks.stale_alerts_check"


# --- the note marker on the health table ------------------------------------------------------


def test_a_students_notes_show_as_a_marker_on_the_health_table(client, mentor_a, ids, cohort_a):
    MentorNote.objects.create(
        cohort=cohort_a, student_id=ids[3], author=mentor_a, author_name="Mia", body="called"
    )
    MentorNote.objects.create(
        cohort=cohort_a, student_id=ids[3], author=mentor_a, author_name="Mia", body="again"
    )
    client.force_login(mentor_a)
    page = client.get(reverse("cohorts:detail", args=[cohort_a.pk])).content.decode()
    student_url = reverse("cohorts:student", args=[cohort_a.pk, ids[3]])
    assert f'<a class="note-mark" href="{student_url}#notes" aria-label="2 mentor notes on' in page
    assert "2 notes</a>" in page
    assert page.count('class="note-mark"') == 1  # the others have none


@pytest.mark.parametrize("model", ["notificationsettings", "digest", "cohortalert", "alertevent"])
def test_admin_lists_the_records(client, admin_user, model):
    client.force_login(admin_user)
    assert client.get(f"/admin/notifications/{model}/").status_code == 200
