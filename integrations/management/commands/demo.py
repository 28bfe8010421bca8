"""manage.py demo: the whole product on one machine, with demo data.

Starts the vendor simulators, prepares the database (migrations, demo users, cohorts,
schedules, a first pull of every demo class), then runs the task worker and the web server
until Ctrl-C. Every child process gets the same settings, pointing at the simulators.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.demo import DEMO_ROSTER, DEMO_USERS
from integrations.sandbox import DEFAULT_PORT, sandbox_env, sandbox_start


class Command(BaseCommand):
    help = "Run Classbridge with demo data: web server, task worker and vendor simulators."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="Web server port.")
        parser.add_argument("--sandbox-port", type=int, default=DEFAULT_PORT)
        parser.add_argument(
            "--prepare-only",
            action="store_true",
            help="Prepare the database and demo data, then exit (no servers).",
        )

    def handle(self, *args, **options) -> None:
        servers = sandbox_start(port=options["sandbox_port"])
        if "openclass" not in servers:
            raise CommandError("the OpenClass simulator is not available")
        mail_dir = Path(settings.DATA_DIR) / "mail"
        site_url = f"http://127.0.0.1:{options['port']}"
        env = {
            **os.environ,
            **sandbox_env(servers),
            "DEBUG": os.environ.get("DEBUG", "true"),
            "EMAIL_URL": os.environ.get("EMAIL_URL", f"filemail://{mail_dir}"),
            "REPORT_RECIPIENTS": os.environ.get("REPORT_RECIPIENTS", "reports@classbridge.test"),
            "SITE_URL": site_url,
            # The simulators are local: no need for the polite rate real vendors get.
            "OPENCLASS_REQUESTS_PER_SECOND": os.environ.get("OPENCLASS_REQUESTS_PER_SECOND", "50"),
            "PYTHONUNBUFFERED": "1",
        }
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        children: list[subprocess.Popen] = []
        try:
            self._step("Preparing the database", [*manage, "migrate", "--noinput", "-v", "0"], env)
            self._step(
                "Writing plotly.js into static files",
                [*manage, "vendor_plotly"],
                env,
                optional=True,
            )
            self._step("Creating demo users, cohorts and schedules", [*manage, "demo_seed"], env)
            if options["prepare_only"]:
                return
            children.append(subprocess.Popen([*manage, "qcluster"], env=env))
            children.append(
                subprocess.Popen(
                    [*manage, "runserver", "--noreload", f"127.0.0.1:{options['port']}"], env=env
                )
            )
            self._banner(site_url, servers, mail_dir)
            stop = {"now": False}
            signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
            while not stop["now"]:
                if any(child.poll() is not None for child in children):
                    self.stderr.write("A demo process stopped; shutting the demo down.")
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    # SIGTERM to qcluster's main process only: a group signal can hang it.
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
            for server in servers.values():
                server.stop()

    def _step(self, title: str, cmd: list[str], env: dict, optional: bool = False) -> None:
        self.stderr.write(f"» {title}")
        result = subprocess.run(cmd, env=env, check=False)
        if result.returncode != 0 and not optional:
            raise CommandError(f"{title} failed (exit {result.returncode})")

    def _banner(self, site_url: str, servers, mail_dir: Path) -> None:
        lines = [
            "",
            "Classbridge demo is running.",
            f"  Open      {site_url}/",
            f"  Admin     {DEMO_USERS['admin'][0]} / {DEMO_USERS['admin'][1]}   (everything)",
            f"  Mentor    {DEMO_USERS['mentor'][0]} / {DEMO_USERS['mentor'][1]}  (their cohorts)",
            f"  Emails    {mail_dir}/",
            f"  APEX      upload {DEMO_ROSTER} at {site_url}/integrations/apex/",
            f"  Canvas    pull courses at {site_url}/integrations/canvas/",
        ]
        for name, server in servers.items():
            lines.append(f"  Simulator {name:<10} {server.base_url}")
        lines += ["Stop with Ctrl-C.", ""]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()
