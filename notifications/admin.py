from django.contrib import admin

from notifications.models import AlertEvent, CohortAlert, Digest, NotificationSettings


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ("user", "digest", "updated_at")
    list_filter = ("digest",)
    search_fields = ("user__username", "user__email")


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    """What was sent (or found empty) per mentor and period: a record, not for editing."""

    list_display = ("user", "period", "frequency", "status", "summary", "sent_at")
    list_filter = ("status", "frequency")
    search_fields = ("user__username", "period")
    readonly_fields = [f.name for f in Digest._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CohortAlert)
class CohortAlertAdmin(admin.ModelAdmin):
    list_display = ("cohort", "problem", "opened_at", "closed_at")
    list_filter = ("problem",)
    readonly_fields = ("cohort", "problem", "opened_at", "closed_at")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ("cohort", "kind", "problem", "created_at", "sent_at")
    list_filter = ("kind", "problem")
    readonly_fields = [f.name for f in AlertEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
