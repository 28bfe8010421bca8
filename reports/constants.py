"""Vocabulary shared by runs and the jobs that fill them (no model imports)."""

from django.db import models


class ErrorClass(models.TextChoices):
    TRANSIENT = "transient", "Transient (network or server error)"
    THROTTLED = "throttled", "Throttled by the vendor"
    AUTH = "auth", "Authentication refused"
    PERMISSION = "permission", "Permission denied"
    NOT_FOUND = "not_found", "Not found"
    INVALID_DATA = "invalid_data", "Invalid data"
    CONFLICT = "conflict", "Conflict"
    VENDOR_ERROR = "vendor_error", "Vendor error"
    MALFORMED = "malformed_response", "Malformed vendor response"
    CONFIG = "config", "Configuration"
    INTERNAL = "internal", "Internal error"
