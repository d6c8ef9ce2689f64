"""Browser tests: Debian's chromium, headless, driven by Playwright, against a real LocalNet
(a master and two process-sandbox workers on loopback)."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright: pip install playwright (no `playwright install`)")
    if not CHROMIUM.exists():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium")
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()
        pw.stop()


class Page:
    """A fresh browser context and page that records every console error, page error and
    navigation, and saves named screenshots."""

    def __init__(self, browser, shots: Path):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.navigations: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("framenavigated",
                     lambda f: self.navigations.append(f.url) if f == self.page.main_frame else None)
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def web(browser, tmp_path):
    p = Page(browser, tmp_path / "screenshots")
    try:
        yield p
    finally:
        p.context.close()




@pytest.fixture
def publish_screenshots():
    """Call it at the end of a passing test: with RUNSURGE_PUBLISH_SCREENSHOTS=1, copies its screenshots
    to docs/screenshots/ for reviewers (off by default so a test run leaves the tree unchanged)."""
    def publish(shots: Path) -> None:
        if not os.environ.get("RUNSURGE_PUBLISH_SCREENSHOTS"):
            return
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for png in sorted(shots.glob("*.png")):
            shutil.copyfile(png, DOCS_SCREENSHOTS / png.name)
    return publish
