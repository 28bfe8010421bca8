"""Extra report sections a run kind contributes (a plan, a guardrail verdict…), shown in
the report email (text and HTML) and on the run page.

`reports` knows nothing of vendors: an integration registers a provider per run kind
(declared as `report_sections` in its kind.py) that builds the sections from what the run
stored; the report renders them generically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reports.models import Run

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportSection:
    title: str
    lines: tuple[str, ...] = ()  # paragraphs before the table
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = field(default_factory=tuple)
    more: int = 0  # rows left out (the run page or a download has them)
    warning: bool = False  # shown highlighted (a hold, a problem)


_PROVIDERS: dict[str, list[Callable[..., list[ReportSection]]]] = {}


def register_report_sections(kind: str, provider: Callable[..., list[ReportSection]]) -> None:
    """`provider(run, *, row_limit)` returns the sections of one run of this kind."""
    providers = _PROVIDERS.setdefault(kind, [])
    if provider not in providers:
        providers.append(provider)


def report_sections(run: Run, *, row_limit: int | None = None) -> list[ReportSection]:
    sections: list[ReportSection] = []
    for provider in _PROVIDERS.get(run.kind, []):
        try:
            sections.extend(provider(run, row_limit=row_limit))
        except Exception:  # a broken section must not cost the whole report
            logger.exception("report sections of run %s failed", run.pk)
    return sections
