"""The health page and its API on the bench cohort (issue 11): 500 students x 400
assignments (200,000 progressions) in a database of 1,000,000.

Every row times the real view through `django.test.Client`, signed in as the bench cohort's
mentor (`generate_bench_cohort --bench-mentor`), the median of several renders after a
warm-up, against the floor measured in the same process right after each row (the shared
machine's load moves both): the one SQL query that aggregates the cohort per student
(completions, last activity, quiz average), best of six.

The data lives in var/bench/cohort-1m (shared with the load test): generated once, about a
minute, deterministic for its seed.
"""

from __future__ import annotations

import statistics
import sys
import time

from bench.harness import BenchCase, Result, best_of, timed

CASES = (
    BenchCase(
        name="health-page",
        func="bench.cases.health.run",
        shared_data="cohort-1m",
        timeout=900,
    ),
)

EXTERNAL_ID = "bench-500x400"
TOTAL = 1_000_000
RENDERS = 7
FLOOR = "one SQL query aggregating the cohort per student"

# The floor: per student, completions (distinct assignments), last start, completion and
# review, quiz average and graded quizzes: what the health table classifies from.
FLOOR_SQL = """
SELECT p.student_id,
       COUNT(DISTINCT CASE WHEN p.completed_at IS NOT NULL THEN p.assignment_id END),
       MAX(p.started_at), MAX(p.completed_at), MAX(p.reviewed_at),
       AVG(CASE WHEN a.kind = 'quiz' AND p.grade IS NOT NULL THEN p.grade END),
       COUNT(CASE WHEN a.kind = 'quiz' AND p.grade IS NOT NULL THEN 1 END)
FROM cohorts_progression p JOIN cohorts_assignment a ON a.id = p.assignment_id
WHERE p.cohort_id = %s AND a.published
GROUP BY p.student_id
"""


def _say(text: str) -> None:
    print(f"  health-page: {text}", file=sys.stderr, flush=True)


def _data():
    from django.core.management import call_command

    from cohorts.models import Cohort, Progression

    call_command("migrate", verbosity=0)
    cohort = Cohort.objects.filter(external_id=EXTERNAL_ID).first()
    if cohort is None or Progression.objects.count() < TOTAL:
        _say("generating 1,000,000 progressions (about a minute, once)")
        seconds, _ = timed(
            lambda: call_command(
                "generate_bench_cohort", "--total-progressions", str(TOTAL), "--replace"
            )
        )
        _say(f"generated in {seconds:.0f} s")
        cohort = Cohort.objects.get(external_id=EXTERNAL_ID)
    from django.contrib.staticfiles.storage import staticfiles_storage

    try:
        staticfiles_storage.url("js/charts.js")
    except ValueError:
        _say("collecting static files (once)")
        call_command("collectstatic", interactive=False, verbosity=0)
    return cohort


def _floor(cohort, n: int = 3) -> float:
    from django.db import connection

    def query():
        with connection.cursor() as cursor:
            cursor.execute(FLOOR_SQL, [cohort.pk])
            return cursor.fetchall()

    return best_of(n, query)


def _render(client, url: str) -> float:
    began = time.perf_counter()
    response = client.get(url, secure=True)
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)
    seconds = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code}")
    return seconds


def _median(client, url: str, n: int = RENDERS) -> tuple[float, int]:
    """Median of n renders after one warm-up, and the queries of the last one."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _render(client, url)
    times = []
    for _ in range(n):
        with CaptureQueriesContext(connection) as queries:
            times.append(_render(client, url))
    return statistics.median(times), len(queries)


def run(size: str) -> list[Result]:
    from django.test import Client
    from django.urls import reverse

    from cohorts import health_store
    from cohorts.changes import snapshot_after, snapshot_before, snapshot_take
    from cohorts.management.commands.generate_bench_cohort import (
        BENCH_MENTOR,
        BENCH_MENTOR_PASSWORD,
    )
    from cohorts.models import Cohort

    cohort = _data()
    client = Client(HTTP_HOST="localhost")
    if not client.login(username=BENCH_MENTOR, password=BENCH_MENTOR_PASSWORD):
        raise RuntimeError(f"{BENCH_MENTOR} cannot sign in: regenerate var/bench/cohort-1m")
    pk = cohort.pk
    student = cohort.students.order_by("id").first().pk
    page = reverse("cohorts:detail", args=[pk])

    _say(f"floor {_floor(cohort, 5):.3f} s")
    results: list[Result] = []

    def row(case, seconds, *, ratio=None, limit=None, notes="", **extra):
        # The floor again, next to each row: the shared machine's load moves both.
        floor = min(_floor(cohort), _floor(cohort))
        results.append(
            Result(
                case=case,
                size=size,
                seconds=round(seconds, 4),
                floor_seconds=round(floor, 4),
                floor=FLOOR,
                target_ratio=ratio,
                target_seconds=limit,
                notes=notes,
                extra=extra,
            )
        )
        _say(f"{case}: {seconds:.3f} s ({seconds / floor:.1f}x the floor)")

    _render(client, page)  # the process's first render: imports, templates
    # The pull's end as every pull runs it (integrations.changes.cohort_changes_recorded):
    # the "before" from storage, the data marked changed, the "after" read once and stored.
    # The old way took two full snapshots; one is timed here for comparison.
    health_store.health_refresh(Cohort.objects.get(pk=pk))
    old_snapshot, _ = timed(lambda: snapshot_take(Cohort.objects.get(pk=pk)))

    def pull_end():
        before = snapshot_before(Cohort.objects.get(pk=pk))
        health_store.cohort_data_changed(pk)
        snapshot_after(Cohort.objects.get(pk=pk), at=before.at)

    # Three pulls' ends, each followed by the first view after it (the pull stored what
    # it serves): medians.
    ends, firsts = [], []
    for _ in range(3):
        ends.append(timed(pull_end)[0])
        firsts.append(_render(client, page))
    row(
        "pull's change report and stored health (before read, after computed once)",
        statistics.median(ends),
        notes=f"before: two full snapshots, {2 * old_snapshot:.2f} s",
        old_two_snapshots_seconds=round(2 * old_snapshot, 3),
    )
    row("health page, first view after a pull", statistics.median(firsts), ratio=3, limit=0.15)

    # Cold: a view that finds it stale (data changed outside a pull, or older than the
    # bound) computes it from the rows and stores it.
    cold = []
    for _ in range(3):
        health_store.cohort_data_changed(pk)
        cold.append(_render(client, page))
    row(
        "health page, cold (stale: computed from 200,000 rows and stored)",
        statistics.median(cold),
        notes="once per pull or per HEALTH_MAX_AGE_SECONDS",
    )

    seconds, queries = _median(client, page)
    row("health page, default view (stored)", seconds, ratio=3, limit=0.15, queries=queries)

    seconds, queries = _median(client, page + "?unit=Week+3", n=3)
    row("health page, filtered by unit (live)", seconds, limit=0.5, queries=queries)
    seconds, queries = _median(client, page + "?freq=W", n=3)
    row("health page, chart by week (live)", seconds, limit=0.5, queries=queries)

    seconds, queries = _median(client, reverse("cohorts:student", args=[pk, student]))
    row("student page", seconds, queries=queries)
    seconds, queries = _median(client, reverse("cohorts:table_csv", args=[pk, "students"]))
    row("students CSV", seconds, queries=queries)

    for name in (
        "api_progress_summary",
        "api_metrics_completion",
        "api_metrics_blockers",
        "api_metrics_student_health",
        "api_metrics_progress_over_time",
    ):
        seconds, queries = _median(client, reverse(f"cohorts:{name}", args=[pk]))
        row(
            f"API {name.removeprefix('api_').replace('_', ' ')}",
            seconds,
            limit=0.3,
            queries=queries,
        )
    return results
