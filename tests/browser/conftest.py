"""Fixtures of the browser tests: Debian's Chromium driven by Playwright for
Python against a live server of the example shop, with a screenshot of each
step.

Without Playwright or without ``/usr/bin/chromium`` every browser test is
skipped, and the reason says which is missing (``make test`` passes on a
machine without a browser; ``.ci/run`` installs Chromium and fails on a skip).

Playwright's synchronous API keeps its event loop marked as running in the
test's thread, between its calls too, and Django then refuses every database
query there (``SynchronousOnlyOperation``), the test database's flush
included. No coroutine of ours shares a connection with that idle loop, so
these tests, and only these, run with ``DJANGO_ALLOW_ASYNC_UNSAFE`` set
(:func:`pytest_runtest_protocol`).
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import runpy
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
#: Flags for a headless Chromium in a container: no sandbox (root in CI), no
#: GPU, and nothing that reaches the network on its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 844}
#: Seconds a step waits for the page to show what it expects.
STEP_TIMEOUT = 15_000

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


def missing_browser() -> str:
    """Why the browser tests cannot run here, or ``""``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "Playwright for Python is not installed "
            "(pip install -e '.[browser]'); the browser tests need it"
        )
    if not CHROMIUM.exists():
        return (
            f"{CHROMIUM} is absent (apt-get install chromium); the browser "
            "tests drive Debian's Chromium, never a downloaded one"
        )
    return ""


def screenshots_root() -> Path:
    configured = os.environ.get("BROWSER_SCREENSHOTS", "")
    return Path(configured) if configured else ROOT / "artifacts" / "screenshots"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    # A hook of this directory's conftest: the tests of tests/browser only,
    # from their fixtures' setup to their teardown (the database's flush).
    saved = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        return (yield)
    finally:
        if saved is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = saved


# --- the browser ------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    # The outcome of each phase, for the screenshot of a failed step.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class Shots:
    """Screenshots of one test: ``<root>/<test>/<nn>-<step>.png``, numbered
    in the order taken; ``prefix`` (the flow a test is in) starts each step's
    name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self.prefix = ""
        self.page: Page | None = None
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: str, page: Page | None = None) -> Path:
        page = page or self.page
        assert page is not None, "no page to take a screenshot of"
        self.count += 1
        step = f"{self.prefix} {step}" if self.prefix else step
        name = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def _folder_name(item: pytest.Item) -> str:
    name = f"{Path(str(item.path)).stem}--{item.name}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Iterator[Shots]:
    taken = Shots(screenshots_root() / _folder_name(request.node))
    yield taken
    report = getattr(request.node, "report_call", None)
    if taken.page is not None and report is not None and report.failed:
        # The page may be gone with the failure.
        with contextlib.suppress(Exception):
            taken("failed", taken.page)


def new_context(
    browser: Browser, *, language: str = "en", viewport: dict[str, int] = DESKTOP
) -> BrowserContext:
    mobile = viewport["width"] < 600
    context = browser.new_context(
        viewport=viewport,
        locale={"en": "en-US", "ru": "ru-RU"}[language],
        extra_http_headers={"Accept-Language": language},
        is_mobile=mobile,
        has_touch=mobile,
    )
    context.set_default_timeout(STEP_TIMEOUT)
    return context


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """An English desktop browser with nothing stored (one per test)."""
    context = new_context(browser)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, shots: Shots) -> Page:
    page = context.new_page()
    shots.page = page
    return page


# --- the live shop ----------------------------------------------------------------


def example_payments(base_url: str) -> dict[str, Any]:
    """``PAYMENTS_RU`` and ``PAYMENTS_RU_EMULATOR`` of the example shop's
    settings, read as they are when it runs at ``base_url``: every provider,
    each pointed at its emulator on that server."""
    path = ROOT / "example_project" / "example_project" / "settings.py"
    saved = os.environ.get("BASE_URL")
    os.environ["BASE_URL"] = base_url
    try:
        values = runpy.run_path(str(path))
    finally:
        if saved is None:
            del os.environ["BASE_URL"]
        else:
            os.environ["BASE_URL"] = saved
    return {
        "PAYMENTS_RU": copy.deepcopy(values["PAYMENTS_RU"]),
        "PAYMENTS_RU_EMULATOR": copy.deepcopy(values["PAYMENTS_RU_EMULATOR"]),
    }


PRODUCT_NAME = "Самовар электрический"
PRODUCT_PRICE = Decimal("2490.50")


@pytest.fixture
def shop(live_server: Any, settings: Any, transactional_db: None) -> str:
    """The example shop with all its providers on a live server; returns its
    URL. One product is on sale."""
    payments = example_payments(live_server.url)
    settings.PAYMENTS_RU = {**payments["PAYMENTS_RU"], "WEBHOOK_PROCESSING": "sync"}
    settings.PAYMENTS_RU_EMULATOR = {
        **payments["PAYMENTS_RU_EMULATOR"],
        "EMULATORS": settings.PAYMENTS_RU_EMULATOR.get("EMULATORS", []),
    }

    def product() -> None:
        from shop.models import Product

        # A transactional test before this one may have flushed the products
        # the shop's data migration creates.
        Product.objects.get_or_create(
            name=PRODUCT_NAME, defaults={"price": PRODUCT_PRICE}
        )

    product()
    return str(live_server.url)
