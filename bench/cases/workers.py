"""Case `workers`: runs of every kind through one, then two, `qcluster` processes sharing one
PostgreSQL database and the Redis broker.

Each phase starts every registered vendor simulator in its own process (with latency, so a
run waits on its vendor as it does in production and a second worker has something to
overlap), queues a run of every kind at once (each OpenClass class and Canvas course of
the simulators' demo data, the APEX and the Titan demo rosters) and queues each run's task
TWICE, as a duplicate delivery would (the reaper's re-queue, a broker redelivery). It
then waits until every run has finished, and checks:

- nothing lost: every run finished (succeeded, partial, held, ...), none queued or running;
- nothing executed twice: every run was claimed exactly once (`lease` 1), the second
  delivery of each was refused (`duplicate delivery ignored` in the workers' logs), and no
  run recorded the same item twice;
- throughput: runs per second with one worker, then with two (`qcluster` processes of one
  worker each), on the same runs against fresh simulators and without the cohorts the
  first phase made.

The figures are in the result's notes; the case fails when a run is lost or claimed twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import BASE_DIR, BenchCase, Result, simulator_process

LATENCY_MS = 50
TRIGGER = "bench-workers"
CASES = (
    BenchCase(
        name="workers",
        func="bench.cases.workers.run",
        needs=("postgres", "redis"),
        timeout=600,
    ),
)


def _say(text: str) -> None:
    print(f"workers: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _simulators():
    """Every registered simulator in its own process; yields the settings that point at them
    (what integrations.sandbox.sandbox_env gives for in-process servers)."""
    from django.utils.module_loading import import_string

    from integrations import registry

    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for spec in registry.simulators():
            url = stack.enter_context(
                simulator_process(spec.factory, seed=7, latency_ms=LATENCY_MS)
            )
            env[spec.base_url_setting] = url
            # The demo credentials: the same build, not served (they depend on the seed only).
            env.update(getattr(import_string(spec.factory)(seed=7), "demo_settings", {}))
        yield env


def _clusters(count: int, env: dict[str, str], logs: list[Path]) -> list[subprocess.Popen]:
    procs = []
    for log in logs[:count]:
        with open(log, "w") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"],
                    cwd=BASE_DIR,
                    # INFO: the cluster's "running" line, and the refused second deliveries.
                    env={**os.environ, **env, "Q_WORKERS": "1", "Q_LOG_LEVEL": "INFO"},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # up and waiting on the broker
        if all("running" in log.read_text() for log in logs[:count]):
            return procs
        time.sleep(0.2)
    raise RuntimeError("qcluster did not start within 60 s")


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)  # the main process only (stack notes)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _queue_runs(tag: str) -> list[int]:
    """One run of every kind per demo entity, as the pages and commands create them."""
    from integrations.apex.enroll import apex_run_from_path
    from integrations.canvas.pull import canvas_params_for, canvas_run_create
    from integrations.canvas.simulator import build as canvas_build
    from integrations.openclass.pull import openclass_run_start
    from integrations.openclass.simulator import build as openclass_build
    from integrations.titan.sync import titan_run_from_path

    trigger = f"{TRIGGER}:{tag}"
    runs = []
    for class_id, sim_class in openclass_build(seed=7).classes.items():
        run, created = openclass_run_start(
            class_id=class_id, cohort_name=sim_class.name, triggered_by=trigger
        )
        if not created:
            raise RuntimeError(f"OpenClass class {class_id} already has a live run {run.pk}")
        runs.append(run)
    canvas = canvas_build(seed=7)
    for course_id, course in canvas.courses.items():
        if course.spec.state != "available":
            continue
        runs.append(
            canvas_run_create(
                params=canvas_params_for(course_ids=[course_id]), triggered_by=trigger
            )
        )
    apex_roster = BASE_DIR / "integrations" / "apex" / "demo" / "roster.csv"
    runs.append(apex_run_from_path(apex_roster, dry_run=False, triggered_by=trigger))
    titan_roster = BASE_DIR / "integrations" / "titan" / "demo" / "roster.csv"
    runs.append(titan_run_from_path(titan_roster, dry_run=False, triggered_by=trigger))
    return [r.pk for r in runs]


def _clean_previous() -> None:
    """Runs a killed bench left live, and the cohorts the demo pulls make, go first."""
    from django.utils import timezone

    from cohorts.models import Cohort, Source
    from integrations.canvas.simulator import build as canvas_build
    from integrations.openclass.simulator import build as openclass_build
    from reports.models import ACTIVE_STATUSES, Run, RunStatus

    Run.objects.filter(triggered_by__startswith=TRIGGER, status__in=ACTIVE_STATUSES).update(
        status=RunStatus.FAILED, finished_at=timezone.now(), message="left by a killed bench"
    )
    Cohort.objects.filter(
        source=Source.OPENCLASS, external_id__in=list(openclass_build(seed=7).classes)
    ).delete()
    Cohort.objects.filter(
        source=Source.CANVAS, external_id__in=[str(c) for c in canvas_build(seed=7).courses]
    ).delete()


def _phase(count: int, data: Path, stamp: str) -> dict:
    from django.db.models import Count

    from integrations.tasks import enqueue_run
    from reports.models import FINISHED_STATUSES, Run, RunItem

    _clean_previous()
    logs = [data / f"qcluster-{count}w-{n}.log" for n in range(count)]
    with _simulators() as env:
        procs = _clusters(count, env, logs)
        try:
            began = time.monotonic()
            run_ids = _queue_runs(f"{stamp}:{count}w")
            for run_id in run_ids + run_ids:  # every task delivered twice
                enqueue_run(run_id)  # outside a transaction: sent at once
            deadline = time.monotonic() + 300
            while True:
                live = Run.objects.filter(pk__in=run_ids).exclude(status__in=FINISHED_STATUSES)
                if not live.exists():
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            seconds = time.monotonic() - began
            time.sleep(1)  # the second deliveries, still in flight, are refused meanwhile
        finally:
            _stop(procs)
    runs = list(Run.objects.filter(pk__in=run_ids))
    dup_items = (
        RunItem.objects.filter(run_id__in=run_ids)
        .values("run_id", "seq", "key", "group")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    ignored = sum(log.read_text().count("duplicate delivery ignored") for log in logs)
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return {
        "workers": count,
        "runs": len(run_ids),
        "kinds": sorted({r.kind for r in runs}),
        "seconds": round(seconds, 2),
        "runs_per_s": round(len(run_ids) / seconds, 3),
        "statuses": statuses,
        "lost": sum(1 for r in runs if not r.is_finished),
        "leases": sorted({r.lease for r in runs}),
        "claimed_more_than_once": sum(1 for r in runs if r.lease != 1),
        "duplicate_deliveries_refused": ignored,
        "duplicate_items": dup_items,
        "items": RunItem.objects.filter(run_id__in=run_ids).count(),
        # The demo data fails some rows (and one Canvas course) on purpose: say which.
        "not_succeeded": [
            f"{r.kind} {r.subject}: {r.status}: {r.message[:100]}"
            for r in runs
            if r.status != "succeeded"
        ],
    }


def run(size: str) -> Result:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    assert connection.vendor == "postgresql" and settings.Q_CLUSTER.get("redis")
    from django_q.brokers import get_broker

    get_broker().purge_queue()
    data = Path(settings.DATA_DIR)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    _say(f"one worker, simulators answering after {LATENCY_MS} ms")
    one = _phase(1, data, stamp)
    _say(f"one worker: {one['runs']} runs in {one['seconds']} s; now two workers")
    two = _phase(2, data, stamp)
    _clean_previous()  # leave the database as found (the load case copies into it)
    speedup = one["seconds"] / two["seconds"]
    problems = []
    for phase in (one, two):
        w = phase["workers"]
        if phase["lost"]:
            problems.append(f"{phase['lost']} runs never finished with {w} worker(s)")
        if phase["claimed_more_than_once"]:
            problems.append(f"{phase['claimed_more_than_once']} runs claimed twice ({w}w)")
        if phase["duplicate_items"]:
            problems.append(f"{phase['duplicate_items']} items recorded twice ({w}w)")
    notes = (
        f"{two['runs']} runs ({', '.join(two['kinds'])}) queued at once, each task delivered "
        f"twice, PostgreSQL + Redis, simulators answering after {LATENCY_MS} ms, each in its "
        f"own process. One worker: {one['seconds']} s ({one['runs_per_s']} runs/s). Two "
        f"`qcluster` processes of one worker each: {two['seconds']} s ({two['runs_per_s']} "
        f"runs/s), {speedup:.2f}x. Every run claimed once (leases {two['leases']}), "
        f"{one['duplicate_deliveries_refused']} + {two['duplicate_deliveries_refused']} "
        f"second deliveries refused, {one['duplicate_items'] + two['duplicate_items']} items "
        f"recorded twice, statuses {two['statuses']}, lost {one['lost'] + two['lost']}. "
        f"Not succeeded, as the demo data intends: {'; '.join(two['not_succeeded']) or '-'}. "
        "Each cluster prefetches up to `queue_limit` (50) tasks, so a burst is split between "
        "the clusters when it is dequeued, not when a worker frees up."
    )
    return Result(
        case=f"workers: {two['runs']} runs of every kind, 2 workers vs 1 (PostgreSQL + Redis)",
        size=size,
        seconds=two["seconds"],
        floor_seconds=one["seconds"],
        floor="the same runs with one worker",
        notes=notes,
        extra={"one_worker": one, "two_workers": two, "speedup": round(speedup, 2)},
        failed="; ".join(problems),
    )
