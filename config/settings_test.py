"""Test settings: the real settings, with tasks run in-process and fast hashing."""

import os

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("Q_SYNC", "true")
os.environ.setdefault("EMAIL_URL", "consolemail://")

from pathlib import Path

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
HTTP_RETRY_SLEEP = False
# whitenoise warns when STATIC_ROOT is missing; tests serve static files from the finders.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
# A file, not SQLite's shared-cache memory database: there, concurrent connections get
# "database table is locked" at once instead of waiting, so tests of real concurrency
# (two requests at the same moment, two workers on one run) could not run as deployed.
# One file per process (xdist workers and parallel runs never share one).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(Path(tempfile.gettempdir()) / f"classbridge-test-{os.getpid()}.sqlite3")
    }
