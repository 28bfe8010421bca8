"""What the service writes under its data directory is readable by the service user only.

Two layers:

- `restrict_umask()` runs first thing in manage.py, config/wsgi.py and config/asgi.py, so
  every file and directory the process creates (SQLite database, its WAL and SHM, captured
  mail, stored rosters, run exports) starts out 0600 / 0700 whatever the caller's umask;
- `sqlite_files_private` (connected to `connection_created` in accounts/apps.py) tightens
  an SQLite database made before this existed, and settings.py chmods the data directory
  to 0700 at start-up. SQLite gives a new WAL or SHM file the mode of its database.

Nothing here imports Django: manage.py calls it before settings load.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def restrict_umask() -> int:
    """Mask group and other bits from every file this process creates; returns the old mask
    (any bits it already masked stay masked)."""
    old = os.umask(PRIVATE_UMASK)
    os.umask(old | PRIVATE_UMASK)
    return old


def make_private(path: str | os.PathLike[str]) -> None:
    """chmod an existing file to 0600 (a directory to 0700); a missing path is left alone."""
    target = Path(path)
    try:
        mode = PRIVATE_DIR if target.is_dir() else PRIVATE_FILE
        target.chmod(mode)
    except FileNotFoundError:
        pass


def sqlite_files_private(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: the SQLite database and its -wal/-shm are 0600."""
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return  # in-memory test databases have no file
    for suffix in ("", "-wal", "-shm"):
        make_private(name + suffix)
