"""Forms of the cohort pages: the page filters (GET), mentor notes and thresholds (POST)."""

from __future__ import annotations

from datetime import date

from django import forms

from cohorts.analytics import AT_RISK, EARLIEST_DATE, LATEST_DATE, ON_TRACK, WATCH
from cohorts.models import Cohort, MentorNote

STATUS_CHOICES = [
    ("", "Any status"),
    (AT_RISK, "At risk"),
    (WATCH, "Watch"),
    (ON_TRACK, "On track"),
]
SORT_COLUMNS = {
    "name": "name",
    "status": "severity",
    "completed": "completed",
    "behind": "behind",
    "activity": "days_inactive",
    "quiz": "quiz_average",
    "trend": "this_week",
}


def date_out_of_range(value: date, bounds: tuple[date, date]) -> str | None:
    """Why `value` is outside `bounds` (first, last), in words; None when inside."""
    first, last = bounds
    if first <= value <= last:
        return None
    return f"Pick a day from {first.isoformat()} to {last.isoformat()}."


class HealthFilterForm(forms.Form):
    """The health page's GET parameters. Anything invalid is dropped, never an error page:
    a bookmarked URL with a unit that has since been renamed still opens. A date that is
    not a date, or outside `bounds` (the cohort's lifetime plus a margin,
    `analytics.date_bounds`), is dropped too, and its error is shown beside the field
    (`date_errors`); a CSV download refuses it (400)."""

    unit = forms.ChoiceField(required=False)
    date_from = forms.DateField(required=False, label="From")
    date_to = forms.DateField(required=False, label="To")
    status = forms.ChoiceField(required=False, choices=STATUS_CHOICES)
    q = forms.CharField(required=False, max_length=100, label="Search")
    sort = forms.ChoiceField(required=False, choices=[(k, k) for k in SORT_COLUMNS])
    dir = forms.ChoiceField(required=False, choices=[("asc", "asc"), ("desc", "desc")])
    freq = forms.ChoiceField(required=False, choices=[("", "auto"), ("D", "day"), ("W", "week")])

    def __init__(self, data, *, units: list[str], bounds: tuple[date, date] | None = None) -> None:
        super().__init__(data)
        self.bounds = bounds or (EARLIEST_DATE, LATEST_DATE)
        self.fields["unit"].choices = [("", "All units")] + [(u, u or "No unit") for u in units]

    def _bounded(self, name: str) -> date | None:
        value = self.cleaned_data.get(name)
        if value is not None and (problem := date_out_of_range(value, self.bounds)):
            raise forms.ValidationError(problem)
        return value

    def clean_date_from(self) -> date | None:
        return self._bounded("date_from")

    def clean_date_to(self) -> date | None:
        return self._bounded("date_to")

    @property
    def date_errors(self) -> dict[str, str]:
        """The date parameters refused, by name, with the reason (empty when unbound)."""
        if not self.is_bound:
            return {}
        return {
            name: " ".join(self.errors[name])
            for name in ("date_from", "date_to")
            if name in self.errors
        }

    def values(self) -> dict:
        """The valid parameters, with blanks for the invalid ones."""
        self.is_valid()
        clean = {name: self.cleaned_data.get(name) for name in self.fields}
        for name in self.errors:
            clean[name] = None
        if clean["date_from"] and clean["date_to"] and clean["date_from"] > clean["date_to"]:
            clean["date_from"], clean["date_to"] = clean["date_to"], clean["date_from"]
        return clean


class MentorNoteForm(forms.ModelForm):
    class Meta:
        model = MentorNote
        fields = ["body"]
        labels = {"body": "Add a note"}
        widgets = {
            "body": forms.Textarea(
                attrs={"rows": 3, "placeholder": "Called Sam: will finish unit 3 by Friday."}
            )
        }

    def clean_body(self) -> str:
        body = self.cleaned_data["body"].strip()
        if not body:
            raise forms.ValidationError("Write something first.")
        return body


def _percent_input() -> forms.NumberInput:
    return forms.NumberInput(attrs={"step": "1", "min": "1", "max": "100", "inputmode": "decimal"})


class PercentThresholdsForm(forms.ModelForm):
    """The thresholds as the health page speaks of them: days, and percentages ("20% of the
    curriculum behind", "a quiz average under 60%") entered as percent and stored as shares.
    The health page's form and the Django admin's both build on it, so neither stores what
    the other refuses."""

    PERCENT_FIELDS = ("behind_fraction", "low_grade")

    behind_fraction = forms.FloatField(
        label="Behind the cohort median by (% of the curriculum)",
        widget=_percent_input(),
        help_text="In percent, e.g. 20: that far behind the cohort median puts a student at risk.",
    )
    low_grade = forms.FloatField(
        label="Low quiz average (%)",
        widget=_percent_input(),
        help_text="In percent, e.g. 60: a quiz average below it puts a student at risk.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.PERCENT_FIELDS:
            share = getattr(self.instance, name, None)
            if share is not None:
                self.initial[name] = round(share * 100, 1)

    def clean_inactive_days(self) -> int:
        value = self.cleaned_data["inactive_days"]
        if value < 1:
            raise forms.ValidationError("At least one day.")
        return value

    def clean_behind_fraction(self) -> float:
        return self._share("behind_fraction")

    def clean_low_grade(self) -> float:
        return self._share("low_grade")

    def clean(self) -> dict:
        data = super().clean()
        for name in ("starts_on", "ends_on"):
            value = data.get(name)
            if value is not None and (
                problem := date_out_of_range(value, (EARLIEST_DATE, LATEST_DATE))
            ):
                self.add_error(name, problem)
                data.pop(name, None)
        starts, ends = data.get("starts_on"), data.get("ends_on")
        if starts and ends and ends < starts:
            self.add_error("ends_on", "The course cannot end before it starts.")
        return data

    def _share(self, name: str) -> float:
        value = self.cleaned_data[name]
        if not 0 < value <= 100:
            raise forms.ValidationError("A percentage above 0 and at most 100, e.g. 20.")
        return value / 100


class CohortThresholdsForm(PercentThresholdsForm):
    """What an admin may tune per cohort on the health page: the health thresholds and the
    pace dates."""

    class Meta:
        model = Cohort
        fields = ["inactive_days", "behind_fraction", "low_grade", "starts_on", "ends_on"]
        labels = {
            "inactive_days": "Days inactive before watch",
            "starts_on": "Course starts",
            "ends_on": "Course ends",
        }
        widgets = {
            "starts_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "ends_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        }


class CohortAdminForm(PercentThresholdsForm):
    """The Django admin's cohort form (its fieldsets pick the fields shown): the thresholds
    in the same units (days, percent) and under the same rules as the health page's."""

    class Meta:
        model = Cohort
        fields = [
            "name",
            "source",
            "external_id",
            "mentors",
            "sync_interval_hours",
            "inactive_days",
            "behind_fraction",
            "low_grade",
            "starts_on",
            "ends_on",
        ]
        labels = {"inactive_days": "Days inactive before watch"}
