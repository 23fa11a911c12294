"""Screenshots of every dashboard page while a run trains: `python docs/take_screenshots.py`.

Starts its own server on a free port, drives it with Debian's chromium (Playwright), and writes
docs/screenshots/<page>.png. Look at them before committing: a chart nobody can read is a bug.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.e2e.server import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
# The lecture's model, long enough to keep training while we visit every page.
RUN = "/?steps=200000&eval_every=500"


def settle(page, seconds: float = 2.5) -> None:
    page.mouse.move(900, 20)  # no hover tooltip over the content
    page.wait_for_load_state("networkidle")
    time.sleep(seconds)


def go_to(page, link: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(link, exact=True).click()
    settle(page)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with streamlit_server() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1250})
        page.set_default_timeout(60_000)
        page.goto(url + RUN)
        page.locator(".st-key-btn_start button").first.click()
        settle(page, 8)  # some history, evaluations and embedding snapshots to show
        page.screenshot(path=OUT / "train.png", full_page=False)

        go_to(page, "LR sweep")
        page.locator(".st-key-btn_sweep button").first.click()
        page.get_by_text("Suggested").first.wait_for(timeout=120_000)
        settle(page)
        page.screenshot(path=OUT / "lr_sweep.png", full_page=True)

        for name, link in (("embeddings", "Embeddings"), ("train_vs_dev", "Train vs dev")):
            go_to(page, link)
            page.screenshot(path=OUT / f"{name}.png", full_page=True)

        go_to(page, "Sample")
        page.locator(".st-key-btn_sample button").first.click()
        settle(page)
        page.screenshot(path=OUT / "sample.png", full_page=True)

        go_to(page, "Checkpoints")
        page.screenshot(path=OUT / "checkpoints.png", full_page=True)
        page.locator(".st-key-btn_stop button").first.click()
        browser.close()
    print(f"wrote {len(list(OUT.glob('*.png')))} screenshots to {OUT}")


if __name__ == "__main__":
    main()
