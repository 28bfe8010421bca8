"""manage.py sandbox: run the local vendor simulators until interrupted."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from integrations import registry
from integrations.sandbox import DEFAULT_PORT, sandbox_env, sandbox_start


class Command(BaseCommand):
    help = "Run the local vendor simulators (OpenClass, APEX, …), each on its own port."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="Base port.")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--latency-ms", type=int, default=0, help="Delay per request.")
        parser.add_argument(
            "--fail-rate",
            type=float,
            default=0.0,
            help="Share of requests (0..1) answered 429 with Retry-After or 500.",
        )
        parser.add_argument("--seed", type=int, default=7, help="Seed of the demo data.")
        parser.add_argument(
            "--token-lifetime",
            type=int,
            default=None,
            help="Seconds an issued token stays valid (given to every simulator; those that "
            "issue tokens use it).",
        )

    def handle(self, *args, **options) -> None:
        if not 0 <= options["fail_rate"] <= 1:
            raise CommandError("--fail-rate must be between 0 and 1")
        extra = {}
        if options["token_lifetime"] is not None:
            extra = {"token_lifetime": options["token_lifetime"]}
        servers = sandbox_start(
            port=options["port"],
            host=options["host"],
            seed=options["seed"],
            latency_ms=options["latency_ms"],
            fail_rate=options["fail_rate"],
            options={spec.name: extra for spec in registry.simulators()},
        )
        if not servers:
            raise CommandError("no simulator is available")
        for name, server in servers.items():
            self.stdout.write(f"{name:<10} {server.base_url}")
        self.stdout.write("Point Classbridge at them with:")
        for key, value in sandbox_env(servers).items():
            self.stdout.write(f"  {key}={value}")
        self.stdout.flush()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for server in servers.values():
                server.stop()
