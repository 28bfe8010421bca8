"""Classbridge settings, read from the environment (or a `.env` file beside manage.py).

Every variable operators rely on is listed in docs/configuration.md and .env.example.
A malformed value fails loudly at start-up and names the variable.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
ENV_FILE = BASE_DIR / ".env"
if ENV_FILE.exists():
    environ.Env.read_env(ENV_FILE, overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
DATA_DIR = Path(env.str("CLASSBRIDGE_DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

_DEV_SECRET = "insecure-development-key-only-used-when-DEBUG-is-on"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. It is required when DEBUG is off: set SECRET_KEY in the "
        "environment or .env (see .env.example), or DEBUG=true for local development."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "cohorts",
    "reports",
    "integrations",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Under /api/ every error answers JSON (config/errors.py).
    "config.errors.ApiJsonErrorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "config.urls"
# JSON under /api/, the site's 403 page elsewhere.
CSRF_FAILURE_VIEW = "config.errors.csrf_failure"
# The technical 500 page (DEBUG) and error mails also hide the user:password@ of every URL
# (DATABASE_URL, REDIS_URL, EMAIL_URL, ...), wherever it appears, exception messages included.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.debug.CredentialsCleansingFilter"
DEFAULT_EXCEPTION_REPORTER = "config.debug.CredentialsCleansingReporter"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# SQLite in WAL mode is the embedded default; DATABASE_URL switches to PostgreSQL.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'classbridge.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # busy waiting comes from "timeout"; a busy_timeout pragma here would override it.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_TIMEOUT", default=20),
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Task queue (django-q2) ----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "classbridge",
    "workers": env.int("Q_WORKERS", default=2),
    # A task may run this long; `retry` must stay above it or the broker hands the
    # same task out again while it still runs.
    "timeout": env.int("Q_TIMEOUT", default=1800),
    "retry": env.int("Q_TIMEOUT", default=1800) + 300,
    "max_attempts": 2,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 500,
    "queue_limit": 50,
    "label": "Task queue",
    "sync": env.bool("Q_SYNC", default=False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 1

# --- Auth -----------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "cohorts:list"
LOGOUT_REDIRECT_URL = "login"
MENTOR_GROUP = "mentors"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Sign-in and privacy (issue 7: throttle, placeholder key, private pages/files) -----
# Kept in one block so that other sections can change without touching it.
# docs/configuration.md "Sign-in and privacy" describes each setting.
# .env.example's placeholder (and the development key) are public: never sign with them.
if not DEBUG and (SECRET_KEY.lower().startswith("change-me") or SECRET_KEY == _DEV_SECRET):
    raise ImproperlyConfigured(
        "SECRET_KEY is still the placeholder from .env.example (or the development key). "
        "Set SECRET_KEY to a long random string, e.g. the output of: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
INSTALLED_APPS += ["accounts"]
MIDDLEWARE += [
    # After authentication and CSRF: throttles the site's and the admin's sign-in POSTs,
    # then marks every response to a signed-in user `Cache-Control: private, no-store`.
    "accounts.middleware.SignInThrottleMiddleware",
    "accounts.middleware.PrivatePagesMiddleware",
]
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Sign-in failures must be counted across every web process: a table in the database
    # (created by `migrate`, see accounts/apps.py), never a per-process memory cache.
    "signin": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "classbridge_signin_cache",
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    },
}


def _int_at_least(name: str, default: int, minimum: int) -> int:
    value = env.int(name, default=default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be {minimum} or more, not {value}.")
    return value


# A failed sign-in counts against its account and its client address for
# SIGNIN_LOCKOUT_SECONDS; reaching a limit locks that account or address for as long.
# 0 turns a limit off.
SIGNIN_MAX_FAILURES_PER_ACCOUNT = _int_at_least("SIGNIN_MAX_FAILURES_PER_ACCOUNT", 5, 0)
SIGNIN_MAX_FAILURES_PER_ADDRESS = _int_at_least("SIGNIN_MAX_FAILURES_PER_ADDRESS", 20, 0)
SIGNIN_LOCKOUT_SECONDS = _int_at_least("SIGNIN_LOCKOUT_SECONDS", 900, 1)
# How many reverse proxies in front of the site append to X-Forwarded-For. 0 (default):
# the client address is REMOTE_ADDR and X-Forwarded-For is ignored (anyone can forge it).
SIGNIN_TRUSTED_PROXIES = _int_at_least("SIGNIN_TRUSTED_PROXIES", 0, 0)

# The data directory holds the database, rosters and captured mail: the service user's
# only (manage.py, wsgi.py and asgi.py also set umask 077, see config/private_files.py).
try:
    DATA_DIR.chmod(0o700)
except OSError as exc:
    raise ImproperlyConfigured(
        f"CLASSBRIDGE_DATA_DIR {DATA_DIR} must belong to the user running Classbridge "
        f"(chmod 700 failed: {exc.strerror})."
    ) from None
# -------------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security -------------------------------------------------------------------------
from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    # plotly.js sets inline styles on the elements it draws (plotly.js issue 2355).
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# A monitor or load balancer probes /healthz over plain HTTP behind a TLS-terminating
# proxy; a redirect to HTTPS would read as "down".
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_PROXY_SSL_HEADER = (
        ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_PROXY", default=False) else None
    )

# --- Mail -----------------------------------------------------------------------------
# Django 6.1 replaces EMAIL_* with MAILERS; env.email_url() still speaks EMAIL_*, so map it.
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
_backend = _email["EMAIL_BACKEND"]
_mail_options: dict = {}
if _backend.endswith("smtp.EmailBackend"):
    _mail_options = {
        "host": _email.get("EMAIL_HOST") or "localhost",
        "port": _email.get("EMAIL_PORT") or 25,
        "username": _email.get("EMAIL_HOST_USER") or "",
        "password": _email.get("EMAIL_HOST_PASSWORD") or "",
        "use_tls": bool(_email.get("EMAIL_USE_TLS")),
        "use_ssl": bool(_email.get("EMAIL_USE_SSL")),
        "timeout": env.int("EMAIL_TIMEOUT", default=20),
    }
elif _backend.endswith("filebased.EmailBackend"):
    # django-environ drops the leading "/" of filemail:///abs/path, so read the path here:
    # filemail:///abs/path is absolute, filemail://rel/path is relative to the project.
    _raw = env.str("EMAIL_URL", default="").partition("://")[2]
    _mail_options = {
        "file_path": str(BASE_DIR / _raw) if _raw else str(DATA_DIR / "mail"),
    }
    _backend = "reports.mailfiles.EmailBackend"  # one file per message
MAILERS = {"default": {"BACKEND": _backend, "OPTIONS": _mail_options}}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Classbridge <classbridge@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
REPORT_RECIPIENTS = [a.strip() for a in env.list("REPORT_RECIPIENTS", default=[]) if a.strip()]
# The failures CSV attached to a report holds at most this many rows, then a link to the
# full CSV on the run page (0: no attachment, only the link).
REPORT_ATTACHMENT_MAX_ROWS = env.int("REPORT_ATTACHMENT_MAX_ROWS", default=1000)
if REPORT_ATTACHMENT_MAX_ROWS < 0:
    raise ImproperlyConfigured("REPORT_ATTACHMENT_MAX_ROWS must be 0 or more")

# --- Cohort health (docs/cohort-health.md) ----------------------------------------------
# A cohort's stored health is computed again once it is older than this (inactivity and
# trends count to "now"); new data, thresholds and course dates make it stale at once.
HEALTH_MAX_AGE_SECONDS = env.int("HEALTH_MAX_AGE_SECONDS", default=600)
if not 0 <= HEALTH_MAX_AGE_SECONDS <= 86400:
    raise ImproperlyConfigured(
        f"HEALTH_MAX_AGE_SECONDS must be 0 (never stored) to 86400, not {HEALTH_MAX_AGE_SECONDS}"
    )

# --- Notifications (docs/notifications.md) ----------------------------------------------
DIGEST_DEFAULT_FREQUENCY = env.str("DIGEST_DEFAULT_FREQUENCY", default="weekly")
DIGEST_HOUR = env.int("DIGEST_HOUR", default=7)
DIGEST_WEEKDAY = env.int("DIGEST_WEEKDAY", default=0)
STALE_ALERT_GRACE_MINUTES = env.int("STALE_ALERT_GRACE_MINUTES", default=60)
STALE_ALERT_FAILED_PULLS = env.int("STALE_ALERT_FAILED_PULLS", default=2)
for _name, _ok, _rule in (
    (
        "DIGEST_DEFAULT_FREQUENCY",
        DIGEST_DEFAULT_FREQUENCY in ("daily", "weekly", "off"),
        "daily, weekly or off",
    ),
    ("DIGEST_HOUR", 0 <= DIGEST_HOUR <= 23, "an hour from 0 to 23"),
    ("DIGEST_WEEKDAY", 0 <= DIGEST_WEEKDAY <= 6, "a weekday from 0 (Monday) to 6 (Sunday)"),
    ("STALE_ALERT_GRACE_MINUTES", STALE_ALERT_GRACE_MINUTES >= 0, "0 or more minutes"),
    ("STALE_ALERT_FAILED_PULLS", STALE_ALERT_FAILED_PULLS >= 1, "1 or more pulls"),
):
    if not _ok:
        raise ImproperlyConfigured(f"{_name} must be {_rule}, not {globals()[_name]!r}")

# --- Vendors --------------------------------------------------------------------------
# Read as plain strings here; each job validates what it needs (integrations/config.py)
# so a missing value stops that job with exit status 2 and names the variable.
OPENCLASS_BASE_URL = env.str("OPENCLASS_BASE_URL", default="https://api.openclass.ai")
OPENCLASS_EMAIL = env.str("OPENCLASS_EMAIL", default="")
OPENCLASS_PASSWORD = env.str("OPENCLASS_PASSWORD", default="")
OPENCLASS_APP_ID = env.str("OPENCLASS_APP_ID", default="")
OPENCLASS_ORIGIN = env.str("OPENCLASS_ORIGIN", default="https://app.openclass.ai")
OPENCLASS_PAGE_SIZE = env.int("OPENCLASS_PAGE_SIZE", default=100)
OPENCLASS_REQUESTS_PER_SECOND = env.float("OPENCLASS_REQUESTS_PER_SECOND", default=2.0)

APEX_BASE_URL = env.str("APEX_BASE_URL", default="https://api.apexvs.com")
APEX_CLIENT_ID = env.str("APEX_CLIENT_ID", default="")
APEX_CLIENT_SECRET = env.str("APEX_CLIENT_SECRET", default="")
APEX_ORG_ID = env.str("APEX_ORG_ID", default="")
APEX_BATCH_SIZE = env.int("APEX_BATCH_SIZE", default=50)
APEX_CONCURRENCY = env.int("APEX_CONCURRENCY", default=4)
APEX_REQUESTS_PER_SECOND = env.float("APEX_REQUESTS_PER_SECOND", default=5.0)

TITAN_BASE_URL = env.str("TITAN_BASE_URL", default="")
TITAN_API_KEY = env.str("TITAN_API_KEY", default="")
TITAN_MAX_REMOVALS = env.int("TITAN_MAX_REMOVALS", default=25)
TITAN_MAX_REMOVAL_PERCENT = env.float("TITAN_MAX_REMOVAL_PERCENT", default=10.0)
# The contract's defaults (shared/vendor-contracts.md section 3); the vendor's real header
# and paths are a settings change, not a code change. {site_id} is filled in.
TITAN_KEY_HEADER = env.str("TITAN_KEY_HEADER", default="X-API-Key")
TITAN_USERS_PATH = env.str("TITAN_USERS_PATH", default="/api/v1/users")
TITAN_SITES_PATH = env.str("TITAN_SITES_PATH", default="/api/v1/sites")
TITAN_ROLES_PATH = env.str("TITAN_ROLES_PATH", default="/api/v1/roles")
TITAN_MEMBERS_PATH = env.str("TITAN_MEMBERS_PATH", default="/api/v1/sites/{site_id}/members")
TITAN_PER_PAGE = env.int("TITAN_PER_PAGE", default=100)
TITAN_REQUESTS_PER_SECOND = env.float("TITAN_REQUESTS_PER_SECOND", default=5.0)
TITAN_READ_CONCURRENCY = env.int("TITAN_READ_CONCURRENCY", default=4)  # pages read at once

CANVAS_BASE_URL = env.str("CANVAS_BASE_URL", default="")
CANVAS_TOKEN = env.str("CANVAS_TOKEN", default="")
CANVAS_ACCOUNT_ID = env.str("CANVAS_ACCOUNT_ID", default="")
# docs/canvas.md: pacing against Canvas's leaky bucket, courses pulled at once in a bulk
# pull, and the overlap kept before the watermark of an incremental pull.
CANVAS_REQUESTS_PER_SECOND = env.float("CANVAS_REQUESTS_PER_SECOND", default=0.0)
CANVAS_RATE_LIMIT_FLOOR = env.float("CANVAS_RATE_LIMIT_FLOOR", default=150.0)
CANVAS_CONCURRENCY = env.int("CANVAS_CONCURRENCY", default=3)
CANVAS_WATERMARK_OVERLAP_SECONDS = env.int("CANVAS_WATERMARK_OVERLAP_SECONDS", default=300)
CANVAS_FULL_REFRESH_HOURS = env.int("CANVAS_FULL_REFRESH_HOURS", default=24)

ROSTER_MAX_BYTES = env.int("ROSTER_MAX_BYTES", default=20 * 1024 * 1024)
# More header names per roster column: JSON {"email": ["E-mail"]} or email=E-mail|Mail,...
# (checked when a roster is read; a malformed value stops that job naming the variable).
APEX_HEADER_ALIASES = env.str("APEX_HEADER_ALIASES", default="")
TITAN_HEADER_ALIASES = env.str("TITAN_HEADER_ALIASES", default="")
HTTP_TIMEOUT_SECONDS = env.float("HTTP_TIMEOUT_SECONDS", default=30.0)
HTTP_MAX_RETRIES = env.int("HTTP_MAX_RETRIES", default=4)

# --- Logging --------------------------------------------------------------------------
# Every handler redacts secrets (message, exception text, traceback) and knows the run it
# logs for. LOG_FORMAT=json: one JSON object a line (run_id, kind and stage inside a job).
LOG_FORMAT = env.str("LOG_FORMAT", default="text").strip().lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
# Addresses that get an email for every server error (Django's mail_admins); empty: none.
ADMINS = [a.strip() for a in env.list("ADMINS", default=[]) if a.strip()]
_LOG_FILTERS = ["redact", "job_context"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "integrations.redact.RedactSecretsFilter"},
        "job_context": {"()": "integrations.logs.JobContextFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "text": {
            "()": "integrations.logs.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s%(job)s: %(message)s",
        },
        "json": {"()": "integrations.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": _LOG_FILTERS,
        },
        # Errors (a crashed job, a 500) to ADMINS, if any, redacted like the console.
        "mail_admins": {
            "class": "integrations.logs.RedactingAdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false", *_LOG_FILTERS],
        },
    },
    "root": {
        "handlers": ["console", "mail_admins"],
        "level": env.str("LOG_LEVEL", default="INFO"),
    },
    "loggers": {
        # Django's defaults give these their own unredacted handlers: these replace them,
        # and their records reach the redacted root handler.
        "django": {"level": "INFO", "propagate": True},
        "django.server": {"level": "INFO", "propagate": True},
        # urllib3 logs full URLs at DEBUG; keep it quiet so nothing secret slips out.
        "urllib3": {"level": "WARNING"},
        # django-q2 adds its own unredacted handler only to a logger that has none.
        "django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING"), "propagate": True},
    },
}
# Tests turn real sleeping off: retries and Retry-After are still computed and counted.
HTTP_RETRY_SLEEP = env.bool("HTTP_RETRY_SLEEP", default=True)
# A running run whose job has not reported for this long is taken as orphaned (killed
# worker) and re-queued to resume, at most RUN_MAX_RESUMES times.
RUN_STALE_SECONDS = env.int("RUN_STALE_SECONDS", default=900)
RUN_MAX_RESUMES = env.int("RUN_MAX_RESUMES", default=2)
# A queued run with no task behind it in the broker after this long (a lost task: broker
# restarted, enqueue failed after commit) gets its task queued again by the reaper, at
# most RUN_MAX_TASK_REQUEUES times; then it is failed with the reason.
RUN_QUEUED_STALE_SECONDS = env.int("RUN_QUEUED_STALE_SECONDS", default=600)
RUN_MAX_TASK_REQUEUES = env.int("RUN_MAX_TASK_REQUEUES", default=3)
# /healthz reports the queue down when tasks wait and no worker has been seen (heartbeat
# task, or a running job's progress) for this long.
QUEUE_WORKER_STALE_SECONDS = env.int("QUEUE_WORKER_STALE_SECONDS", default=300)
# Retention, in days (0: keep forever), applied daily by integrations.retention: stored
# rosters, the items of finished runs (the run, its counts and message stay) and mail
# captured by filemail://.
RETENTION_ROSTER_DAYS = env.int("RETENTION_ROSTER_DAYS", default=90)
RETENTION_RUN_ITEMS_DAYS = env.int("RETENTION_RUN_ITEMS_DAYS", default=180)
RETENTION_MAIL_DAYS = env.int("RETENTION_MAIL_DAYS", default=30)
for _name in ("RETENTION_ROSTER_DAYS", "RETENTION_RUN_ITEMS_DAYS", "RETENTION_MAIL_DAYS"):
    if globals()[_name] < 0:
        raise ImproperlyConfigured(f"{_name} must be 0 (keep forever) or a number of days")
