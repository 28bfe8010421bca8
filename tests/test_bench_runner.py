"""The benchmark runner's behaviour (not its timings): skipping, failing, the docs it writes."""

from __future__ import annotations

import pytest

from bench import __main__ as bench_main
from bench import report
from bench.harness import BenchCase, Result, judged, missing_services, run_in_child, table


def _result(**kw) -> Result:
    base = {"case": "c", "size": "s", "seconds": 1.0}
    return Result(**{**base, **kw})


def test_a_size_that_needs_a_missing_service_is_skipped_and_said(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    case = BenchCase(
        name="x", func="nowhere.run", sizes=("sqlite", "pg"), size_needs={"pg": ("postgres",)}
    )
    assert missing_services(case, "sqlite") == []
    [skipped] = run_in_child(case, "pg")  # no child is started for it
    assert skipped.skipped == "needs PostgreSQL (DATABASE_URL)"
    assert "skipped: needs PostgreSQL (DATABASE_URL)" in table([skipped])


def test_services_reach_only_the_sizes_that_need_them(monkeypatch):
    from bench.harness import child_env

    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@127.0.0.1/db")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1/0")
    case = BenchCase(name="x", func="f", sizes=("a", "b"), size_needs={"b": ("postgres",)})
    assert "DATABASE_URL" not in child_env(case, "a")
    assert child_env(case, "b")["DATABASE_URL"].startswith("postgres")
    assert "REDIS_URL" not in child_env(case, "b")


def test_a_case_that_says_it_failed_keeps_its_figures_and_fails_the_run(capsys, monkeypatch):
    monkeypatch.setattr(report, "machine", lambda: {"CPU": "test"})
    failed = judged(_result(failed="3 errors under load", notes="the profile"))
    assert failed.met is None
    assert "**FAILED**" in table([failed]) and "1.00 s" in table([failed])
    assert bench_main.report([failed], 1.0, write=False, strict=False) == 1
    out = capsys.readouterr().out
    assert "c [s]: FAILED. 3 errors under load" in out and "the profile" in out


def test_a_target_not_met_is_reported_with_its_notes_but_fails_only_when_strict(
    capsys, monkeypatch
):
    monkeypatch.setattr(report, "machine", lambda: {"CPU": "test"})
    slow = judged(_result(floor_seconds=0.1, target_ratio=2.0, notes="bound by the vendor"))
    assert slow.met is False
    assert bench_main.report([slow], 1.0, write=False, strict=False) == 0
    out = capsys.readouterr().out
    assert "target not met" in out and "bound by the vendor" in out
    assert "Targets not met: c [s]." in out
    assert bench_main.report([slow], 1.0, write=False, strict=True) == 1


def test_a_skipped_case_does_not_fail_the_run(monkeypatch):
    monkeypatch.setattr(report, "machine", lambda: {"CPU": "test"})
    skipped = _result(seconds=0.0, skipped="needs Redis (REDIS_URL)")
    assert bench_main.report([skipped], 1.0, write=False, strict=True) == 0


def test_an_unknown_case_name_is_refused(capsys, monkeypatch):
    monkeypatch.setenv("BENCH_ONLY", "no-such-case")
    assert bench_main.main([]) == 2
    assert "no case named no-such-case" in capsys.readouterr().err


def test_each_case_says_what_it_took_of_the_run(capsys, monkeypatch):
    # A clock that each case moves on: size a takes 7 s, size b 42 s.
    from types import SimpleNamespace

    now = [100.0]
    monkeypatch.setattr(bench_main, "time", SimpleNamespace(monotonic=lambda: now[0]))

    def run(case, size):
        now[0] += {"a": 7, "b": 42}[size]
        return [_result(size=size)]

    case = BenchCase(name="x", func="nowhere.run", sizes=("a", "b"))
    monkeypatch.setattr(bench_main, "cases", lambda: [case])
    monkeypatch.setattr(bench_main, "run_in_child", run)
    monkeypatch.setattr(bench_main, "report", lambda results, total, **kw: (len(results), total))
    assert bench_main.main(["--only", "x"]) == (2, 49)
    err = capsys.readouterr().err
    assert "bench: x [a] took 7 s" in err and "bench: x [b] took 42 s" in err


def test_the_docs_keep_the_hand_written_sections(tmp_path):
    from datetime import UTC, datetime

    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Pulls\n\nWhat we changed, by hand.\n")
    when = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    first = report.section(
        [_result(notes="first notes")], facts={"CPU": "X"}, total_seconds=60, when=when
    )
    report.docs_write(first, docs)
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\n" + report.BEGIN)
    assert "first notes" in text and "## Pulls\n\nWhat we changed, by hand." in text

    docs.write_text(docs.read_text() + "\n## Health page\n\nAlso by hand.\n")
    second = report.section(
        [_result(notes="second notes")], facts={"CPU": "Y"}, total_seconds=60, when=when
    )
    report.docs_write(second, docs)
    text = docs.read_text()
    assert "second notes" in text and "first notes" not in text
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    assert "What we changed, by hand." in text and "## Health page\n\nAlso by hand." in text
    assert "CPU Y" in text and "2026-12-01 02:00 UTC" in text


def test_the_docs_are_created_when_absent_and_a_lone_marker_is_refused(tmp_path):
    docs = tmp_path / "benchmarks.md"
    report.docs_write(f"{report.BEGIN}\ntable\n{report.END}", docs)
    assert docs.read_text().startswith("# Benchmarks\n\n" + report.BEGIN)
    docs.write_text(f"# Benchmarks\n{report.BEGIN}\nhalf\n")
    with pytest.raises(SystemExit, match="only one of the generated part's markers"):
        report.docs_write("new", docs)


def test_the_machine_facts_never_show_a_service_url(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:s3cret@127.0.0.1:1/db")
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret@127.0.0.1:1/0")
    facts = report.machine()
    assert "s3cret" not in str(facts)
    assert facts["PostgreSQL"].startswith("not reachable")
    assert facts["Redis"].startswith("not reachable")


def test_the_apex_case_notes_say_where_the_time_went():
    from bench.cases.jobs import _apex_stages_note

    got = {
        "stage_timings": {"validate": 0.5, "authenticate": 0.02, "enroll": 6.0},
        "bare_client_seconds": 5.0,
        "cpu_seconds": 4.2,
    }
    assert _apex_stages_note(got) == (
        "; stages: validate 0.50 s before the first request, enroll 6.00 s "
        "(1.20x the bare client), job CPU 4.2 s"
    )
    assert "bare client" not in _apex_stages_note({**got, "bare_client_seconds": None})
    assert _apex_stages_note({"stage_timings": {}}) == ""
