"""manage.py vendor_plotly: write the plotly.js bundled with the plotly package into
static/vendor/plotly.min.js, so pages load charts from our own server and never a CDN.

The file is git-ignored (4.8 MB); run this before collectstatic, and after upgrading
plotly. Re-running with an up-to-date file writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from django.conf import settings
from django.core.management.base import BaseCommand
from plotly.offline import get_plotlyjs

TARGET = Path("vendor") / "plotly.min.js"


class Command(BaseCommand):
    help = "Write plotly.js (from the installed plotly package) to static/vendor/."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            default=Path(settings.BASE_DIR) / "static" / TARGET,
            help="Where to write it (default: static/vendor/plotly.min.js).",
        )

    def handle(self, *args, **options) -> None:
        output: Path = options["output"]
        script = get_plotlyjs().encode("utf-8")
        if output.exists() and output.read_bytes() == script:
            self.stdout.write(f"{output} is up to date (plotly {plotly.__version__}).")
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_suffix(".js.partial")
        partial.write_bytes(script)
        partial.replace(output)  # atomic: a page never loads a half-written file
        size = len(script) // 1024
        self.stdout.write(f"Wrote {output} ({size} KiB, plotly {plotly.__version__}).")
