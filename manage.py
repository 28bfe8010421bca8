#!/usr/bin/env python
import os
import sys


def main() -> None:
    from config.private_files import restrict_umask

    restrict_umask()  # files the service writes are its own (docs/operations.md)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
