"""Address lists: each address once, compared without case (one person, one copy)."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model


def unique_addresses(candidates: Iterable[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for address in candidates:
        address = (address or "").strip()
        if address and address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


def alert_recipients() -> list[str]:
    """Who gets stale-data alerts: every active staff user with an email address, then
    REPORT_RECIPIENTS (the operators who already get every run report)."""
    staff = (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .exclude(email="")
        .order_by("pk")
        .values_list("email", flat=True)
    )
    return unique_addresses([*staff, *(getattr(settings, "REPORT_RECIPIENTS", []) or [])])
