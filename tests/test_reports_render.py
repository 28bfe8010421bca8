"""The run report, as text and HTML, for every way a run can end."""

import pytest

from reports.constants import ErrorClass
from reports.models import RunKind, RunStatus
from reports.render import (
    format_duration,
    render_run_report_email,
    render_run_report_html,
    render_run_report_subject,
    render_run_report_text,
    run_report,
)

pytestmark = pytest.mark.django_db


def failure(key, group="Unit 1", error_class=ErrorClass.NOT_FOUND, message="No such student"):
    return {
        "key": key,
        "label": f"Student {key}",
        "group": group,
        "outcome": "failed",
        "error_class": error_class,
        "message": message,
    }


def success(key, group="Unit 1", outcome="created"):
    return {"key": key, "label": f"Student {key}", "group": group, "outcome": outcome}


@pytest.fixture
def partial_run(run_factory):
    return run_factory(
        status=RunStatus.PARTIAL,
        counts={"fetched": 5, "created": 2, "updated": 1, "failed": 2},
        stage_timings={"fetch": 1.25, "write": 0.5},
        items=[
            success("s1"),
            success("s2"),
            failure("s3", message="Student s3 is not in the class"),
            success("s4", group="Unit 2", outcome="updated"),
            failure("s5", group="Unit 2", error_class=ErrorClass.INVALID_DATA, message="Bad grade"),
        ],
    )


def test_succeeded_run(run_factory):
    run = run_factory(counts={"fetched": 3, "created": 3, "failed": 0}, stage_timings={"fetch": 2})
    text = render_run_report_text(run)
    html = render_run_report_html(run)
    assert render_run_report_subject(run) == (
        "[Classbridge] OpenClass pull of Cohort A: succeeded (3 created)"
    )
    assert "Succeeded: Finished, and every item went through." in text
    assert "Started by:    ada, from a page" in text and "user:ada" not in text
    assert "(exit status 0)" in text
    assert "Duration:      12 s" in text
    assert "created" in text and "fetch" in text
    assert "Failures" not in text and "Failures" not in html
    assert f"http://127.0.0.1:8000/runs/{run.pk}/" in text
    assert f'href="http://127.0.0.1:8000/runs/{run.pk}/"' in html
    assert "<script" not in html
    assert "Succeeded" in html


def test_partial_run_lists_groups_and_failures(partial_run):
    text = render_run_report_text(partial_run)
    html = render_run_report_html(partial_run)
    context = run_report(partial_run)
    assert [(g.group, g.items, g.ok, g.failed) for g in context["groups"]] == [
        ("Unit 1", 3, 2, 1),
        ("Unit 2", 2, 1, 1),
    ]
    assert context["failures_total"] == 2 and context["failures_more"] == 0
    assert "Partly failed: Finished, but some items failed" in text
    assert "(exit status 1)" in text
    assert "Per group" in text
    assert "  - [Not found] s3 Student s3 (Unit 1): Student s3 is not in the class" in text
    assert "  - [Invalid data] s5 Student s5 (Unit 2): Bad grade" in text
    assert "Failures (2)" in text
    assert "and 0 more" not in text
    assert "Per group" in html and "Unit 2" in html
    assert "Student s3 is not in the class" in html and "Invalid data" in html
    assert "invalid_data" not in html and "not_found" not in text
    subject = render_run_report_subject(partial_run)
    assert subject.endswith(": partly failed (2 created, 1 updated, 2 failed)")


def test_many_failures_are_cut_at_200_with_a_count_of_the_rest(run_factory):
    run = run_factory(
        status=RunStatus.PARTIAL,
        counts={"failed": 203},
        items=[failure(f"k{n}") for n in range(203)],
    )
    parts = render_run_report_email(run)
    assert "k199" in parts.text and "k200" not in parts.text
    assert "... and 3 more" in parts.text
    assert "and 3 more" in parts.html


def test_failed_run_shows_its_message(run_factory):
    run = run_factory(
        kind=RunKind.CANVAS_SYNC,
        status=RunStatus.FAILED,
        subject="",
        message="Canvas refused the token (HTTP 401).",
        error_class=ErrorClass.AUTH,
    )
    text = render_run_report_text(run)
    html = render_run_report_html(run)
    assert render_run_report_subject(run) == "[Classbridge] Canvas pull: failed (nothing recorded)"
    assert "Failed: Stopped as a whole before finishing" in text
    assert "Message\nCanvas refused the token (HTTP 401)." in text
    assert "(exit status 4)" in text
    assert "Canvas refused the token (HTTP 401)." in html


def test_dry_run_says_so(run_factory):
    run = run_factory(
        kind=RunKind.APEX_ENROLL,
        subject="roster.csv",
        dry_run=True,
        counts={"rows": 4, "would_send": 4, "failed": 0},
    )
    subject = render_run_report_subject(run)
    assert (
        subject
        == "[Classbridge] APEX enrollment of roster.csv: dry run passed (4 would be sent of 4 rows)"
    )
    text = render_run_report_text(run)
    html = render_run_report_html(run)
    assert "Dry run: nothing was sent to the vendor" in text
    assert "(dry run)" in html and "Dry run: nothing was sent" in html


def test_html_escapes_and_text_does_not(run_factory):
    run = run_factory(
        status=RunStatus.PARTIAL,
        subject="R&D <cohort>",
        items=[failure("x", message="<script>alert(1)</script>")],
    )
    html = render_run_report_html(run)
    text = render_run_report_text(run)
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "R&amp;D &lt;cohort&gt;" in html
    assert "R&D <cohort>" in text and "<script>alert(1)</script>" in text
    assert "R&D <cohort>" in render_run_report_subject(run)


def test_subject_is_one_line(run_factory):
    run = run_factory(subject="Line one\nline two")
    assert "\n" not in render_run_report_subject(run)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, ""), (0.42, "0.4 s"), (12.5, "12 s"), (65, "1 min 05 s"), (3725, "1 h 02 min")],
)
def test_format_duration(seconds, expected):
    assert format_duration(seconds) == expected


# -- counts that add up, summaries in words, links (issue 10) -----------------------


def test_tiles_never_count_an_invalid_row_twice(run_factory):
    from reports.render import count_rows

    counts = {
        "rows": 20,
        "classrooms": 2,
        "enrolled": 0,
        "already_enrolled": 10,
        "failed": 9,
        "skipped": 1,
        "invalid": 4,
    }
    rows = count_rows(counts)
    assert "invalid" not in [row.key for row in rows]
    outcomes = [row for row in rows if not row.total]
    assert sum(row.value for row in outcomes) == 20  # the file's 20 rows, not 24
    failed = next(row for row in rows if row.key == "failed")
    assert failed.note == "of which 4 invalid" and failed.bad
    assert [row.label for row in rows][:2] == ["rows in the file", "classrooms"]
    assert "enrolled" not in [row.key for row in rows]  # an outcome that did not happen


def test_summary_names_what_happened_of_how_many(run_factory):
    from reports.render import counts_summary

    counts = {"rows": 20, "already_enrolled": 10, "failed": 9, "skipped": 1, "invalid": 4}
    assert counts_summary(counts) == "10 already enrolled, 1 skipped, 9 failed of 20 rows"
    run = run_factory(
        kind=RunKind.APEX_ENROLL, subject="r.csv", status=RunStatus.PARTIAL, counts=counts
    )
    subject = render_run_report_subject(run)
    assert subject.endswith("partly failed (10 already enrolled, 1 skipped, 9 failed of 20 rows)")
    assert "already_enrolled" not in render_run_report_text(run)
    assert "0 failed" not in counts_summary({"created": 3, "failed": 0})


def test_a_dry_run_never_reads_as_everything_went_through(run_factory):
    run = run_factory(
        kind=RunKind.APEX_ENROLL,
        subject="roster.csv",
        dry_run=True,
        counts={"rows": 5, "would_send": 5, "failed": 0, "requests": 1},
    )
    context = run_report(run)
    assert context["status_label"] == "Dry run passed"
    assert "went through" not in context["status_meaning"]
    assert "nothing was sent" in context["status_meaning"]
    text = render_run_report_text(run)
    assert "5 would be sent of 5 rows" in text
    assert "cannot know" in text and "unknown" in text


def test_report_links_the_cohort_and_the_file(run_factory):
    pull = run_factory(params={"class_id": "C1", "cohort_name": "Cohort A", "cohort_id": 7})
    links = run_report(pull)["links"]
    assert links == [
        {"label": "Cohort", "text": "Cohort A", "url": "http://127.0.0.1:8000/cohorts/7/"}
    ]
    html = render_run_report_html(pull)
    assert 'href="http://127.0.0.1:8000/cohorts/7/"' in html
    assert "http://127.0.0.1:8000/cohorts/7/" in render_run_report_text(pull)
    enroll = run_factory(
        kind=RunKind.APEX_ENROLL, subject="r.csv", params={"roster_id": 3, "file_name": "r.csv"}
    )
    assert run_report(enroll)["links"][0]["url"].endswith("/apex/rosters/3/")


def test_a_titan_run_links_its_plan_the_preview_it_applied_and_the_run_it_undoes(run_factory):
    titan = run_factory(
        kind=RunKind.TITAN_SYNC,
        subject="t.csv",
        params={"roster_id": 3, "file_name": "t.csv", "preview_of": 11, "undo_of": 9},
    )
    links = [(link["label"], link["text"], link["url"]) for link in run_report(titan)["links"]]
    assert links == [
        ("File", "t.csv", f"http://127.0.0.1:8000/integrations/titan/runs/{titan.pk}/plan/"),
        ("Preview", "run #11", "http://127.0.0.1:8000/runs/11/"),
        ("Undoes", "run #9", "http://127.0.0.1:8000/runs/9/"),
    ]
    assert "/apex/rosters/" not in str(links)


def test_a_bulk_run_links_each_cohort_its_items_name(run_factory):
    run = run_factory(
        kind=RunKind.CANVAS_SYNC,
        subject="Canvas: available courses",
        params={"mode": "bulk"},
        items=[
            {"key": "101", "label": "Biology", "outcome": "course", "data": {"cohort_id": 4}},
            {"key": "102", "label": "Chemistry", "outcome": "course", "data": {"cohort_id": 5}},
            {"key": "103", "label": "History", "outcome": "failed", "error_class": "auth"},
        ],
    )
    links = run_report(run)["links"]
    assert [(link["text"], link["url"]) for link in links] == [
        ("Biology", "http://127.0.0.1:8000/cohorts/4/"),
        ("Chemistry", "http://127.0.0.1:8000/cohorts/5/"),
    ]


def test_who_started_a_run_in_words():
    from reports.render import trigger_words

    assert trigger_words("user:ada") == "ada, from a page"
    assert trigger_words("cli:ops") == "ops, from the command line"
    assert trigger_words("schedule:cohort-pull-3") == "the schedule cohort-pull-3"
    assert trigger_words("system:demo") == "Classbridge (demo)"
    assert trigger_words("something else") == "something else"
