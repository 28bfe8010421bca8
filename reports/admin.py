"""Runs in the admin: read-only, because a run is the record of what a job did."""

from __future__ import annotations

from django.contrib import admin
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html

from reports.models import Approval, Run, RunItem

# A run can hold tens of thousands of items; the inline shows a sample, the items
# changelist (linked from the run) holds them all.
INLINE_ITEM_LIMIT = 50


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class FirstItemsFormSet(BaseInlineFormSet):
    def get_queryset(self):
        # Sliced here, after the formset has filtered on the run; slicing earlier would
        # forbid that filter.
        if not hasattr(self, "_first_items"):
            self._first_items = super().get_queryset()[:INLINE_ITEM_LIMIT]
        return self._first_items


class RunItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RunItem
    formset = FirstItemsFormSet
    fields = ("seq", "key", "label", "group", "outcome", "error_class", "message")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    verbose_name_plural = f"Items (the first {INLINE_ITEM_LIMIT})"


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "subject",
        "status",
        "dry_run",
        "triggered_by",
        "created_at",
        "finished_at",
    )
    list_display_links = ("id", "subject")
    list_filter = ("kind", "status", "dry_run")
    search_fields = ("subject", "triggered_by")
    date_hierarchy = "created_at"
    list_per_page = 50
    inlines = (RunItemInline,)
    readonly_fields = ("run_page", "items_link")
    fieldsets = (
        (None, {"fields": ("run_page", "kind", "status", "dry_run", "subject", "params")}),
        (
            "Who and when",
            {
                "fields": (
                    "triggered_by",
                    "user",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "heartbeat_at",
                    "emailed_at",
                )
            },
        ),
        (
            "Outcome",
            {
                "fields": (
                    "counts",
                    "stage_timings",
                    "message",
                    "error_class",
                    "stage",
                    "progress_done",
                    "progress_total",
                    "progress_unit",
                    "items_link",
                )
            },
        ),
    )

    @admin.display(description="Run page")
    def run_page(self, obj: Run) -> str:
        url = reverse("reports:detail", args=[obj.pk])
        return format_html('<a href="{}">Open the run page and report</a>', url)

    @admin.display(description="All items")
    def items_link(self, obj: Run) -> str:
        url = reverse("admin:reports_runitem_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">Every item of this run</a>', url)


@admin.register(RunItem)
class RunItemAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("run", "seq", "key", "label", "group", "outcome", "error_class")
    list_filter = ("error_class", "outcome", "run__kind")
    search_fields = ("key", "label", "group", "message")
    list_select_related = ("run",)
    raw_id_fields = ("run",)
    list_per_page = 100


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Decisions are the record of who let a held run through, and why: read-only."""

    list_display = ("run", "decision", "decided_by", "decided_at", "plan_hash")
    list_filter = ("decision",)
    search_fields = ("decided_by", "reason", "plan_hash")
