"""OpenClass's run kind, as the registry reads it (integrations/registry.py)."""

from cohorts.models import Source
from integrations.registry import CohortSchedule, JobKind, Resume, SimulatorSpec
from reports.models import RunKind

KINDS = (
    JobKind(
        kind=RunKind.OPENCLASS_SYNC,
        job="integrations.openclass.pull.openclass_pull_job",
        summary_keys=("fetched", "created", "updated", "unchanged", "failed"),
        resume=Resume.RESTART,
        after_finish="integrations.openclass.pull.openclass_after_finish",
        simulator=SimulatorSpec(
            name="openclass",
            factory="integrations.openclass.simulator.build",
            port_offset=0,
            base_url_setting="OPENCLASS_BASE_URL",
        ),
        schedule=CohortSchedule(
            source=Source.OPENCLASS,
            start="integrations.openclass.pull.openclass_run_for_cohort",
        ),
    ),
)
