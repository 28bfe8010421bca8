"""Keeps pull schedules in step with the cohorts an admin edits.

The cohorts app registers its own Cohort admin and knows nothing of schedules; this wraps
it so that saving or deleting a cohort re-declares the schedules (integrations.schedules),
and says so when a cohort's interval cannot be honoured: no registered kind pulls its
source yet (integrations/registry.py).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction

from cohorts.models import Cohort, Source
from integrations import registry
from integrations.schedules import schedules_sync

_base = type(admin.site._registry[Cohort]) if admin.site.is_registered(Cohort) else admin.ModelAdmin


def _source_labels(values) -> str:
    labels = dict(Source.choices)
    return ", ".join(str(labels.get(v, v)) for v in values) or "none"


class CohortWithScheduleAdmin(_base):
    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "sync_interval_hours" and field is not None:
            field.help_text = (
                f"{field.help_text} Scheduled pulls exist for: "
                f"{_source_labels(registry.scheduled_sources())}."
            )
        return field

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        transaction.on_commit(schedules_sync)
        if obj.sync_interval_hours and registry.kind_for_source(obj.source) is None:
            messages.warning(
                request,
                f"“{obj}” is not scheduled: Classbridge cannot pull "
                f"{_source_labels([obj.source])} cohorts yet, so its interval of "
                f"{obj.sync_interval_hours} hours has no effect. Scheduled pulls exist for: "
                f"{_source_labels(registry.scheduled_sources())}.",
            )

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        transaction.on_commit(schedules_sync)

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        transaction.on_commit(schedules_sync)


if admin.site.is_registered(Cohort):
    admin.site.unregister(Cohort)
admin.site.register(Cohort, CohortWithScheduleAdmin)
