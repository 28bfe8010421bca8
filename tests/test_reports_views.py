"""Run pages: staff only, filterable, a fixed number of queries, live progress, CSV."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reports.constants import ErrorClass
from reports.models import RunKind, RunStatus

pytestmark = pytest.mark.django_db


def failed_item(key, **extra):
    return {
        "key": key,
        "label": f"Student {key}",
        "group": "Unit 1",
        "outcome": "failed",
        "error_class": ErrorClass.INVALID_DATA,
        "message": f"Row {key} has no email",
        **extra,
    }


def ok_item(key):
    return {"key": key, "label": f"Student {key}", "group": "Unit 1", "outcome": "created"}


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def run_urls(run):
    return [
        reverse("reports:list"),
        reverse("reports:detail", args=[run.pk]),
        reverse("reports:progress", args=[run.pk]),
        reverse("reports:failures_csv", args=[run.pk]),
    ]


# -- access --------------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in(client, run_factory):
    run = run_factory()
    for url in run_urls(run):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login"))


def test_mentor_never_sees_a_run(client, mentor_a, run_factory):
    run = run_factory(status=RunStatus.PARTIAL, items=[failed_item("secret-row")])
    client.force_login(mentor_a)
    for url in run_urls(run):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"secret-row" not in response.content


def test_unknown_run_is_404(staff_client):
    for name in ("reports:detail", "reports:progress", "reports:failures_csv"):
        assert staff_client.get(reverse(name, args=[999999])).status_code == 404


# -- list ----------------------------------------------------------------------------


@pytest.fixture
def mixed_runs(run_factory):
    now = timezone.now()
    return {
        "old_pull": run_factory(subject="Old pull", created_at=now - timedelta(days=10)),
        "pull_failed": run_factory(
            subject="Broken pull", status=RunStatus.FAILED, message="Auth refused"
        ),
        "enroll": run_factory(
            kind=RunKind.APEX_ENROLL,
            subject="roster.csv",
            status=RunStatus.PARTIAL,
            dry_run=True,
            counts={"rows": 3, "enrolled": 2, "failed": 1},
        ),
        "titan": run_factory(kind=RunKind.TITAN_SYNC, subject="titan.csv", status=RunStatus.HELD),
    }


def listed(response):
    return {run.subject for run in response.context["page"]}


def test_list_shows_every_run_newest_first(staff_client, mixed_runs):
    response = staff_client.get(reverse("reports:list"))
    assert response.status_code == 200
    subjects = [run.subject for run in response.context["page"]]
    assert subjects[-1] == "Old pull"
    assert set(subjects) == {"Old pull", "Broken pull", "roster.csv", "titan.csv"}
    page = response.content.decode()
    assert '<span class="badge partial">Dry run found problems</span>' in page
    assert "dry run" in page
    assert "2 enrolled, 1 failed" in page


def test_list_filters_by_kind_status_and_date(staff_client, mixed_runs):
    url = reverse("reports:list")
    assert listed(staff_client.get(url, {"kind": RunKind.OPENCLASS_SYNC})) == {
        "Old pull",
        "Broken pull",
    }
    assert listed(staff_client.get(url, {"status": RunStatus.FAILED})) == {"Broken pull"}
    assert listed(
        staff_client.get(url, {"kind": RunKind.OPENCLASS_SYNC, "status": RunStatus.SUCCEEDED})
    ) == {"Old pull"}
    today = timezone.localdate()
    assert listed(staff_client.get(url, {"date_from": today.isoformat()})) == {
        "Broken pull",
        "roster.csv",
        "titan.csv",
    }
    old_day = (today - timedelta(days=10)).isoformat()
    assert listed(staff_client.get(url, {"date_from": old_day, "date_to": old_day})) == {"Old pull"}
    assert listed(staff_client.get(url, {"date_to": (today - timedelta(days=1)).isoformat()})) == {
        "Old pull"
    }


def test_list_ignores_a_bad_filter_value_and_says_so(staff_client, mixed_runs):
    response = staff_client.get(
        reverse("reports:list"), {"date_from": "not-a-date", "status": RunStatus.HELD}
    )
    assert response.status_code == 200
    assert listed(response) == {"titan.csv"}
    page = response.content.decode()
    assert "From: Enter a valid date" in page
    assert "Date_from" not in page and "date_from:" not in page.lower()


def test_list_says_when_the_date_range_is_backwards(staff_client, mixed_runs):
    response = staff_client.get(
        reverse("reports:list"), {"date_from": "2025-02-01", "date_to": "2025-01-01"}
    )
    assert response.status_code == 200
    assert "is after" in response.content.decode()
    assert listed(response) == set()


def test_list_paginates_by_50(staff_client, run_factory):
    for n in range(55):
        run_factory(subject=f"run {n}")
    first = staff_client.get(reverse("reports:list"))
    assert len(first.context["page"]) == 50
    second = staff_client.get(reverse("reports:list"), {"page": 2, "status": "succeeded"})
    assert len(second.context["page"]) == 5
    assert "status=succeeded" in second.content.decode()  # filters survive paging


def test_list_runs_a_fixed_number_of_queries(
    staff_client, run_factory, admin_user, django_assert_num_queries
):
    def count_queries():
        # session, user, count, page of runs
        with django_assert_num_queries(4):
            response = staff_client.get(reverse("reports:list"), {"kind": RunKind.OPENCLASS_SYNC})
        assert response.status_code == 200

    run_factory(user=admin_user)
    count_queries()
    for n in range(20):
        run_factory(user=admin_user, status=RunStatus.PARTIAL, counts={"failed": n})
    count_queries()


# -- run page ------------------------------------------------------------------------


def test_running_run_shows_live_progress(staff_client, run_factory):
    run = run_factory(
        status=RunStatus.RUNNING,
        stage="fetch",
        progress_done=3,
        progress_total=12,
        progress_unit="pages",
        counts={"fetched": 300, "failed": 2},
    )
    response = staff_client.get(reverse("reports:detail", args=[run.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-finished="false"' in page
    assert f'data-progress-url="{reverse("reports:progress", args=[run.pk])}"' in page
    assert "<strong>3</strong> / 12 pages" in page
    assert 'aria-valuenow="25"' in page
    assert "fetched" in page and "300" in page
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in page
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    assert f'<script src="/static/js/run.js" nonce="{nonce}" defer></script>' in page
    # Nothing of the finished report yet.
    assert "Download failures CSV" not in page
    assert 'id="items"' not in page


def test_unknown_total_shows_an_indeterminate_bar(staff_client, run_factory):
    run = run_factory(
        status=RunStatus.RUNNING, stage="fetch", progress_done=40, progress_unit="rows"
    )
    page = staff_client.get(reverse("reports:detail", args=[run.pk])).content.decode()
    assert "progress indeterminate" in page
    assert "<strong>40</strong> rows so far" in page


def test_queued_run_waits_for_a_worker(staff_client, run_factory):
    run = run_factory(status=RunStatus.QUEUED)
    page = staff_client.get(reverse("reports:detail", args=[run.pk])).content.decode()
    assert "Waiting for a worker" in page
    assert "progress indeterminate" in page


def test_pages_carry_no_inline_script(staff_client, run_factory):
    run = run_factory(status=RunStatus.RUNNING, stage="fetch")
    for url in (reverse("reports:list"), reverse("reports:detail", args=[run.pk])):
        page = staff_client.get(url).content.decode()
        assert page.count("<script") == page.count("<script src=")


def test_progress_partial_is_just_the_fragment(staff_client, run_factory):
    run = run_factory(
        status=RunStatus.RUNNING,
        stage="write",
        progress_done=5,
        progress_total=10,
        progress_unit="rows",
    )
    response = staff_client.get(reverse("reports:progress", args=[run.pk]))
    fragment = response.content.decode().strip()
    assert response.status_code == 200
    assert fragment.startswith('<section class="card run-progress"')
    assert fragment.endswith("</section>")
    assert "<html" not in fragment and "<body" not in fragment
    assert 'data-finished="false"' in fragment
    assert "<strong>5</strong> / 10 rows" in fragment
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]

    run.status = RunStatus.SUCCEEDED
    run.finished_at = timezone.now()
    run.save()
    fragment = staff_client.get(reverse("reports:progress", args=[run.pk])).content.decode()
    assert 'data-finished="true"' in fragment


def test_silent_running_run_is_flagged(staff_client, run_factory):
    run = run_factory(status=RunStatus.RUNNING, stage="fetch")
    type(run).objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    page = staff_client.get(reverse("reports:progress", args=[run.pk])).content.decode()
    assert "No progress reported for 10 min" in page


@pytest.fixture
def partial_run(run_factory):
    return run_factory(
        status=RunStatus.PARTIAL,
        counts={"rows": 4, "created": 2, "failed": 2},
        stage_timings={"validate": 0.2, "send": 3.4},
        items=[
            ok_item("a1"),
            failed_item("a2", data={"email": "", "row": 3}),
            ok_item("a3"),
            failed_item("=cmd", label="-2+3", data={"note": "@risky"}),
        ],
    )


def test_finished_run_shows_the_report_and_items(staff_client, partial_run):
    response = staff_client.get(reverse("reports:detail", args=[partial_run.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "data-progress-url" not in page and "run.js" not in page and "refresh" not in page
    assert "Finished, but some items failed" in page
    assert "Per group" in page and "Unit 1" in page
    assert "validate" in page and "send" in page
    assert "Failures by cause" in page
    assert reverse("reports:failures_csv", args=[partial_run.pk]) in page
    assert "Download failures CSV" in page
    assert [item.key for item in response.context["items_page"]] == ["a1", "a2", "a3", "=cmd"]


def test_items_filter_shows_failures_only(staff_client, partial_run):
    response = staff_client.get(reverse("reports:detail", args=[partial_run.pk]), {"failed": "1"})
    assert [item.key for item in response.context["items_page"]] == ["a2", "=cmd"]
    assert response.context["items_total"] == 4


def test_finished_run_without_failures_offers_no_csv(staff_client, run_factory):
    run = run_factory(counts={"created": 1}, items=[ok_item("a1")])
    page = staff_client.get(reverse("reports:detail", args=[run.pk])).content.decode()
    assert "Download failures CSV" not in page
    assert "Finished, and every item went through." in page


def test_failed_run_page_shows_the_message(staff_client, run_factory):
    run = run_factory(
        status=RunStatus.FAILED, message="OpenClass refused the login.", error_class=ErrorClass.AUTH
    )
    page = staff_client.get(reverse("reports:detail", args=[run.pk])).content.decode()
    assert "OpenClass refused the login." in page
    assert "Authentication refused" in page
    assert "This run recorded no items" in page


# -- failures CSV --------------------------------------------------------------------


def test_failures_csv_holds_only_failed_items_formula_safe(staff_client, partial_run):
    response = staff_client.get(reverse("reports:failures_csv", args=[partial_run.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="run-{partial_run.pk}-failures.csv"'
    )
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == [
        "seq",
        "key",
        "label",
        "group",
        "outcome",
        "error_class",
        "message",
        "email",
        "note",
        "row",
    ]
    assert [row[1] for row in rows[1:]] == ["a2", "'=cmd"]
    assert rows[1][7:] == ["", "", "3"]
    assert rows[2][2] == "'-2+3"
    assert rows[2][8] == "'@risky"


def test_failures_csv_of_a_clean_run_is_just_the_header(staff_client, run_factory):
    run = run_factory(items=[ok_item("a1")])
    body = b"".join(
        staff_client.get(reverse("reports:failures_csv", args=[run.pk])).streaming_content
    )
    assert body.decode("utf-8-sig").splitlines() == [
        "seq,key,label,group,outcome,error_class,message"
    ]


# -- issue 10: links both ways, one state, zones ---------------------------------------


def test_list_subject_links_the_cohort_or_file_it_touched(staff_client, run_factory):
    pull = run_factory(subject="Cohort A", params={"cohort_id": 7, "cohort_name": "Cohort A"})
    enroll = run_factory(
        kind=RunKind.APEX_ENROLL, subject="r.csv", params={"roster_id": 3, "file_name": "r.csv"}
    )
    bare = run_factory(subject="Old pull")
    page = staff_client.get(reverse("reports:list")).content.decode()
    assert '<a href="/cohorts/7/">Cohort A</a>' in page
    assert '<a href="/integrations/apex/rosters/3/">r.csv</a>' in page
    assert f'<a href="/runs/{bare.pk}/">Old pull</a>' in page
    detail = staff_client.get(reverse("reports:detail", args=[pull.pk])).content.decode()
    assert 'Cohort: <a href="/cohorts/7/">Cohort A</a>' in detail
    detail = staff_client.get(reverse("reports:detail", args=[enroll.pk])).content.decode()
    assert 'File: <a href="/integrations/apex/rosters/3/">r.csv</a>' in detail


def test_live_page_header_and_progress_box_show_one_state(staff_client, run_factory):
    run = run_factory(status=RunStatus.RUNNING, stage="fetch", progress_done=1)
    page = staff_client.get(reverse("reports:detail", args=[run.pk])).content.decode()
    assert '<span class="badge running" data-run-badge>Running</span>' in page
    assert 'data-status="running" data-status-label="Running"' in page
    # The elapsed time carries its start, so the page's script moves it every second.
    since = run.started_at.astimezone(timezone.get_current_timezone()).isoformat()
    assert f'data-elapsed-since="{since}"' in page or "data-elapsed-since=" in page
    fragment = staff_client.get(reverse("reports:progress", args=[run.pk])).content.decode()
    assert 'data-status="running" data-status-label="Running"' in fragment


def test_times_carry_their_zone(staff_client, run_factory, settings):
    settings.TIME_ZONE = "Europe/Paris"
    run = run_factory()
    listing = staff_client.get(reverse("reports:list")).content.decode()
    detail = staff_client.get(reverse("reports:detail", args=[run.pk])).content.decode()
    for page in (listing, detail):
        assert re.search(r"\d{2}:\d{2} CE[S]?T</time>", page), page[-3000:]


def test_items_show_outcomes_and_errors_in_words(staff_client, run_factory):
    run = run_factory(
        kind=RunKind.APEX_ENROLL,
        status=RunStatus.PARTIAL,
        counts={"rows": 2, "already_enrolled": 1, "failed": 1, "invalid": 1},
        items=[
            {"key": "S1", "outcome": "already_enrolled"},
            {"key": "S2", "outcome": "invalid", "error_class": "invalid_data", "message": "x"},
        ],
    )
    page = staff_client.get(reverse("reports:detail", args=[run.pk])).content.decode()
    assert "already_enrolled" not in page and "invalid_data" not in page
    assert "already enrolled" in page and "Invalid data" in page
    assert "of which 1 invalid" in page
