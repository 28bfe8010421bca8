"""APEX's run kind, as the registry reads it (integrations/registry.py)."""

from integrations.registry import JobKind, Resume, SimulatorSpec
from reports.models import RunKind

KINDS = (
    JobKind(
        kind=RunKind.APEX_ENROLL,
        job="integrations.apex.enroll.apex_enroll_job",
        summary_keys=("rows", "enrolled", "already_enrolled", "skipped", "failed"),
        resume=Resume.CONTINUE,
        run_actions="integrations.apex.enroll.apex_run_actions",
        simulator=SimulatorSpec(
            name="apex",
            factory="integrations.apex.simulator.build",
            port_offset=1,
            base_url_setting="APEX_BASE_URL",
        ),
        # A push from an uploaded roster: nothing to schedule.
    ),
)
