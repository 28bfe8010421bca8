"""Stored plans: DATA_DIR/titan/plans/<sha256>.json, named by the plan's content hash, so
the preview, the approval, the apply and a resume all read the same plan."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from integrations.titan.plan import plan_hash


def plan_dir() -> Path:
    path = Path(settings.DATA_DIR) / "titan" / "plans"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def plan_save(plan: dict[str, Any]) -> Path:
    """Write the plan as DATA_DIR/titan/plans/<hash>.json (private to the service)."""
    path = plan_dir() / f"{plan['hash']}.json"
    if path.exists():
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(plan, out, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plan_load(digest: str | None) -> dict[str, Any] | None:
    """The stored plan with this hash, or None when it is missing or was altered."""
    if not digest:
        return None
    path = plan_dir() / f"{digest}.json"
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return plan if plan_hash(plan) == digest else None
