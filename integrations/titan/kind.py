"""Titan HST's run kind, as the registry reads it (integrations/registry.py)."""

from integrations.registry import JobKind, Resume, SimulatorSpec
from reports.models import RunKind

KINDS = (
    JobKind(
        kind=RunKind.TITAN_SYNC,
        job="integrations.titan.sync.titan_sync_job",
        summary_keys=(
            "rows",
            "fetched",
            "created",
            "updated",
            "unchanged",
            "added",
            "roles_changed",
            "removed",
            "skipped",
            "failed",
        ),
        # A push: a resumed run applies the rest of its stored plan (never a new one).
        resume=Resume.CONTINUE,
        run_actions="integrations.titan.decisions.titan_run_actions",
        report_sections="integrations.titan.report.titan_report_sections",
        simulator=SimulatorSpec(
            name="titan",
            factory="integrations.titan.simulator.build",
            port_offset=2,
            base_url_setting="TITAN_BASE_URL",
        ),
    ),
)
