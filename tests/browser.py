"""Headless Chromium for tests, driven from trio.

Playwright's sync API blocks and must stay on the thread that started it, so one
dedicated thread (a one-worker executor) owns the browser, and trio waits for each step
in a worker thread of its own. Every wait inside a step is Playwright's own wait for a
condition on the page (a selector, a state), never a sleep.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Set to 1 to skip the browser tests on a machine without Chromium (they fail otherwise).
SKIP_ENV = "TOTE_SKIP_BROWSER"
#: Where screenshots go (overridable), outside the package and ignored by git.
SCREENSHOT_DIR = Path(
    os.environ.get("TOTE_SCREENSHOT_DIR", Path(__file__).resolve().parent.parent / "build")
)
#: The longest any one wait on the page may take (ms): generous, for a busy 2-core machine.
PAGE_TIMEOUT_MS = 60_000

T = TypeVar("T")


def require_chromium() -> None:
    """Fail loudly when Chromium or Playwright is missing (``make test`` installs both),
    unless TOTE_SKIP_BROWSER=1 asks for a skip."""
    missing = [
        what
        for what, present in (
            (str(CHROMIUM), CHROMIUM.exists()),
            ("playwright (pip)", _has_playwright()),
        )
        if not present
    ]
    if not missing:
        return
    reason = f"browser tests need {' and '.join(missing)}: run `make browser` (or make test)"
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{reason}; skipped because {SKIP_ENV}=1")
    pytest.fail(f"{reason}, or set {SKIP_ENV}=1 to skip them", pytrace=False)


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


class Browser:
    """One page of a headless Chromium, run on its own thread."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self.page: Any = None
        #: what the page logged and the errors it raised, shown when a step fails
        self.console: list[str] = []

    async def run(self, step: Callable[[Any], T]) -> T:
        """Run ``step(page)`` on the browser's thread and wait for its result (abandoned,
        not waited for, when the test is cancelled)."""
        future = self._executor.submit(step, self.page)
        try:
            return await trio.to_thread.run_sync(future.result, abandon_on_cancel=True)
        except Exception as error:
            shown = self._executor.submit(lambda: self.page.inner_text("body")).result()
            error.add_note("page console:\n" + "\n".join(self.console[-30:]))
            error.add_note(f"page text:\n{shown}")
            raise


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A started browser with one page; closed (on its thread) at the end."""
    require_chromium()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
    browser = Browser(executor)
    handles: dict[str, Any] = {}

    def start(_: Any) -> Any:
        from playwright.sync_api import sync_playwright

        handles["playwright"] = sync_playwright().start()
        handles["browser"] = handles["playwright"].chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        page = handles["browser"].new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.on("console", lambda message: browser.console.append(message.text))
        page.on("pageerror", lambda error: browser.console.append(f"error: {error}"))
        return page

    def stop(_: Any) -> None:
        if "browser" in handles:
            handles["browser"].close()
        if "playwright" in handles:
            handles["playwright"].stop()

    try:
        browser.page = await browser.run(start)
        yield browser
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(30):
            await browser.run(stop)
        executor.shutdown(wait=False)
