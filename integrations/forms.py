"""Forms of the integration pages."""

from __future__ import annotations

from django import forms

from integrations.rosters import human_bytes, roster_max_bytes, size_refusal


class RosterUploadForm(forms.Form):
    file = forms.FileField(
        label="Roster CSV",
        help_text="Columns ClassroomName and StudentId (or ImportClassroomId and "
        "ImportUserId), optionally OrgId; comma, semicolon or tab separated.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text += f" At most {human_bytes(roster_max_bytes())}."

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > roster_max_bytes():
            raise forms.ValidationError(size_refusal(upload.size))
        return upload


class EnrollConfirmForm(forms.Form):
    dry_run = forms.BooleanField(
        required=False,
        label="Dry run",
        help_text="Check everything and report what would be sent; send nothing.",
    )


class TitanUploadForm(RosterUploadForm):
    """A Titan roster: one row per (user, site)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = (
            "Columns external_id, first_name, last_name, email, site_name, role_names "
            "(several roles separated by ;). At most "
            f"{human_bytes(roster_max_bytes())}. Nothing is sent before you apply the plan."
        )


class TitanDecisionForm(forms.Form):
    plan_hash = forms.CharField(widget=forms.HiddenInput, max_length=64)
    reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Recorded with the decision, with your name and the time.",
    )

    def clean(self):
        data = super().clean()
        data["reason"] = (data.get("reason") or "").strip()
        return data
