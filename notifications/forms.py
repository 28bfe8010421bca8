from django import forms

from notifications.models import DigestFrequency


class DigestSettingsForm(forms.Form):
    digest = forms.ChoiceField(
        label="Digest of my cohorts",
        choices=DigestFrequency.choices,
        widget=forms.RadioSelect,
        help_text="Who newly needs attention and why, who recovered, the top blockers and "
        "how fresh the data is. Sent only when something is new.",
    )
