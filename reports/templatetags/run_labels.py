"""Runs in words on pages: a dry run's status, an item's outcome and error class."""

from django import template

from reports.constants import ErrorClass
from reports.render import outcome_label, status_label, trigger_words

register = template.Library()

_ERROR_LABELS = dict(ErrorClass.choices)


@register.filter
def run_status_label(run) -> str:
    return status_label(run)


@register.filter
def outcome_words(code: str) -> str:
    return outcome_label(code)


@register.filter
def error_words(code: str) -> str:
    return str(_ERROR_LABELS.get(code, (code or "").replace("_", " ")))


@register.filter
def trigger(triggered_by: str) -> str:
    return trigger_words(triggered_by)
