"""The data directory and what the service writes in it are the service user's only:
directories 0700, files 0600, whatever umask the service was started with.

Each case starts the real entry point (manage.py, or config.wsgi) in a fresh interpreter
under umask 022, lets it create the SQLite database (WAL and SHM), capture a mail and store
a roster, and reads the modes of the files it actually made.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from config.private_files import restrict_umask, sqlite_files_private

ROOT = Path(__file__).resolve().parent.parent

# Runs inside `manage.py shell`: writes like the service does, then reports every mode
# under the data directory while the database connection (and so its -wal/-shm) is open.
WRITER = """
import io, json, os, stat
from pathlib import Path
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection
from integrations.rosters import roster_store

from django.contrib.auth.models import Group
Group.objects.create(name="written")  # a write: the WAL has content
send_mail("Report", "body", "a@example.com", ["b@example.com"])
roster_store(io.BytesIO(b"first,last\\nAnn,Archer\\n"), name="roster.csv")
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM auth_group")
modes = {}
root = Path(settings.DATA_DIR)
modes["."] = stat.S_IMODE(root.stat().st_mode)
for path in root.rglob("*"):
    modes[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
print("MODES " + json.dumps(modes))
"""


def run(args: list[str], data_dir: Path, **env) -> subprocess.CompletedProcess:
    base = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CLASSBRIDGE_DATA_DIR": str(data_dir),
        "DEBUG": "true",
        "EMAIL_URL": f"filemail://{data_dir}/mail",
    }
    result = subprocess.run(
        args,
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),  # a typical, permissive caller
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def service_writes(data_dir: Path) -> dict[str, int]:
    run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], data_dir)
    out = run([sys.executable, "manage.py", "shell", "-c", WRITER], data_dir).stdout
    line = next(line for line in out.splitlines() if line.startswith("MODES "))
    return json.loads(line.removeprefix("MODES "))


def test_everything_the_service_writes_is_private(tmp_path):
    data = tmp_path / "data"
    modes = service_writes(data)
    names = set(modes)
    for expected in (
        ".",
        "classbridge.sqlite3",
        "classbridge.sqlite3-wal",
        "classbridge.sqlite3-shm",
        "mail",
        "rosters",
    ):
        assert expected in names, sorted(names)
    assert any(n.startswith("mail/") for n in names), sorted(names)
    assert any(n.startswith("rosters/") and n.endswith(".csv") for n in names), sorted(names)
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (data / name).is_dir() else 0o600)
    }
    assert not wrong, wrong


def test_an_existing_open_data_directory_and_database_are_tightened(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    old_db = data / "classbridge.sqlite3"
    sqlite3.connect(old_db).close()
    old_db.chmod(0o644)
    modes = service_writes(data)
    assert modes["."] == 0o700
    assert modes["classbridge.sqlite3"] == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_the_wsgi_and_asgi_entry_points_set_the_umask(tmp_path):
    probe = "import os, {module}; m = os.umask(0); print(oct(m))"
    for module in ("config.wsgi", "config.asgi"):
        out = run([sys.executable, "-c", probe.format(module=module)], tmp_path / "d").stdout
        assert out.strip().splitlines()[-1] == "0o77", module


def test_restrict_umask_keeps_stricter_bits():
    old = os.umask(0o027)
    try:
        assert restrict_umask() == 0o027
        assert os.umask(0o022) == 0o077
        os.umask(0o177)
        restrict_umask()
        assert os.umask(0o022) == 0o177
    finally:
        os.umask(old)


def test_sqlite_files_private_leaves_other_databases_alone(tmp_path):
    class Connection:
        vendor = "postgresql"
        settings_dict = {"NAME": str(tmp_path / "db")}

    (tmp_path / "db").write_text("")
    (tmp_path / "db").chmod(0o644)
    sqlite_files_private(sender=None, connection=Connection())
    assert stat.S_IMODE((tmp_path / "db").stat().st_mode) == 0o644
    Connection.vendor = "sqlite"
    sqlite_files_private(sender=None, connection=Connection())
    assert stat.S_IMODE((tmp_path / "db").stat().st_mode) == 0o600
