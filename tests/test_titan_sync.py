"""The Titan sync end to end, against the Titan simulator over real HTTP."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from integrations.jobs import job_execute
from integrations.titan import sync
from integrations.titan.decisions import ApplyRefused, titan_apply_from_preview, titan_undo_preview
from integrations.titan.simulator import DEMO_API_KEY, demo_state
from integrations.titan.sync import titan_run_from_path
from reports.models import Approval, Run, RunStatus
from reports.services import ApprovalRefused, approval_decide, run_requeue

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parent.parent / "integrations/titan/demo"
SMALL, GUARDRAIL = DEMO / "roster.csv", DEMO / "roster_guardrail.csv"


def run_file(path: Path, *, dry_run: bool = False, approve: str = "") -> Run:
    run = titan_run_from_path(path, dry_run=dry_run, triggered_by="test", approve_reason=approve)
    return job_execute(run.pk, send_report=False)


def expected_state(path: Path, start: dict) -> dict:
    """What Titan should hold after syncing `path` onto `start`, worked out from the CSV
    alone: the file's users and memberships, and every other account kept without any."""
    users = dict(start["users"])
    members: dict = {}
    with path.open(newline="") as f:
        for rec in csv.DictReader(f):
            ext = rec["external_id"]
            users[ext] = (rec["first_name"], rec["last_name"], rec["email"])
            roles = rec["role_names"].replace("|", ";").replace(",", ";").split(";")
            key = (ext, rec["site_name"])
            members[key] = members.get(key, frozenset()) | {r.strip() for r in roles if r.strip()}
    return {"users": users, "members": members}


def mutations(sim) -> list:
    return sim.mutations()


def test_the_demo_roster_is_applied_in_order_and_reaches_the_files_state(titan):
    sim = titan()
    start = sim.snapshot()
    run = run_file(SMALL)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert sim.snapshot() == expected_state(SMALL, start)
    c = run.counts
    assert (c["to_create"], c["to_update"], c["to_add"], c["to_change_roles"], c["to_remove"]) == (
        2, 3, 3, 2, 3,
    )  # fmt: skip
    assert (c["created"], c["updated"], c["added"], c["roles_changed"], c["removed"]) == (
        2, 3, 3, 2, 3,
    )  # fmt: skip
    assert c["failed"] == 0 and c["unchanged"] == 291
    # creates and updates, then adds and role changes, then removals last
    methods = [m for m, _path, _status in mutations(sim)]
    assert methods == ["POST"] * 2 + ["PATCH"] * 3 + ["PUT"] * 5 + ["DELETE"] * 3
    # a user who left every site keeps the account
    assert "000040" in sim.snapshot()["users"]
    removed = run.items.get(outcome="removed", key="000040")
    assert removed.data["before"] == list(demo_state()["members"]["Central Kitchen"]["000040"])


def test_rerunning_the_same_file_sends_no_mutating_call(titan):
    sim = titan()
    assert run_file(SMALL).status == RunStatus.SUCCEEDED
    sent = len(mutations(sim))
    again = run_file(SMALL)
    assert again.status == RunStatus.SUCCEEDED
    assert len(mutations(sim)) == sent
    assert again.counts["unchanged"] == 299 and again.counts["to_remove"] == 0


def test_a_dry_run_plans_the_same_and_sends_nothing(titan):
    sim = titan()
    start = sim.snapshot()
    run = run_file(SMALL, dry_run=True)
    assert run.status == RunStatus.SUCCEEDED and run.dry_run
    assert mutations(sim) == [] and sim.snapshot() == start
    assert run.counts["to_create"] == 2 and run.counts.get("created", 0) == 0
    assert run.items.filter(outcome="to_remove").count() == 3
    assert "dry run: nothing was sent" in run.message


def test_a_guardrail_hold_sends_nothing_is_approved_once_and_never_remembered(titan):
    sim = titan()
    start = sim.snapshot()
    held = run_file(GUARDRAIL)
    assert held.status == RunStatus.HELD
    assert mutations(sim) == []  # not even the creates or updates
    assert "TITAN_MAX_REMOVALS=25" in held.message
    verdict = held.params["verdict"]
    assert verdict["held"] and verdict["removals"] == 50
    kitchen = next(s for s in verdict["sites"] if s["site"] == "Central Kitchen")
    assert kitchen["over"] and kitchen["remove"] == 50

    approval_decide(
        run_id=held.pk,
        plan_hash=held.params["plan_hash"],
        decision="approved",
        decided_by="user:ada",
        reason="Central Kitchen closes",
    )
    done = job_execute(held.pk, send_report=False)
    assert done.status == RunStatus.SUCCEEDED, done.message
    assert done.counts["removed"] == 50
    assert sim.snapshot() == expected_state(GUARDRAIL, start)
    assert Approval.objects.filter(run=done).count() == 1

    # The same file on a fresh Titan is held again: the approval was for that run only.
    sim.load_state(demo_state())
    again = run_file(GUARDRAIL)
    assert again.status == RunStatus.HELD
    assert again.params["plan_hash"] == done.params["plan_hash"]
    assert len(mutations(sim)) == 50


def test_a_changed_titan_after_approval_holds_the_new_plan_instead_of_applying(titan):
    sim = titan()
    held = run_file(GUARDRAIL)
    approval_decide(
        run_id=held.pk,
        plan_hash=held.params["plan_hash"],
        decision="approved",
        decided_by="user:ada",
        reason="ok",
    )
    sim.load_state({**demo_state(), "roles": [*demo_state()["roles"], "Volunteer"]})
    sim.members[1][1001] = ["Volunteer"]  # Titan changed meanwhile
    again = job_execute(held.pk, send_report=False)
    assert again.status == RunStatus.HELD
    assert again.params["plan_hash"] != held.params["plan_hash"]
    assert mutations(sim) == []


def test_cli_approve_lets_one_plan_through(titan):
    sim = titan()
    run = run_file(GUARDRAIL, approve="Kitchen closes")
    assert run.status == RunStatus.SUCCEEDED
    approval = run.approvals.get()
    assert (approval.decided_by, approval.reason) == ("test", "Kitchen closes")
    assert len(mutations(sim)) == 50


def test_a_preview_is_applied_only_if_titan_still_gives_the_same_plan(titan):
    sim = titan()
    preview = run_file(SMALL, dry_run=True)
    sim.members[1].pop(next(iter(sim.members[1])))  # someone edits Titan meanwhile
    run = titan_apply_from_preview(preview_id=preview.pk, triggered_by="user:ada")
    run = job_execute(run.pk, send_report=False)
    assert run.status == RunStatus.HELD and "changed since" in run.message
    assert mutations(sim) == []
    with pytest.raises(ApplyRefused, match="already"):
        titan_apply_from_preview(preview_id=preview.pk, triggered_by="user:ada")


def test_an_unchanged_preview_is_applied(titan):
    sim = titan()
    preview = run_file(SMALL, dry_run=True)
    run = job_execute(
        titan_apply_from_preview(preview_id=preview.pk, triggered_by="user:ada").pk,
        send_report=False,
    )
    assert run.status == RunStatus.SUCCEEDED
    assert run.params["plan_hash"] == preview.params["plan_hash"]
    assert len(mutations(sim)) == 13


def test_undo_restores_the_previous_state(titan):
    sim = titan()
    start = sim.snapshot()
    applied = run_file(SMALL)
    preview = job_execute(
        titan_undo_preview(run_id=applied.pk, triggered_by="user:ada").pk, send_report=False
    )
    assert preview.status == RunStatus.SUCCEEDED and preview.params["undo_of"] == applied.pk
    c = preview.counts
    # removals come back (3) and the new users' memberships go (2 adds + 1 added site)
    assert (c["to_add"], c["to_remove"], c["to_change_roles"], c["to_update"]) == (3, 3, 2, 3)
    undo = job_execute(
        titan_apply_from_preview(preview_id=preview.pk, triggered_by="user:ada").pk,
        send_report=False,
    )
    assert undo.status == RunStatus.SUCCEEDED, undo.message
    after = sim.snapshot()
    assert after["members"] == start["members"]
    # created accounts stay (without memberships); every other field is back
    assert {k: v for k, v in after["users"].items() if k in start["users"]} == start["users"]
    assert set(after["users"]) - set(start["users"]) == {"000301", "000302"}


def test_throttling_ends_in_the_same_final_state(titan):
    sim = titan(throttle_rate=0.2)
    start = sim.snapshot()
    run = run_file(SMALL)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert sim.snapshot() == expected_state(SMALL, start)
    assert any(status == 429 for _m, _p, status in sim.request_log)


class WorkerKilled(BaseException):
    """Stands for a worker process dying: escapes the job like a SIGKILL would."""


def test_a_worker_killed_mid_apply_resumes_to_the_same_final_state(titan, monkeypatch):
    sim = titan()
    start = sim.snapshot()
    real = sync._apply_one
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # after the user changes and two memberships
            raise WorkerKilled
        return real(*args, **kwargs)

    monkeypatch.setattr(sync, "_apply_one", dying)
    # The second create went through but its answer was lost: its repeat answers 409.
    sim.lose_next_responses("POST", r"/users$", times=1)
    run = titan_run_from_path(SMALL, dry_run=False, triggered_by="test")
    with pytest.raises(WorkerKilled):
        job_execute(run.pk, send_report=False)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    monkeypatch.setattr(sync, "_apply_one", real)
    assert run_requeue(run=run, max_resumes=2)
    done = job_execute(run.pk, send_report=False)
    assert done.status == RunStatus.SUCCEEDED, done.message
    assert sim.snapshot() == expected_state(SMALL, start)
    assert len(sim.snapshot()["users"]) == 302  # nobody created twice
    # the lost create was repeated, answered 409, and reconciled by external id
    assert sim.calls("POST", r"/users$")[1][2] == 409
    assert done.items.filter(outcome="created", data__reconciled=True).count() == 1
    # every operation recorded exactly once
    ops = list(done.items.filter(data__has_key="op").values_list("data__op", flat=True))
    assert len(ops) == len(set(ops)) == 13


# --- the command ---------------------------------------------------------------------------
def command(*args: str):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("sync_titan", *args, "--json", stdout=out, stderr=err)
        code = 0
    except SystemExit as exited:
        code = exited.code
    return code, out.getvalue(), err.getvalue()


def test_command_json_summary_and_exit_codes(titan):
    titan()
    code, out, _ = command(str(GUARDRAIL))
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 3 and summary["status"] == "held" and summary["kind"] == "titan_sync"
    assert summary["counts"]["removed"] == 0 and summary["counts"]["failed"] == 0
    code, out, _ = command(str(GUARDRAIL), "--approve", "--reason", "Kitchen closes")
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["counts"]["removed"] == 50


@pytest.mark.parametrize("missing", ["TITAN_BASE_URL", "TITAN_API_KEY"])
def test_a_missing_setting_exits_2_naming_it_and_sends_nothing(titan, settings, missing):
    sim = titan()
    setattr(settings, missing, "")
    code, out, err = command(str(SMALL))
    assert code == 2 and missing in err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "invalid"
    assert sim.request_log == []


def test_a_wrong_key_exits_4_and_the_key_appears_nowhere(titan, settings, caplog):
    titan()
    wrong = "wrong-titan-key-3f9a7b"
    settings.TITAN_API_KEY = wrong
    with caplog.at_level(logging.DEBUG):
        code, out, err = command(str(SMALL))
    assert code == 4
    run = Run.objects.get()
    assert run.status == RunStatus.FAILED and "TITAN_API_KEY" in run.message
    stored = " ".join(
        [out, err, caplog.text, run.message, json.dumps(run.params), json.dumps(run.counts)]
        + [f"{i.message} {i.data}" for i in run.items.all()]
    )
    assert wrong not in stored and DEMO_API_KEY not in stored


def test_approve_without_a_reason_is_a_usage_error(titan):
    with pytest.raises(CommandError, match="--reason") as caught:
        command(str(SMALL), "--approve")
    assert caught.value.returncode == 2
    assert not Run.objects.exists()


# --- limits, problems and the simulator's contract ---------------------------------------
def test_a_site_override_in_the_admin_lets_a_large_site_through(titan, settings):
    from integrations.models import TitanSiteLimit

    sim = titan()
    settings.TITAN_MAX_REMOVALS = 60
    settings.TITAN_MAX_REMOVAL_PERCENT = 20
    assert run_file(GUARDRAIL, dry_run=True).params["verdict"]["held"]  # 100% of the site
    TitanSiteLimit.objects.create(site_name="central KITCHEN", max_removal_percent=100)
    run = run_file(GUARDRAIL)
    assert run.status == RunStatus.SUCCEEDED
    kitchen = next(s for s in run.params["verdict"]["sites"] if s["site"] == "Central Kitchen")
    assert kitchen["overridden"] and kitchen["max_percent"] == 100
    assert len(mutations(sim)) == 50


def test_bad_guardrail_settings_stop_before_anything_is_sent(titan, settings):
    sim = titan()
    settings.TITAN_MAX_REMOVAL_PERCENT = 150
    run = run_file(SMALL)
    assert run.status == RunStatus.INVALID and "TITAN_MAX_REMOVAL_PERCENT" in run.message
    assert sim.request_log == []


def test_a_broken_row_is_reported_and_its_user_keeps_every_membership(titan, tmp_path):
    sim = titan()
    lines = SMALL.read_text().splitlines()
    # 000004 (Central Kitchen, Teacher) gets a role Titan does not know; 000005 no role.
    broken = []
    for line in lines:
        if line.startswith("000004,"):
            line = line.rsplit(",", 1)[0] + ",Wizard"
        elif line.startswith("000005,"):
            line = line.rsplit(",", 1)[0] + ","
        broken.append(line)
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(broken) + "\n")
    before = sim.snapshot()["members"]
    run = run_file(path)
    assert run.status == RunStatus.PARTIAL  # exit 1: two rows did not go through
    invalid = run.items.filter(outcome="invalid")
    assert sorted(invalid.values_list("key", flat=True)) == ["000004", "000005"]
    assert all(i.error_class == "invalid_data" and i.message for i in invalid)
    after = sim.snapshot()["members"]
    for key, roles in before.items():
        if key[0] in ("000004", "000005"):
            assert after[key] == roles  # not removed, not changed
    assert run.counts["to_remove"] == 3
    assert run.counts["rows"] == 333 and run.counts["invalid"] == 2  # every row read
    # problems keep their row numbers; operations come after the file's last row
    assert min(run.items.filter(data__has_key="op").values_list("seq", flat=True)) > 334


def test_the_simulator_caps_pages_and_answers_the_contracts_errors(titan, settings):
    import requests

    titan()
    base, headers = settings.TITAN_BASE_URL, {"X-API-Key": DEMO_API_KEY}
    page = requests.get(f"{base}/api/v1/users?per_page=500", headers=headers, timeout=5).json()
    assert len(page["data"]) == 100 and page["meta"]["total_pages"] == 3
    default = requests.get(f"{base}/api/v1/users", headers=headers, timeout=5).json()
    assert len(default["data"]) == 25 and default["meta"]["total_pages"] == 12
    body = {"external_id": "000001", "first_name": "a", "last_name": "b", "email": "a@b.test"}
    dup = requests.post(f"{base}/api/v1/users", json=body, headers=headers, timeout=5)
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "duplicate_external_id"
    member = f"{base}/api/v1/sites/1/members/1001"
    for roles in ([], ["Wizard"]):
        bad = requests.put(member, json={"roles": roles}, headers=headers, timeout=5)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    wrong = requests.get(f"{base}/api/v1/sites", headers={"X-API-Key": "nope"}, timeout=5)
    assert wrong.status_code == 401 and "nope" not in wrong.text


def test_a_run_whose_items_were_pruned_cannot_be_undone(titan):
    from integrations.jobs import InvalidInput
    from integrations.titan.decisions import titan_undo_problem

    titan()
    applied = run_file(SMALL)
    assert titan_undo_problem(applied) is None
    applied.items.all().delete()  # what the retention prune does to old runs
    assert "pruned" in titan_undo_problem(applied)
    with pytest.raises(InvalidInput, match="pruned"):
        titan_undo_preview(run_id=applied.pk, triggered_by="user:ada")


# --- one sync that changes Titan at a time ----------------------------------------------
def test_a_second_apply_is_refused_while_one_is_live_and_previews_are_not(titan):
    titan()
    first = titan_run_from_path(SMALL, dry_run=False, triggered_by="test")  # queued, live
    with pytest.raises(sync.TitanBusy, match=rf"run #{first.pk} .* not started"):
        titan_run_from_path(GUARDRAIL, dry_run=False, triggered_by="test")
    with pytest.raises(CommandError, match=rf"run #{first.pk}") as refused:
        call_command("sync_titan", str(GUARDRAIL))
    assert refused.value.returncode == 2
    # Previews send nothing: they plan beside a live apply.
    preview = run_file(GUARDRAIL, dry_run=True)
    assert preview.status == RunStatus.SUCCEEDED
    with pytest.raises(ApplyRefused, match=rf"run #{first.pk}"):
        titan_apply_from_preview(preview_id=preview.pk, triggered_by="test", approve_reason="ok")
    assert Run.objects.filter(dry_run=False).count() == 1
    # Once the live one has finished, the next apply starts.
    assert job_execute(first.pk, send_report=False).status == RunStatus.SUCCEEDED
    assert titan_run_from_path(SMALL, dry_run=False, triggered_by="test").pk != first.pk


def test_approving_a_held_run_waits_for_a_live_apply(titan):
    titan()
    held = run_file(GUARDRAIL)
    assert held.status == RunStatus.HELD and held.lock_key == sync.TITAN_APPLY_LOCK
    live = titan_run_from_path(SMALL, dry_run=False, triggered_by="test")  # held frees the key
    decide = {
        "run_id": held.pk,
        "plan_hash": held.params["plan_hash"],
        "decision": "approved",
        "decided_by": "user:ada",
        "reason": "Central Kitchen closes",
    }
    with pytest.raises(ApprovalRefused, match=rf"Run #{live.pk} .* approve run {held.pk} when"):
        approval_decide(**decide)
    held.refresh_from_db()
    assert held.status == RunStatus.HELD and not Approval.objects.filter(run=held).exists()
    job_execute(live.pk, send_report=False)
    approval_decide(**decide)
    held.refresh_from_db()
    assert held.status == RunStatus.QUEUED
