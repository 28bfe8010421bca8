"""Settings come from the environment: each case loads config.settings in a fresh
interpreter with only the variables it names."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, django
from django.conf import settings
django.setup()
from django.db import connection
out = {
    "engine": settings.DATABASES["default"]["ENGINE"],
    "mailer": settings.MAILERS["default"],
    "q": {
        k: settings.Q_CLUSTER.get(k)
        for k in ("orm", "redis", "timeout", "retry", "max_attempts", "catch_up")
    },
    "recipients": settings.REPORT_RECIPIENTS,
}
if out["engine"].endswith("sqlite3"):
    with connection.cursor() as c:
        c.execute("PRAGMA journal_mode")
        out["journal"] = c.fetchone()[0]
print(json.dumps(out))
"""


def load(tmp_path, **env) -> dict:
    base = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CLASSBRIDGE_DATA_DIR": str(tmp_path),
        "DEBUG": "true",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode:
        raise AssertionError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sqlite_in_wal_mode_by_default(tmp_path):
    out = load(tmp_path)
    assert out["engine"] == "django.db.backends.sqlite3"
    assert out["journal"] == "wal"
    assert (tmp_path / "classbridge.sqlite3").exists()


def test_database_broker_by_default_redis_when_set(tmp_path):
    q = load(tmp_path)["q"]
    assert q["orm"] == "default" and q["redis"] is None
    assert q["timeout"] < q["retry"]
    assert q["max_attempts"] >= 1 and q["catch_up"] is False
    q = load(tmp_path, REDIS_URL="redis://127.0.0.1:6399/0")["q"]
    assert q["redis"] == "redis://127.0.0.1:6399/0" and q["orm"] is None


def test_email_url_maps_into_mailers(tmp_path):
    mailer = load(tmp_path, EMAIL_URL="smtp+tls://user%40x.org:s3cret@mail.x.org:587")["mailer"]
    assert mailer["BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert mailer["OPTIONS"]["host"] == "mail.x.org"
    assert mailer["OPTIONS"]["port"] == 587
    assert mailer["OPTIONS"]["username"] == "user@x.org"
    assert mailer["OPTIONS"]["use_tls"] is True
    mailer = load(tmp_path, EMAIL_URL=f"filemail://{tmp_path}/mail")["mailer"]
    assert mailer["BACKEND"] == "reports.mailfiles.EmailBackend"  # one file per message
    assert mailer["OPTIONS"]["file_path"] == f"{tmp_path}/mail"


def test_report_recipients_list(tmp_path):
    out = load(tmp_path, REPORT_RECIPIENTS="a@x.org, b@x.org,")
    assert out["recipients"] == ["a@x.org", "b@x.org"]


def test_secret_key_required_without_debug(tmp_path):
    with pytest.raises(AssertionError, match="SECRET_KEY"):
        load(tmp_path, DEBUG="false")


def test_malformed_value_names_the_variable(tmp_path):
    with pytest.raises(AssertionError, match="Q_WORKERS"):
        load(tmp_path, Q_WORKERS="many")


def test_placeholder_secret_key_refused_without_debug(tmp_path):
    """.env.example's SECRET_KEY is public: a production start with it is refused."""
    example = (ROOT / ".env.example").read_text()
    placeholder = next(
        line.split("=", 1)[1].strip()
        for line in example.splitlines()
        if line.startswith("SECRET_KEY=")
    )
    with pytest.raises(AssertionError, match="SECRET_KEY is still the placeholder"):
        load(tmp_path, DEBUG="false", SECRET_KEY=placeholder, ALLOWED_HOSTS="x.example.com")
    # DEBUG on (development) may keep it; a real key with DEBUG off is accepted.
    load(tmp_path, DEBUG="true", SECRET_KEY=placeholder)
    load(tmp_path, DEBUG="false", SECRET_KEY="a-real-and-long-random-secret-key-0123456789")
    with pytest.raises(AssertionError, match="SECRET_KEY"):
        load(
            tmp_path,
            DEBUG="false",
            SECRET_KEY="insecure-development-key-only-used-when-DEBUG-is-on",
        )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIGNIN_LOCKOUT_SECONDS", "0"),
        ("SIGNIN_MAX_FAILURES_PER_ACCOUNT", "-1"),
        ("SIGNIN_MAX_FAILURES_PER_ADDRESS", "-5"),
        ("SIGNIN_TRUSTED_PROXIES", "-1"),
        ("SIGNIN_TRUSTED_PROXIES", "one"),
    ],
)
def test_signin_settings_out_of_range_name_the_variable(tmp_path, name, value):
    with pytest.raises(AssertionError, match=name):
        load(tmp_path, **{name: value})


def test_env_example_has_no_inline_comments_on_values():
    """django-environ keeps a trailing `# ...` as part of the value, so a line of
    .env.example, once uncommented, must hold the value alone."""
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / ".env.example"
    for number, line in enumerate(example.read_text().splitlines(), 1):
        setting = line.lstrip("# ").strip()
        if re.match(r"^[A-Z_][A-Z0-9_]*=", setting):
            assert " #" not in setting, f".env.example line {number}: {line!r}"


@pytest.mark.parametrize("value", ["-1", "86401"])
def test_health_max_age_out_of_range_names_the_variable(tmp_path, value):
    with pytest.raises(AssertionError, match="HEALTH_MAX_AGE_SECONDS must be 0"):
        load(tmp_path, HEALTH_MAX_AGE_SECONDS=value)
