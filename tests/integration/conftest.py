"""Fixtures shared by the integration tests: the real browser's (see `browser.py`)."""

from tests.integration.browser import browser, driver

__all__ = ["browser", "driver"]
