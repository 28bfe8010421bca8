"""Benchmarks of the roster jobs (issue 11): APEX enrollment, Titan planning, validating a
large roster file. Each size runs in its own child process (bench/child.py); the vendors'
simulators run in processes of their own (`simulator_process`).

- `apex-enroll`: the enrollment job (`job_execute`, as the queue runs it) against the APEX
  simulator answering every request after 20 ms. Floor: the requests the batching needs
  (a token plus ceil(students / APEX_BATCH_SIZE) per classroom, counted from the file) x
  20 ms / APEX_CONCURRENCY, or, when the request rate binds, those requests / the rate.
  Each size runs twice: once with a rate that cannot bind (the latency floor), once with
  a rate that does; both prove, from the simulator's own arrival times, that no 1-second
  window held more requests than APEX_REQUESTS_PER_SECOND.
- `titan-plan`: the Titan preview (a dry-run sync, as the upload and `sync_titan
  --dry-run` run it) of a roster against as many current memberships. Floor: reading the
  CSV with the csv module plus fetching the same pages from the simulator with a bare
  keep-alive client, json-decoded.
- `roster-validate`: `integrations.rosters.table_read` with the APEX schema on a large
  roster (duplicates, conflicts and bad rows included). Floor: the csv module reading the
  same file.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench.harness import BenchCase, Result, best_of, simulator_process, timed

SIZES = {"10k": 10_000, "50k": 50_000, "30k": 30_000, "100k": 100_000}
SIZES.update({"300k": 300_000, "1m": 1_000_000})

APEX_LATENCY_MS = 20
APEX_BATCH = 50
APEX_CONCURRENCY = 4
APEX_STUDENTS_PER_CLASSROOM = 100
# A rate the latency floor can never reach (4 threads x 1 / 20 ms = 200 requests a second
# at most), and one that binds (the run then takes about requests / rate).
APEX_RATE_FREE = 250
APEX_RATE_BOUND = 100


def say(text: str) -> None:
    print(f"  [jobs] {text}", file=sys.stderr, flush=True)


def _data_dir() -> Path:
    from django.conf import settings

    path = Path(settings.DATA_DIR) / "bench-input"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _configure(**values) -> None:
    from django.conf import settings

    for name, value in values.items():
        setattr(settings, name, value)


# --- APEX enrollment ---------------------------------------------------------------------
def apex_roster_write(path: Path, rows: int) -> None:
    """`rows` rows over rows / 100 classrooms, interleaved (row i is in classroom i mod
    classrooms), every student distinct: nothing to skip, everything to send."""
    classrooms = max(1, rows // APEX_STUDENTS_PER_CLASSROOM)
    with path.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["ClassroomName", "StudentId"])
        for i in range(rows):
            w.writerow([f"CLS-{i % classrooms:04d}", f"S{1_000_000 + i}"])


def apex_requests_needed(path: Path, batch: int) -> tuple[int, int]:
    """(requests, classrooms) the batching needs, counted from the file with the csv
    module: one token, then ceil(distinct students / batch) per classroom."""
    students: dict[str, set[str]] = defaultdict(set)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        for classroom, student in reader:
            students[classroom].add(student)
    return 1 + sum(math.ceil(len(s) / batch) for s in students.values()), len(students)


def _apex_run(path: Path, rows: int, rate: int) -> dict:
    import requests

    from integrations.apex.enroll import apex_run_create
    from integrations.apex.simulator import (
        ARRIVALS_PATH,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        DEMO_ORG,
        max_in_window,
    )
    from integrations.jobs import job_execute
    from integrations.rosters import roster_store_path

    factory = "integrations.apex.simulator.build"
    # The simulator throttles above the same rate (429): a breach would also show there.
    with simulator_process(factory, latency_ms=APEX_LATENCY_MS, rate_limit=rate) as url:
        _configure(
            APEX_BASE_URL=url,
            APEX_CLIENT_ID=DEMO_CLIENT_ID,
            APEX_CLIENT_SECRET=DEMO_CLIENT_SECRET,
            APEX_ORG_ID=DEMO_ORG,
            APEX_BATCH_SIZE=APEX_BATCH,
            APEX_CONCURRENCY=APEX_CONCURRENCY,
            APEX_REQUESTS_PER_SECOND=rate,
        )
        upload, refusal = roster_store_path(path)
        assert upload is not None, refusal
        run = apex_run_create(upload=upload, dry_run=False, triggered_by="bench")
        cpu = time.process_time()
        seconds, run = timed(lambda: job_execute(run.pk))
        cpu = time.process_time() - cpu
        arrivals = requests.get(url + ARRIVALS_PATH, timeout=30).json()["arrivals"]
        # What a bare client gets from the same simulator: the transport's own floor.
        bare = plain = None
        if rate == APEX_RATE_FREE:
            bare = _bare_posts(url, len(arrivals))
            plain = _bare_posts(url, len(arrivals), client="http.client")
    assert run is not None and run.status == "succeeded", (run and run.status, run.message)
    assert run.counts.get("enrolled") == rows, run.counts
    sent = [a for a in arrivals if a[2] != ARRIVALS_PATH]
    times = [t for t, _method, _path in sent]
    return {
        "seconds": seconds,
        "requests_seen": len(sent),
        "max_per_1s": max_in_window(times, 1.0),
        "cpu_seconds": round(cpu, 2),
        "stage_timings": run.stage_timings,
        "bare_client_seconds": bare,
        "bare_http_client_seconds": plain,
    }


def _bare_posts(url: str, count: int, *, client: str = "requests") -> float:
    """`count` POSTs of a batch-sized body from APEX_CONCURRENCY threads, each on its own
    keep-alive connection, to a path the simulator answers at once (after its latency): no
    validation, no database, no token, no retries. `client`: a `requests.Session` (the
    HTTP client of integrations/http.py), or the standard library's `http.client` (what
    the transport costs under any client: one send a request, nothing else)."""
    import http.client
    import threading
    from urllib.parse import urlsplit

    import requests

    body = {"students": [{"StudentId": f"s{i}"} for i in range(APEX_BATCH)]}
    raw = json.dumps(body).encode()
    each, extra = divmod(count, APEX_CONCURRENCY)
    share = [each + (i < extra) for i in range(APEX_CONCURRENCY)]

    def send(n: int) -> None:
        session = requests.Session()
        for _ in range(n):
            session.post(f"{url}/_bench/bare", json=body, timeout=30)

    def send_plain(n: int) -> None:
        where = urlsplit(url)
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        try:
            for _ in range(n):
                connection.request("POST", "/_bench/bare", body=raw, headers=headers)
                json.loads(connection.getresponse().read())
        finally:
            connection.close()

    target = send if client == "requests" else send_plain
    threads = [threading.Thread(target=target, args=(n,)) for n in share]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(time.perf_counter() - began, 3)


def _apex_stages_note(got: dict) -> str:
    """Where the job's time went, from its own stage timings: the whole file is read and
    validated before the first request (a later row can void an earlier one), then the
    requests; compared with the bare client's requests when there is one."""
    stages = got.get("stage_timings") or {}
    validate, enroll = stages.get("validate"), stages.get("enroll")
    if validate is None or enroll is None:
        return ""
    note = f"; stages: validate {validate:.2f} s before the first request, enroll {enroll:.2f} s"
    bare = got.get("bare_client_seconds")
    if bare:
        note += f" ({enroll / bare:.2f}x the bare client)"
    return note + f", job CPU {got['cpu_seconds']} s"


def apex_enroll(size: str) -> list[Result]:
    rows = SIZES[size]
    _migrate()
    path = _data_dir() / f"apex-{rows}.csv"
    apex_roster_write(path, rows)
    needed, classrooms = apex_requests_needed(path, APEX_BATCH)
    latency = APEX_LATENCY_MS / 1000
    results = []
    for rate in (APEX_RATE_FREE, APEX_RATE_BOUND):
        say(f"apex {size}: {rows} rows, {classrooms} classrooms, {needed} requests, rate {rate}/s")
        got = _apex_run(path, rows, rate)
        say(
            f"apex {size}: {got['seconds']:.2f} s ({got['cpu_seconds']} s CPU), "
            f"stages {got['stage_timings']}"
        )
        if got["max_per_1s"] > rate:
            raise SystemExit(
                f"APEX rate exceeded: {got['max_per_1s']} requests arrived within one second, "
                f"more than APEX_REQUESTS_PER_SECOND={rate}"
            )
        latency_floor = needed * latency / APEX_CONCURRENCY
        rate_floor = needed / rate
        bound = "rate" if rate_floor > latency_floor else "latency"
        floor = max(latency_floor, rate_floor)
        floor_words = (
            f"{needed} requests x {APEX_LATENCY_MS} ms / {APEX_CONCURRENCY} threads"
            if bound == "latency"
            else f"{needed} requests / {rate} per second"
        )
        results.append(
            Result(
                case=f"APEX enrollment, {rows:,} rows over {classrooms} classrooms "
                f"({bound}-bound, rate {rate}/s)",
                size=size if bound == "latency" else f"{size} rate",
                seconds=round(got["seconds"], 3),
                floor_seconds=round(floor, 3),
                floor=floor_words,
                target_ratio=1.3,
                notes=(
                    f"max {got['max_per_1s']} requests in any 1 s (limit {rate}), "
                    f"{got['requests_seen']} requests seen (needed {needed})"
                    + (
                        f"; a bare client sending as many POSTs from {APEX_CONCURRENCY} "
                        f"threads to the same simulator took {got['bare_client_seconds']} s "
                        f"({got['bare_client_seconds'] / floor:.2f}x this floor; the job is "
                        f"{got['seconds'] / got['bare_client_seconds']:.2f}x that); the "
                        "same POSTs through the standard library's http.client took "
                        f"{got['bare_http_client_seconds']} s "
                        f"({got['bare_http_client_seconds'] / floor:.2f}x this floor: the "
                        "difference is the requests library's own work)"
                        if got.get("bare_client_seconds")
                        else ""
                    )
                    + _apex_stages_note(got)
                ),
                extra=got,
            )
        )
    return results


# --- Titan planning ----------------------------------------------------------------------
def titan_floor_fetch(url: str, key: str, per_page: int = 100, threads: int = 1) -> int:
    """Every page the plan reads (sites, roles, users, each site's members), fetched with
    bare keep-alive sessions and json-decoded; returns the number of pages. `threads`: one
    session reads the pages one after the other; more read each list's first page, then
    every other page, that many at a time (a session per thread), as the job may
    (TITAN_READ_CONCURRENCY)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    local = threading.local()

    def get(path: str, page: int | None = None) -> dict:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers.update({"X-API-Key": key, "Accept": "application/json"})
        params = None if page is None else {"page": page, "per_page": per_page}
        return session.get(url + path, params=params).json()

    sites = get("/api/v1/sites")["data"]
    get("/api/v1/roles")
    lists = ["/api/v1/users", *(f"/api/v1/sites/{site['id']}/members" for site in sites)]
    if threads < 2:
        pages = 2
        for path in lists:
            page = 1
            while True:
                data = get(path, page)
                pages += 1
                if page >= data["meta"]["total_pages"] or not data["data"]:
                    break
                page += 1
        return pages
    with ThreadPoolExecutor(max_workers=threads) as pool:
        firsts = list(pool.map(lambda path: get(path, 1), lists))
        rest = [
            (path, page)
            for path, first in zip(lists, firsts, strict=True)
            if first["data"]
            for page in range(2, first["meta"]["total_pages"] + 1)
        ]
        for _ in pool.map(lambda job: get(*job), rest):
            pass
    return 2 + len(lists) + len(rest)


def csv_floor_read(path: Path) -> int:
    """The csv module reading the file, nothing else: the rows it holds."""
    n = 0
    with path.open(newline="", encoding="utf-8") as f:
        for _ in csv.reader(f):
            n += 1
    return n


def titan_plan(size: str) -> Result:
    from django.conf import settings

    from integrations.jobs import job_execute
    from integrations.rosters import roster_store_path
    from integrations.titan.bench import bench_csv, bench_state
    from integrations.titan.simulator import DEMO_API_KEY
    from integrations.titan.sync import titan_run_create

    memberships = SIZES[size]
    _migrate()
    path = _data_dir() / f"titan-{memberships}.csv"
    rows = bench_csv(path, bench_state(memberships))
    factory = "integrations.titan.simulator.build"
    with simulator_process(factory, bench_memberships=memberships) as url:
        _configure(
            TITAN_BASE_URL=url,
            TITAN_API_KEY=DEMO_API_KEY,
            TITAN_REQUESTS_PER_SECOND=0,
            TITAN_PER_PAGE=100,
        )
        threads = settings.TITAN_READ_CONCURRENCY
        say(f"titan {size}: floor (csv + {memberships} memberships over HTTP)")
        csv_seconds = best_of(2, lambda: csv_floor_read(path))
        one_seconds = best_of(2, lambda: titan_floor_fetch(url, DEMO_API_KEY))
        many_seconds = best_of(2, lambda: titan_floor_fetch(url, DEMO_API_KEY, threads=threads))
        pages = titan_floor_fetch(url, DEMO_API_KEY)
        assert pages == titan_floor_fetch(url, DEMO_API_KEY, threads=threads)
        fetch_seconds = min(one_seconds, many_seconds)
        say(f"titan {size}: the dry-run sync ({rows} rows)")
        upload, refusal = roster_store_path(path)
        assert upload is not None, refusal
        run = titan_run_create(upload=upload, dry_run=True, triggered_by="bench")
        cpu = time.process_time()
        seconds, run = timed(lambda: job_execute(run.pk))
        cpu = time.process_time() - cpu
    assert run is not None and run.status == "succeeded", (run and run.status, run.message)
    say(f"titan {size}: {seconds:.2f} s ({cpu:.2f} s CPU), stages {run.stage_timings}")
    floor = csv_seconds + fetch_seconds
    return Result(
        case=f"Titan planning (dry-run sync), {rows:,} rows against {memberships:,} memberships",
        size=size,
        seconds=round(seconds, 3),
        floor_seconds=round(floor, 3),
        floor=(
            f"csv module reading the file {csv_seconds:.2f} s + {pages} pages fetched bare "
            f"{fetch_seconds:.2f} s (the faster of one session: {one_seconds:.2f} s, and "
            f"{threads} threads: {many_seconds:.2f} s)"
        ),
        target_ratio=5,
        target_seconds=10,
        notes=json.dumps({k: run.counts.get(k) for k in ("rows", "to_remove", "to_update")}),
        extra={
            "stage_timings": run.stage_timings,
            "counts": run.counts,
            "cpu_seconds": round(cpu, 2),
            "floor_fetch_one_session_seconds": round(one_seconds, 3),
            "floor_fetch_threads_seconds": round(many_seconds, 3),
        },
    )


# --- validating a large roster ------------------------------------------------------------
def roster_file_write(path: Path, rows: int) -> None:
    """An APEX roster of `rows` rows over 2,000 classrooms: every 1,000th row repeats the
    row before it (a duplicate), every 5,000th repeats it with another OrgId (a conflict),
    every 997th has an empty StudentId (an invalid row)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["ClassroomName", "StudentId", "OrgId"])
        previous = ["CLS-0000", "S1000000", ""]
        for i in range(rows - 1):
            if i % 5000 == 4999:
                w.writerow([previous[0], previous[1], "ORG-NORTH"])
                continue
            if i % 1000 == 999:
                w.writerow(previous)
                continue
            row = [f"CLS-{i % 2000:04d}", "" if i % 997 == 996 else f"S{1_000_000 + i}", ""]
            w.writerow(row)
            previous = row
        w.writerow(["CLS-0001", "S999999999", "ORG-DEMO"])


def roster_validate(size: str) -> Result:
    from integrations.apex.roster import apex_schema
    from integrations.rosters import table_read

    rows = SIZES[size]
    path = _data_dir() / f"roster-{rows}.csv"
    roster_file_write(path, rows)
    _configure(ROSTER_MAX_BYTES=1 << 30)
    say(f"roster {size}: {path.stat().st_size / 2**20:.1f} MiB")
    floor = best_of(2, lambda: csv_floor_read(path))
    began = time.perf_counter()
    table = table_read(path, apex_schema("ORG-DEMO"), keep_rows=False)
    seconds = time.perf_counter() - began
    assert table.rows == rows, table.rows
    return Result(
        case=f"validating a {rows:,}-row APEX roster (table_read)",
        size=size,
        seconds=round(seconds, 3),
        floor_seconds=round(floor, 3),
        floor="the csv module reading the same file",
        notes=f"{table.invalid} invalid rows, {table.duplicates} duplicates",
        extra={"rows": table.rows, "invalid": table.invalid, "duplicates": table.duplicates},
    )


CASES = (
    BenchCase("apex-enroll", "bench.cases.jobs.apex_enroll", sizes=("10k", "50k"), timeout=300),
    BenchCase("titan-plan", "bench.cases.jobs.titan_plan", sizes=("30k", "100k"), timeout=300),
    BenchCase(
        "roster-validate", "bench.cases.jobs.roster_validate", sizes=("300k", "1m"), timeout=300
    ),
)
