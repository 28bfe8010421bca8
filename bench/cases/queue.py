"""Case `queue`: 1,000 small tasks through django-q2 and a real `manage.py qcluster`.

Two sizes: the database broker on SQLite (the default deployment) and Redis (REDIS_URL,
the database still SQLite). Each task only appends "index enqueued_ns started_ns" to a
file, so what is timed is the queue: enqueue (`async_task`, as the product queues a run),
the cluster's pusher, its workers, its result saving. Reported:

- throughput: 1,000 tasks enqueued at once, from the first enqueue until the last task has
  run, in tasks per second;
- the delay from enqueue to start of each task of that burst (p50, p95, max): a burst
  waits behind itself, so these grow with the backlog;
- the delay of a task queued alone on an idle queue (10 tasks, one every 0.3 s): what a
  "Sync now" waits before its job starts (the database broker polls every second).

The floor, measured in the same process before the cluster starts: the broker's bare
enqueue, dequeue and acknowledge of the same 1,000 signed task messages, no worker at all.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import BASE_DIR, BenchCase, Result, timed

TASKS = 1000
IDLE_TASKS = 10
IDLE_GAP = 0.3
LOG_ENV = "BENCH_QUEUE_LOG"

CASES = (
    BenchCase(
        name="queue",
        func="bench.cases.queue.run",
        sizes=("orm-sqlite", "redis"),
        size_needs={"redis": ("redis",)},
        timeout=300,
    ),
)


def mark(index: int, enqueued_ns: int) -> None:
    """The task: record when it started (one append, atomic for a short line)."""
    started = time.time_ns()
    with open(os.environ[LOG_ENV], "a") as f:
        f.write(f"{index} {enqueued_ns} {started}\n")


def _marks(path: Path) -> dict[int, tuple[int, int]]:
    if not path.exists():
        return {}
    found: dict[int, tuple[int, int]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            found[int(parts[0])] = (int(parts[1]), int(parts[2]))
    return found


def _wait_for(path: Path, indexes: set[int], timeout: float) -> dict[int, tuple[int, int]]:
    deadline = time.monotonic() + timeout
    while True:
        found = _marks(path)
        if indexes <= found.keys():
            return found
        if time.monotonic() > deadline:
            missing = len(indexes - found.keys())
            raise RuntimeError(f"{missing} of {len(indexes)} tasks never ran within {timeout} s")
        time.sleep(0.05)


def _pct(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _floor(broker_name: str) -> float:
    """Bare broker: enqueue, dequeue, unsign and acknowledge TASKS signed messages."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker(f"{broker_name}-floor")
    broker.purge_queue()
    package = {"func": "bench.cases.queue.mark", "args": (0, 0), "kwargs": {}}

    def cycle() -> None:
        for i in range(TASKS):
            broker.enqueue(SignedPackage.dumps({**package, "id": str(i), "name": str(i)}))
        got = 0
        while got < TASKS:
            for task_id, payload in broker.dequeue() or ():
                SignedPackage.loads(payload)
                broker.acknowledge(task_id)
                got += 1

    # Redis takes a fraction of a second: the better of two. The database broker takes
    # tens of seconds on SQLite (see the notes): once.
    passes = 2 if type(broker).__name__ == "Redis" else 1
    best = min(timed(cycle)[0] for _ in range(passes))
    broker.purge_queue()
    return best


def run(size: str) -> Result:
    from django.conf import settings
    from django.core.management import call_command
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    call_command("migrate", verbosity=0)
    broker_kind = "Redis" if settings.Q_CLUSTER.get("redis") else "ORM (SQLite)"
    print(f"queue [{size}]: broker {broker_kind}; measuring the bare broker", file=sys.stderr)
    floor = _floor(settings.Q_CLUSTER["name"])

    data = Path(settings.DATA_DIR)
    log = data / "queue-marks.log"
    log.unlink(missing_ok=True)
    get_broker().purge_queue()
    cluster_log = data / "qcluster.log"
    env = {**os.environ, LOG_ENV: str(log)}
    with open(cluster_log, "w") as out:
        cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Warm-up: the cluster is up and has run one task before anything is timed.
        async_task("bench.cases.queue.mark", -1, time.time_ns())
        _wait_for(log, {-1}, timeout=60)

        # The burst.
        first = time.time_ns()
        for i in range(TASKS):
            async_task("bench.cases.queue.mark", i, time.time_ns())
        enqueue_s = (time.time_ns() - first) / 1e9
        marks = _wait_for(log, set(range(TASKS)), timeout=240)
        last = max(started for _enq, started in (marks[i] for i in range(TASKS)))
        seconds = (last - first) / 1e9
        delays = sorted((s - e) / 1e6 for e, s in (marks[i] for i in range(TASKS)))

        # Alone on an idle queue.
        idle = []
        for k in range(IDLE_TASKS):
            index = 10_000 + k
            async_task("bench.cases.queue.mark", index, time.time_ns())
            enq, started = _wait_for(log, {index}, timeout=30)[index]
            idle.append((started - enq) / 1e6)
            time.sleep(IDLE_GAP)
    finally:
        cluster.send_signal(signal.SIGTERM)  # the main process only (stack notes)
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait()

    workers = settings.Q_CLUSTER["workers"]
    figures = {
        "broker": broker_kind,
        "workers": workers,
        "tasks": TASKS,
        "tasks_per_s": round(TASKS / seconds, 1),
        "enqueue_s": round(enqueue_s, 2),
        "burst_delay_ms": {
            "p50": round(_pct(delays, 50)),
            "p95": round(_pct(delays, 95)),
            "max": round(delays[-1]),
        },
        "idle_delay_ms": {
            "p50": round(_pct(idle, 50)),
            "p95": round(_pct(idle, 95)),
            "max": round(max(idle)),
        },
    }
    b, i = figures["burst_delay_ms"], figures["idle_delay_ms"]
    notes = (
        f"{TASKS} tasks through the {broker_kind} broker and `manage.py qcluster` "
        f"({workers} workers): {figures['tasks_per_s']} tasks/s (enqueueing them took "
        f"{enqueue_s:.2f} s of that). Enqueue to start, burst: p50 {b['p50']} ms, "
        f"p95 {b['p95']} ms, max {b['max']} ms. A task alone on an idle queue: "
        f"p50 {i['p50']} ms, p95 {i['p95']} ms, max {i['max']} ms"
        + (" (the database broker polls every second)." if "ORM" in broker_kind else ".")
    )
    if "ORM" in broker_kind:
        notes += (
            " Profile of the bare database broker (cProfile, 200 messages): about 20 ms a "
            "message, a third of it reconnecting: django-q2's ORM broker calls "
            "`close_old_connections()` on every call and SQLite keeps no persistent "
            "connection (CONN_MAX_AGE 0), the rest three autocommitted writes (enqueue, "
            "lock, delete). Redis is the answer for volume (docs/operations.md)."
        )
    return Result(
        case=f"queue: {TASKS:,} tasks, {broker_kind} broker + qcluster",
        size=size,
        seconds=seconds,
        floor_seconds=floor,
        floor=f"bare broker enqueue+dequeue+ack of {TASKS:,} signed messages",
        notes=notes,
        extra=figures,
    )
