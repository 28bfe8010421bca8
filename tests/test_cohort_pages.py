"""The cohort pages: list, health page, student page, thresholds, notes and CSV downloads.

The hand-built cohort of tests/health_cohort.py is stored in cohort A; `now` is frozen at
its "now" so the pages show the figures tests/test_analytics.py works out.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.urls import reverse

from cohorts.models import Cohort, MentorNote, Source, Student
from tests import health_cohort as hc

pytestmark = pytest.mark.django_db

# Session and user lookups (2), the cohort through the access rule (1) and its stored
# health (1: cohorts.health_store), whatever the cohort's size.
DETAIL_QUERIES = 4
# Computing the stored health (a stale or missing one): the three frames of
# cohorts.selectors.cohort_frames_with_leavers and an update in a transaction of its own
# (a savepoint here, inside the test's transaction: three statements); the very first one
# also inserts (in a savepoint: three statements).
COMPUTE_QUERIES = 3 + 3
FIRST_STORE_QUERIES = 3
# The health page also counts each listed student's mentor notes (one query, the marker).
DETAIL_PAGE_QUERIES = DETAIL_QUERIES + 1
# A page as of a past day is computed live: session, user, cohort, the three frames, the
# marker.
FILTERED_PAGE_QUERIES = 2 + 1 + 3 + 1


@pytest.fixture(autouse=True)
def frozen_now(health_now):
    yield


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def figure(page: str, chart_id: str) -> dict:
    match = re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>', page)
    assert match, f"no {chart_id} on the page"
    return json.loads(match.group(1))


def student_names(client, url: str) -> list[str]:
    """The names in the page's students table, in order."""
    page = client.get(url).content.decode()
    table = page.split('id="students-table"')[1].split("</table>")[0]
    return re.findall(r'<td><a href="[^"]+">([^<]+)</a>', table)


# --- cohort list -----------------------------------------------------------------------


def test_list_shows_students_completion_risk_and_freshness(client, mentor_a, ids, cohort_a):
    cohort_a.sync_interval_hours = 6
    cohort_a.last_synced_at = hc.NOW.replace(hour=1)  # 11 hours ago: overdue
    cohort_a.last_sync_status = "succeeded"
    cohort_a.save()
    client.force_login(mentor_a)
    page = client.get(reverse("cohorts:list")).content.decode()
    assert "Cohort A" in page
    assert "40%" in page  # 12 of 30
    assert "3 at risk" in page and "1 to watch" in page
    assert "scheduled pull overdue" in page


@pytest.mark.parametrize("cohorts", [1, 4])
def test_list_runs_a_fixed_number_of_queries(
    client, admin_user, django_assert_num_queries, cohorts
):
    for n in range(cohorts):
        cohort = Cohort.objects.create(name=f"C{n}", source=Source.OPENCLASS, external_id=f"c{n}")
        hc.build(cohort)
    client.force_login(admin_user)
    # Session, user, then cohorts, assignment counts, enrollments, per-student aggregates.
    with django_assert_num_queries(6):
        assert client.get(reverse("cohorts:list")).status_code == 200


def test_list_csv(client, admin_user, ids):
    client.force_login(admin_user)
    rows = csv_rows(client.get(reverse("cohorts:list_csv")))
    assert rows[0][:4] == ["Cohort", "Source", "External id", "Students"]
    assert rows[1][:8] == ["Cohort A", "OpenClass.ai", "class-a", "5", "6", "0.4", "3", "1"]


# --- health page -----------------------------------------------------------------------


def test_health_page_headline_tables_and_charts(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    response = client.get(reverse("cohorts:detail", args=[cohort_a.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Biggest blocker" in page and "Recursion quiz" in page
    assert "no activity for 9 days" in page and "quiz average 40%" in page
    assert "-3.6" in page  # behind pace: 2.4 done per student, 6 expected
    # Charts are data for static/js/charts.js: no inline script runs.
    completion = figure(page, "chart-completion")
    assert [trace["name"] for trace in completion["data"]] == ["U1", "U2"]
    assert figure(page, "chart-blockers")["data"][0]["name"] == "Students stuck"
    assert figure(page, "chart-progress")["data"][1]["name"] == "Pace"
    assert "<script>" not in page
    # A mentor starts no pulls.
    assert "Sync now" not in page


def test_health_page_runs_a_fixed_number_of_queries(
    client, admin_user, ids, cohort_a, django_assert_num_queries
):
    client.force_login(admin_user)
    url = reverse("cohorts:detail", args=[cohort_a.pk])
    # The first view computes the stored health; the next ones read it.
    with django_assert_num_queries(DETAIL_PAGE_QUERIES + COMPUTE_QUERIES + FIRST_STORE_QUERIES):
        client.get(url)
    with django_assert_num_queries(DETAIL_PAGE_QUERIES):
        client.get(url)
    # More data, same queries: computed again once (the data changed), then read.
    extra = Cohort.objects.create(name="X", source=Source.OPENCLASS, external_id="x")
    hc.build(extra)
    more = Student.objects.create(source=Source.OPENCLASS, external_id="more")
    cohort_a.enrollments.create(student=more)
    with django_assert_num_queries(DETAIL_PAGE_QUERIES + COMPUTE_QUERIES):
        client.get(url + "?status=watch&q=e&sort=name")
    with django_assert_num_queries(DETAIL_PAGE_QUERIES):
        client.get(url + "?status=watch&q=e&sort=name")
    # A unit, a first day or a frequency narrow the stored view: one more query, its rows.
    with django_assert_num_queries(DETAIL_PAGE_QUERIES + 1):
        client.get(url + "?unit=U2&date_from=2026-03-05&freq=W&status=watch&q=e")
    # A last day moves "now": computed live from every row.
    with django_assert_num_queries(FILTERED_PAGE_QUERIES):
        client.get(url + "?unit=U2&date_from=2026-03-05&date_to=2026-03-18&status=watch&q=e")


def test_staff_keep_sync_now_and_last_run(client, admin_user, ids, cohort_a):
    cohort_a.last_sync_run_id = 42
    cohort_a.save()
    client.force_login(admin_user)
    page = client.get(reverse("cohorts:detail", args=[cohort_a.pk])).content.decode()
    assert f'action="{reverse("integrations:openclass_sync", args=[cohort_a.pk])}"' in page
    assert reverse("reports:detail", args=[42]) in page
    assert "Thresholds and pace" in page


def test_students_filter_search_and_sort_without_javascript(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    url = reverse("cohorts:detail", args=[cohort_a.pk])

    def names(query: str) -> list[str]:
        return student_names(client, url + query)

    # Default: worst first, then furthest behind: Dan (3 behind), Bob (1), Eve (-1).
    assert names("") == ["Dan Dunn", "Bob Baker", "Eve Evans", "Cat Cole", "Ann Archer"]
    assert names("?status=at_risk") == ["Dan Dunn", "Bob Baker", "Eve Evans"]
    assert names("?status=watch") == ["Cat Cole"]
    assert names("?q=EVE") == ["Eve Evans"]
    assert names("?q=bob%40example") == ["Bob Baker"]
    assert names("?sort=completed&dir=desc") == [
        "Eve Evans",
        "Ann Archer",  # ties with Cat at 3: by name
        "Cat Cole",
        "Bob Baker",
        "Dan Dunn",
    ]
    # Never active sorts last either way; the rest by days inactive.
    assert names("?sort=activity&dir=asc") == [
        "Bob Baker",
        "Eve Evans",
        "Ann Archer",
        "Cat Cole",
        "Dan Dunn",
    ]
    assert names("?sort=quiz") == ["Bob Baker", "Eve Evans", "Cat Cole", "Ann Archer", "Dan Dunn"]
    # Nonsense parameters are ignored, not an error.
    assert client.get(url + "?status=nope&sort=x&date_from=soon&unit=U9").status_code == 200


def test_unit_and_date_filters(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    url = reverse("cohorts:detail", args=[cohort_a.pk])
    page = client.get(url + "?unit=U1").content.decode()
    assert [t["name"] for t in figure(page, "chart-completion")["data"]] == ["U1"]
    assert "cover <strong>U1</strong> only" in page
    page = client.get(url + "?date_to=2026-03-08").content.decode()
    assert "as it stood at the end of <strong>8 Mar 2026</strong>" in page
    blockers = figure(page, "chart-blockers")["data"][0]["y"]
    assert not any("Recursion" in label for label in blockers)  # nobody had started it


# --- thresholds ------------------------------------------------------------------------


def test_admin_threshold_edit_changes_classifications(client, admin_user, ids, cohort_a):
    client.force_login(admin_user)
    url = reverse("cohorts:thresholds", args=[cohort_a.pk])
    response = client.post(
        url,
        {
            "inactive_days": 4,
            "behind_fraction": 20,  # percent, as the page speaks of them
            "low_grade": 45,
            "starts_on": "2026-03-02",
            "ends_on": "2026-03-15",
        },
    )
    assert response.status_code == 302
    cohort_a.refresh_from_db()
    assert (cohort_a.inactive_days, cohort_a.low_grade) == (4, 0.45)
    page = client.get(reverse("cohorts:detail", args=[cohort_a.pk])).content.decode()
    assert "Thresholds saved" in page
    url = reverse("cohorts:detail", args=[cohort_a.pk])
    # Cat: 9 days >= 2 x 4 -> at risk. Eve: 50% is within 10 points of 45% -> watch.
    assert student_names(client, url + "?status=at_risk") == ["Dan Dunn", "Bob Baker", "Cat Cole"]
    assert student_names(client, url + "?status=watch") == ["Eve Evans"]


def test_invalid_thresholds_are_refused(client, admin_user, ids, cohort_a):
    client.force_login(admin_user)
    response = client.post(
        reverse("cohorts:thresholds", args=[cohort_a.pk]),
        {
            "inactive_days": 0,
            "behind_fraction": 200,
            "low_grade": 60,
            "starts_on": "2026-03-10",
            "ends_on": "2026-03-01",
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "At least one day." in page
    assert "A percentage above 0 and at most 100" in page
    assert "cannot end before it starts" in page
    cohort_a.refresh_from_db()
    assert (cohort_a.inactive_days, cohort_a.behind_fraction) == (7, 0.2)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("inactive_days", 0, "At least one day."),
        ("behind_fraction", 150, "A percentage above 0 and at most 100"),
        ("behind_fraction", -20, "A percentage above 0 and at most 100"),
        ("low_grade", 0, "A percentage above 0 and at most 100"),
    ],
)
def test_the_django_admin_refuses_the_same_thresholds(
    client, admin_user, cohort_a, field, value, message
):
    # The admin is the other place thresholds are edited (docs/cohort-health.md): it must
    # not store what the health page's form refuses (0 days puts everyone on watch).
    client.force_login(admin_user)
    data = {
        "name": cohort_a.name,
        "source": cohort_a.source,
        "external_id": cohort_a.external_id,
        "inactive_days": 7,
        "behind_fraction": 20,
        "low_grade": 60,
        field: value,
    }
    response = client.post(f"/admin/cohorts/cohort/{cohort_a.pk}/change/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    cohort_a.refresh_from_db()
    assert (cohort_a.inactive_days, cohort_a.behind_fraction, cohort_a.low_grade) == (7, 0.2, 0.6)
    data[field] = {"inactive_days": 3, "behind_fraction": 30, "low_grade": 50}[field]
    assert client.post(f"/admin/cohorts/cohort/{cohort_a.pk}/change/", data).status_code == 302
    cohort_a.refresh_from_db()
    stored = {"inactive_days": 3, "behind_fraction": 0.3, "low_grade": 0.5}[field]
    assert getattr(cohort_a, field) == stored


def test_the_django_admin_speaks_days_and_percent_like_the_health_page(
    client, admin_user, cohort_a
):
    # The admin shows the stored shares as percent, labelled as the health page labels them,
    # and a saved percent is stored as the share the health page reads.
    cohort_a.inactive_days, cohort_a.behind_fraction, cohort_a.low_grade = 5, 0.25, 0.55
    cohort_a.save()
    client.force_login(admin_user)
    url = f"/admin/cohorts/cohort/{cohort_a.pk}/change/"
    form = client.get(url).context["adminform"].form
    assert form["behind_fraction"].value() == 25
    assert form["low_grade"].value() == 55
    assert form["inactive_days"].value() == 5
    page = client.get(url).content.decode()
    assert "Days inactive before watch" in page
    assert "Behind the cohort median by (% of the curriculum)" in page
    assert "Low quiz average (%)" in page
    assert "0..1" not in page
    data = {
        "name": cohort_a.name,
        "source": cohort_a.source,
        "external_id": cohort_a.external_id,
        "inactive_days": 4,
        "behind_fraction": 20,
        "low_grade": 45,
    }
    assert client.post(url, data).status_code == 302
    cohort_a.refresh_from_db()
    assert (cohort_a.inactive_days, cohort_a.behind_fraction, cohort_a.low_grade) == (4, 0.2, 0.45)
    # The health page's form shows what the admin saved, in the same units.
    health = client.get(reverse("cohorts:detail", args=[cohort_a.pk]))
    thresholds = health.context["thresholds_form"]
    assert (thresholds["behind_fraction"].value(), thresholds["low_grade"].value()) == (20, 45)


def test_mentors_cannot_change_thresholds(client, mentor_a, mentor_b, cohort_a):
    data = {"inactive_days": 1, "behind_fraction": 0.5, "low_grade": 0.5}
    client.force_login(mentor_a)
    assert client.post(reverse("cohorts:thresholds", args=[cohort_a.pk]), data).status_code == 403
    client.force_login(mentor_b)
    assert client.post(reverse("cohorts:thresholds", args=[cohort_a.pk]), data).status_code == 404
    cohort_a.refresh_from_db()
    assert cohort_a.inactive_days == 7


# --- student page ----------------------------------------------------------------------


def test_student_page_timeline_standing_and_reasons(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    url = reverse("cohorts:student", args=[cohort_a.pk, ids[3]])
    page = client.get(url).content.decode()
    assert "Cat Cole" in page
    assert "Why to watch" in page and "no activity for 9 days" in page
    assert "waiting for review" in page  # her Project
    assert "3 assignments not started" in page
    assert figure(page, "chart-student")["data"][2]["name"] == "Cat Cole"


def test_student_page_runs_a_fixed_number_of_queries(
    client, mentor_a, ids, cohort_a, django_assert_num_queries
):
    client.force_login(mentor_a)
    url = reverse("cohorts:student", args=[cohort_a.pk, ids[2]])
    client.get(url)  # computes the cohort's stored health
    # Session, user, cohort, student, the stored health, the student's own rows, notes,
    # and the person's cohorts (3).
    with django_assert_num_queries(10):
        client.get(url)
    for n in range(3):
        MentorNote.objects.create(
            cohort=cohort_a,
            student_id=ids[2],
            author=mentor_a,
            author_name="Mia",
            body=f"note {n}",
        )
    with django_assert_num_queries(10):
        client.get(url)


def test_mentor_adds_a_note_to_the_log(client, mentor_a, ids, cohort_a):
    mentor_a.first_name, mentor_a.last_name = "Mia", "Mentor"
    mentor_a.save()
    client.force_login(mentor_a)
    url = reverse("cohorts:student", args=[cohort_a.pk, ids[2]])
    response = client.post(url, {"body": "  Called Bob: back on Monday.  "})
    assert response.status_code == 302
    note = MentorNote.objects.get()
    assert (note.author, note.author_name, note.body) == (
        mentor_a,
        "Mia Mentor",
        "Called Bob: back on Monday.",
    )
    assert note.created_at == hc.NOW
    page = client.get(url).content.decode()
    assert "Called Bob: back on Monday." in page and "Mia Mentor" in page
    # Empty notes are refused.
    assert client.post(url, {"body": "   "}).status_code == 400
    assert MentorNote.objects.count() == 1


def test_admin_adds_a_note_and_others_cannot(client, admin_user, mentor_b, ids, cohort_a):
    url = reverse("cohorts:student", args=[cohort_a.pk, ids[1]])
    client.force_login(admin_user)
    assert client.post(url, {"body": "Checked in."}).status_code == 302
    client.force_login(mentor_b)
    assert client.post(url, {"body": "Not mine."}).status_code == 404
    assert list(MentorNote.objects.values_list("body", flat=True)) == ["Checked in."]


def test_notes_and_names_are_text_never_markup(client, mentor_a, ids, cohort_a):
    evil = '</script><img src=x onerror="alert(1)">'
    Student.objects.filter(pk=ids[2]).update(first_name=evil, last_name="")
    client.force_login(mentor_a)
    url = reverse("cohorts:student", args=[cohort_a.pk, ids[2]])
    assert client.post(url, {"body": f"<b>hi</b>\n{evil}"}).status_code == 302
    for page in (
        client.get(url).content.decode(),
        client.get(reverse("cohorts:detail", args=[cohort_a.pk])).content.decode(),
    ):
        assert evil not in page and "<b>hi</b>" not in page
        assert "&lt;img src=x onerror=" in page
    # In the chart's JSON too (json_script escapes <, > and &): the name is data.
    page = client.get(url).content.decode()
    assert figure(page, "chart-student")["data"][2]["name"] == evil


def test_a_student_of_another_cohort_is_404(client, mentor_a, cohort_a, cohort_b):
    other = hc.build(cohort_b)
    hc.build(cohort_a)
    client.force_login(mentor_a)
    url = reverse("cohorts:student", args=[cohort_a.pk, other[1]])
    assert client.get(url).status_code == 404


# --- CSV -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "header", "first"),
    [
        ("students", "Student", "Dan Dunn"),
        ("blockers", "Rank", "1"),
        ("completion", "Order", "1"),
        ("units", "Unit", "U1"),
        ("progress", "Period end", "2026-03-01"),
    ],
)
def test_every_table_downloads_as_csv(
    client, mentor_a, ids, cohort_a, table, header, first, django_assert_num_queries
):
    client.force_login(mentor_a)
    url = reverse("cohorts:table_csv", args=[cohort_a.pk, table])
    with django_assert_num_queries(DETAIL_QUERIES + COMPUTE_QUERIES + FIRST_STORE_QUERIES):
        assert client.get(url).status_code == 200
    with django_assert_num_queries(DETAIL_QUERIES):
        response = client.get(url)
        rows = csv_rows(response)
    assert response["Content-Type"].startswith("text/csv")
    assert rows[0][0] == header and rows[1][0] == first


# Cohort A's lifetime runs from its first activity (1 Mar 2026) to today (20 Mar 2026);
# filters may go DATE_MARGIN (366 days) either side.
FIRST_DAY, LAST_DAY = "2025-02-28", "2027-03-21"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("date_to", "9999-12-31", f"Pick a day from {FIRST_DAY} to {LAST_DAY}."),
        ("date_from", "0001-01-01", f"Pick a day from {FIRST_DAY} to {LAST_DAY}."),
        ("date_from", "2025-02-27", f"Pick a day from {FIRST_DAY} to {LAST_DAY}."),
        ("date_to", "2027-03-22", f"Pick a day from {FIRST_DAY} to {LAST_DAY}."),
        ("date_from", "soon", "Enter a valid date."),
        ("date_to", "2026-02-30", "Enter a valid date."),
    ],
)
def test_out_of_range_dates_are_a_form_error_and_a_csv_400(
    client, mentor_a, ids, cohort_a, name, value, message
):
    client.force_login(mentor_a)
    response = client.get(reverse("cohorts:detail", args=[cohort_a.pk]), {name: value})
    page = response.content.decode()
    # The page still opens, without that filter, and says why beside the field.
    assert response.status_code == 200
    assert f'<span class="error small" id="{name}-error">{message}</span>' in page
    assert 'aria-invalid="true"' in page
    for table in ("students", "blockers", "completion", "units", "progress"):
        response = client.get(
            reverse("cohorts:table_csv", args=[cohort_a.pk, table]), {name: value}
        )
        assert response.status_code == 400, table
        assert response.content.decode() == f"{name}: {message}\n"


def test_the_lifetime_edges_are_allowed(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    params = {"date_from": FIRST_DAY, "date_to": LAST_DAY}
    page = client.get(reverse("cohorts:detail", args=[cohort_a.pk]), params).content.decode()
    assert 'class="error small"' not in page
    assert f'min="{FIRST_DAY}" max="{LAST_DAY}"' in page
    response = client.get(reverse("cohorts:table_csv", args=[cohort_a.pk, "progress"]), params)
    assert response.status_code == 200
    assert len(csv_rows(response)) > 1


def test_the_chart_has_at_most_max_periods(client, mentor_a, ids, cohort_a):
    from cohorts.analytics import MAX_CHART_PERIODS
    from cohorts.models import Progression

    client.force_login(mentor_a)
    url = reverse("cohorts:detail", args=[cohort_a.pk])
    # The widest range allowed by day: 386 points, under the cap.
    page = client.get(url, {"date_from": FIRST_DAY, "freq": "D"}).content.decode()
    assert len(figure(page, "chart-progress")["data"][0]["x"]) == 386
    assert "drawn by week" not in page
    # Activity from 2012 (a vendor's old record) stretches the lifetime to 15 years: a
    # daily chart over it is drawn by week, and the weeks stop at the cap.
    record = Progression.objects.filter(cohort=cohort_a).first()
    record.completed_at = record.completed_at.replace(year=2012)
    record.save()
    for freq in ("D", "W", ""):
        response = client.get(url, {"date_from": "2011-06-01", "freq": freq})
        page = response.content.decode()
        assert response.status_code == 200
        assert 'class="error small"' not in page
        points = figure(page, "chart-progress")["data"][0]["x"]
        assert len(points) == MAX_CHART_PERIODS, freq
        assert ("drawn by week" in page) == (freq == "D")
        response = client.get(
            reverse("cohorts:table_csv", args=[cohort_a.pk, "progress"]),
            {"date_from": "2011-06-01", "freq": freq},
        )
        assert len(csv_rows(response)) == MAX_CHART_PERIODS + 1


def test_thresholds_refuse_course_dates_out_of_range(client, admin_user, ids, cohort_a):
    client.force_login(admin_user)
    response = client.post(
        reverse("cohorts:thresholds", args=[cohort_a.pk]),
        {
            "inactive_days": 7,
            "behind_fraction": 0.2,
            "low_grade": 0.6,
            "starts_on": "0001-01-01",
            "ends_on": "9999-12-31",
        },
    )
    assert response.status_code == 400
    assert response.content.decode().count("Pick a day from 1970-01-01 to 2199-12-31.") == 2
    cohort_a.refresh_from_db()
    assert cohort_a.starts_on == hc.STARTS_ON


def test_csv_follows_the_page_filters(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    rows = csv_rows(
        client.get(reverse("cohorts:table_csv", args=[cohort_a.pk, "students"]) + "?status=watch")
    )
    assert [r[0] for r in rows[1:]] == ["Cat Cole"]
    assert rows[1][3:5] == ["Watch", "no activity for 9 days; quiz average 65%"]
    rows = csv_rows(
        client.get(reverse("cohorts:table_csv", args=[cohort_a.pk, "completion"]) + "?unit=U1")
    )
    assert [r[1] for r in rows[1:]] == ["Intro", "Loops quiz"]


def test_csv_cells_cannot_start_a_formula(client, mentor_a, ids, cohort_a):
    Student.objects.filter(pk=ids[1]).update(
        first_name='=HYPERLINK("http://evil.test","x")', last_name=""
    )
    cohort_a.assignments.filter(name="Intro").update(name="@SUM(A1:A9)")
    client.force_login(mentor_a)
    students = csv_rows(client.get(reverse("cohorts:table_csv", args=[cohort_a.pk, "students"])))
    names = [r[0] for r in students[1:]]
    assert '\'=HYPERLINK("http://evil.test","x")' in names
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in students for cell in r[:5])
    completion = csv_rows(
        client.get(reverse("cohorts:table_csv", args=[cohort_a.pk, "completion"]))
    )
    assert completion[1][1] == "'@SUM(A1:A9)"


def test_student_csvs(client, mentor_a, ids, cohort_a):
    MentorNote.objects.create(
        cohort=cohort_a, student_id=ids[2], author=mentor_a, author_name="Mia", body="-1 day"
    )
    client.force_login(mentor_a)
    timeline = csv_rows(
        client.get(reverse("cohorts:student_csv", args=[cohort_a.pk, ids[2], "timeline"]))
    )
    assert [r[0] for r in timeline[1:]] == ["Recursion quiz", "Loops quiz", "Intro"]
    assert timeline[1][3] == "in progress"
    notes = csv_rows(
        client.get(reverse("cohorts:student_csv", args=[cohort_a.pk, ids[2], "notes"]))
    )
    assert notes[1][1:] == ["Mia", "'-1 day"]
    assert (
        client.get(reverse("cohorts:student_csv", args=[cohort_a.pk, ids[2], "other"])).status_code
        == 404
    )


# --- access ----------------------------------------------------------------------------


def test_mentor_of_a_gets_404_on_every_page_and_csv_of_b(client, mentor_a, cohort_b):
    ids = hc.build(cohort_b)
    client.force_login(mentor_a)
    urls = [
        reverse("cohorts:detail", args=[cohort_b.pk]),
        reverse("cohorts:student", args=[cohort_b.pk, ids[1]]),
        reverse("cohorts:student_csv", args=[cohort_b.pk, ids[1], "timeline"]),
        reverse("cohorts:student_csv", args=[cohort_b.pk, ids[1], "notes"]),
        *(
            reverse("cohorts:table_csv", args=[cohort_b.pk, t])
            for t in ("students", "blockers", "completion", "units", "progress")
        ),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    assert "Cohort B" not in b"".join(client.get(reverse("cohorts:list_csv"))).decode()


def test_anonymous_is_sent_to_sign_in_everywhere(client, cohort_a):
    ids = hc.build(cohort_a)
    urls = [
        reverse("cohorts:list_csv"),
        reverse("cohorts:student", args=[cohort_a.pk, ids[1]]),
        reverse("cohorts:table_csv", args=[cohort_a.pk, "students"]),
        reverse("cohorts:student_csv", args=[cohort_a.pk, ids[1], "notes"]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), (
            url
        )
    response = client.post(reverse("cohorts:thresholds", args=[cohort_a.pk]), {})
    assert response.status_code == 302


def test_an_empty_cohort_page_still_reads_well(client, mentor_a, cohort_a):
    client.force_login(mentor_a)
    page = client.get(reverse("cohorts:detail", args=[cohort_a.pk])).content.decode()
    assert "No assignments yet" in page
    assert "No students yet" in page
    assert "No activity yet." in page


def test_health_page_says_the_pace_is_assumed_to_a_mentor(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    page = client.get(reverse("cohorts:detail", args=[cohort_a.pk])).content.decode()
    assert "Pace assumed" not in page  # the cohort's dates set it
    cohort_a.starts_on = cohort_a.ends_on = None
    cohort_a.save()
    page = client.get(reverse("cohorts:detail", args=[cohort_a.pk])).content.decode()
    assert 'behind an <a href="#pace-assumed">assumed</a> pace' in page
    assert "The pace is assumed, because no course dates are set" in page
    assert "An admin can set the course dates" in page


def test_thresholds_form_shows_percentages(client, admin_user, ids, cohort_a):
    client.force_login(admin_user)
    page = client.get(reverse("cohorts:detail", args=[cohort_a.pk])).content.decode()
    assert "Low quiz average (%)" in page and "(0-1)" not in page
    assert 'name="low_grade" value="60.0"' in page or 'name="low_grade" value="60"' in page


def test_trend_arrows_say_what_they_mean(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    page = client.get(reverse("cohorts:detail", args=[cohort_a.pk])).content.decode()
    assert "This week vs last" in page
    # Eve: 1 completion in the last 7 days, none the week before.
    assert '1 <span aria-hidden="true">▲</span> up from 0' in page


def test_a_new_install_says_what_to_do_first(client, admin_user, mentor_b):
    client.force_login(admin_user)
    Cohort.objects.all().delete()
    page = client.get(reverse("cohorts:list")).content.decode()
    assert "No cohorts yet: where to start" in page
    assert reverse("admin:cohorts_cohort_add") in page
    assert reverse("integrations:apex_upload") in page
    runs = client.get(reverse("reports:list")).content.decode()
    assert "No runs yet" in runs and "upload an APEX roster" in runs
    client.force_login(mentor_b)
    assert "Ask an admin" in client.get(reverse("cohorts:list")).content.decode()


def test_colours_meet_wcag_aa_contrast():
    import re
    from pathlib import Path

    css = (Path(__file__).resolve().parent.parent / "static/css/app.css").read_text()
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", css))

    def luminance(hex_colour):
        channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    def ratio(a, b):
        high, low = sorted((luminance(colours[a]), luminance(colours[b])), reverse=True)
        return (high + 0.05) / (low + 0.05)

    pairs = [
        ("ink", "bg"),
        ("ink", "card"),
        ("muted", "card"),
        ("muted", "bg"),
        ("brand", "card"),
        ("brand", "info-bg"),
        ("brand-ink", "brand"),
        ("ok", "ok-bg"),
        ("warn", "warn-bg"),
        ("bad", "bad-bg"),
        ("bad", "card"),
        ("ok", "card"),
        ("warn", "card"),
        ("ink", "info-bg"),
        ("ink", "warn-bg"),
    ]
    for text, background in pairs:
        assert ratio(text, background) >= 4.5, (text, background, ratio(text, background))


def test_student_page_says_the_pace_is_assumed(client, mentor_a, ids, cohort_a):
    client.force_login(mentor_a)
    student = cohort_a.students.order_by("pk").first()
    url = reverse("cohorts:student", args=[cohort_a.pk, student.pk])
    assert "assumed" not in client.get(url).content.decode()
    cohort_a.starts_on = cohort_a.ends_on = None
    cohort_a.save()
    page = client.get(url).content.decode()
    assert "an assumed pace" in page and "The pace is assumed" in page
