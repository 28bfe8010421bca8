"""The benchmark spine: cases, their child processes, simulators in their own process, the table.

A case is declared once, in a module of `bench/cases/`, as a `BenchCase` in that module's
`CASES` tuple. Its `func` is the dotted path of `run(size: str) -> Result`, called in a fresh
child process (`python -m bench.child`) with Django set up on the case's own data directory,
so that the peak resident memory the parent reads back (`os.wait4`) is the case's alone.

A `Result` carries the time and the floor measured in the same child: the harness computes
the ratio and whether the targets were met (time ratio, absolute seconds, and peak memory
under `MAX_RSS_MB` for every case).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = BASE_DIR / "var" / "bench"
MAX_RSS_MB = 400
RESULT_MARK = "BENCH-RESULT "


@dataclass(frozen=True)
class BenchCase:
    name: str  # unique, e.g. "openclass-pull"
    func: str  # dotted path of run(size: str) -> Result | list[Result] (e.g. a pull and its re-run)
    sizes: tuple[str, ...] = ("default",)  # each size runs in its own child process
    needs: tuple[str, ...] = ()  # "postgres", "redis": skipped (and said) when absent
    timeout: int = 600  # seconds for one size
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the child
    shared_data: str = ""  # name of a data directory under var/bench shared between runs
    # Needs of one size only, on top of `needs` (e.g. {"postgresql": ("postgres",)}): the
    # other sizes still run when that service is absent.
    size_needs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def needs_of(self, size: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.needs, *self.size_needs.get(size, ()))))


@dataclass
class Result:
    case: str  # what was timed, in words ("OpenClass pull, 100,000 progressions")
    size: str
    seconds: float
    floor_seconds: float | None = None
    floor: str = ""  # what the floor is, in words
    target_ratio: float | None = None  # seconds / floor_seconds must be <= this
    target_seconds: float | None = None  # seconds must be <= this
    notes: str = ""
    extra: dict = field(default_factory=dict)  # anything else worth printing (json-able)
    # Filled in by the harness:
    peak_rss_mb: float | None = None
    ratio: float | None = None
    met: bool | None = None
    skipped: str = ""  # why it did not run (a service it needs is absent)
    failed: str = ""  # why it failed: set by the harness (crash, timeout) or by the case


def timed(func: Callable[[], object]) -> tuple[float, object]:
    """(wall seconds, the value) of one call."""
    began = time.perf_counter()
    value = func()
    return time.perf_counter() - began, value


def best_of(n: int, func: Callable[[], object]) -> float:
    """The fastest of n calls: for floors, which should not be penalised by noise."""
    return min(timed(func)[0] for _ in range(n))


def cases() -> list[BenchCase]:
    """Every case of every module in bench/cases, in module then declaration order."""
    import bench.cases

    found: list[BenchCase] = []
    for info in sorted(pkgutil.iter_modules(bench.cases.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"bench.cases.{info.name}")
        found.extend(getattr(module, "CASES", ()))
    names = [c.name for c in found]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SystemExit(f"bench: case declared twice: {', '.join(sorted(dupes))}")
    return found


def data_dir(case: BenchCase, size: str) -> Path:
    name = case.shared_data or f"{case.name}-{size}"
    return BENCH_DIR / name


def child_env(case: BenchCase, size: str) -> dict[str, str]:
    needs = case.needs_of(size)
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "CLASSBRIDGE_DATA_DIR": str(data_dir(case, size)),
            "DEBUG": "false",
            "SECRET_KEY": "bench-only-not-a-secret",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "EMAIL_URL": "memorymail://",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if "postgres" not in needs:
        env.pop("DATABASE_URL", None)
    if "redis" not in needs:
        env.pop("REDIS_URL", None)
    env.update(case.env)
    return env


def missing_services(case: BenchCase, size: str = "default") -> list[str]:
    needs = case.needs_of(size)
    missing = []
    if "postgres" in needs and not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        missing.append("PostgreSQL (DATABASE_URL)")
    if "redis" in needs and not os.environ.get("REDIS_URL"):
        missing.append("Redis (REDIS_URL)")
    return missing


def run_in_child(case: BenchCase, size: str) -> list[Result]:
    """Run one size of a case in a fresh process; its peak RSS comes from wait4.

    A case may return several results (a pull and its unchanged re-run): they share the
    process, so they share its peak memory. A child that outlives `case.timeout` is
    killed (its process group: the servers it started go with it) and reported failed.
    """
    missing = missing_services(case, size)
    if missing:
        skipped = f"needs {', '.join(missing)}"
        return [Result(case=case.name, size=size, seconds=0.0, skipped=skipped)]
    data_dir(case, size).mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.child", case.name, size],
        cwd=BASE_DIR,
        env=child_env(case, size),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a timeout can end all of it
    )
    timed_out = threading.Event()

    def _kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(case.timeout, _kill)
    timer.start()
    try:
        assert proc.stdout is not None
        # The case's progress goes to stderr, straight through; stdout carries the result.
        lines = list(proc.stdout)
        _pid, status, usage = os.wait4(proc.pid, 0)
    except BaseException:  # Ctrl-C: the child's own session does not get it
        _kill()
        raise
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = round(usage.ru_maxrss / 1024, 1)  # Linux: kilobytes
    found = [ln for ln in lines if ln.startswith(RESULT_MARK)]
    if timed_out.is_set() or proc.returncode != 0 or not found:
        if timed_out.is_set():
            why = f"timed out after {case.timeout} s"
        else:
            tail = " ".join(ln.strip() for ln in lines[-3:] if not ln.startswith(RESULT_MARK))
            why = f"exit {proc.returncode}" + (f": {tail}" if tail else " (see its stderr above)")
        return [Result(case=case.name, size=size, seconds=0.0, failed=why[:300], peak_rss_mb=rss)]
    results = [Result(**item) for item in json.loads(found[-1][len(RESULT_MARK) :])]
    for result in results:
        result.peak_rss_mb = rss
        judged(result)
    return results


def judged(result: Result) -> Result:
    if result.floor_seconds:
        result.ratio = round(result.seconds / result.floor_seconds, 2)
    if result.failed or result.skipped:
        result.met = None
        return result
    checks = []
    if result.target_ratio is not None and result.ratio is not None:
        checks.append(result.ratio <= result.target_ratio)
    if result.target_seconds is not None:
        checks.append(result.seconds <= result.target_seconds)
    if result.peak_rss_mb is not None:
        checks.append(result.peak_rss_mb <= MAX_RSS_MB)
    result.met = all(checks) if checks else None
    return result


def result_json(results: Result | list[Result]) -> str:
    if isinstance(results, Result):
        results = [results]
    return RESULT_MARK + json.dumps([asdict(r) for r in results], default=str)


# --- Simulators in their own process ------------------------------------------------------


@contextlib.contextmanager
def simulator_process(factory: str, **kwargs) -> Iterator[str]:
    """Serve `factory(**kwargs)` (a simulator `build`) in a child process; yields its base URL.

    Its own process, so the simulator's CPU does not share the GIL with the code timed.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.simserve", factory, json.dumps(kwargs)],
        cwd=BASE_DIR,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("http"):
            raise RuntimeError(f"simulator {factory} did not start: {line!r}")
        yield line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- The table ----------------------------------------------------------------------------


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 1 else f"{value:.2f} s"


def _target(r: Result) -> str:
    parts = []
    if r.target_ratio is not None:
        parts.append(f"≤{r.target_ratio:g}x")
    if r.target_seconds is not None:
        parts.append(f"≤{r.target_seconds:g} s")
    parts.append(f"≤{MAX_RSS_MB} MB")
    return ", ".join(parts)


def table(results: list[Result]) -> str:
    """A Markdown table: case, size, time, floor, ratio, peak memory, target, met."""
    head = "| case | size | time | floor | ratio | peak RSS | target | met |"
    rows = [head, "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.skipped:
            rows.append(f"| {r.case} | {r.size} | skipped: {r.skipped} | | | | | |")
            continue
        if r.failed and not r.seconds:
            rows.append(f"| {r.case} | {r.size} | **FAILED**: {r.failed} | | | | | |")
            continue
        floor = f"{_fmt_s(r.floor_seconds)} ({r.floor})" if r.floor_seconds else r.floor or "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        rss = f"{r.peak_rss_mb:.0f} MB" if r.peak_rss_mb is not None else "-"
        met = "**FAILED**" if r.failed else {True: "yes", False: "**no**", None: "-"}[r.met]
        rows.append(
            f"| {r.case} | {r.size} | {_fmt_s(r.seconds)} | {floor} | {ratio} | {rss} "
            f"| {_target(r)} | {met} |"
        )
    return "\n".join(rows)
