"""The job-kind registry: every declared kind is complete, and bad declarations are named."""

from __future__ import annotations

import inspect
import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from cohorts.models import Source
from integrations import registry
from integrations.registry import CohortSchedule, JobKind, Resume, SimulatorSpec, registry_check
from reports.actions import run_actions
from reports.models import Run, RunKind

pytestmark = pytest.mark.django_db

DECLARED = sorted(registry.kinds())


def test_the_vendor_folders_are_found():
    modules = registry.vendor_modules()
    assert "integrations.openclass.kind" in modules
    assert "integrations.apex.kind" in modules
    assert "integrations.management.kind" not in modules  # a folder without kind.py
    assert {RunKind.OPENCLASS_SYNC, RunKind.APEX_ENROLL} <= set(registry.kinds())


@pytest.mark.parametrize("kind", DECLARED)
def test_every_declared_kind_is_fully_declared(kind):
    declared = registry.kind_get(kind)
    assert declared.kind in RunKind.values
    job = import_string(declared.job)
    assert list(inspect.signature(job).parameters) == ["tracker"]
    assert declared.summary_keys and "failed" in declared.summary_keys
    assert len(set(declared.summary_keys)) == len(declared.summary_keys)
    assert declared.resume in (Resume.RESTART, Resume.CONTINUE)
    for hook in (declared.after_finish, declared.run_actions):
        if hook:
            assert callable(import_string(hook))
    if declared.simulator:
        factory = import_string(declared.simulator.factory)
        params = inspect.signature(factory).parameters
        assert {"seed", "latency_ms", "fail_rate"} <= set(params)
        assert any(p.kind is p.VAR_KEYWORD for p in params.values())  # sandbox options
        assert declared.simulator.base_url_setting.endswith("_BASE_URL")
    if declared.schedule:
        assert declared.schedule.source in Source.values
        start = inspect.signature(import_string(declared.schedule.start)).parameters
        assert {"cohort_id", "triggered_by", "user"} <= set(start)


def test_what_the_old_wiring_held_is_kept():
    openclass = registry.kind_get(RunKind.OPENCLASS_SYNC)
    apex = registry.kind_get(RunKind.APEX_ENROLL)
    assert openclass.resume == Resume.RESTART and apex.resume == Resume.CONTINUE
    assert openclass.schedule.source == Source.OPENCLASS and apex.schedule is None
    assert apex.summary_keys == ("rows", "enrolled", "already_enrolled", "skipped", "failed")
    assert [s.name for s in registry.simulators()][:2] == ["openclass", "apex"]
    assert registry.kind_for_source(Source.OPENCLASS) is openclass


def test_run_actions_are_registered_from_the_declarations(run_factory):
    apex_run = run_factory(
        kind=RunKind.APEX_ENROLL,
        items=[{"outcome": "failed", "key": "s1", "error_class": "invalid_data"}],
    )
    assert "Download error_log.csv" in [a.label for a in run_actions(apex_run)]
    assert run_actions(run_factory(kind=RunKind.OPENCLASS_SYNC)) == []


def test_an_unknown_kind_is_named():
    with pytest.raises(LookupError, match="no job is registered for run kind 'nope'"):
        registry.kind_get("nope")


def test_a_run_of_an_undeclared_kind_fails_with_a_clear_message(register_kind, monkeypatch):
    from integrations.jobs import job_execute
    from reports.models import RunStatus
    from reports.services import run_create

    monkeypatch.delitem(registry.kinds(), RunKind.OPENCLASS_SYNC)
    run = job_execute(run_create(kind=RunKind.OPENCLASS_SYNC, triggered_by="test").pk)
    assert run.status == RunStatus.FAILED
    assert "no job is registered for run kind 'openclass_sync'" in run.message


def test_the_summary_of_an_undeclared_kind_still_carries_failed(monkeypatch):
    from integrations.cli import run_summary

    monkeypatch.delitem(registry.kinds(), RunKind.TITAN_SYNC, raising=False)
    run = Run.objects.create(kind=RunKind.TITAN_SYNC, triggered_by="test")
    assert run_summary(run)["counts"] == {"failed": 0}


# --- registry_check: each inconsistency is named --------------------------------------


def kind(**kw) -> JobKind:
    base = {
        "kind": RunKind.CANVAS_SYNC,
        "job": "tests.fake_jobs.ok_job",
        "summary_keys": ("fetched", "failed"),
        "resume": Resume.RESTART,
    }
    return JobKind(**{**base, **kw})


def sim(name: str, offset: int) -> SimulatorSpec:
    return SimulatorSpec(name, "tests.fake_jobs.ok_job", offset, f"{name.upper()}_BASE_URL")


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ([kind(kind="fax_sync")], "integrations.x.kind: kind 'fax_sync' is not a reports"),
        ([kind(), kind()], "declared twice (also in integrations.x.kind)"),
        ([kind(job="")], "has no job"),
        ([kind(summary_keys=("fetched",))], "summary_keys must include 'failed'"),
        ([kind(resume="restart")], "resume must be Resume.RESTART or Resume.CONTINUE"),
        (
            [kind(schedule=CohortSchedule(source="moodle", start="x.y"))],
            "schedule source 'moodle' is not a cohorts Source",
        ),
        (
            [
                kind(schedule=CohortSchedule(source=Source.OPENCLASS, start="x.y")),
                kind(
                    kind=RunKind.TITAN_SYNC,
                    schedule=CohortSchedule(source=Source.OPENCLASS, start="x.z"),
                ),
            ],
            "source 'openclass' is already pulled by 'canvas_sync'",
        ),
        (
            [
                kind(simulator=sim("canvas", 0)),
                kind(kind=RunKind.TITAN_SYNC, simulator=sim("titan", 0)),
            ],
            "simulator port offset 0 is already taken by 'canvas'",
        ),
        (
            [
                kind(simulator=sim("canvas", 2)),
                kind(kind=RunKind.TITAN_SYNC, simulator=sim("canvas", 3)),
            ],
            "simulator 'canvas' declared differently",
        ),
    ],
)
def test_inconsistent_declarations_are_refused(declared, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        registry_check([("integrations.x.kind", k) for k in declared])


def test_two_kinds_may_share_one_simulator():
    shared = sim("canvas", 2)
    found = registry_check(
        [
            ("integrations.canvas.kind", kind(simulator=shared)),
            ("integrations.canvas.kind", kind(kind=RunKind.TITAN_SYNC, simulator=shared)),
        ]
    )
    assert set(found) == {RunKind.CANVAS_SYNC, RunKind.TITAN_SYNC}


@pytest.fixture
def vendor_folder(monkeypatch, tmp_path):
    """Adds a vendor folder `integrations/zvendor/` holding the given kind.py, as a new
    vendor would; the registry is read afresh, and restored afterwards."""
    import sys

    import integrations

    def add(kind_py: str) -> None:
        folder = tmp_path / "zvendor"
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        (folder / "kind.py").write_text(kind_py)
        monkeypatch.setattr(integrations, "__path__", [*integrations.__path__, str(tmp_path)])
        registry._load.cache_clear()

    yield add
    monkeypatch.undo()
    for name in ("integrations.zvendor.kind", "integrations.zvendor"):
        sys.modules.pop(name, None)
    registry._load.cache_clear()


def test_a_new_vendor_folder_is_all_it_takes(vendor_folder, monkeypatch):
    vendor_folder(
        "from integrations.registry import CohortSchedule, JobKind, Resume\n"
        "KINDS = (JobKind(kind='canvas_sync', job='tests.fake_jobs.ok_job',\n"
        "    summary_keys=('failed',), resume=Resume.RESTART,\n"
        "    schedule=CohortSchedule(source='canvas', start='tests.fake_jobs.fake_pull_start')),)\n"
    )
    found = registry.vendor_modules()
    assert "integrations.zvendor.kind" in found and "integrations.openclass.kind" in found
    # Read alone: once Canvas has its own folder, canvas_sync would be declared twice.
    monkeypatch.setattr(registry, "vendor_modules", lambda: ["integrations.zvendor.kind"])
    assert list(registry.kinds()) == [RunKind.CANVAS_SYNC]
    assert registry.kind_for_source(Source.CANVAS).job == "tests.fake_jobs.ok_job"


def test_kinds_must_be_a_tuple_of_jobkind(vendor_folder):
    vendor_folder("KINDS = []\n")
    with pytest.raises(ImproperlyConfigured, match=r"integrations\.zvendor\.kind\.KINDS must be"):
        registry.kinds()
