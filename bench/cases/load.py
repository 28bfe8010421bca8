"""Case `load`: the site served as in production, under signed-in mentors (locust).

gunicorn serves `config.wsgi` (whitenoise serves the static files from the same
processes), DEBUG=false, on loopback, with the command docs/operations.md gives, against
the bench cohort (`manage.py generate_bench_cohort`: 200,000 progressions in the cohort,
the database padded to 1,000,000; the health-page case's data directory, shared). locust
(bench/locustfile.py) then runs 10 and then 50
concurrent mentors for BENCH_LOAD_SECONDS (20) each, headless, without think time, mixing
the health page, the student page, two CSVs and three API answers (with an API key made by
`manage.py create_api_token`). Reported per level: requests/s, p50/p95/p99, errors. Any
error fails the case.

Sizes: `sqlite` (the default deployment) and `postgresql` (DATABASE_URL; the same cohort
copied into it once and kept). The mentor is the generator's `bench-mentor` (made here
too for a database generated before it did).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import BASE_DIR, BenchCase, Result

COHORT = "bench-500x400"
LEVELS = (10, 50)
WEIGHTS = {
    "page: health": 4,
    "page: student": 4,
    "csv: students": 1,
    "csv: student timeline": 1,
    "api: student health": 1,
    "api: blockers": 1,
    "api: progressions of a student": 1,
}

CASES = (
    BenchCase(
        name="load",
        func="bench.cases.load.run",
        sizes=("sqlite", "postgresql"),
        size_needs={"postgresql": ("postgres",)},
        shared_data="cohort-1m",  # the health-page case's: the cohort is generated once
        timeout=900,
    ),
)


def gunicorn_command(port: int, workers: int) -> list[str]:
    """The production command (docs/operations.md), on loopback."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        # gunicorn 23+ opens a control socket in $HOME (shared by every instance of the
        # user); the service needs none.
        "--no-control-socket",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _say(text: str) -> None:
    print(f"load: {text}", file=sys.stderr, flush=True)


def _prepare(total: int) -> dict:
    """Migrate, static files, the bench cohort, its mentor, sessions and an API key."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from cohorts.management.commands.generate_bench_cohort import (
        BENCH_MENTOR as MENTOR,
    )
    from cohorts.management.commands.generate_bench_cohort import (
        BENCH_MENTOR_PASSWORD as MENTOR_PASSWORD,
    )
    from cohorts.models import ApiToken, Cohort, Progression

    call_command("migrate", verbosity=0)
    if not (BASE_DIR / "static" / "vendor" / "plotly.min.js").exists():
        call_command("vendor_plotly", stdout=io.StringIO())
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    sources = [p for d in settings.STATICFILES_DIRS for p in Path(d).rglob("*") if p.is_file()]
    if not manifest.exists() or manifest.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        call_command("collectstatic", interactive=False, verbosity=0)  # tens of seconds
    generated = ""
    sqlite_copy = Path(settings.DATA_DIR) / "classbridge.sqlite3"
    if not Cohort.objects.filter(external_id=COHORT).exists():
        began = time.monotonic()
        if (
            connection.vendor == "postgresql"
            and sqlite_copy.exists()
            and _sqlite_has_cohort(sqlite_copy)
        ):
            _say("copying the bench cohort from the sqlite size's database (COPY)")
            copied = _copy_from_sqlite(sqlite_copy)
            generated = (
                f"copied with COPY from the SQLite size's database in "
                f"{time.monotonic() - began:.0f} s this run ({copied:,} rows)"
            )
        else:
            _say(f"generating the bench cohort, {total:,} progressions ({connection.vendor})")
            call_command("generate_bench_cohort", "--total-progressions", str(total))
            generated = f"generated in {time.monotonic() - began:.0f} s this run"
    cohort = Cohort.objects.get(external_id=COHORT)
    mentor = cohort.mentors.filter(username=MENTOR).first()
    if mentor is None:  # a database generated before the generator made the mentor
        mentor, _ = get_user_model().objects.get_or_create(username=MENTOR)
        mentor.set_password(MENTOR_PASSWORD)
        mentor.save()
        cohort.mentors.add(mentor)
    Group.objects.get_or_create(name=settings.MENTOR_GROUP)[0].user_set.add(mentor)
    sessions = []
    for _ in range(max(LEVELS)):
        client = Client()
        client.force_login(mentor)
        sessions.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    ApiToken.objects.filter(user=mentor, name="bench load").delete()
    out = io.StringIO()
    call_command(
        "create_api_token", MENTOR, "--name", "bench load", stdout=out, stderr=io.StringIO()
    )
    students = list(cohort.students.order_by("pk").values_list("pk", flat=True))
    pk, s = cohort.pk, 999_999_999
    paths = {
        "page: health": reverse("cohorts:detail", args=[pk]),
        "page: student": reverse("cohorts:student", args=[pk, s]),
        "csv: students": reverse("cohorts:table_csv", args=[pk, "students"]),
        "csv: student timeline": reverse("cohorts:student_csv", args=[pk, s, "timeline"]),
        "api: student health": reverse("cohorts:api_metrics_student_health", args=[pk]),
        "api: blockers": reverse("cohorts:api_metrics_blockers", args=[pk]),
        "api: progressions of a student": reverse("cohorts:api_progressions", args=[pk])
        + f"?student={s}",
    }
    paths = {k: v.replace(str(s), "{student}") for k, v in paths.items()}
    return {
        "sessions": sessions,
        "token": out.getvalue().strip(),
        "paths": paths,
        "students": students,
        "weights": WEIGHTS,
        "cohort_progressions": Progression.objects.filter(cohort=cohort).count(),
        "database_progressions": Progression.objects.count(),
        "generated": generated,
        "vendor": connection.vendor,
    }


COPIED = ("Cohort", "Person", "Student", "Enrollment", "Assignment", "Progression")


def _sqlite_has_cohort(path: Path) -> bool:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            found = db.execute("SELECT 1 FROM cohorts_cohort WHERE external_id = ?", (COHORT,))
        except sqlite3.OperationalError:
            return False
        return found.fetchone() is not None


def _copy_from_sqlite(path: Path) -> int:
    """The cohorts tables of the SQLite bench database into PostgreSQL with COPY
    (generate_bench_cohort through the ORM takes minutes for 1,000,000 rows). Ids are
    shifted past the rows already there (e.g. the cohorts of the `workers` case)."""
    import sqlite3

    from django.apps import apps
    from django.core.management.color import no_style
    from django.db import connection, transaction
    from django.db.models import Max

    models = [apps.get_model("cohorts", name) for name in COPIED]
    offsets = {m: m.objects.aggregate(top=Max("pk"))["top"] or 0 for m in models}
    rows = 0
    with (
        contextlib.closing(sqlite3.connect(path)) as db,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        for model in models:
            table = model._meta.db_table
            fields = model._meta.concrete_fields
            shift = [
                offsets[model]
                if f.primary_key
                else offsets.get(f.related_model, 0)
                if f.is_relation
                else 0
                for f in fields
            ]
            names = ", ".join(f'"{f.column}"' for f in fields)
            source = db.execute(f'SELECT {names} FROM "{table}"')  # our own names
            with cursor.cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for row in source:
                    if any(shift):
                        row = [
                            v + d if d and v is not None else v
                            for v, d in zip(row, shift, strict=True)
                        ]
                    copy.write_row(row)
                    rows += 1
        for sql in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(sql)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return rows


def _alone(config: dict) -> dict[str, float]:
    """Each request of the mix alone, in this process through Django's whole stack (test
    client, no server): the CPU one request costs, the bound on what the server can do."""
    from django.test import Client

    from bench.harness import timed

    client = Client(HTTP_HOST="127.0.0.1")
    client.cookies["sessionid"] = config["sessions"][0]
    token = {"HTTP_AUTHORIZATION": f"Token {config['token']}"}
    alone = {}
    for name, path in config["paths"].items():
        url = path.format(student=config["students"][0])
        extra = token if name.startswith("api") else {}

        def get(url=url, extra=extra) -> None:
            response = client.get(url, **extra)
            if getattr(response, "streaming", False):
                b"".join(response.streaming_content)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {response.status_code} in-process")

        get()  # warm-up
        alone[name] = round(min(timed(get)[0] for _ in range(2)), 3)
    return alone


def _wait_up(base: str, config: dict, server: subprocess.Popen, log: Path) -> None:
    import requests

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{base}/login/", timeout=30).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or workers still importing
            pass
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn did not answer within 120 s: {log.read_text()[-2000:]}")


def _warm(base: str, config: dict, workers: int) -> None:
    """Every path once from `workers` clients at a time, so the workers have imported what
    they serve before anything is measured; any answer but 200 stops the case."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    def get(name: str) -> None:
        path = config["paths"][name].format(student=config["students"][0])
        if name.startswith("api"):
            headers = {"Authorization": f"Token {config['token']}"}
        else:
            headers = {"Cookie": f"sessionid={config['sessions'][0]}"}
        r = requests.get(base + path, headers=headers, allow_redirects=False, timeout=300)
        if r.status_code != 200:
            raise RuntimeError(f"warm-up: {name} answered HTTP {r.status_code}")

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(get, list(config["paths"]) * 2))


def _locust(base: str, config_path: Path, users: int, seconds: int, prefix: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(BASE_DIR / "bench" / "locustfile.py"),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{seconds}s",
        "--host",
        base,
        "--csv",
        str(prefix),
        "--only-summary",
        # Requests still in flight at the end are waited for (and counted), not dropped.
        "--stop-timeout",
        "180",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    env = {**os.environ, "BENCH_LOAD_CONFIG": str(config_path)}
    subprocess.run(command, cwd=BASE_DIR, env=env, stdout=sys.stderr, check=True, timeout=600)
    with open(f"{prefix}_stats.csv") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    failures = []
    if Path(f"{prefix}_failures.csv").exists():
        with open(f"{prefix}_failures.csv") as f:
            failures = [
                f"{row['Name']}: {row['Error']} x{row['Occurrences']}" for row in csv.DictReader(f)
            ]
    return {"rows": rows, "failures": failures}


def _ms(row: dict, column: str) -> float:
    value = row.get(column) or "0"
    return float(value) if value != "N/A" else 0.0


def _level_table(rows: dict) -> str:
    lines = [
        "| request | count | errors | req/s | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        label = "**all**" if name == "Aggregated" else name
        lines.append(
            f"| {label} | {row['Request Count']} | {row['Failure Count']} "
            f"| {float(row['Requests/s']):.1f} | {_ms(row, '50%'):.0f} ms "
            f"| {_ms(row, '95%'):.0f} ms | {_ms(row, '99%'):.0f} ms "
            f"| {_ms(row, 'Max Response Time'):.0f} ms |"
        )
    return "\n".join(lines)


def run(size: str) -> list[Result]:
    from django.conf import settings

    total = int(os.environ.get("BENCH_LOAD_TOTAL_PROGRESSIONS", "1000000"))
    seconds = int(os.environ.get("BENCH_LOAD_SECONDS", "20"))
    config = _prepare(total)
    database = "PostgreSQL" if config["vendor"] == "postgresql" else "SQLite"
    alone = _alone(config)
    mean_alone = sum(alone[n] * w for n, w in WEIGHTS.items()) / sum(WEIGHTS.values())
    cores = os.cpu_count() or 1
    bound = cores / mean_alone
    data = Path(settings.DATA_DIR)
    config_path = data / f"load-{size}.json"
    config_path.write_text(json.dumps(config))
    config_path.chmod(0o600)  # sessions and an API key of the bench database
    workers = 2 * (os.cpu_count() or 1) + 1
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = data / f"gunicorn-{size}.log"
    _say(f"gunicorn, {workers} workers, on {base} ({database})")
    with open(log, "w") as out:
        server = subprocess.Popen(
            gunicorn_command(port, workers), cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT
        )
    results = []
    try:
        _wait_up(base, config, server, log)
        _warm(base, config, workers)
        for users in LEVELS:
            _say(f"{users} mentors for {seconds} s")
            got = _locust(base, config_path, users, seconds, data / f"locust-{size}-{users}")
            all_ = got["rows"]["Aggregated"]
            errors = int(all_["Failure Count"])
            rps = float(all_["Requests/s"])
            p50, p95, p99 = (_ms(all_, c) for c in ("50%", "95%", "99%"))
            figures = {
                "users": users,
                "requests": int(all_["Request Count"]),
                "errors": errors,
                "requests_per_s": round(rps, 1),
                "p50_ms": p50,
                "p95_ms": p95,
                "p99_ms": p99,
                "alone_s": alone,
                "bound_requests_per_s": round(bound, 1),
            }
            command = " ".join(gunicorn_command(port, workers)[1:])
            notes = (
                f"gunicorn {workers} sync workers (`{command}`), {database}, cohort of "
                f"{config['cohort_progressions']:,} progressions in a "
                f"database of {config['database_progressions']:,}"
                + (f" ({config['generated']})" if config["generated"] else "")
                + f"; {users} mentors without think time for {seconds} s, locust on the same "
                f"{cores} cores (its own CPU competes with the server's). req/s counts the "
                "requests still in flight at the end, and the time they took to finish. "
                "Each request of the mix alone, in-process (Django's test client): "
                + ", ".join(f"{n} {t:.3f} s" for n, t in alone.items())
                + f"; the mix averages {mean_alone:.3f} s, so {cores} cores serve at most about "
                f"{bound:.1f} req/s: the pages' own CPU bounds this test.\n\n"
                + _level_table(got["rows"])
            )
            if got["failures"]:
                notes += "\n\nErrors: " + "; ".join(got["failures"])
            results.append(
                Result(
                    case=(
                        f"load {database}, {users} mentors: {rps:.1f} req/s, p50 {p50:.0f} ms, "
                        f"p99 {p99:.0f} ms, {errors} errors (time: p95)"
                    ),
                    size=f"{size}-{users}",
                    seconds=p95 / 1000,
                    floor="-",
                    notes=notes,
                    extra=figures,
                    failed=f"{errors} errors under load" if errors else "",
                )
            )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return results
