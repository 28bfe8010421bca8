"""One person across vendors: OpenClass and Canvas records with one email are one person."""

from __future__ import annotations

import pytest

from cohorts.models import Cohort, PersonLinkLog, Source, Student
from cohorts.services import StudentRecord, persons_link, persons_unlink, students_upsert
from integrations.canvas.pull import canvas_params_for, canvas_run_create
from integrations.canvas.simulator import BIOLOGY, CHEMISTRY, openclass_demo_email
from integrations.jobs import job_execute
from integrations.openclass.pull import openclass_run_create
from integrations.openclass.simulator import SOFTWARE
from reports.models import RunStatus

pytestmark = pytest.mark.django_db


def canvas_pull(course_id: str):
    run = canvas_run_create(params=canvas_params_for(course_ids=[course_id]), triggered_by="t")
    return job_execute(run.pk, send_report=False)


def test_the_simulators_share_one_student_by_email(openclass, canvas):
    oc = openclass()
    cv = canvas()
    email = openclass_demo_email(cv.seed)
    assert email in {u["email"] for u in oc.users.values()}
    shared = cv.users[cv.shared_user]
    assert shared.email != email and shared.email.lower() == email  # another case


def test_openclass_and_canvas_records_are_one_person_and_the_page_shows_both(
    openclass, canvas, client, admin_user
):
    oc = openclass()
    cv = canvas()
    assert (
        job_execute(
            openclass_run_create(class_id=SOFTWARE, triggered_by="t").pk, send_report=False
        ).status
        == RunStatus.SUCCEEDED
    )
    assert canvas_pull(BIOLOGY).status == RunStatus.SUCCEEDED
    assert canvas_pull(CHEMISTRY).status == RunStatus.SUCCEEDED

    email = openclass_demo_email(cv.seed)
    records = Student.objects.filter(email__iexact=email)
    assert set(records.values_list("source", flat=True)) == {Source.OPENCLASS, Source.CANVAS}
    assert len({r.person_id for r in records}) == 1 and records[0].person_id is not None
    canvas_record = records.get(source=Source.CANVAS)
    assert canvas_record.external_id == str(cv.shared_user)  # kept exactly, as text
    assert canvas_record.cohorts.count() == 2  # Biology and Chemistry: one record

    biology = Cohort.objects.get(source=Source.CANVAS, external_id=BIOLOGY)
    client.force_login(admin_user)
    page = client.get(f"/cohorts/{biology.pk}/students/{canvas_record.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "In every cohort" in html
    for name in ("Biology 101", "Chemistry 201", "Software Development 1"):
        assert name in html
    assert "OpenClass.ai" in html and "Canvas LMS" in html
    assert "current score at Canvas LMS" in html
    del oc


def test_students_without_email_stay_separate(canvas):
    canvas()
    canvas_pull(BIOLOGY)
    no_email = Student.objects.filter(source=Source.CANVAS, email="")
    assert no_email.count() >= 1
    persons = list(no_email.values_list("person_id", flat=True))
    assert None not in persons and len(set(persons)) == len(persons)
    others = Student.objects.exclude(pk__in=no_email).values_list("person_id", flat=True)
    assert not set(persons) & set(others)


def test_email_match_is_case_insensitive_and_a_rerun_changes_nothing(cohort_a):
    canvas_cohort = Cohort.objects.create(name="C", source=Source.CANVAS, external_id="1")
    ids_a, _ = students_upsert(
        cohort=cohort_a,
        source=Source.OPENCLASS,
        records=[StudentRecord("oc-1", "Ada", "L", "ada@school.edu")],
    )
    ids_c, _ = students_upsert(
        cohort=canvas_cohort,
        source=Source.CANVAS,
        records=[StudentRecord("77", "Ada", "L", " ADA@School.EDU ")],
    )
    a = Student.objects.get(pk=ids_a["oc-1"])
    c = Student.objects.get(pk=ids_c["77"])
    assert a.person_id == c.person_id
    from cohorts.services import persons_assign

    assert persons_assign(student_ids=[a.pk, c.pk]) == 0


def test_admin_links_and_unlinks_by_hand_and_pulls_keep_it(cohort_a, admin_user, client):
    canvas_cohort = Cohort.objects.create(name="C", source=Source.CANVAS, external_id="1")
    students_upsert(
        cohort=cohort_a,
        source=Source.OPENCLASS,
        records=[StudentRecord("oc-1", "Bo", "K", "bo@a.edu"), StudentRecord("oc-2", "Cy", "D")],
    )
    students_upsert(
        cohort=canvas_cohort,
        source=Source.CANVAS,
        records=[StudentRecord("9", "Bo", "K", "bo@a.edu"), StudentRecord("10", "Cy", "D")],
    )
    cy_oc = Student.objects.get(external_id="oc-2")
    cy_cv = Student.objects.get(external_id="10")
    assert cy_oc.person_id != cy_cv.person_id  # no email: separate

    client.force_login(admin_user)
    response = client.post(
        "/admin/cohorts/student/",
        {"action": "link_as_one_person", "_selected_action": [cy_oc.pk, cy_cv.pk]},
    )
    assert response.status_code == 302
    cy_oc.refresh_from_db()
    cy_cv.refresh_from_db()
    assert cy_oc.person_id == cy_cv.person_id and cy_oc.person_by_hand
    log = PersonLinkLog.objects.get(action="link")
    assert log.by == admin_user.username
    assert {s["external_id"] for s in log.students} == {"oc-2", "10"}

    bo_oc = Student.objects.get(external_id="oc-1")
    bo_cv = Student.objects.get(external_id="9")
    assert bo_oc.person_id == bo_cv.person_id
    persons_unlink(students=[bo_oc, bo_cv], by="ada")
    # A later pull sees the same emails and leaves the admin's choice alone.
    students_upsert(
        cohort=canvas_cohort,
        source=Source.CANVAS,
        records=[StudentRecord("9", "Bo", "K", "bo@a.edu"), StudentRecord("10", "Cy", "D")],
    )
    bo_oc.refresh_from_db()
    bo_cv.refresh_from_db()
    cy_cv.refresh_from_db()
    assert bo_oc.person_id != bo_cv.person_id
    assert cy_cv.person_id == cy_oc.person_id
    assert PersonLinkLog.objects.filter(action="unlink", by="ada").exists()


def test_linking_needs_two_records(cohort_a):
    students_upsert(cohort=cohort_a, source=Source.OPENCLASS, records=[StudentRecord("x")])
    with pytest.raises(ValueError, match="at least two"):
        persons_link(students=list(Student.objects.all()), by="ada")


def test_linking_one_record_in_the_admin_says_why_not(cohort_a, admin_user, client):
    students_upsert(cohort=cohort_a, source=Source.OPENCLASS, records=[StudentRecord("solo")])
    solo = Student.objects.get(external_id="solo")
    client.force_login(admin_user)
    response = client.post(
        "/admin/cohorts/student/",
        {"action": "link_as_one_person", "_selected_action": [solo.pk]},
        follow=True,
    )
    assert "at least two" in response.content.decode()
    assert not PersonLinkLog.objects.exists()
