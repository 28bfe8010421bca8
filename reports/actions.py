"""Extra actions a run page offers, contributed by the app that owns the run's job.

`reports` knows nothing of vendors: an integration registers a function per run kind that
returns the actions that apply to a given run (a download, a resume button…), and the run
page renders them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reports.models import Run


@dataclass(frozen=True)
class RunAction:
    label: str
    url: str
    method: str = "get"  # "post" renders a form with a CSRF token
    primary: bool = False
    download: bool = False


_PROVIDERS: dict[str, list[Callable[[Run], list[RunAction]]]] = {}


def register_run_actions(kind: str, provider: Callable[[Run], list[RunAction]]) -> None:
    providers = _PROVIDERS.setdefault(kind, [])
    if provider not in providers:
        providers.append(provider)


def run_actions(run: Run) -> list[RunAction]:
    actions: list[RunAction] = []
    for provider in _PROVIDERS.get(run.kind, []):
        actions.extend(provider(run))
    return actions
