"""The job kinds: one declaration per run kind, found in its vendor's folder.

Each vendor folder holds a `kind.py` whose `KINDS` tuple declares its run kinds
(`JobKind`): the job, the summary count keys, the resume policy, the after-finish hook,
the run-page actions, the simulator and the cohort schedule. Everything that used to be
wired by hand (job_execute, the CLI summary, the run actions, `manage.py sandbox`,
`setup_schedules`) reads this registry. Adding a vendor is adding a folder with a
`kind.py`: it is found by itself (docs/architecture.md, "Adding a vendor").

Declarations hold dotted paths, never imports of the vendor's code, so reading the
registry stays cheap and free of import cycles; the paths are imported when used, and a
test imports every one of them (tests/test_registry.py).
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass
from functools import cache

from django.core.exceptions import ImproperlyConfigured

from cohorts.models import Source
from reports.models import RunKind


class Resume(enum.StrEnum):
    """What a run re-queued after its worker died does (integrations.tasks.runs_reap)."""

    # Idempotent end to end (a pull re-reads everything and upserts): start again, so the
    # counts and items describe one full pass.
    RESTART = "restart"
    # A push: keep what was recorded and go on where it stopped (the job reads its items).
    CONTINUE = "continue"


@dataclass(frozen=True)
class SimulatorSpec:
    """The vendor's local stand-in, served by `manage.py sandbox` on base port + offset."""

    name: str  # also the key of its options in sandbox_start(options=...)
    factory: str  # dotted path of build(seed=, latency_ms=, fail_rate=, **kw) -> Simulator
    port_offset: int  # unique among simulators: vendors share /api/v1 paths
    base_url_setting: str  # the setting sandbox_env points at it, e.g. "OPENCLASS_BASE_URL"


@dataclass(frozen=True)
class CohortSchedule:
    """A pull that keeps cohorts of one source fresh, on each cohort's sync interval."""

    source: str  # a cohorts.models.Source value; one pull kind per source
    # Dotted path of start(*, cohort_id: int, triggered_by: str, user=None) -> Run | None:
    # queues a pull of that cohort, or returns None when one is already queued or running.
    start: str


@dataclass(frozen=True)
class JobKind:
    kind: str  # a reports.models.RunKind value
    job: str  # dotted path of job(tracker: RunTracker) -> None
    # Count keys every summary of this kind carries (0 when the run stopped before
    # counting), so a script can read counts["failed"] whatever happened.
    summary_keys: tuple[str, ...]
    resume: Resume
    after_finish: str | None = None  # dotted path of hook(run) -> None, once a run is closed
    run_actions: str | None = None  # dotted path of provider(run) -> list[RunAction]
    simulator: SimulatorSpec | None = None
    schedule: CohortSchedule | None = None  # None for push jobs


def kinds() -> dict[str, JobKind]:
    """Every declared kind by run kind (read once, then cached)."""
    return _load()


def kind_get(kind: str) -> JobKind:
    try:
        return _load()[kind]
    except KeyError:
        raise LookupError(
            f"no job is registered for run kind '{kind}' "
            "(declare it in integrations/<vendor>/kind.py)"
        ) from None


def kind_for_source(source: str) -> JobKind | None:
    """The kind whose schedule pulls cohorts of `source`, or None if none does yet."""
    for declared in _load().values():
        if declared.schedule and declared.schedule.source == source:
            return declared
    return None


def scheduled_sources() -> list[str]:
    return [k.schedule.source for k in _load().values() if k.schedule]


def simulators() -> list[SimulatorSpec]:
    """The simulators of every kind, once each, by port offset."""
    found = {k.simulator.name: k.simulator for k in _load().values() if k.simulator}
    return sorted(found.values(), key=lambda spec: spec.port_offset)


def vendor_modules() -> list[str]:
    """`integrations.<folder>.kind` for every folder of this package that has a kind.py."""
    import integrations

    names = []
    for info in pkgutil.iter_modules(integrations.__path__):
        if not info.ispkg:
            continue
        name = f"integrations.{info.name}.kind"
        if importlib.util.find_spec(name) is not None:
            names.append(name)
    return sorted(names)


@cache
def _load() -> dict[str, JobKind]:
    declared: list[tuple[str, JobKind]] = []
    for module_name in vendor_modules():
        found = getattr(importlib.import_module(module_name), "KINDS", None)
        if not isinstance(found, tuple) or not all(isinstance(k, JobKind) for k in found):
            raise ImproperlyConfigured(f"{module_name}.KINDS must be a tuple of JobKind")
        declared.extend((module_name, k) for k in found)
    return registry_check(declared)


def registry_check(declared: list[tuple[str, JobKind]]) -> dict[str, JobKind]:
    """The kinds by run kind, from (module, kind) pairs; or ImproperlyConfigured naming the
    module and kind of the first inconsistency."""
    by_kind: dict[str, JobKind] = {}
    modules: dict[str, str] = {}
    sources: dict[str, JobKind] = {}
    simulators_by_name: dict[str, SimulatorSpec] = {}
    offsets: dict[int, str] = {}
    for module_name, k in declared:
        where = f"{module_name}: kind '{k.kind}'"
        if k.kind not in RunKind.values:
            raise ImproperlyConfigured(f"{where} is not a reports.models.RunKind value")
        if k.kind in by_kind:
            raise ImproperlyConfigured(f"{where} is declared twice (also in {modules[k.kind]})")
        if not k.job:
            raise ImproperlyConfigured(f"{where} has no job")
        if "failed" not in k.summary_keys:
            raise ImproperlyConfigured(f"{where}: summary_keys must include 'failed'")
        if not isinstance(k.resume, Resume):
            raise ImproperlyConfigured(f"{where}: resume must be Resume.RESTART or Resume.CONTINUE")
        if k.schedule:
            if k.schedule.source not in Source.values:
                raise ImproperlyConfigured(
                    f"{where}: schedule source '{k.schedule.source}' is not a cohorts Source"
                )
            if k.schedule.source in sources:
                raise ImproperlyConfigured(
                    f"{where}: source '{k.schedule.source}' is already pulled by "
                    f"'{sources[k.schedule.source].kind}'"
                )
            sources[k.schedule.source] = k
        if k.simulator:
            spec = k.simulator
            known = simulators_by_name.get(spec.name)
            if known is not None and known != spec:
                raise ImproperlyConfigured(f"{where}: simulator {spec.name!r} declared differently")
            if offsets.get(spec.port_offset, spec.name) != spec.name:
                raise ImproperlyConfigured(
                    f"{where}: simulator port offset {spec.port_offset} is already taken by "
                    f"{offsets[spec.port_offset]!r}"
                )
            simulators_by_name[spec.name] = spec
            offsets[spec.port_offset] = spec.name
        by_kind[k.kind] = k
        modules[k.kind] = module_name
    return by_kind
