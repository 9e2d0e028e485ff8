"""A headless Chromium driven through chromedriver, for tests that need a real browser.

`start_browser()` gives a Selenium driver on a fresh profile. Every host name but
loopback resolves to nothing, so the pages under test never reach the Internet
(Meta's fbevents.js fails to load, and the inline base code's queue stays as
the page left it) whether or not the machine has a network.

Selenium calls block: a test whose servers run in its own event loop makes them
through `asyncio.to_thread` (see `Browser`), so the loop keeps serving meanwhile.

The `driver` (one per module) and `browser` (reset per test) fixtures reach every
integration test through conftest.py; a module may define its own `driver` instead.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import need_binary

T = TypeVar("T")

CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
    # Hermetic: nothing but loopback resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
WAIT_SECONDS = 20          # an upper bound for a page or a condition, never an expectation
CSP_MARKER = "Content Security Policy"


@contextmanager
def start_browser(chromium: str, chromedriver: str) -> Iterator[webdriver.Chrome]:
    """A headless Chromium on a throwaway profile, quit and removed on exit."""
    profile = tempfile.mkdtemp(prefix="careers-edge-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # The console (CSP violations among it) is read back with get_log("browser").
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        driver.set_page_load_timeout(WAIT_SECONDS)
        driver.set_script_timeout(WAIT_SECONDS)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def local_browser() -> AbstractContextManager[webdriver.Chrome]:
    """`start_browser` on this machine's chromium and chromedriver (see `need_binary`)."""
    return start_browser(need_binary("chromium"), need_binary("chromedriver"))


def tracked(queue: list[list], name: str) -> list[list]:
    """The Meta pixel's track / trackCustom calls for event `name` in its `fbq` queue."""
    return [c for c in queue if c[0] in ("track", "trackCustom") and c[1] == name]


class Browser:
    """The driver's blocking calls as coroutines that leave the event loop free."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def get(self, url: str) -> None:
        await self.call(self.driver.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.call(self.driver.execute_script, script, *args)

    async def load(self, url: str, script: str) -> Any:
        """What `script` returns on the page at `url`, once loaded."""
        await self.get(url)
        return await self.js(script)

    async def click_to_page(self, element_id: str, url_part: str, title: str) -> None:
        """Click the element `element_id` and wait for the page it leads to (a URL with
        `url_part`) to have loaded, with `title`."""
        element = await self.call(self.driver.find_element, By.ID, element_id)
        await self.call(element.click)
        await self.wait_until(lambda d: url_part in d.current_url and d.execute_script(
            "return document.readyState === 'complete' && document.title") == title)

    async def wait_until(self, condition: Callable[[webdriver.Chrome], T]) -> T:
        """The first truthy value of `condition(driver)`, polled; TimeoutException if none."""
        wait = WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.05)
        return await self.call(wait.until, condition)

    async def reset(self) -> None:
        """Forget cookies and drain the console, so each test starts clean."""
        await self.call(self.driver.get, "about:blank")
        await self.call(functools.partial(self.driver.execute_cdp_cmd,
                                          "Network.clearBrowserCookies", {}))
        await self.console()

    async def console(self) -> list[dict[str, Any]]:
        """Console entries since the last call (the driver hands each out once)."""
        return await self.call(self.driver.get_log, "browser")

    async def csp_messages(self) -> list[str]:
        return [e["message"] for e in await self.console() if CSP_MARKER in e["message"]]

    async def cookie(self, name: str) -> str | None:
        found = await self.call(self.driver.get_cookie, name)
        return None if found is None else found["value"]


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    with local_browser() as d:
        yield d


@pytest.fixture
async def browser(driver: webdriver.Chrome) -> Browser:
    """The module's browser with no cookies or console left by an earlier test."""
    b = Browser(driver)
    await b.reset()
    return b
