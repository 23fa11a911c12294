"""Every page's URL, opened as the FIRST request of a freshly started server, shows that page with its sidebar.

This is the failure that kept the pages out of `pages/` before: with st.navigation and a `pages/` folder,
a fresh server's first request for a sub-page popped "Page not found" or ran the page without the
sidebar. Each page gets its own server, so no earlier request can have warmed anything up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import layout

from .server import streamlit_server
from .ui import button, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_the_pages_live_in_pages_folder():
    """The user's layout: app.py plus pages/, and every page file is in the navigation."""
    assert not (ROOT / "app_pages").exists()
    files = {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")}
    linked = {page.path for page in layout.PAGES}
    assert files == linked - {"app.py"}, "a page file without a link, or a link without a file"


@pytest.mark.parametrize("page_info", layout.PAGES, ids=lambda p: p.url_path or "root")
def test_deep_link_on_a_fresh_server(browser, page_info, tmp_path):
    with streamlit_server(log_path=tmp_path / "server.log") as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            # A setting in the query, as a shared link would carry it: it must reach the sidebar.
            page.goto(f"{url}/{page_info.url_path}?hidden=123")
            page.get_by_role("heading", name=page_info.heading, exact=True).wait_for()
            button(page, "btn_start").wait_for()  # the sidebar and its run controls are there
            body = page.locator("body").inner_text()
            assert "Page not found" not in body
            assert page.locator('[data-testid="stException"]').count() == 0
            hidden = page.locator(".st-key-hp_hidden input").first
            wait_until(lambda: hidden.input_value() == "123", 15)  # read once the page's first run has drawn it
            # Every other page is one click away in the sidebar.
            links = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink"]')
            assert links.count() == len(layout.PAGES)
            assert f"/{page_info.url_path}" in page.url.split("?")[0] or not page_info.url_path
        finally:
            context.close()
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
