"""Canvas's run kind, as the registry reads it (integrations/registry.py)."""

from cohorts.models import Source
from integrations.registry import CohortSchedule, JobKind, Resume, SimulatorSpec
from reports.models import RunKind

KINDS = (
    JobKind(
        kind=RunKind.CANVAS_SYNC,
        job="integrations.canvas.pull.canvas_sync_job",
        summary_keys=("fetched", "created", "updated", "unchanged", "skipped", "failed"),
        # A course pull re-reads and upserts; a bulk parent keeps its finished children.
        resume=Resume.RESTART,
        after_finish="integrations.canvas.pull.canvas_after_finish",
        run_actions="integrations.canvas.views.canvas_run_actions",
        simulator=SimulatorSpec(
            name="canvas",
            factory="integrations.canvas.simulator.build",
            port_offset=3,
            base_url_setting="CANVAS_BASE_URL",
        ),
        schedule=CohortSchedule(
            source=Source.CANVAS, start="integrations.canvas.pull.canvas_run_for_cohort"
        ),
    ),
)
