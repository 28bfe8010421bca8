"""Admin for cohorts: thresholds and pace per cohort, mentors, notes and API tokens.

integrations/admin.py wraps the Cohort admin registered here (to keep pull schedules in
step); keep it a plain ModelAdmin subclass so that wrapping keeps working.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.cache import patch_cache_control

from cohorts.forms import CohortAdminForm
from cohorts.models import ApiToken, Assignment, Cohort, MentorNote, PersonLinkLog, Student
from cohorts.services import persons_link, persons_unlink


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    form = CohortAdminForm  # the thresholds' rules of the health page's form
    list_display = ("name", "source", "external_id", "sync_interval_hours", "last_synced_at")
    list_filter = ("source",)
    search_fields = ("name", "external_id")
    filter_horizontal = ("mentors",)
    readonly_fields = ("last_synced_at", "last_sync_status", "last_sync_run_id", "created_at")
    fieldsets = (
        (None, {"fields": ("name", "source", "external_id", "mentors", "sync_interval_hours")}),
        (
            "Health thresholds",
            {
                "fields": ("inactive_days", "behind_fraction", "low_grade"),
                "description": "How students are classified on track, watch or at risk "
                "(docs/cohort-health.md).",
            },
        ),
        ("Pace", {"fields": ("starts_on", "ends_on")}),
        (
            "Last pull",
            {"fields": ("last_synced_at", "last_sync_status", "last_sync_run_id", "created_at")},
        ),
    )


@admin.register(Student)
class StudentAdmin(admin.ModelAdmin):
    """Records of one person across vendors share a person: by email, automatically, or by
    hand with the actions below (recorded in the person link log; pulls never undo it)."""

    list_display = ("__str__", "email", "source", "external_id", "person", "person_by_hand")
    search_fields = ("first_name", "last_name", "email", "external_id", "person__id")
    list_filter = ("source", "person_by_hand")
    readonly_fields = ("person", "person_by_hand")
    actions = ("link_as_one_person", "unlink_persons")

    @admin.action(description="Link the selected records as one person")
    def link_as_one_person(self, request, queryset):
        try:
            person = persons_link(students=list(queryset), by=request.user.get_username())
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{queryset.count()} records are now {person}.")

    @admin.action(description="Unlink the selected records (each its own person)")
    def unlink_persons(self, request, queryset):
        students = list(queryset)
        persons_unlink(students=students, by=request.user.get_username())
        self.message_user(request, f"{len(students)} records unlinked.")


@admin.register(PersonLinkLog)
class PersonLinkLogAdmin(admin.ModelAdmin):
    """Who linked or unlinked which records, and when (read-only)."""

    list_display = ("at", "action", "by", "person_id_after")
    readonly_fields = ("action", "students", "person_id_after", "by", "at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("name", "cohort", "kind", "unit", "unit_position", "position")
    list_filter = ("kind",)
    search_fields = ("name", "external_id", "cohort__name")
    list_select_related = ("cohort",)


@admin.register(MentorNote)
class MentorNoteAdmin(admin.ModelAdmin):
    list_display = ("created_at", "author_name", "student", "cohort")
    search_fields = ("body", "author_name", "student__last_name", "student__email")
    list_select_related = ("student", "cohort")
    readonly_fields = ("cohort", "student", "author", "author_name", "created_at")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Adding a token answers with a page that shows its key, once: only its hash is kept,
    and the key never goes into a message (the messages cookie is signed, not encrypted)."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at")
    list_select_related = ("user",)
    search_fields = ("name", "user__username", "prefix")
    fields = ("user", "name", "prefix", "created_at", "last_used_at")
    readonly_fields = ("prefix", "created_at", "last_used_at")
    key_created_template = "admin/cohorts/apitoken/key_created.html"

    def get_readonly_fields(self, request, obj=None):
        # A token's owner never changes: revoke it and make a new one instead.
        return (*self.readonly_fields, "user") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key = ApiToken.new_key()
        obj.set_key(key)
        super().save_model(request, obj, form, change)
        obj.new_key = key  # for response_add only; never stored

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(obj, "new_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API key created",
            "token": obj,
            "key": key,
        }
        response = TemplateResponse(request, self.key_created_template, context)
        patch_cache_control(response, private=True, no_store=True)
        return response
