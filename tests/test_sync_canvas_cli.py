"""manage.py sync_canvas: exit status, --json summary, settings and profile checks."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from integrations.canvas.simulator import BIOLOGY, CHEMISTRY
from reports.models import Run, RunStatus

pytestmark = pytest.mark.django_db

SUMMARY_KEYS = {"run_id", "kind", "status", "dry_run", "counts", "report_url"}


def sync(*args: str) -> tuple[int, dict, str, str]:
    out, err = StringIO(), StringIO()
    code = 0
    try:
        call_command("sync_canvas", *args, "--json", stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    return code, summary, out.getvalue(), err.getvalue()


def test_one_course_exits_0_with_the_summary(canvas):
    sim = canvas()
    code, summary, _, err = sync("--course", BIOLOGY)
    assert code == 0, err
    assert set(summary) == SUMMARY_KEYS
    assert summary["kind"] == "canvas_sync" and summary["status"] == "succeeded"
    counts = summary["counts"]
    assert {"fetched", "created", "updated", "unchanged", "skipped", "failed"} <= set(counts)
    assert counts["submissions"] == sim.course_counts(BIOLOGY)["submissions_served"]
    assert Run.objects.get(pk=summary["run_id"]).params["mode"] == "course"


def test_all_with_a_failing_course_exits_1(canvas):
    canvas()
    code, summary, _, _ = sync("--all", "--profile", "analytics")
    assert code == 1 and summary["status"] == "partial"
    assert summary["counts"]["succeeded"] == 2 and summary["counts"]["failed"] == 1


def test_several_courses_make_one_bulk_run(canvas):
    canvas()
    code, summary, _, _ = sync("--course", BIOLOGY, CHEMISTRY, "--profile", "lightweight")
    assert code == 0
    run = Run.objects.get(pk=summary["run_id"])
    assert run.params["mode"] == "bulk" and run.params["course_ids"] == [BIOLOGY, CHEMISTRY]
    assert Run.objects.filter(params__parent_run_id=run.pk).count() == 2


@pytest.mark.parametrize("name", ["CANVAS_TOKEN", "CANVAS_BASE_URL"])
@pytest.mark.parametrize("value", ["", "   "])
def test_a_missing_setting_exits_2_naming_it_and_sends_nothing(canvas, settings, name, value):
    sim = canvas()
    setattr(settings, name, value)
    code, summary, _, err = sync("--course", BIOLOGY)
    assert code == 2 and summary["status"] == "invalid"
    assert name in err
    assert name in Run.objects.get(pk=summary["run_id"]).message
    assert sim.request_log == []


def test_bulk_without_an_account_id_exits_2(canvas, settings):
    sim = canvas()
    settings.CANVAS_ACCOUNT_ID = ""
    code, summary, _, err = sync("--all")
    assert code == 2 and summary["status"] == "invalid" and "CANVAS_ACCOUNT_ID" in err
    assert sim.request_log == []


def test_a_refused_token_exits_4_and_never_shows_the_token(canvas, settings, caplog):
    sim = canvas()
    secret = "wrong-token-9f8e7d6c5b4a"
    settings.CANVAS_TOKEN = secret
    code, summary, out, err = sync("--course", BIOLOGY)
    assert code == 4 and summary["status"] == "failed"
    run = Run.objects.get(pk=summary["run_id"])
    assert run.error_class == "auth" and "CANVAS_TOKEN" in run.message
    assert len(sim.calls("GET")) == 1  # not retried
    for text in (out, err, run.message, json.dumps(run.params), caplog.text):
        assert secret not in text


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--course", BIOLOGY, "--profile", "everything"], "profile must be one of"),
        (["--all", "--state", "archived"], "state must be one of"),
        (["--all", "--max-courses", "0"], "max courses must be"),
        (["--all", "--term", "fall 2026"], "term must be"),
        (["--course", "12/../34"], "course id must be"),
        (["--course", "1", "1"], "listed twice"),
    ],
)
def test_bad_profile_and_filters_exit_2_before_anything_is_sent(canvas, args, words):
    sim = canvas()
    code, summary, _, err = sync(*args)
    assert code == 2 and summary["status"] == "invalid"
    assert words in err
    assert Run.objects.get(pk=summary["run_id"]).status == RunStatus.INVALID
    assert sim.request_log == []


def test_term_with_a_course_is_a_usage_error(canvas):
    from django.core.management.base import CommandError

    sim = canvas()
    out = StringIO()
    with pytest.raises(CommandError, match="go with --all") as caught:
        call_command("sync_canvas", "--course", BIOLOGY, "--term", "11", "--json", stdout=out)
    assert caught.value.returncode == 2
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["status"] == "invalid" and summary["run_id"] is None
    assert sim.request_log == []
