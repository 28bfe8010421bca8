"""Test settings: the real settings, with tasks run in-process and fast hashing."""

import os

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("Q_SYNC", "true")
os.environ.setdefault("EMAIL_URL", "consolemail://")

from config.settings import *  # noqa: F403
from config.settings import STATIC_ROOT, STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The live server of browser tests serves unhashed files; no collectstatic needed.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SECURE_SSL_REDIRECT = False
REPORT_RECIPIENTS = ["reports@example.com"]
# Tests never wait for a polite request rate or a real backoff.
OPENCLASS_REQUESTS_PER_SECOND = 0
TITAN_REQUESTS_PER_SECOND = 0
HTTP_RETRY_SLEEP = False
# whitenoise warns when STATIC_ROOT is missing; tests serve static files from the finders.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
