"""Sign-in throttle in front of the sign-in views, and private caching of signed-in pages."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_cache_control

from accounts import throttle

# The views that check a password: the site's sign-in and the admin's.
SIGN_IN_VIEWS = frozenset({"login", "admin:login"})


class SignInThrottleMiddleware:
    """Refuses a sign-in POST from a locked account or address before the view runs, so
    the password is never checked; answers 429 with the time to try again."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method != "POST":
            return None
        match = request.resolver_match
        if match is None or match.view_name not in SIGN_IN_VIEWS:
            return None
        username = request.POST.get(get_user_model().USERNAME_FIELD, "")
        until = throttle.locked_until(request, username)
        if until is None:
            return None
        return throttled_response(request, until)


def throttled_response(request, until: float):
    seconds = max(1, math.ceil(until - time.time()))
    retry_at = timezone.localtime(datetime.fromtimestamp(until, tz=UTC))
    response = render(
        request,
        "accounts/signin_throttled.html",
        {
            "retry_at": retry_at,
            "minutes": math.ceil(seconds / 60),
            "sign_in_url": request.get_full_path(),
        },
        status=429,
    )
    response["Retry-After"] = str(seconds)
    patch_cache_control(response, private=True, no_store=True)
    return response


class PrivatePagesMiddleware:
    """Every response to a signed-in user is `Cache-Control: private, no-store`: cohort,
    student, health and run pages, downloads and the admin show student data, which no
    shared cache or browser history may keep. Directives a view set are kept."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response
