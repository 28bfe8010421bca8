"""What a pull changed: the snapshot diff (hand-built), and a real pull's report section."""

from __future__ import annotations

from datetime import timedelta
from html import escape

import pytest
from django.core import mail
from django.utils import timezone

from cohorts import analytics
from cohorts.changes import LABELS, changes_between, snapshot_from_frames
from cohorts.models import Cohort
from integrations.jobs import job_execute
from integrations.openclass.pull import openclass_run_create
from integrations.openclass.simulator import WEB
from reports.changes import run_changes
from reports.models import RunStatus
from reports.render import render_run_report_email
from tests import health_cohort as hc


def snap(students=hc.STUDENTS, progressions=hc.PROGRESSIONS):
    return snapshot_from_frames(
        analytics.students_frame(students),
        analytics.assignments_frame(hc.ASSIGNMENTS),
        analytics.progressions_frame(progressions),
        thresholds=analytics.Thresholds(),
        now=hc.NOW,
        cohort_id=7,
        cohort_name="Cohort A",
        starts_on=hc.STARTS_ON,
        ends_on=hc.ENDS_ON,
    )


def by_category(result):
    out = {}
    for change in result.changes:
        out.setdefault(change.category, []).append((change.label, change.message))
    return out


def test_nothing_changed_is_no_change():
    result = changes_between(snap(), snap())
    assert result.changes == []
    assert result.summary == "no change"
    assert set(result.counts.values()) == {0}


def test_a_completion_and_a_grade_and_who_recovered_and_who_became_at_risk():
    after = [
        *hc.PROGRESSIONS,
        # Cat, quiet for 9 days (watch), completes the Recursion quiz with 95%.
        (3, 102, 0.95, hc.at(19), hc.at(19, 14), None),
    ]
    # Ann's Recursion quiz (in progress) is completed with 10%: quiz average 50%.
    after = [
        (1, 102, 0.1, hc.at(18, 12), hc.at(19), None) if row[:2] == (1, 102) else row
        for row in after
    ]
    result = changes_between(snap(), snap(progressions=after))
    changes = by_category(result)
    assert changes["completions"] == [
        ("Ann Archer", "1 new completion: Recursion quiz"),
        ("Cat Cole", "1 new completion: Recursion quiz"),
    ]
    assert changes["grades"] == [
        ("Ann Archer", "1 new grade: Recursion quiz 10%"),
        ("Cat Cole", "1 new grade: Recursion quiz 95%"),
    ]
    assert changes["at_risk"] == [("Ann Archer", "quiz average 50%")]
    assert changes["recovered"] == [
        ("Cat Cole", "back on track (was watch: no activity for 9 days; quiz average 65%)")
    ]
    assert "watch" not in changes and "joined" not in changes
    counts = result.counts
    assert (counts["completions"], counts["grades"], counts["at_risk"]) == (2, 2, 1)
    assert result.summary.startswith("2 new completions, 2 new grades, 1 became at risk")


def test_who_joined_and_who_left():
    students = [s for s in hc.STUDENTS if s[0] != 4] + [
        (6, "s-fay", "Fay", "Ford", "fay@example.com")
    ]
    progressions = [p for p in hc.PROGRESSIONS if p[0] != 4] + [
        (6, 104, None, hc.at(19), hc.at(19, 12), None)
    ]
    result = changes_between(snap(), snap(students=students, progressions=progressions))
    changes = by_category(result)
    assert changes["left"] == [("Dan Dunn", "left the cohort")]
    (joined,) = changes["joined"]
    assert joined[0] == "Fay Ford" and joined[1].startswith("joined (")
    # A newcomer's first completion is new too; the newcomer is not "at risk" twice.
    assert changes["completions"] == [("Fay Ford", "1 new completion: Intro")]
    assert "at_risk" not in changes


def test_new_blockers_are_those_that_entered_the_worst_few():
    empty = snap(progressions=[])
    full = snap()
    result = changes_between(empty, full)
    blockers = by_category(result)["blockers"]
    assert [name for name, _ in blockers] == sorted(name for name, _, _ in full.blockers.values())
    assert all(reason for _, reason in blockers)
    # Already among the worst: not new.
    assert "blockers" not in by_category(changes_between(full, full))


def test_a_worse_status_says_what_it_was():
    # Bob is at risk; with his Loops quiz at 68% he is only to watch: improved, not back.
    better = [
        (2, 101, 0.68, hc.at(5), hc.at(6), None) if p[:2] == (2, 101) else p
        for p in hc.PROGRESSIONS
    ]
    result = changes_between(snap(), snap(progressions=better))
    (recovered,) = by_category(result)["recovered"]
    assert recovered[0] == "Bob Baker"
    assert recovered[1].startswith("now watch: ") and "(was at risk: " in recovered[1]
    # And back: the same move the other way is "became at risk", saying what it was.
    result = changes_between(snap(progressions=better), snap())
    (worse,) = by_category(result)["at_risk"]
    assert "(was watch: " in worse[1]


# --- a real pull against the OpenClass simulator ----------------------------------------


@pytest.mark.django_db
def test_a_re_pull_reports_what_changed_in_the_email_and_on_the_run_page(
    openclass, settings, admin_user, client
):
    settings.REPORT_RECIPIENTS = ["ops@example.com"]
    sim = openclass()
    first = job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk)
    assert first.status == RunStatus.SUCCEEDED, first.message
    (cohort,) = run_changes(first)
    joined = len(sim.student_ids(WEB))
    assert {c["key"]: c["n"] for c in cohort["counts"]}["joined"] == joined

    # The vendor now has one more completion, graded.
    target = next(p for p in sim.progressions(WEB) if p.completed_at is None and p.started_at)
    target.completed_at = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    target.grade = 0.97
    mail.outbox.clear()
    again = job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk)
    assert again.status == RunStatus.SUCCEEDED, again.message
    (cohort,) = run_changes(again)
    counts = {c["key"]: c["n"] for c in cohort["counts"]}
    assert counts["completions"] == 1 and counts["grades"] == 1
    assert "joined" not in counts
    completions = next(s for s in cohort["sections"] if s["key"] == "completions")
    (item,) = completions["items"]
    assert item["key"] == target.user_id and item["message"].startswith("1 new completion: ")

    (message,) = mail.outbox
    assert "What changed" in message.body
    assert f"1 {LABELS['completions']}" in message.body
    assert item["message"] in message.body
    html = message.alternatives[0][0]
    assert escape(item["message"]) in html
    assert "What changed" in html and f"/runs/{again.pk}/changes/" in html
    assert f"/cohorts/{again.params['cohort_id']}/" in html

    client.force_login(admin_user)
    page = client.get(f"/runs/{again.pk}/").content.decode()
    assert "What changed" in page and escape(item["message"]) in page
    full = client.get(f"/runs/{again.pk}/changes/").content.decode()
    assert escape(item["message"]) in full and target.user_id in full


def test_the_report_shows_the_top_items_and_how_many_more(run_factory, db):
    items = [
        {
            "outcome": "change",
            "key": "summary",
            "label": "Cohort A",
            "message": "7 joined",
            "data": {
                "change": "summary",
                "cohort_id": 3,
                "cohort": "Cohort A",
                "counts": [["joined", "joined", 7], ["left", "left", 0]],
            },
        }
    ] + [
        {
            "outcome": "change",
            "key": f"s{n}",
            "label": f"Student {n}",
            "message": "joined (on track)",
            "data": {
                "change": "joined",
                "change_label": "joined",
                "cohort_id": 3,
                "cohort": "Cohort A",
                "student_id": n + 1,
            },
        }
        for n in range(7)
    ]
    run = run_factory(items=items)
    (cohort,) = run_changes(run)
    assert cohort["counts"] == [{"key": "joined", "label": "joined", "n": 7}]
    (section,) = cohort["sections"]
    assert len(section["items"]) == 5 and section["more"] == 2
    assert section["items"][0]["url"].endswith("/cohorts/3/students/1/")
    parts = render_run_report_email(run)
    assert "... and 2 more" in parts.text and "Every change:" in parts.text
    assert "… and 2 more" in parts.html


@pytest.mark.django_db
def test_a_broken_snapshot_never_fails_the_pull(openclass, monkeypatch):
    from integrations import changes

    def broken(*args, **kwargs):
        raise RuntimeError("no health today")

    openclass()
    monkeypatch.setattr(changes, "snapshot_before", broken)
    monkeypatch.setattr(changes, "snapshot_after", broken)
    run = job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert not run.items.filter(outcome="change").exists()
    # The pull's end still marked the cohort's data changed: no stored health survives it.
    assert Cohort.objects.get(pk=run.params["cohort_id"]).data_version > 0


@pytest.mark.django_db
def test_a_pull_that_fails_half_way_still_says_what_its_pages_changed(
    openclass, settings, monkeypatch
):
    from integrations.openclass import pull
    from integrations.simulator import Response

    sim = openclass()
    settings.HTTP_MAX_RETRIES = 1
    real_upsert = pull.progressions_upsert

    def upsert_then_break(**kwargs):
        result = real_upsert(**kwargs)
        sim.fail_next("GET", r"/progressions$", Response.json({"error": "down"}, 500), times=5)
        return result

    monkeypatch.setattr(pull, "progressions_upsert", upsert_then_break)
    run = job_execute(openclass_run_create(class_id=WEB, triggered_by="test").pk)
    assert run.status == RunStatus.FAILED and "at page 1" in run.message
    (cohort,) = run_changes(run)
    counts = {c["key"]: c["n"] for c in cohort["counts"]}
    page_0 = sim.progressions(WEB)[:100]
    assert counts["joined"] == len({p.user_id for p in page_0})
    assert counts["completions"] == sum(p.completed_at is not None for p in page_0)
