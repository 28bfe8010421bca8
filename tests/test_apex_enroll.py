"""The APEX enrollment end to end, against the APEX simulator over real HTTP."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from integrations.apex import enroll
from integrations.apex.client import ApexClient, ClassroomNotFound, Outcome, Student
from integrations.apex.enroll import (
    ResumeRefused,
    apex_error_log_rows,
    apex_run_from_path,
    apex_run_resume,
)
from integrations.apex.simulator import DEMO_ORG
from integrations.jobs import job_execute
from integrations.simulator import Response
from reports.constants import ErrorClass
from reports.models import Run, RunItem, RunStatus
from reports.services import run_requeue, runs_stale

pytestmark = pytest.mark.django_db

DEMO_ROSTER = Path(__file__).resolve().parent.parent / "integrations/apex/demo/roster.csv"


def write(tmp_path: Path, rows: list[tuple[str, str]], name: str = "roster.csv") -> Path:
    path = tmp_path / name
    lines = ["ClassroomName,StudentId", *(f"{c},{s}" for c, s in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_file(path: Path, *, dry_run: bool = False) -> Run:
    run = apex_run_from_path(path, dry_run=dry_run, triggered_by="test")
    return job_execute(run.pk, send_report=False)


def outcomes(run: Run) -> dict[int, str]:
    return dict(run.items.values_list("seq", "outcome"))


def posts(sim) -> list:
    return sim.calls("POST", r"^/classrooms/")


def grid(classrooms: int, per_classroom: int) -> list[tuple[str, str]]:
    return [
        (f"CLS-{c:04d}", f"S{100000 + c * 1000 + s}")
        for c in range(1, classrooms + 1)
        for s in range(per_classroom)
    ]


# Expected outcome of every row of the demo roster against the demo simulator.
DEMO_OUTCOMES = {
    2: "enrolled",
    3: "enrolled",
    4: "already_enrolled",
    5: "enrolled",  # "  S100003  ": trimmed
    6: "enrolled",
    7: "already_enrolled",
    8: "failed",  # User doesn't exist
    9: "failed",  # Duplicate user
    10: "enrolled",
    11: "enrolled",
    12: "enrolled",
    13: "failed",  # No available Order
    14: "enrolled",  # OrgId ORG-NORTH from the row
    15: "failed",  # unknown organisation
    16: "failed",  # unknown classroom
    17: "failed",
    18: "skipped",  # duplicate of row 2
    20: "invalid",  # empty StudentId
    21: "invalid",  # conflicting OrgIds
    22: "invalid",
}


def test_demo_roster_exercises_every_outcome(apex):
    sim = apex()
    run = run_file(DEMO_ROSTER)

    assert run.status == RunStatus.PARTIAL, run.message
    assert run.exit_code == 1
    assert outcomes(run) == DEMO_OUTCOMES
    assert {k: run.counts[k] for k in ("rows", "classrooms", "enrolled", "already_enrolled")} == {
        "rows": 20,
        "classrooms": 5,
        "enrolled": 8,
        "already_enrolled": 2,
    }
    assert run.counts["failed"] == 9 and run.counts["invalid"] == 3 and run.counts["skipped"] == 1
    messages = dict(run.items.values_list("seq", "message"))
    assert messages[8] == "User doesn't exist"
    assert messages[9] == "Duplicate user"
    assert messages[13] == "No available Order"
    assert "HIST-999" in messages[16] and "404" in messages[16]
    assert "not sent" not in messages[16]  # both HIST-999 rows went in one request
    assert "Duplicate of row 2" in messages[18]
    assert "StudentId is empty" in messages[20]
    items = {i.seq: i for i in run.items.all()}
    assert items[16].error_class == ErrorClass.NOT_FOUND
    assert items[20].error_class == ErrorClass.INVALID_DATA
    assert items[5].key == "S100003" and items[5].group == "ALG-101"
    assert items[14].data["org"] == "ORG-NORTH" and items[2].data["org"] == DEMO_ORG
    assert sim.enrolled("CHEM-201") == {"S100001", "S100002", "S100003"}
    assert "1 blank row skipped" in run.message
    # One request per classroom (each has fewer rows than a batch), one token.
    assert len(posts(sim)) == 5 and len(sim.calls("POST", "^/token$")) == 1
    assert set(run.stage_timings) >= {"validate", "authenticate", "enroll", "report"}


def test_error_log_has_the_seed_columns_for_every_failed_row(apex):
    apex()
    run = run_file(DEMO_ROSTER)
    rows = list(apex_error_log_rows(run))
    assert [r[4] for r in rows] == [8, 9, 13, 15, 16, 17, 20, 21, 22]
    assert rows[0] == ("BIO-110", "S999404", 404, "User doesn't exist", 8)
    assert rows[6][2] == ErrorClass.INVALID_DATA  # no vendor code: the error class


def test_a_rerun_of_the_same_file_is_harmless(apex):
    sim = apex()
    first = run_file(DEMO_ROSTER)
    enrolled_after_first = sim.enrollment_count()
    second = run_file(DEMO_ROSTER)

    assert sim.enrollment_count() == enrolled_after_first
    assert second.counts["enrolled"] == 0
    assert second.counts["already_enrolled"] == first.counts["enrolled"] + 2
    again = outcomes(second)
    first_enrolled = [seq for seq, outcome in outcomes(first).items() if outcome == "enrolled"]
    assert {again[seq] for seq in first_enrolled} == {"already_enrolled"}
    assert second.counts["failed"] == first.counts["failed"]


def test_dry_run_signs_in_and_sends_nothing_else(apex, tmp_path):
    sim = apex()
    path = write(tmp_path, grid(3, 60))
    run = run_file(path, dry_run=True)

    # The token call is the one read-only check the contract allows: no enrollment.
    assert [path for _, path, _ in sim.request_log] == ["/token"]
    assert posts(sim) == []
    assert run.status == RunStatus.SUCCEEDED and run.exit_code == 0
    assert run.counts["would_send"] == 180 and run.counts["requests"] == 6
    assert run.counts["enrolled"] == 0 and run.counts["skipped"] == 0
    assert set(outcomes(run).values()) == {"would_send"}
    assert "nothing was sent" in run.message
    assert "Signed in to APEX: the credentials work" in run.message
    assert "Not checked by a dry run" in run.message and "classroom exists" in run.message
    assert (run.progress_done, run.progress_total) == (180, 180)  # the file's rows
    item = run.items.get(seq=60)  # the 59th student of CLS-0001: in its second request
    assert "request 2 of 2" in item.message


def test_dry_run_says_when_sign_in_fails(apex, tmp_path, settings):
    apex()
    settings.APEX_CLIENT_SECRET = "wrong-secret"
    run = run_file(write(tmp_path, grid(1, 3)), dry_run=True)
    assert run.status == RunStatus.FAILED
    assert run.error_class == ErrorClass.AUTH
    assert "wrong-secret" not in run.message
    assert not run.items.filter(outcome="would_send").exists()


def test_progress_counts_every_row_of_the_file(apex, tmp_path, monkeypatch):
    apex()
    rows = [*grid(1, 4), ("CLS-0001", "not an id!"), ("CLS-0001", "S101000")]
    run = apex_run_from_path(write(tmp_path, rows), dry_run=False, triggered_by="test")
    seen = []
    from reports.services import RunTracker

    original = RunTracker._flush

    def spy(self, *, force=False):
        if self.run.stage == "enroll":
            seen.append((self.run.progress_done, self.run.progress_total))
        original(self, force=force)

    monkeypatch.setattr(RunTracker, "_flush", spy)
    run = job_execute(run.pk, send_report=False)
    assert run.counts["rows"] == 6 and run.counts["enrolled"] == 4
    # Out of the 6 rows the file has (not the 4 sent); the 2 settled rows count as done.
    assert {total for _, total in seen} == {6}
    assert seen[-1] == (6, 6)


def test_classrooms_are_batched_and_every_row_recorded_once(apex, tmp_path, settings):
    settings.APEX_BATCH_SIZE = 7
    sim = apex()
    path = write(tmp_path, grid(6, 20))
    run = run_file(path)

    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.counts["enrolled"] == 120 and run.counts["requests"] == 6 * 3
    assert len(posts(sim)) == 18
    assert RunItem.objects.filter(run=run).count() == 120
    assert sorted(outcomes(run)) == list(range(2, 122))
    assert sim.enrollment_count() == 120 + 3  # plus the demo's own enrollments


def test_token_expiry_mid_run_renews_and_finishes(apex, tmp_path, monkeypatch, settings):
    settings.APEX_BATCH_SIZE = 10
    settings.APEX_CONCURRENCY = 2
    sim = apex()
    real = sim.dispatch
    answered = []

    def expire_after_two(request):
        # On the vendor's side, after its second enrollment answer: whatever the client's
        # timing, ten of the twelve requests are still to come with the old token.
        response = real(request)
        if request.method == "POST" and request.path.startswith("/classrooms/"):
            answered.append(request.path)
            if len(answered) == 2:
                sim.expire_tokens()
        return response

    monkeypatch.setattr(sim, "dispatch", expire_after_two)
    run = run_file(write(tmp_path, grid(4, 30)))

    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.counts["enrolled"] == 120
    assert sim.tokens_issued >= 2
    assert any(status == 401 for _, _, status in posts(sim))


def test_short_token_lifetime_is_renewed_before_it_runs_out(apex, tmp_path, settings):
    settings.APEX_BATCH_SIZE = 5
    settings.APEX_CONCURRENCY = 1
    sim = apex(token_lifetime=2, latency_ms=50)
    run = run_file(write(tmp_path, grid(2, 100)))  # 40 requests of 50 ms: past the lifetime

    assert run.status == RunStatus.SUCCEEDED, run.message
    assert sim.tokens_issued >= 2
    # Renewed ahead of expiry: no call was refused for an expired token.
    assert not any(status == 401 for _, _, status in posts(sim))


def test_faults_are_retried_and_lost_responses_count_as_already_enrolled(apex, tmp_path, settings):
    settings.APEX_BATCH_SIZE = 10
    sim = apex(fail_rate=0.25, seed=11)
    # One lost answer in each of two classrooms: two distinct batches, whatever the order
    # in which the concurrent requests reach the simulator.
    sim.lose_next_responses(classroom="CLS-0001")
    sim.lose_next_responses(classroom="CLS-0003")
    run = run_file(write(tmp_path, grid(5, 30)))

    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.counts["enrolled"] + run.counts["already_enrolled"] == 150
    assert run.counts["already_enrolled"] == 20  # the two batches whose answer was lost
    assert sim.enrollment_count() == 150 + 3
    statuses = {status for _, _, status in sim.request_log}
    assert {429, 500, 502} <= statuses


def test_a_malformed_answer_is_retried_once_then_fails_the_batch_whole(apex, tmp_path):
    sim = apex()
    bad = Response.json({"Message": "Something went wrong"}, status=400)
    sim.fail_next("POST", r"^/classrooms/CLS-0001/students$", bad, times=2)
    run = run_file(write(tmp_path, grid(2, 5)))

    assert run.status == RunStatus.PARTIAL
    failed = run.items.filter(outcome="failed")
    assert failed.count() == 5
    assert set(failed.values_list("error_class", flat=True)) == {ErrorClass.MALFORMED}
    assert set(failed.values_list("group", flat=True)) == {"CLS-0001"}
    assert run.counts["enrolled"] == 5
    assert len(sim.calls("POST", r"^/classrooms/CLS-0001/")) == 2


def test_a_malformed_answer_followed_by_a_good_one_records_the_good_one(apex, tmp_path):
    sim = apex()
    sim.fail_next("POST", r"^/classrooms/CLS-0001/students$", Response.text("oops", 400))
    run = run_file(write(tmp_path, grid(1, 5)))
    assert run.status == RunStatus.SUCCEEDED
    assert run.counts["enrolled"] == 5


def test_unknown_classroom_fails_its_rows_and_stops_sending_to_it(apex, tmp_path, settings):
    settings.APEX_BATCH_SIZE = 2
    sim = apex()
    rows = [("NOPE-1", f"S10000{i}") for i in range(5)] + [("CLS-0001", "S100001")]
    run = run_file(write(tmp_path, rows))

    assert run.status == RunStatus.PARTIAL
    assert len(sim.calls("POST", r"^/classrooms/NOPE-1/")) == 1
    failed = list(run.items.filter(group="NOPE-1").values_list("error_class", "message"))
    assert len(failed) == 5
    assert {e for e, _ in failed} == {ErrorClass.NOT_FOUND}
    assert sum("not sent" in m for _, m in failed) == 3
    assert run.counts["enrolled"] == 1


def test_crash_after_some_batches_then_resume_finishes_without_duplicates(
    apex, tmp_path, monkeypatch, settings
):
    settings.APEX_BATCH_SIZE = 10
    settings.APEX_CONCURRENCY = 3
    sim = apex()
    rows = grid(6, 20)  # two requests per classroom
    real = enroll._record_batch
    calls = {"n": 0}

    def crash_after_five(tracker, batch, counts):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("worker killed")
        real(tracker, batch, counts)

    monkeypatch.setattr(enroll, "RECORD_AT_ONCE", 1)  # each batch its own transaction

    monkeypatch.setattr(enroll, "_record_batch", crash_after_five)
    run = run_file(write(tmp_path, rows))
    assert run.status == RunStatus.FAILED and run.error_class == ErrorClass.INTERNAL
    done_first = run.items.filter(outcome="enrolled").count()
    assert done_first == 5 * 10  # five whole batches, never part of one
    sent_before = len(posts(sim))

    monkeypatch.setattr(enroll, "_record_batch", real)
    resumed = apex_run_resume(run_id=run.pk, triggered_by="test")
    assert resumed.status == RunStatus.QUEUED
    run = job_execute(run.pk, send_report=False)

    assert run.status == RunStatus.SUCCEEDED, run.message
    seqs = list(run.items.values_list("seq", flat=True))
    assert sorted(seqs) == list(range(2, 122))  # every row exactly once
    assert run.counts["enrolled"] + run.counts["already_enrolled"] == 120
    assert run.counts["rows"] == 120 and run.counts["failed"] == 0
    # Batches sent but not recorded before the crash come back "already exists".
    assert run.counts["already_enrolled"] == sim.already_exists_answers
    assert sim.enrollment_count() == 120 + 3
    # The resumed run sent only the 70 rows not recorded: 7 requests of 10.
    assert len(posts(sim)) - sent_before == 7
    assert "resumed: 50 rows done earlier not sent again" in run.message
    assert run.params["resumed"][0]["from"] == RunStatus.FAILED


def test_a_dead_worker_run_can_be_resumed_once_stale(apex, tmp_path, settings):
    sim = apex()
    run = apex_run_from_path(write(tmp_path, grid(1, 4)), dry_run=False, triggered_by="test")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    with pytest.raises(ResumeRefused, match="still running"):
        apex_run_resume(run_id=run.pk, triggered_by="test")
    stale = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS + 1)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=stale)
    apex_run_resume(run_id=run.pk, triggered_by="test")
    run = job_execute(run.pk, send_report=False)
    assert run.status == RunStatus.SUCCEEDED
    assert sim.enrollment_count() == 4 + 3


def test_the_run_reaper_requeue_resumes_without_duplicates(apex, tmp_path, monkeypatch, settings):
    settings.APEX_BATCH_SIZE = 2
    settings.APEX_CONCURRENCY = 1
    sim = apex()
    real = enroll._record_batch
    calls = {"n": 0}

    def die_after_two(tracker, batch, counts):
        calls["n"] += 1
        if calls["n"] > 2:
            raise SystemExit("worker killed")  # not caught by the job runner, like a kill
        real(tracker, batch, counts)

    monkeypatch.setattr(enroll, "RECORD_AT_ONCE", 1)  # each batch its own transaction

    monkeypatch.setattr(enroll, "_record_batch", die_after_two)
    run = apex_run_from_path(write(tmp_path, grid(2, 4)), dry_run=False, triggered_by="test")
    with pytest.raises(SystemExit):
        job_execute(run.pk, send_report=False)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.items.count() == 4
    monkeypatch.setattr(enroll, "_record_batch", real)

    stale = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS + 1)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=stale)
    [found] = runs_stale(older_than_seconds=settings.RUN_STALE_SECONDS)
    assert run_requeue(run=found, max_resumes=2)
    run = job_execute(run.pk, send_report=False)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert sorted(run.items.values_list("seq", flat=True)) == list(range(2, 10))
    assert sim.enrollment_count() == 8 + 3


def test_finished_and_dry_runs_are_not_resumable(apex, tmp_path):
    apex()
    path = write(tmp_path, grid(1, 3))
    done = run_file(path)
    dry = run_file(path, dry_run=True)
    with pytest.raises(ResumeRefused, match="run the file again"):
        apex_run_resume(run_id=done.pk, triggered_by="test")
    with pytest.raises(ResumeRefused, match="dry run"):
        apex_run_resume(run_id=dry.pk, triggered_by="test")


def test_refused_credentials_fail_the_run_as_a_whole(apex, tmp_path, settings):
    sim = apex()
    settings.APEX_CLIENT_SECRET = "wrong-secret-value"
    run = run_file(write(tmp_path, grid(2, 3)))
    assert run.status == RunStatus.FAILED and run.exit_code == 4
    assert run.error_class == ErrorClass.AUTH
    assert posts(sim) == []
    assert "wrong-secret-value" not in run.message


def test_unreachable_vendor_fails_the_run_as_a_whole(apex, tmp_path, settings):
    apex()
    settings.APEX_BASE_URL = "http://127.0.0.1:9"
    run = run_file(write(tmp_path, grid(1, 3)))
    assert run.status == RunStatus.FAILED and run.exit_code == 4
    assert run.error_class == ErrorClass.TRANSIENT


def test_vendor_down_mid_run_stops_and_can_be_resumed(apex, tmp_path, settings):
    settings.APEX_BATCH_SIZE = 5
    settings.APEX_CONCURRENCY = 1
    sim = apex()
    down = Response.json({"error": "down"}, status=503)
    sim.fail_next("POST", r"^/classrooms/CLS-0002/", down, times=50)
    run = run_file(write(tmp_path, grid(3, 10)))
    assert run.status == RunStatus.FAILED and run.error_class == ErrorClass.TRANSIENT
    assert run.counts["enrolled"] == 10  # CLS-0001 went through before the outage
    sim.scripted_faults.clear()

    apex_run_resume(run_id=run.pk, triggered_by="test")
    run = job_execute(run.pk, send_report=False)
    assert run.status == RunStatus.SUCCEEDED
    assert run.counts["enrolled"] == 30 and run.items.count() == 30


def test_missing_settings_stop_the_run_before_anything_is_sent(apex, tmp_path, settings):
    sim = apex()
    settings.APEX_CLIENT_SECRET = ""
    run = run_file(write(tmp_path, grid(1, 3)))
    assert run.status == RunStatus.INVALID and run.exit_code == 2
    assert "APEX_CLIENT_SECRET" in run.message
    assert sim.request_log == []


def test_a_refused_file_is_invalid_and_nothing_is_sent(apex, tmp_path):
    sim = apex()
    path = tmp_path / "bad.csv"
    path.write_text("Classroom,Student\nA,S1\n")
    run = run_file(path)
    assert run.status == RunStatus.INVALID and run.exit_code == 2
    assert "ClassroomName" in run.message
    assert sim.request_log == [] and run.items.count() == 0


# --- the command -------------------------------------------------------------------------
def command(*args: str) -> tuple[int, dict, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("enroll_apex", *args, "--json", stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    return code, summary, out.getvalue() + err.getvalue()


def test_command_exit_codes_and_json_summary(apex, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sim = apex()
    clean = write(tmp_path, grid(2, 3))

    code, summary, output = command(str(clean), "--dry-run")
    assert code == 0 and summary["dry_run"] is True and summary["status"] == "succeeded"
    assert set(summary) == {"run_id", "kind", "status", "dry_run", "counts", "report_url"}
    assert summary["kind"] == "apex_enroll"
    assert [path for _, path, _ in sim.request_log] == ["/token"]

    code, summary, output = command(str(clean))
    assert (code, summary["status"], summary["counts"]["enrolled"]) == (0, "succeeded", 6)
    assert f"/runs/{summary['run_id']}/" in summary["report_url"]

    code, summary, output = command(str(DEMO_ROSTER))
    assert (code, summary["status"]) == (1, "partial")
    assert summary["counts"]["failed"] == 9

    code, summary, _ = command(str(tmp_path / "nope.csv"))
    assert (code, summary["status"]) == (2, "invalid")
    assert "File not found" in Run.objects.get(pk=summary["run_id"]).message

    secret = sim.client_secret
    for text in (output, caplog.text):
        assert secret not in text
        assert not any(token in text for token in sim.tokens)


def test_command_exit_4_when_auth_is_refused(apex, tmp_path, settings):
    apex()
    settings.APEX_CLIENT_SECRET = "not-the-secret"
    code, summary, output = command(str(write(tmp_path, grid(1, 2))))
    assert (code, summary["status"]) == (4, "failed")
    assert "not-the-secret" not in output


def test_command_resume(apex, tmp_path, monkeypatch):
    apex()
    real = enroll._record_batch

    def crash(tracker, batch):
        raise RuntimeError("killed")

    monkeypatch.setattr(enroll, "_record_batch", crash)
    code, summary, _ = command(str(write(tmp_path, grid(1, 6))))
    assert (code, summary["status"]) == (4, "failed")
    monkeypatch.setattr(enroll, "_record_batch", real)

    code, summary, _ = command("--resume", str(summary["run_id"]))
    assert (code, summary["status"]) == (0, "succeeded")
    assert summary["counts"]["already_enrolled"] == 6  # sent before the crash, not recorded

    with pytest.raises(Exception, match="finished"):
        call_command("enroll_apex", "--resume", str(summary["run_id"]))


def test_simulator_throttling_is_honoured_with_real_waits(apex, tmp_path, settings):
    settings.HTTP_RETRY_SLEEP = True
    settings.APEX_REQUESTS_PER_SECOND = 0  # no client-side limit: let the vendor push back
    settings.APEX_BATCH_SIZE = 1
    settings.APEX_CONCURRENCY = 1
    sim = apex(rate_limit=4)
    run = run_file(write(tmp_path, grid(1, 6)))

    assert run.status == RunStatus.SUCCEEDED and run.counts["enrolled"] == 6
    throttled = [c for c in sim.request_log if c[2] == 429]
    assert throttled  # 7 calls in a burst against 4 a second
    assert run.stage_timings["enroll"] + run.stage_timings["authenticate"] >= 0.9


def test_the_client_rate_keeps_under_the_vendor_limit(apex, tmp_path, settings):
    settings.HTTP_RETRY_SLEEP = True
    settings.APEX_REQUESTS_PER_SECOND = 8
    settings.APEX_BATCH_SIZE = 1
    sim = apex(rate_limit=10)
    run = run_file(write(tmp_path, grid(2, 4)))
    assert run.status == RunStatus.SUCCEEDED
    assert not [c for c in sim.request_log if c[2] == 429]


def test_simulator_classroom_info_student_pages_and_withdraw(apex, settings):
    sim = apex()
    client = ApexClient.from_settings()
    info = client.classroom("ALG-101")
    assert info["ClassroomName"].startswith("Algebra") and info["PrimaryTeacher"]
    assert client.classroom("CLS-0042")["ImportClassroomId"] == "CLS-0042"
    with pytest.raises(ClassroomNotFound):
        client.classroom("NOPE-1")

    batch = [Student(f"S{200000 + i}", DEMO_ORG) for i in range(150)]
    assert {r.outcome for r in client.enroll("CLS-0042", batch).results} == {Outcome.ENROLLED}
    token = client._current_token()
    url = f"{settings.APEX_BASE_URL}/classrooms/CLS-0042/students"
    auth = {"Authorization": f"Bearer {token}"}
    first = requests.get(url, headers={**auth, "page": "1"}, timeout=5)
    second = requests.get(url, headers={**auth, "page": "2"}, timeout=5)
    assert first.headers["total-pages"] == "2"
    ids = [s["ImportUserId"] for s in first.json()["studentUsers"] + second.json()["studentUsers"]]
    assert len(ids) == 150 == len(set(ids))

    assert client.withdraw("CLS-0042", "S200000") is True
    assert client.withdraw("CLS-0042", "S200000") is False
    assert "S200000" not in sim.enrolled("CLS-0042")
    assert requests.get(url, timeout=5).status_code == 401  # no token, no data
    client.close()


def test_a_stored_roster_changed_after_upload_is_refused(apex, tmp_path):
    sim = apex()
    run = apex_run_from_path(write(tmp_path, grid(1, 3)), dry_run=False, triggered_by="test")
    stored = tmp_path / "rosters" / f"{run.params['sha256']}.csv"
    stored.write_text("ClassroomName,StudentId\nCLS-0001,S100999\n")
    run = job_execute(run.pk, send_report=False)
    assert run.status == RunStatus.INVALID and "has changed" in run.message
    assert sim.request_log == []


def test_a_batch_whose_recording_fails_is_not_half_recorded(apex, tmp_path, monkeypatch, settings):
    # A batch over the tracker's 500-item buffer is flushed in two writes; when the second
    # fails (e.g. "database is locked") the transaction rolls back, and the run's final
    # flush must not write the part still buffered: the batch is recorded whole or not.
    from django.db import OperationalError

    from reports import services

    settings.APEX_BATCH_SIZE = 600
    sim = apex()
    real = services._items_insert
    calls = {"n": 0}

    def locked_on_second_write(run_id, items):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OperationalError("database is locked")
        return real(run_id, items)

    monkeypatch.setattr(services, "_items_insert", locked_on_second_write)
    run = run_file(write(tmp_path, grid(1, 600)))
    assert run.status == RunStatus.FAILED
    assert run.items.count() == 0 and run.counts["enrolled"] == 0

    monkeypatch.setattr(services, "_items_insert", real)
    apex_run_resume(run_id=run.pk, triggered_by="test")
    run = job_execute(run.pk, send_report=False)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert sorted(run.items.values_list("seq", flat=True)) == list(range(2, 602))
    assert run.counts["already_enrolled"] == 600 and sim.enrollment_count() == 600 + 3


def test_resume_never_gives_a_row_already_done_a_second_outcome(
    apex, tmp_path, monkeypatch, settings
):
    # Row 2 (no OrgId: APEX_ORG_ID) is enrolled, then the run dies. APEX_ORG_ID is changed
    # before the resume, so row 2 now conflicts with row 3; it must keep its one outcome.
    settings.APEX_BATCH_SIZE = 1
    settings.APEX_CONCURRENCY = 1
    apex()
    path = tmp_path / "roster.csv"
    path.write_text(
        "ClassroomName,StudentId,OrgId\nCLS-0001,S100001,\nCLS-0001,S100001,ORG-DEMO\n"
        "CLS-0002,S100002,\n"
    )
    real = enroll._record_batch
    calls = {"n": 0}

    def die_after_one(tracker, batch, counts):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("worker killed")
        real(tracker, batch, counts)

    monkeypatch.setattr(enroll, "RECORD_AT_ONCE", 1)  # each batch its own transaction

    monkeypatch.setattr(enroll, "_record_batch", die_after_one)
    run = run_file(path)
    assert run.status == RunStatus.FAILED and outcomes(run) == {2: "enrolled", 3: "skipped"}

    monkeypatch.setattr(enroll, "_record_batch", real)
    settings.APEX_ORG_ID = "ORG-NORTH"
    apex_run_resume(run_id=run.pk, triggered_by="test")
    run = job_execute(run.pk, send_report=False)
    seqs = list(run.items.values_list("seq", flat=True))
    assert sorted(seqs) == [2, 3, 4], seqs  # every row exactly once
    assert outcomes(run)[2] == "enrolled"
    assert outcomes(run)[4] == "already_enrolled"  # sent before the crash, not recorded
    assert run.counts["enrolled"] == run.counts["already_enrolled"] == 1
    assert run.counts["invalid"] == run.counts["failed"] == 1


def test_resume_refused_still_prints_one_json_line(capsys):
    from django.core.management.base import CommandError

    with pytest.raises((CommandError, SystemExit)):
        call_command("enroll_apex", "--resume", "999999", "--json")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["run_id"] is None
    assert summary["kind"] == "apex_enroll"
    assert summary["status"] == "invalid"
    assert "999999" in summary["error"]
