from django.apps import AppConfig
from django.db.models.signals import post_migrate


def create_signin_cache_table(sender, using, verbosity=1, **kwargs) -> None:
    """`migrate` also creates the database cache table(s), so no extra deployment step."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=max(0, verbosity - 1))


class AccountsConfig(AppConfig):
    """Sign-in throttle, private pages, private files (docs/operations.md)."""

    name = "accounts"
    verbose_name = "Sign-in and privacy"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        from django.db.backends.signals import connection_created

        from accounts import throttle
        from config.private_files import sqlite_files_private

        post_migrate.connect(create_signin_cache_table, sender=self)
        user_login_failed.connect(throttle.on_login_failed, dispatch_uid="signin-throttle-failed")
        user_logged_in.connect(throttle.on_logged_in, dispatch_uid="signin-throttle-success")
        connection_created.connect(sqlite_files_private, dispatch_uid="sqlite-files-private")
