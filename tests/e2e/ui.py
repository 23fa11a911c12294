"""Driving the dashboard in a browser: find a keyed button, go to a page. Shared by the tests and the screenshots."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dashboard import layout

# Sidebar link -> the page's title.
PAGES = {page.label: page.heading for page in layout.PAGES}


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.25) -> Any:
    """Poll until predicate() is truthy and return it; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def button(page, key: str):
    """The button of the widget with this key."""
    # .first: while a rerun is drawing, Streamlit can briefly show the old element beside the new one.
    return page.locator(f".st-key-{key} button").first


def go_to(page, link: str) -> None:
    """Click a sidebar nav link and wait until the page's title (or an exception box) shows."""
    page.locator('[data-testid="stSidebar"] [data-testid="stPageLink"]').get_by_text(link, exact=True).click()
    heading = page.get_by_role("heading", name=PAGES[link], exact=True)
    heading.or_(page.locator('[data-testid="stException"]')).first.wait_for()
