from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # Registers callbacks only (no database access): the run page's APEX actions.
        from integrations.apex.enroll import apex_run_actions
        from reports.actions import register_run_actions
        from reports.models import RunKind

        register_run_actions(RunKind.APEX_ENROLL, apex_run_actions)
