"""Shared fixtures: personas, cohorts, and the vendor simulators over real HTTP."""

from __future__ import annotations

import pytest
import time_machine
from django.contrib.auth.models import Group, User

from cohorts.models import Cohort, Source
from integrations.apex.simulator import build as build_apex
from integrations.openclass.simulator import build as build_openclass
from integrations.simulator import serve
from tests.upsert_world import world  # noqa: F401 - the upsert tests' fixture


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_user(
        "ada", email="ada@example.com", password="pw-admin-1", is_staff=True, is_superuser=True
    )


@pytest.fixture
def cohort_a(db) -> Cohort:
    return Cohort.objects.create(name="Cohort A", source=Source.OPENCLASS, external_id="class-a")


@pytest.fixture
def cohort_b(db) -> Cohort:
    return Cohort.objects.create(name="Cohort B", source=Source.OPENCLASS, external_id="class-b")


def _mentor(username: str, cohort: Cohort) -> User:
    user = User.objects.create_user(
        username, email=f"{username}@example.com", password="pw-mentor-1"
    )
    group, _ = Group.objects.get_or_create(name="mentors")
    user.groups.add(group)
    cohort.mentors.add(user)
    return user


@pytest.fixture
def mentor_a(cohort_a) -> User:
    """Mentors cohort A only."""
    return _mentor("mia", cohort_a)


@pytest.fixture
def mentor_b(cohort_b) -> User:
    """Mentors cohort B only: must see nothing of A."""
    return _mentor("ben", cohort_b)


# --- runs and reports ------------------------------------------------------------------


@pytest.fixture
def run_factory(db):
    """Builds a run in any state, with items: `run_factory(status="partial", items=[{...}])`.

    Items are RunItem field dicts; `seq` follows their order. `created_at` backdates the run
    (it is auto_now_add, so it is set after creation).
    """
    from datetime import timedelta

    from django.utils import timezone

    from reports.models import FINISHED_STATUSES, Run, RunItem, RunKind, RunStatus

    def make(
        *,
        kind=RunKind.OPENCLASS_SYNC,
        status=RunStatus.SUCCEEDED,
        subject="Cohort A",
        triggered_by="user:ada",
        user=None,
        dry_run=False,
        counts=None,
        items=(),
        message="",
        error_class="",
        duration=12.5,
        stage_timings=None,
        created_at=None,
        **fields,
    ):
        now = timezone.now()
        started = None if status == RunStatus.QUEUED else now - timedelta(seconds=duration)
        run = Run.objects.create(
            kind=kind,
            status=status,
            subject=subject,
            triggered_by=triggered_by,
            user=user,
            dry_run=dry_run,
            counts=counts if counts is not None else {},
            message=message,
            error_class=error_class,
            started_at=started,
            finished_at=now if status in FINISHED_STATUSES else None,
            heartbeat_at=started,
            stage_timings=stage_timings if stage_timings is not None else {},
            **fields,
        )
        RunItem.objects.bulk_create(
            RunItem(run=run, seq=n, **item) for n, item in enumerate(items, start=1)
        )
        if created_at is not None:
            Run.objects.filter(pk=run.pk).update(created_at=created_at)
            run.refresh_from_db()
        return run

    return make


@pytest.fixture
def simulators(settings):
    """Start vendor simulators over real HTTP and point the settings at them."""
    servers = []

    def start(builder, base_url_setting: str, **kwargs):
        simulator = builder(**kwargs)
        server = serve(simulator)
        servers.append(server)
        setattr(settings, base_url_setting, server.base_url)
        for name, value in simulator.demo_settings.items():
            setattr(settings, name, value)
        return simulator

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def openclass(simulators, settings):
    """Start an OpenClass simulator (build kwargs); returns it."""
    settings.OPENCLASS_PAGE_SIZE = 100
    return lambda **kwargs: simulators(build_openclass, "OPENCLASS_BASE_URL", **kwargs)


@pytest.fixture
def apex(simulators, settings, tmp_path):
    """Start an APEX simulator (build kwargs); returns it."""
    settings.DATA_DIR = tmp_path
    settings.APEX_BATCH_SIZE = 50
    settings.APEX_CONCURRENCY = 4

    def start(**kwargs):
        kwargs.setdefault("rate_limit", 0)
        return simulators(build_apex, "APEX_BASE_URL", **kwargs)

    return start


@pytest.fixture
def canvas(simulators, settings):
    """Start a Canvas simulator (build kwargs); returns it."""
    from integrations.canvas.simulator import build as build_canvas

    settings.CANVAS_RATE_LIMIT_FLOOR = 0  # no slowing down unless a test asks for it
    return lambda **kwargs: simulators(build_canvas, "CANVAS_BASE_URL", **kwargs)


class VirtualClock:
    """Seconds for the simulator's leaky bucket: each look moves time on a little, and the
    client's pauses (retries and slow-downs, never really slept in tests) move it on."""

    def __init__(self, tick: float = 0.5) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def canvas_clock(monkeypatch):
    """A virtual clock that the client's pauses advance (patched into the retry policy)."""
    from integrations import http

    clock = VirtualClock()
    original = http.retry_policy_from_settings

    def policy():
        retry = original()
        retry.sleep = clock.sleep
        return retry

    monkeypatch.setattr(http, "retry_policy_from_settings", policy)
    return clock


@pytest.fixture
def health_now():
    """Time frozen at the hand-built health cohort's "now" (tests/health_cohort.py)."""
    from tests import health_cohort as hc

    with time_machine.travel(hc.NOW, tick=False):
        yield hc.NOW


@pytest.fixture
def ids(cohort_a) -> dict[int, int]:
    """Cohort A filled with the hand-built health cohort; returns its ids."""
    from tests import health_cohort as hc

    cohort_a.starts_on, cohort_a.ends_on = hc.STARTS_ON, hc.ENDS_ON
    cohort_a.save()
    return hc.build(cohort_a)


# --- the job-kind registry ---------------------------------------------------------------


@pytest.fixture
def register_kind(monkeypatch):
    """Declares (or replaces) a JobKind for one test: `register_kind(JobKind(...))`."""
    from integrations import registry

    def register(declared):
        monkeypatch.setitem(registry.kinds(), declared.kind, declared)
        return declared

    return register


@pytest.fixture
def fake_openclass_job(register_kind):
    """Runs of kind openclass_sync run `tests.fake_jobs.<name>` (no after-finish hook)."""
    from dataclasses import replace

    from integrations import registry
    from reports.models import RunKind

    def use(name: str):
        declared = registry.kind_get(RunKind.OPENCLASS_SYNC)
        return register_kind(replace(declared, job=f"tests.fake_jobs.{name}", after_finish=None))

    return use


@pytest.fixture
def titan(simulators, settings, tmp_path):
    """Start a Titan HST simulator (build kwargs); returns it."""
    from integrations.titan.simulator import build as build_titan

    settings.DATA_DIR = tmp_path
    return lambda **kwargs: simulators(build_titan, "TITAN_BASE_URL", **kwargs)
