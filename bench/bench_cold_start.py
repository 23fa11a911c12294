"""Cold start: first paint of the dashboard vs a bare one-line Streamlit app, started the same way, same run.

Each measurement starts a fresh `streamlit run FILE` (the flags and working directory the browser tests
use, so the repository's .streamlit/config.toml applies to both) and a fresh browser context in an
already running Chromium (/usr/bin/chromium via Playwright), and times from the server's launch to the
page's first heading (`h1`) being visible: the bare app is `st.title("Hello")`, the dashboard's Train
page shows its title once its script has run. Bare and dashboard alternate; medians are compared.

    python bench/bench_cold_start.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, table

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from server import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # the browser tests' helpers

BARE_APP = 'import streamlit as st\n\nst.title("Hello")\n'


def first_paint(browser, script: Path) -> tuple[float, float]:
    """Seconds from `streamlit run script` to its first h1 visible, and to the sidebar's Start button (if any)."""
    t0 = time.perf_counter()
    with streamlit_server(script=script) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.goto(url)
            page.locator("h1").first.wait_for(state="visible", timeout=120_000)
            heading = time.perf_counter() - t0
            start = page.locator(".st-key-btn_start button")
            if script.name == "app.py":
                start.first.wait_for(state="visible", timeout=120_000)
            return heading, time.perf_counter() - t0
        finally:
            context.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if not os.path.exists(CHROMIUM):
        sys.exit(f"bench: {CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    print(machine())
    with tempfile.TemporaryDirectory(prefix="bare-app-") as tmp, sync_playwright() as pw:
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE_APP)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        first_paint(browser, bare)  # warm the disk cache for both (Python, Streamlit, torch files)
        first_paint(browser, ROOT / "app.py")
        times: dict[str, list[tuple[float, float]]] = {"bare": [], "dashboard": []}
        for _ in range(args.repeats):
            times["bare"].append(first_paint(browser, bare))
            times["dashboard"].append(first_paint(browser, ROOT / "app.py"))
        browser.close()
    for name, ts in times.items():
        headings, controls = (", ".join(f"{x:.2f}" for x in xs) for xs in zip(*ts, strict=True))
        print(f"{name}: heading {headings} s; controls {controls} s")
    base = statistics.median(h for h, _ in times["bare"])
    ours = statistics.median(h for h, _ in times["dashboard"])
    controls = statistics.median(c for _, c in times["dashboard"])
    table(
        "Cold start: server launch -> first heading visible (median)",
        [
            ("bare one-line app vs the dashboard: heading", base, ours, "s"),
            ("bare app's heading vs the dashboard's Start button", base, controls, "s"),
        ],
    )
    print(
        f"dashboard / bare = {ours / base:.2f} to the heading (target <= 2), {controls / base:.2f} to usable controls"
    )


if __name__ == "__main__":
    main()
