"""Pulls (issue 11): the OpenClass and Canvas pulls against a bare fetch of the same pages.

Each size runs the real job (`job_execute` on a queued run, report included) against the
vendor's simulator served in its own process, rate limits off, on a fresh SQLite database:
first the pull into an empty database, then the same pull again with nothing changed.
The floor, measured in the same process just before, is a bare keep-alive client
(`requests.Session`) fetching and JSON-decoding the same pages the pull reads.

Each Result's `extra` holds the run's counts and a breakdown of the pull's time: the
vendor's (HTTP), decoding, storing, the cohort's two health snapshots, the report. After
its pulls, each case measures in the same run what else bounds a pull, reported next to
the fetch floor (the ratio stays the issue's, pull / fetch floor): the change report's
health alone (`report_floor`: it needs every row, so fetch + report is the least any pull
can take) and, for OpenClass, the database-write floor (`write_floor`: the same rows,
schema and upsert through the `sqlite3` module alone).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench.harness import BenchCase, Result, best_of, simulator_process, timed

PULL_RATIO = 1.5
RERUN_RATIO = 1.2

OPENCLASS_SIZES = {"30k": (300, 100), "100k": (1000, 100)}  # students x assignments
OPENCLASS_PAGE_SIZE = 100
# Canvas: one course, students x assignments submissions (100 a page, Canvas's maximum);
# two sizes, so the peak memory shows whether it grows with the course.
CANVAS_SIZES = {"50k": (500, 100), "100k": (1000, 100)}


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _fresh_database() -> None:
    """An empty database for the first pull (the data directory outlives a bench run)."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        connection.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db['NAME']}{suffix}").unlink(missing_ok=True)
    call_command("migrate", verbosity=0)


def _breakdown(run, wall: float) -> dict:
    """Where the pull's time went, from its stage timings (seconds)."""
    timings = dict(run.stage_timings)
    parts = {k: round(v, 2) for k, v in timings.items()}
    parts["wall"] = round(wall, 2)
    parts["other"] = round(wall - sum(timings.values()), 2)
    return parts


def _timed_pull(
    run,
    *,
    case: str,
    size: str,
    floor: float,
    floor_cpu: float,
    pages: int,
    target: float,
    expected: dict[str, int],
) -> Result:
    """Run the queued pull through `job_execute`, check its counts, and describe it."""
    from integrations.jobs import job_execute

    began = _cpu()
    seconds, run = timed(lambda: job_execute(run.pk))
    cpu = _cpu() - began
    counts = dict(run.counts)
    if run.status != "succeeded" or any(counts.get(k) != n for k, n in expected.items()):
        raise SystemExit(f"bench: run {run.pk} ended {run.status}: {run.message} {counts}")
    parts = _breakdown(run, seconds)
    parts["cpu"], parts["floor_cpu"] = round(cpu, 2), round(floor_cpu, 2)
    _say(f"{case}: {seconds:.2f} s {parts}")
    return Result(
        case=case,
        size=size,
        seconds=seconds,
        floor_seconds=floor,
        floor=f"requests.Session fetching and decoding the same {pages} pages",
        target_ratio=target,
        extra={"counts": counts, "breakdown": parts},
    )


# --- OpenClass ---------------------------------------------------------------------------


def _openclass_floor(base_url: str, class_id: str, pages: int) -> float:
    """A bare keep-alive client: sign in once, then fetch and decode every page (the
    payload comes JSON-encoded inside the JSON, contract section 2: decoded too)."""
    import requests

    from integrations.openclass.simulator import DEMO_EMAIL, DEMO_PASSWORD

    session = requests.Session()
    login = session.post(
        f"{base_url}/v1/auth/login", data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
    )
    token = login.json()["result"]["token"]
    url = f"{base_url}/v1/classes/{class_id}/progressions"

    def fetch_all() -> int:
        rows = 0
        for page in range(pages):
            body = session.get(
                url,
                params={
                    "page": page,
                    "return_count": OPENCLASS_PAGE_SIZE,
                    "sort_by_completed_at": -1,
                },
                headers={"bearer": token},
            ).json()
            objects = body["result"]["objects"]
            payload = json.loads(objects[0] if isinstance(objects, list) else objects)
            rows += len(payload["data"])
        return rows

    return best_of(2, fetch_all)


def _write_floor(pages: int) -> float | None:
    """The database-write floor of a first pull (SQLite only; None elsewhere): the rows
    the pull stored, written again with the `sqlite3` module alone into a copy of the
    database with its progressions emptied (same schema, indexes, pragmas as Django's
    connection, foreign keys checked), with the pull's own upsert statement, 100 rows to a
    statement (a page), a commit every 5 pages. Only the writes and commits are timed
    (the rows are read page by page, untimed).

    One statement a page, not `executemany`: with foreign keys checked, SQLite opens a
    statement journal per execution, and `executemany` of the same rows cost twice the
    CPU (1.5 s against 0.7 s for 30,000 rows)."""
    import sqlite3
    import time

    from django.conf import settings
    from django.db import connection

    from cohorts.models import Progression
    from cohorts.services import _PROGRESSION_COLUMNS, _progression_upsert_sql

    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("sqlite3"):
        return None
    table = Progression._meta.db_table
    columns = ", ".join(Progression._meta.get_field(f).column for f in _PROGRESSION_COLUMNS)
    path = Path(f"{db['NAME']}-write-floor")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    connection.close()
    source = sqlite3.connect(db["NAME"])
    target = sqlite3.connect(path, isolation_level=None)
    try:
        source.backup(target)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            target.execute(f"PRAGMA {pragma}")
        target.execute(f"DELETE FROM {table}")
        target.execute("VACUUM")
        spent, last_id = 0.0, 0
        for page in range(pages):
            rows = source.execute(
                f"SELECT id, {columns} FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, OPENCLASS_PAGE_SIZE),
            ).fetchall()
            if not rows:
                break
            last_id = rows[-1][0]
            # The pull's statement for this many rows, with sqlite3's placeholders.
            sql = _progression_upsert_sql("sqlite", len(rows)).replace("%s", "?")
            params = [value for row in rows for value in row[1:]]
            began = time.perf_counter()
            if page % 5 == 0:
                target.execute("BEGIN IMMEDIATE")
            target.execute(sql, params)
            if page % 5 == 4:
                target.execute("COMMIT")
            spent += time.perf_counter() - began
        if target.in_transaction:
            began = time.perf_counter()
            target.execute("COMMIT")
            spent += time.perf_counter() - began
        return spent
    finally:
        source.close()
        target.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _report_floor() -> float:
    """The change report's side of a pull, alone (best of 2): its "after" on the rows the
    pull stored (the cohort's rows read once, its health computed once and stored). It
    needs every row, so no pull can overlap it with the fetch: a first pull takes at
    least the fetch floor plus this."""
    from cohorts.changes import snapshot_after
    from cohorts.models import Cohort

    pk = Cohort.objects.get().pk  # the bench database holds the one cohort pulled
    return best_of(2, lambda: snapshot_after(Cohort.objects.get(pk=pk), at=None))


def _floors_noted(results: list[Result], *, floor: float, write_floor: float | None) -> None:
    """Say, on the first pull and its re-run, what bounds each besides the fetch floor
    (the ratio's)."""
    first, rerun = results
    report = _report_floor()
    bound = floor + report
    _say(f"change report floor: {report:.2f} s")
    floors = f"Floors in this run: fetch {floor:.2f} s (the ratio's)"
    if write_floor is not None:
        floors += (
            f"; database writes {write_floor:.2f} s (the same rows, schema, pragmas and upsert "
            "statement through the sqlite3 module alone, a page a statement, a commit every 5 "
            "pages; SQLite releases the GIL while it writes, so they can overlap the fetch)"
        )
    for result in results:
        result.extra["report_floor"] = round(report, 2)
        if write_floor is not None:
            result.extra["write_floor"] = round(write_floor, 2)
    first.notes = (
        f"{floors}; the change report's health alone {report:.2f} s (the rows read and the "
        "health computed once: it needs every row, so it cannot overlap the fetch). No first "
        f"pull can take less than fetch + report = {bound:.2f} s, {bound / floor:.2f}x the "
        "fetch floor, before a row is written."
    )
    rerun.notes = (
        f"{floors}. A re-run that changed nothing writes nothing and keeps the stored health "
        "(no report computation): the fetch floor is its whole floor."
    )


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def openclass_run(size: str) -> list[Result]:
    from django.test import override_settings

    from integrations.openclass.pull import openclass_run_create
    from integrations.openclass.simulator import BENCH, DEMO_APP_ID, DEMO_EMAIL, DEMO_PASSWORD

    students, assignments = OPENCLASS_SIZES[size]
    rows = students * assignments
    pages = -(-rows // OPENCLASS_PAGE_SIZE)
    _fresh_database()
    _say(f"OpenClass simulator with {rows:,} progressions ...")
    with simulator_process(
        "integrations.openclass.simulator.build",
        bench_students=students,
        bench_assignments=assignments,
    ) as base_url:
        began = _cpu()
        floor = _openclass_floor(base_url, BENCH, pages)
        floor_cpu = (_cpu() - began) / 2
        _say(f"floor: {pages} pages in {floor:.2f} s (CPU {floor_cpu:.2f} s a round)")
        overrides = {
            "OPENCLASS_BASE_URL": base_url,
            "OPENCLASS_EMAIL": DEMO_EMAIL,
            "OPENCLASS_PASSWORD": DEMO_PASSWORD,
            "OPENCLASS_APP_ID": DEMO_APP_ID,
            "OPENCLASS_PAGE_SIZE": OPENCLASS_PAGE_SIZE,
            "OPENCLASS_REQUESTS_PER_SECOND": 0,  # 0: no limit (integrations.http.RateLimiter)
        }
        results = []
        with override_settings(**overrides):
            for label, created, unchanged, target in (
                ("first pull", rows, 0, PULL_RATIO),
                ("unchanged re-run", 0, rows, RERUN_RATIO),
            ):
                run = openclass_run_create(class_id=BENCH, triggered_by="bench")
                results.append(
                    _timed_pull(
                        run,
                        case=f"OpenClass pull, {rows:,} progressions: {label}",
                        size=size,
                        floor=floor,
                        floor_cpu=floor_cpu,
                        pages=pages,
                        target=target,
                        expected={"created": created, "unchanged": unchanged},
                    )
                )
    # What else bounds a pull, in the same run (after the pulls, from the rows they
    # stored): next to the fetch floor, which stays the ratio's.
    write_floor = _write_floor(pages)
    if write_floor is not None:
        _say(f"database-write floor: {rows:,} rows in {write_floor:.2f} s")
    _floors_noted(results, floor=floor, write_floor=write_floor)
    return results


# --- Canvas ------------------------------------------------------------------------------


def _canvas_floor(base_url: str, course_id: str) -> tuple[float, int]:
    """A bare keep-alive client reading what a full-profile course pull reads, in the same
    order, 100 a page, following `Link: rel="next"`: (best seconds, pages)."""
    import requests

    from integrations.canvas.simulator import DEMO_TOKEN

    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {DEMO_TOKEN}"})
    course = f"{base_url}/api/v1/courses/{course_id}"
    lists = [
        (f"{course}/enrollments", [("type[]", "StudentEnrollment"), ("state[]", "active")]),
        (
            f"{course}/users",
            [
                ("enrollment_type[]", "student"),
                ("enrollment_state[]", "active"),
                ("include[]", "email"),
            ],
        ),
        (f"{course}/assignments", []),
        (f"{course}/students/submissions", [("student_ids[]", "all")]),
        (f"{course}/modules", [("include[]", "items")]),
    ]

    def fetch_all() -> int:
        session.get(course, params=[("include[]", "term")]).json()
        pages = 1
        for url, params in lists:
            response = session.get(url, params=[*params, ("per_page", "100")])
            while True:
                response.json()
                pages += 1
                link = response.links.get("next", {}).get("url")
                if not link:
                    break
                response = session.get(link)
        return pages

    pages = fetch_all()
    return best_of(2, fetch_all), pages


def canvas_run(size: str) -> list[Result]:
    from django.test import override_settings

    from integrations.canvas.pull import canvas_run_create
    from integrations.canvas.simulator import ACCOUNT_ID, BENCH_COURSE, DEMO_TOKEN

    students, assignments = CANVAS_SIZES[size]
    rows = students * assignments
    _fresh_database()
    _say(f"Canvas simulator with {rows:,} submissions ...")
    with simulator_process(
        "integrations.canvas.simulator.build",
        bench_students=students,
        bench_assignments=assignments,
        request_cost=0,  # the throttle off: every request is refunded in full
    ) as base_url:
        began = _cpu()
        floor, pages = _canvas_floor(base_url, BENCH_COURSE)
        floor_cpu = (_cpu() - began) / 3
        _say(f"floor: {pages} pages in {floor:.2f} s (CPU {floor_cpu:.2f} s a round)")
        overrides = {
            "CANVAS_BASE_URL": base_url,
            "CANVAS_TOKEN": DEMO_TOKEN,
            "CANVAS_ACCOUNT_ID": ACCOUNT_ID,
            "CANVAS_REQUESTS_PER_SECOND": 0,  # 0: no limit (integrations.http.RateLimiter)
            "CANVAS_RATE_LIMIT_FLOOR": 0,
        }
        results = []
        with override_settings(**overrides):
            # The re-run reads every submission again (full_refresh), as the first pull did.
            records = rows + students + assignments
            for label, first, target, extra_params in (
                ("first pull", True, PULL_RATIO, {}),
                ("unchanged re-run", False, RERUN_RATIO, {"full_refresh": True}),
            ):
                params = {"mode": "course", "course_id": BENCH_COURSE, **extra_params}
                run = canvas_run_create(params=params, triggered_by="bench")
                # Counts include the students and assignments as well as the submissions.
                expected = (
                    {"created": records, "unchanged": 0}
                    if first
                    else {"created": 0, "updated": 0, "unchanged": records}
                )
                results.append(
                    _timed_pull(
                        run,
                        case=f"Canvas course pull, {rows:,} submissions: {label}",
                        size=size,
                        floor=floor,
                        floor_cpu=floor_cpu,
                        pages=pages,
                        target=target,
                        expected=expected,
                    )
                )
    _floors_noted(results, floor=floor, write_floor=None)
    return results


CASES = (
    BenchCase(
        name="openclass-pull",
        func="bench.cases.pulls.openclass_run",
        sizes=tuple(OPENCLASS_SIZES),
        timeout=900,
    ),
    BenchCase(
        name="canvas-pull",
        func="bench.cases.pulls.canvas_run",
        sizes=tuple(CANVAS_SIZES),
        timeout=900,
    ),
)
