"""Keeps pull schedules in step with the cohorts an admin edits.

The cohorts app registers its own Cohort admin and knows nothing of schedules; this wraps
it so that saving or deleting a cohort re-declares the schedules (integrations.schedules).
"""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction

from cohorts.models import Cohort
from integrations.models import TitanSiteLimit
from integrations.schedules import schedules_sync

_base = type(admin.site._registry[Cohort]) if admin.site.is_registered(Cohort) else admin.ModelAdmin


class CohortWithScheduleAdmin(_base):
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        transaction.on_commit(schedules_sync)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        transaction.on_commit(schedules_sync)

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        transaction.on_commit(schedules_sync)


if admin.site.is_registered(Cohort):
    admin.site.unregister(Cohort)
admin.site.register(Cohort, CohortWithScheduleAdmin)


@admin.register(TitanSiteLimit)
class TitanSiteLimitAdmin(admin.ModelAdmin):
    list_display = ("site_name", "max_removals", "max_removal_percent", "note", "updated_at")
    search_fields = ("site_name",)
