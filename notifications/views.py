"""A signed-in person's own notification settings: the digest, daily, weekly or off."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from cohorts.models import Cohort
from notifications.digest import frequency_of
from notifications.forms import DigestSettingsForm
from notifications.models import Digest, DigestStatus, NotificationSettings


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def notification_settings(request):
    user = request.user
    form = DigestSettingsForm(request.POST or None, initial={"digest": frequency_of(user)})
    if request.method == "POST" and form.is_valid():
        NotificationSettings.objects.update_or_create(
            user=user, defaults={"digest": form.cleaned_data["digest"]}
        )
        messages.success(request, "Saved.")
        return redirect("notifications:settings")
    return render(
        request,
        "notifications/settings.html",
        {
            "form": form,
            "nav": "settings",
            "cohorts": Cohort.objects.filter(mentors=user).order_by("name"),
            "last_sent": Digest.objects.filter(user=user, status=DigestStatus.SENT).first(),
            "digest_hour": settings.DIGEST_HOUR,
            "digest_weekday": [
                "Monday",
                "Tuesday",
                "Wednesday",
                "Thursday",
                "Friday",
                "Saturday",
                "Sunday",
            ][settings.DIGEST_WEEKDAY],
            "time_zone": settings.TIME_ZONE,
        },
        status=400 if form.errors else 200,
    )
