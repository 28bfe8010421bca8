"""Error answers: JSON under /api/, the site's layout everywhere else.

- `ApiJsonErrorsMiddleware`: under /api/, any error response that is not JSON already (a
  URL that matches nothing, Django's 405, a 500 page, DEBUG's technical pages) is replaced
  by `{"error": {"code": ..., "message": ...}}` with the same status (and Allow header).
- `csrf_failure` (CSRF_FAILURE_VIEW): JSON under /api/, the 403 page elsewhere.
- `server_error` (handler500): templates/500.html, rendered without a request or the
  database (both may be what failed); a fixed page if even that fails.
404.html and 403.html are rendered by Django's own handlers with the request.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.template import loader
from django.views import csrf

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"

API_ERRORS = {
    400: ("bad_request", "The request is not valid."),
    401: ("not_authenticated", "Sign in, or send 'Authorization: Token <key>'."),
    403: ("forbidden", "You may not do this."),
    404: ("not_found", "No such endpoint: GET /api/ lists them."),
    405: ("method_not_allowed", "The API is read-only: use GET."),
    500: ("server_error", "Something went wrong on our side; it has been logged."),
}

# Served when even templates/500.html cannot be rendered (a broken template or storage).
FALLBACK_500 = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Server error · '
    "Classbridge</title></head><body><main><h1>Something went wrong</h1><p>It has been "
    'logged. Try again in a minute, or <a href="/">go back to the cohorts</a>.</p>'
    "</main></body></html>"
)


def is_api(request: HttpRequest) -> bool:
    path = getattr(request, "path_info", "") or ""
    return path == API_PREFIX.rstrip("/") or path.startswith(API_PREFIX)


def api_error(status: int, code: str | None = None, message: str | None = None) -> JsonResponse:
    default_code, default_message = API_ERRORS.get(status, ("error", "The request failed."))
    return JsonResponse(
        {"error": {"code": code or default_code, "message": message or default_message}},
        status=status,
    )


class ApiJsonErrorsMiddleware:
    """Under /api/, every error answers JSON (see the module docstring)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and is_api(request)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            replacement = api_error(response.status_code)
            for header in ("Allow", "WWW-Authenticate", "Cache-Control"):
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if is_api(request):
        return api_error(
            403,
            "csrf_failed",
            "CSRF verification failed. The API is read-only: send GET; with a token "
            "('Authorization: Token <key>') no CSRF token is needed.",
        )
    if settings.DEBUG:
        return csrf.csrf_failure(request, reason)  # Django's page says what is missing
    return HttpResponse(
        loader.render_to_string(
            "403.html",
            {
                "exception": "The form's security check failed: it was open too long, or "
                "cookies are blocked. Go back, reload the page and try again."
            },
            request,
        ),
        status=403,
    )


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return api_error(500)
    try:
        # No request and no context processors: no session, user or database needed.
        return HttpResponseServerError(loader.get_template("500.html").render({}))
    except Exception:
        logger.exception("templates/500.html could not be rendered")
        return HttpResponseServerError(FALLBACK_500)
