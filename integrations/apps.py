from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # Registers callbacks only (no database access): the run-page actions each kind
        # declares in its kind.py (e.g. APEX's error log and Resume).
        from django.utils.module_loading import import_string

        from integrations import registry
        from reports.actions import register_run_actions

        for declared in registry.kinds().values():
            if declared.run_actions:
                register_run_actions(declared.kind, import_string(declared.run_actions))
