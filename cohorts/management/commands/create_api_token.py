"""manage.py create_api_token USERNAME [--name NAME]: a key for the JSON API.

Prints the key once on standard output (only its hash is stored). The key sees what the
user sees: every cohort for an admin, their own cohorts for a mentor.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cohorts.api import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print its key (shown only once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="What the token is for.")

    def handle(self, *args, **options) -> None:
        try:
            user = get_user_model().objects.get_by_natural_key(options["username"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {options['username']!r}.") from None
        if not user.is_active:
            raise CommandError(f"User {user} is inactive.")
        token, key = api_token_create(user=user, name=options["name"])
        self.stderr.write(f"Token {token.prefix}… for {user} ({token.name}); keep the key secret:")
        self.stdout.write(key)
