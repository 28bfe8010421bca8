"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

Playwright never downloads a browser here; it launches /usr/bin/chromium. Its sync API
runs an event loop in the test thread, so Django's async-safety guard is lifted for this
test process only (never in deployment).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


@pytest.fixture
def login(live_server, page):
    """Sign in through the real form; returns the page."""

    def _login(username: str, password: str):
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        return page

    return _login


ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
DOC_SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture
def shots(request):
    """`shots(page, "name")` saves var/screenshots/<journey>/<name>.png (the journey is the
    test module's name without "test_journey_"); `shots(page, "name", doc="x.png")` also
    copies it to docs/screenshots/x.png when CLASSBRIDGE_DOC_SCREENSHOTS=1, for the README."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    journey = name.removeprefix("test_journey_").removeprefix("test_")
    folder = SCREENSHOTS / journey
    folder.mkdir(parents=True, exist_ok=True)

    def save(page, name: str, *, doc: str = "", full_page: bool = True) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if doc and os.environ.get("CLASSBRIDGE_DOC_SCREENSHOTS") == "1":
            DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_SCREENSHOTS / doc)
        return path

    save.folder = folder
    return save


def stat_values(page, scope: str = ".stats") -> dict[str, int]:
    """The page's tiles as {label: value}; the label is the tile's first line."""
    tiles = {}
    for tile in page.locator(f"{scope} .stat").all():
        label = tile.locator(".label").inner_text().split("\n")[0].strip()
        tiles[label] = int(tile.locator(".value").inner_text().strip())
    return tiles
