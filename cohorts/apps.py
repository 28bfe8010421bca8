from django.apps import AppConfig


class CohortsConfig(AppConfig):
    name = "cohorts"
    verbose_name = "Cohorts"

    def ready(self) -> None:
        # A single save of a cohort's rows makes its stored health stale (the receivers).
        from cohorts import health_store  # noqa: F401
