"""The APEX upload → preview → confirm pages (staff only; nothing sent before confirm)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations.apex import enroll
from integrations.apex.simulator import build
from integrations.models import RosterUpload
from integrations.simulator import serve
from reports.models import Run, RunStatus

pytestmark = pytest.mark.django_db

ROSTER = (
    "ClassroomName,StudentId\n"
    "ALG-101,S100001\n"
    "ALG-101,S100002\n"
    "ALG-101,S100010\n"
    "BIO-110,S999404\n"
    "ALG-101,S100001\n"
    "BIO-110,\n"
    'BIO-110,=HYPERLINK("http://evil")\n'
)


@pytest.fixture
def sim(settings, tmp_path):
    simulator = build(rate_limit=0)
    server = serve(simulator)
    settings.DATA_DIR = tmp_path
    settings.APEX_BASE_URL = server.base_url
    for name, value in simulator.demo_settings.items():
        setattr(settings, name, value)
    yield simulator
    server.stop()


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


def upload(client, text: str | bytes = ROSTER, name: str = "fall.csv"):
    data = text.encode() if isinstance(text, str) else text
    return client.post(
        reverse("integrations:apex_upload"),
        {"file": SimpleUploadedFile(name, data, content_type="text/csv")},
    )


def test_only_staff_reach_the_pages(client, mentor_a, sim):
    upload_url = reverse("integrations:apex_upload")
    response = client.get(upload_url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(mentor_a)  # signed in, not an admin: the pages do not exist for them
    assert client.get(upload_url).status_code == 404
    assert upload(client).status_code == 404
    assert not RosterUpload.objects.exists()
    assert client.post(reverse("integrations:apex_confirm", args=[1])).status_code == 404
    assert client.post(reverse("integrations:apex_resume", args=[1])).status_code == 404
    assert client.get(reverse("integrations:apex_error_log", args=[1])).status_code == 404
    assert not Run.objects.exists()


def test_upload_page_and_nav_link(staff, sim):
    page = staff.get(reverse("integrations:apex_upload")).content.decode()
    assert 'enctype="multipart/form-data"' in page
    assert f'href="{reverse("integrations:apex_upload")}" aria-current="page"' in page
    assert "No enrollment has run yet" in page


def test_upload_then_preview_sends_nothing(staff, sim):
    response = upload(staff)
    stored = RosterUpload.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("integrations:apex_preview", args=[stored.pk])
    assert stored.path.read_text() == ROSTER and stored.original_name == "fall.csv"

    page = staff.get(response["Location"]).content.decode()
    assert sim.request_log == []
    assert not Run.objects.exists()
    for text in (
        "fall.csv",
        "rows read",
        "Students per classroom",
        "ALG-101",
        "Duplicate of row 2",
        "Row 7: StudentId is empty.",
        "Confirm and enroll",
        "Dry run",
        "POST /classrooms/ALG-101/students",
        "&quot;ImportUserId&quot;: &quot;S100001&quot;",
    ):
        assert text in page, text
    assert '<div class="value">7</div><div class="label">rows read</div>' in page
    assert '<div class="value">2</div><div class="label">classrooms</div>' in page
    assert '<div class="value">5</div><div class="label">enrollments to send</div>' in page


def test_a_refused_file_shows_why_and_offers_no_confirm(staff, sim):
    response = upload(staff, "Classroom,StudntId\nA,S1\n")
    page = staff.get(response["Location"]).content.decode()
    assert "This file cannot be used." in page
    assert "did you mean &quot;StudntId&quot;?" in page
    assert "Confirm and enroll" not in page


def test_latin1_preview_shows_the_note_and_correct_text(staff, sim):
    response = upload(staff, "ClassroomName,StudentId\nÉcole,S100001\n".encode("latin-1"))
    page = staff.get(response["Location"]).content.decode()
    assert "École" in page and "Windows-1252" in page


def test_over_the_limit_is_refused_on_upload(staff, sim, settings):
    settings.ROSTER_MAX_BYTES = 50
    response = upload(staff)
    assert response.status_code == 200
    assert "ROSTER_MAX_BYTES=50" in response.content.decode()
    assert not RosterUpload.objects.exists()


def test_missing_settings_are_shown_on_the_preview(staff, sim, settings):
    settings.APEX_CLIENT_SECRET = ""
    page = staff.get(upload(staff)["Location"]).content.decode()
    assert "APEX_CLIENT_SECRET is not set" in page


def test_confirm_queues_the_run_and_the_task_runs_it(
    staff, sim, django_capture_on_commit_callbacks
):
    stored_url = upload(staff)["Location"]
    stored = RosterUpload.objects.get()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff.post(reverse("integrations:apex_confirm", args=[stored.pk]))
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("reports:detail", args=[run.pk])
    assert len(callbacks) == 1  # the task was queued once the run was committed
    run.refresh_from_db()
    assert run.status == RunStatus.PARTIAL, run.message  # Q_SYNC ran it in-process
    assert run.triggered_by == "user:ada" and run.params["roster_id"] == stored.pk
    assert run.counts["enrolled"] == 2 and run.counts["already_enrolled"] == 1
    assert sim.enrolled("ALG-101") >= {"S100001", "S100002"}
    assert stored_url  # the preview stays available for the record


def test_dry_run_from_the_preview_sends_nothing(staff, sim, django_capture_on_commit_callbacks):
    upload(staff)
    stored = RosterUpload.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(reverse("integrations:apex_confirm", args=[stored.pk]), {"dry_run": "on"})
    run = Run.objects.get()
    assert run.dry_run and run.status == RunStatus.PARTIAL  # the file has invalid rows
    assert [path for _, path, _ in sim.request_log] == ["/token"]  # signed in, sent nothing


def test_a_second_confirm_while_a_run_is_active_goes_to_that_run(staff, sim):
    upload(staff)
    stored = RosterUpload.objects.get()
    url = reverse("integrations:apex_confirm", args=[stored.pk])
    first = staff.post(url)  # callbacks not executed: the run stays queued
    second = staff.post(url)
    assert Run.objects.count() == 1
    assert first["Location"] == second["Location"]
    preview = staff.get(reverse("integrations:apex_preview", args=[stored.pk])).content.decode()
    assert "already under way" in preview and "Confirm and enroll" not in preview


def test_error_log_download_is_formula_safe(staff, sim, django_capture_on_commit_callbacks):
    upload(staff)
    stored = RosterUpload.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(reverse("integrations:apex_confirm", args=[stored.pk]))
    run = Run.objects.get()
    response = staff.get(reverse("integrations:apex_error_log", args=[run.pk]))
    assert response["Content-Type"].startswith("text/csv")
    assert "error_log.csv" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["ClassroomName", "StudentId", "Code", "Message", "Row"]
    assert rows[1] == ["BIO-110", "S999404", "404", "User doesn't exist", "5"]
    assert rows[2][:2] == ["BIO-110", ""] and rows[2][4] == "7"
    assert rows[3][1] == '\'=HYPERLINK("http://evil")'


def test_resume_from_the_upload_page(staff, sim, monkeypatch, django_capture_on_commit_callbacks):
    upload(staff, "ClassroomName,StudentId\nALG-101,S100001\nALG-101,S100002\n")
    stored = RosterUpload.objects.get()

    def crash(tracker, batch, counts):
        raise RuntimeError("worker killed")

    real = enroll._record_batch
    monkeypatch.setattr(enroll, "_record_batch", crash)
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(reverse("integrations:apex_confirm", args=[stored.pk]))
    run = Run.objects.get()
    assert run.status == RunStatus.FAILED

    page = staff.get(reverse("integrations:apex_upload")).content.decode()
    assert reverse("integrations:apex_resume", args=[run.pk]) in page

    monkeypatch.setattr(enroll, "_record_batch", real)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(reverse("integrations:apex_resume", args=[run.pk]))
    assert response["Location"] == reverse("reports:detail", args=[run.pk])
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.counts["already_enrolled"] == 2 and run.items.count() == 2

    response = staff.post(reverse("integrations:apex_resume", args=[run.pk]))
    assert response["Location"] == reverse("integrations:apex_upload")


@pytest.mark.parametrize("name", ["apex_confirm", "apex_resume"])
def test_post_only_pages_answer_get_like_the_other_staff_pages(client, mentor_a, name):
    # Anonymous: the sign-in page; a mentor: 404 (not a 405 confirming the page exists).
    url = reverse(f"integrations:{name}", args=[1])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(mentor_a)
    assert client.get(url).status_code == 404
    assert not Run.objects.exists()


def test_confirm_by_get_sends_nothing_for_staff(staff, sim):
    upload(staff)
    stored = RosterUpload.objects.get()
    assert staff.get(reverse("integrations:apex_confirm", args=[stored.pk])).status_code == 405
    assert not Run.objects.exists() and sim.request_log == []


def test_confirm_and_resume_need_the_csrf_token(admin_user, sim):
    from django.test import Client

    checked = Client(enforce_csrf_checks=True)
    checked.force_login(admin_user)
    upload(checked)  # the upload form is refused without its token too
    assert not RosterUpload.objects.exists()
    assert checked.post(reverse("integrations:apex_confirm", args=[1])).status_code == 403
    assert checked.post(reverse("integrations:apex_resume", args=[1])).status_code == 403
    assert not Run.objects.exists()


# -- cross-row checks of the preview (issue 10) ----------------------------------------

CROSS = (
    "ClassroomName,StudentId,OrgId,Teacher,Notes\n"
    "ALG-101,S100001,ORG-1,Smith,\n"
    "BIO-110,S100001,ORG-2,Jones,\n"
    "BIO-110,S100002,ORG-1,Jones,\n"
    "ALG-101,S100002,ORG-1,Smith,\n"
)


def test_preview_warns_of_a_student_with_two_orgs_and_counts_students_apart(staff, sim):
    upload(staff, CROSS)
    stored = RosterUpload.objects.get()
    response = staff.get(reverse("integrations:apex_preview", args=[stored.pk]))
    page = response.content.decode()
    mismatches = response.context["org_mismatches"]
    assert [m.student for m in mismatches] == ["S100001"]  # S100002 agrees: no warning
    assert "OrgId ORG-1 in ALG-101 (row 2); OrgId ORG-2 in BIO-110 (row 3)" in page
    roster = response.context["roster"]
    assert (roster.students, roster.to_send) == (2, 4)
    assert "distinct students" in page and "enrollments to send" in page
    assert "Confirming sends 4 enrollments of 2 distinct students" in page
    # Columns the file has but the roster does not use are named.
    assert "Columns ignored</dt><dd>Teacher, Notes" in page


def test_preview_warns_when_the_same_content_was_already_run(
    staff, sim, django_capture_on_commit_callbacks
):
    upload(staff, name="first.csv")
    first = RosterUpload.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(reverse("integrations:apex_confirm", args=[first.pk]), {"dry_run": "on"})
    run = Run.objects.get()
    # The same bytes under another name.
    response = upload(staff, name="renamed.csv")
    preview = staff.get(response["Location"]).content.decode()
    assert "same content (SHA-256) as one already run" in preview
    assert f'href="{reverse("reports:detail", args=[run.pk])}">run #{run.pk}</a>' in preview


def test_preview_of_a_new_file_has_no_same_content_warning(staff, sim):
    response = upload(staff, CROSS)
    preview = staff.get(response["Location"]).content.decode()
    assert "same content" not in preview
    assert "Columns ignored" in preview
