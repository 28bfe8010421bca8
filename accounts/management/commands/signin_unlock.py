"""manage.py signin_unlock [--user NAME] [--address IP]: lift a sign-in lock early."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts import throttle


class Command(BaseCommand):
    help = "Clear the failed sign-ins and the lock of an account and/or a client address."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", help="Username whose failures and lock to clear.")
        parser.add_argument("--address", help="Client IP address whose failures to clear.")

    def handle(self, *args, **options) -> None:
        user, address = options["user"], options["address"]
        if not user and not address:
            raise CommandError("Give --user NAME and/or --address IP.")
        if address and throttle.normalize_address(address) is None:
            raise CommandError(f"--address {address!r} is not an IP address.")
        throttle.unlock(username=user, address=address)
        cleared = " and ".join(
            part for part in (user and f"user {user!r}", address and f"address {address}") if part
        )
        self.stdout.write(f"Cleared sign-in failures and locks for {cleared}.")
