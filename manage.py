#!/usr/bin/env python
import os
import sys


def main() -> None:
    from config.private_files import restrict_umask

    restrict_umask()  # files the service writes are its own (docs/operations.md)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if sys.argv[1:2] == ["demo"]:
        # The demo is local development: it runs (and `demo --help` answers) with no
        # settings at all, not even a SECRET_KEY.
        os.environ.setdefault("DEBUG", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
