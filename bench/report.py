"""What `make bench` writes: the machine it ran on, and docs/benchmarks.md's generated part.

docs/benchmarks.md mixes two kinds of text: the generated section between `BEGIN` and
`END` (the machine, the date, the table and each case's notes), rewritten by every
`python -m bench --write`, and the sections engineers write by hand under their own
headings (what was changed and why), which are never touched.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import BASE_DIR, Result, table

DOCS = BASE_DIR / "docs" / "benchmarks.md"
BEGIN = "<!-- make bench: generated from here; `python -m bench --write` rewrites it -->"
END = "<!-- make bench: end of the generated part -->"
TITLE = "# Benchmarks"


def _first_line(path: str, prefix: str) -> str:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip() if ":" in line else line.strip()
    except OSError:
        pass
    return ""


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def _postgres_version() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return "not available (DATABASE_URL unset)"
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])
    except Exception as exc:  # the table says so; never the URL (it holds a password)
        return f"not reachable ({type(exc).__name__})"


def _redis_version() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        return "not available (REDIS_URL unset)"
    try:
        import redis

        return str(redis.Redis.from_url(url, socket_timeout=5).info()["redis_version"])
    except Exception as exc:
        return f"not reachable ({type(exc).__name__})"


def machine() -> dict[str, str]:
    """The facts a reader needs to compare figures: CPU, cores, memory, versions."""
    mem_kb = _first_line("/proc/meminfo", "MemTotal").split()
    ram = f"{int(mem_kb[0]) / 1024 / 1024:.1f} GiB" if mem_kb else "unknown"
    return {
        "CPU": _first_line("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "OS": _os_name(),
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": _postgres_version(),
        "Redis": _redis_version(),
    }


def _notes(results: Iterable[Result]) -> list[str]:
    out: list[str] = []
    for r in results:
        if not (r.notes or r.extra or r.failed):
            continue
        out += ["", f"### {r.case} [{r.size}]", ""]
        if r.failed:
            out.append(f"**Failed:** {r.failed}")
            out.append("")
        if r.met is False:
            out.append("**Target not met.**")
            out.append("")
        if r.notes:
            out.append(r.notes.rstrip())
        if r.extra:
            out += ["", f"Figures: `{json.dumps(r.extra, default=str)}`"]
    return out


def section(
    results: list[Result], *, facts: dict[str, str], total_seconds: float, when: datetime
) -> str:
    """The generated part of docs/benchmarks.md (markers included)."""
    lines = [
        BEGIN,
        "## Latest `make bench`",
        "",
        f"Run on {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC in {total_seconds / 60:.1f} min, on: "
        + "; ".join(f"{k} {v}" for k, v in facts.items())
        + ".",
        "",
        table(results),
        "",
        summary(results, total_seconds),
    ]
    notes = _notes(results)
    if notes:
        lines += ["", "## Notes of the cases (latest run)", *notes]
    lines += ["", END]
    return "\n".join(lines)


def summary(results: list[Result], total_seconds: float) -> str:
    failed = [f"{r.case} [{r.size}]" for r in results if r.failed]
    not_met = [f"{r.case} [{r.size}]" for r in results if r.met is False]
    skipped = [f"{r.case} [{r.size}]" for r in results if r.skipped]
    parts = [f"Total {total_seconds:.0f} s ({total_seconds / 60:.1f} min) for {len(results)} rows."]
    parts.append(f"Failed: {', '.join(failed)}." if failed else "No case failed.")
    if not_met:
        parts.append(f"Targets not met: {', '.join(not_met)}.")
    else:
        parts.append("Every case that ran met its targets." if skipped else "Every target met.")
    if skipped:
        parts.append(f"Skipped (service not available): {', '.join(skipped)}.")
    return " ".join(parts)


def docs_write(generated: str, path: Path = DOCS) -> None:
    """Replace the generated part of `path`, keeping everything else; create it if absent.

    Without markers yet, the generated part goes right under the title, above the
    hand-written sections.
    """
    text = path.read_text() if path.exists() else f"{TITLE}\n"
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        new = before + generated + after
    elif BEGIN in text or END in text:
        raise SystemExit(f"bench: {path} has only one of the generated part's markers; fix it")
    else:
        head, sep, body = text.partition("\n")
        if head.startswith("# "):
            new = f"{head}\n\n{generated}\n{sep}{body.lstrip(chr(10))}"
            if not body.strip():
                new = f"{head}\n\n{generated}\n"
        else:
            new = f"{TITLE}\n\n{generated}\n\n{text}"
    path.write_text(new)
