"""The Titan pages: upload → plan preview → apply / approve with a reason / discard; undo;
the report email of a held run; and who may see any of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core import mail
from django.urls import reverse

from integrations.jobs import job_execute
from integrations.titan.sync import titan_run_from_path
from reports.models import Approval, Run, RunStatus

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parent.parent / "integrations/titan/demo"
SMALL, GUARDRAIL = DEMO / "roster.csv", DEMO / "roster_guardrail.csv"


class Staff:
    """A signed-in admin whose posts run the queued jobs (on commit, as in production)."""

    def __init__(self, client, capture) -> None:
        self.client, self.capture = client, capture

    def get(self, *args, **kwargs):
        return self.client.get(*args, **kwargs)

    def post(self, *args, **kwargs):
        with self.capture(execute=True):
            return self.client.post(*args, **kwargs)


@pytest.fixture
def staff(client, admin_user, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    return Staff(client, django_capture_on_commit_callbacks)


def upload(staff, path: Path) -> Run:
    with path.open("rb") as f:
        response = staff.post(reverse("integrations:titan_upload"), {"file": f})
    assert response.status_code == 302
    run = Run.objects.latest("pk")
    assert run.status == RunStatus.SUCCEEDED, run.message
    return run


def test_upload_plans_a_dry_run_and_the_preview_offers_apply(titan, staff):
    sim = titan()
    preview = upload(staff, SMALL)  # tasks run synchronously in tests
    preview.refresh_from_db()
    assert preview.dry_run and preview.status == RunStatus.SUCCEEDED
    assert sim.mutations() == []
    page = staff.get(reverse("integrations:titan_plan", args=[preview.pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "Within limits" in text and "Apply this plan" in text
    assert "Users to create" in text and "000301" in text  # a create
    assert "Memberships to remove" in text and "000040" in text  # the exact removals
    assert "Central Kitchen" in text  # per site
    detail = staff.get(reverse("reports:detail", args=[preview.pk])).content.decode()
    assert "Review the plan and decide" in detail and "Guardrail" in detail

    response = staff.post(
        reverse("integrations:titan_apply", args=[preview.pk]),
        {"plan_hash": preview.params["plan_hash"]},
    )
    applied = Run.objects.latest("pk")
    assert response.url == reverse("reports:detail", args=[applied.pk])
    assert applied.status == RunStatus.SUCCEEDED and not applied.dry_run
    assert len(sim.mutations()) == 13
    # applied once: a second press is refused
    staff.post(
        reverse("integrations:titan_apply", args=[preview.pk]),
        {"plan_hash": preview.params["plan_hash"]},
    )
    assert Run.objects.count() == 2


def test_a_held_preview_needs_a_reason_and_records_the_approval(titan, staff, admin_user):
    sim = titan()
    preview = upload(staff, GUARDRAIL)
    preview.refresh_from_db()
    text = staff.get(reverse("integrations:titan_plan", args=[preview.pk])).content.decode()
    assert "Held: this plan removes more than the limits allow" in text
    assert "Approve and apply" in text
    url = reverse("integrations:titan_apply", args=[preview.pk])
    staff.post(url, {"plan_hash": preview.params["plan_hash"], "reason": "  "})
    assert Run.objects.count() == 1 and sim.mutations() == []
    staff.post(url, {"plan_hash": preview.params["plan_hash"], "reason": "Kitchen closes"})
    applied = Run.objects.latest("pk")
    assert applied.status == RunStatus.SUCCEEDED
    approval = Approval.objects.get(run=applied)
    assert (approval.decided_by, approval.reason, approval.user) == (
        "user:ada",
        "Kitchen closes",
        admin_user,
    )
    assert len(sim.mutations()) == 50


def test_a_held_run_is_approved_from_its_plan_page_once(titan, staff):
    sim = titan()
    held = job_execute(titan_run_from_path(GUARDRAIL, dry_run=False, triggered_by="cli:ops").pk)
    assert held.status == RunStatus.HELD
    # the report email says it waits for approval, with a link
    held_mail = mail.outbox[-1]
    assert "held, waiting for approval" in held_mail.subject
    assert reverse("reports:detail", args=[held.pk]) in held_mail.body
    assert "HELD, WAITING FOR APPROVAL" in held_mail.body and "000004" in held_mail.body
    html = held_mail.alternatives[0][0]
    assert "Held, waiting for approval" in html
    page = staff.get(reverse("integrations:titan_plan", args=[held.pk])).content.decode()
    assert 'value="approve"' in page
    url = reverse("integrations:titan_decide", args=[held.pk])
    form = {
        "plan_hash": held.params["plan_hash"],
        "reason": "Kitchen closes",
        "decision": "approve",
    }
    staff.post(url, form)
    held.refresh_from_db()
    assert held.status == RunStatus.SUCCEEDED
    staff.post(url, form)  # a second approval is refused
    assert Approval.objects.filter(run=held).count() == 1
    assert len(sim.mutations()) == 50
    report = mail.outbox[-1].body
    assert "Approved by user:ada" in report and "Kitchen closes" in report
    assert "Over the limits, sent under the approval recorded for this plan" in report


def test_discarding_a_held_run_sends_nothing(titan, staff):
    sim = titan()
    held = job_execute(titan_run_from_path(GUARDRAIL, dry_run=False, triggered_by="t").pk)
    staff.post(
        reverse("integrations:titan_decide", args=[held.pk]),
        {"plan_hash": held.params["plan_hash"], "reason": "Wrong file", "decision": "discard"},
    )
    held.refresh_from_db()
    assert held.status == RunStatus.HELD
    assert held.approvals.get().decision == "discarded"
    assert sim.mutations() == []


def test_undo_from_the_run_page_makes_a_preview_linked_to_the_original(titan, staff):
    titan()
    applied = job_execute(titan_run_from_path(SMALL, dry_run=False, triggered_by="t").pk)
    detail = staff.get(reverse("reports:detail", args=[applied.pk])).content.decode()
    assert "Undo this sync" in detail
    staff.post(reverse("integrations:titan_undo", args=[applied.pk]))
    undo = Run.objects.latest("pk")
    assert undo.dry_run and undo.params["undo_of"] == applied.pk
    assert undo.status == RunStatus.SUCCEEDED
    assert undo.counts["to_remove"] == 3  # the memberships the sync added


def test_the_plan_csv_lists_every_operation(titan, staff):
    titan()
    preview = upload(staff, SMALL)
    response = staff.get(reverse("integrations:titan_plan_csv", args=[preview.pk]))
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert lines[0].lstrip("\ufeff") == "action,external_id,site,before,after"
    assert len(lines) == 1 + 13


@pytest.mark.parametrize(
    "name,args",
    [
        ("integrations:titan_upload", []),
        ("integrations:titan_plan", [1]),
        ("integrations:titan_plan_csv", [1]),
    ],
)
def test_mentors_see_nothing(client, mentor_a, name, args):
    client.force_login(mentor_a)
    assert client.get(reverse(name, args=args)).status_code == 404


def test_site_limits_are_edited_in_the_admin_and_validated(staff):
    from integrations.models import TitanSiteLimit

    url = reverse("admin:integrations_titansitelimit_add")
    assert staff.get(url).status_code == 200
    staff.post(
        url, {"site_name": "  Central   Kitchen ", "max_removals": "", "max_removal_percent": ""}
    )
    assert not TitanSiteLimit.objects.exists()  # neither limit set: refused
    staff.post(url, {"site_name": "Central Kitchen", "max_removal_percent": "150"})
    assert not TitanSiteLimit.objects.exists()
    staff.post(url, {"site_name": "  Central   Kitchen ", "max_removals": "60"})
    assert TitanSiteLimit.objects.get().site_name == "Central Kitchen"
    assert staff.get(reverse("admin:reports_approval_changelist")).status_code == 200


def test_the_preview_says_what_changed_since_the_last_sync_columns_included(titan, staff, tmp_path):
    titan()
    job_execute(titan_run_from_path(SMALL, dry_run=False, triggered_by="t").pk)
    text = SMALL.read_text().replace("external_id,", "sis_id,", 1)
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(text)
    preview = upload(staff, renamed)
    since = preview.params["since_last"]
    assert since["counts"]["created"] == 2
    assert since["column_changes"] == [
        'Column external_id is now read from "sis_id" (it was "external_id").'
    ]
    page = staff.get(reverse("integrations:titan_plan", args=[preview.pk])).content.decode()
    assert "columns differ from that sync" in page and "sis_id" in page
    assert preview.counts["to_create"] == 0  # same data: nothing to do
