"""manage.py sync_openclass: exit status and --json summary of shared/interfaces.md."""

from __future__ import annotations

import json
import socket
from io import StringIO

import pytest
from django.core.management import call_command

from cohorts.models import Cohort
from integrations.openclass.simulator import WEB
from integrations.simulator import Response
from reports.models import Run, RunStatus

pytestmark = pytest.mark.django_db

SUMMARY_KEYS = {"run_id", "kind", "status", "dry_run", "counts", "report_url"}


def sync(*args: str) -> tuple[int, dict, str]:
    """Run the command; returns (exit status, the JSON summary, stderr)."""
    out, err = StringIO(), StringIO()
    code = 0
    try:
        call_command("sync_openclass", *args, "--json", stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    return code, summary, err.getvalue()


def test_success_exits_0_with_the_json_summary_last(openclass, capsys):
    sim = openclass()
    code, summary, err = sync("--class-id", WEB)
    assert code == 0
    assert set(summary) == SUMMARY_KEYS
    assert summary["kind"] == "openclass_sync" and summary["status"] == "succeeded"
    assert summary["dry_run"] is False
    assert summary["counts"]["created"] == len(sim.progressions(WEB))
    assert summary["counts"]["failed"] == 0
    assert summary["report_url"].endswith(f"/{summary['run_id']}/")
    run = Run.objects.get(pk=summary["run_id"])
    assert run.triggered_by.startswith("cli:")
    assert "report:" in err
    assert "[fetch]" in capsys.readouterr().err  # progress lines on standard error


def test_missing_password_exits_2_and_sends_nothing(openclass, settings):
    sim = openclass()
    settings.OPENCLASS_PASSWORD = ""
    code, summary, err = sync("--class-id", WEB)
    assert code == 2
    assert summary["status"] == "invalid"
    run = Run.objects.get(pk=summary["run_id"])
    assert run.status == RunStatus.INVALID and "OPENCLASS_PASSWORD" in run.message
    assert "OPENCLASS_PASSWORD" in err
    assert sim.request_log == []


def test_empty_class_id_exits_2(openclass):
    sim = openclass()
    code, summary, _ = sync("--class-id", "  ")
    assert code == 2 and summary["status"] == "invalid"
    assert "class" in Run.objects.get(pk=summary["run_id"]).message
    assert sim.request_log == []


def test_unreachable_vendor_exits_4(openclass, settings):
    openclass()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.OPENCLASS_BASE_URL = f"http://127.0.0.1:{closed_port}"
    code, summary, _ = sync("--class-id", WEB)
    assert code == 4
    run = Run.objects.get(pk=summary["run_id"])
    assert run.status == RunStatus.FAILED and run.error_class == "transient"


def test_refused_login_exits_4_without_showing_the_password(openclass, settings, caplog):
    sim = openclass()
    settings.OPENCLASS_PASSWORD = "wrong-password-123"
    # A vendor that echoes the credentials in its error body: they must still not leak.
    sim.fail_next(
        "POST",
        "/v1/auth/login",
        Response.json({"error": "no account for password=wrong-password-123"}, status=401),
    )
    code, summary, err = sync("--class-id", WEB)
    assert code == 4
    run = Run.objects.get(pk=summary["run_id"])
    assert run.error_class == "auth"
    shown = err + run.message + json.dumps(summary) + caplog.text
    shown += " ".join(run.items.values_list("message", flat=True))
    assert "wrong-password-123" not in shown


def test_an_invalid_record_exits_1(openclass):
    sim = openclass(broken_progressions=1)
    code, summary, _ = sync("--class-id", WEB)
    assert code == 1
    assert summary["status"] == "partial"
    assert summary["counts"]["failed"] == 1
    assert summary["counts"]["created"] == len(sim.progressions(WEB)) - 1


def test_unknown_class_exits_4(openclass):
    openclass()
    code, summary, _ = sync("--class-id", "ffffffffffffffffffffffff")
    assert code == 4 and summary["status"] == "failed"


def test_cohort_name_names_the_cohort(openclass):
    openclass()
    code, summary, _ = sync("--class-id", WEB, "--cohort-name", "Web, evening group")
    assert code == 0
    run = Run.objects.get(pk=summary["run_id"])
    assert Cohort.objects.get(pk=run.params["cohort_id"]).name == "Web, evening group"
