"""Screenshots of every dashboard page while a run trains: `python docs/take_screenshots.py`.

Starts its own server on a free port, drives it with Debian's chromium (Playwright), and writes
docs/screenshots/<page>.png. Look at them before committing: a chart nobody can read is a bug.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from mlp_core.config import PRESETS  # noqa: E402
from tests.e2e.server import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402
from tests.e2e.ui import button, go_to, wait_until  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
# The lecture's model, long enough to keep training while we visit every page.
RUN = "/?steps=200000&eval_every=500"
WIDTH, HEIGHT = 1400, 900


def settle(page: Page, seconds: float = 2.5) -> None:
    """Let the page finish drawing, with no hover tooltip or focus ring over the content."""
    page.mouse.move(WIDTH - 5, HEIGHT - 5)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.wait_for_load_state("networkidle")
    time.sleep(seconds)


def chart_is_current(page: Page) -> bool:
    """The Train page's metrics and its chart caption show the same step (not one mid-way through a refresh)."""
    return page.evaluate(
        """() => {
            const metric = document.querySelector('[data-testid="stMetricValue"]');
            const caption = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
                .map(e => e.innerText).find(t => t.startsWith('Band'));
            const steps = caption && caption.match(/\\(([\\d,]+) steps/);
            return Boolean(metric && steps && metric.innerText === steps[1]);
        }"""
    )


def drawn(page: Page) -> bool:
    """Nothing dimmed as stale (a rerun under way: on a busy machine half a page was grey) and every chart drawn
    (the Train page's chart was once an empty box)."""
    return page.evaluate(
        """() => !document.querySelector('[data-stale="true"]') &&
            [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(c => c.querySelector('.main-svg'))"""
    )


def shoot(page: Page, name: str, ready: Callable[[Page], bool] | None = None) -> None:
    """A full-page PNG. Streamlit scrolls its main area inside the window, so Playwright's full_page
    sees only one screen: grow the window to the content's height instead (the sidebar is cut there)."""
    height = page.evaluate(
        """() => {
            const main = document.querySelector('[data-testid="stMainBlockContainer"]');
            return Math.ceil(main.getBoundingClientRect().top + main.scrollHeight);
        }"""
    )
    page.set_viewport_size({"width": WIDTH, "height": max(HEIGHT, height + 40)})
    settle(page, 1.5)
    deadline = time.monotonic() + 30
    while not (drawn(page) and (ready is None or ready(page))) and time.monotonic() < deadline:
        time.sleep(0.05)
    if page.locator('[data-testid="stException"]').count():
        raise RuntimeError(
            f"the {name} page shows an exception: " + page.locator('[data-testid="stException"]').first.inner_text()
        )
    page.screenshot(path=OUT / f"{name}.png")
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    print(f"  {name}.png ({WIDTH}x{max(HEIGHT, height + 40)})")


def visit(page: Page, link: str) -> None:
    go_to(page, link)
    settle(page)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with streamlit_server() as url, sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT}, accept_downloads=True)
        page.set_default_timeout(60_000)
        try:
            take_all(page, url, Path(tmp))
        except Exception:
            failure = Path(tempfile.gettempdir()) / "take_screenshots_failure.png"
            page.screenshot(path=failure)
            print(f"failed; the page at that moment: {failure}", file=sys.stderr)
            raise
        finally:
            browser.close()
    print(f"wrote {len(list(OUT.glob('*.png')))} screenshots to {OUT}")


def take_all(page: Page, url: str, tmp: Path) -> None:
    """Start a run and visit every page, taking its picture."""
    page.goto(url + RUN)
    button(page, "btn_start").click()
    # A cold server's first Start can take many seconds on a busy machine: wait for the run and its chart.
    page.locator(".st-key-run_status").get_by_text("running").first.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')].some(g => (g.data || []).some("
        "t => (t.name || '').startsWith('dev loss')))",
        timeout=120_000,
    )
    settle(page, 8)  # some history, evaluations and embedding snapshots to show
    shoot(page, "train", ready=chart_is_current)

    visit(page, "LR sweep")
    button(page, "btn_sweep").click()
    page.get_by_text("Suggested learning rate").wait_for(timeout=120_000)
    settle(page)
    shoot(page, "lr_sweep")

    visit(page, "Sample")
    button(page, "btn_sample").click()
    page.get_by_text("new names (not in the training set)").wait_for()
    settle(page)
    shoot(page, "sample")

    # Download the model, then upload it back: the page then shows what a checkpoint holds.
    visit(page, "Checkpoints")
    with page.expect_download() as download:
        button(page, "btn_download_ckpt").click()
    path = tmp / download.value.suggested_filename
    download.value.save_as(path)
    page.locator('.st-key-ckpt_upload input[type="file"]').set_input_files(str(path))
    button(page, "btn_ckpt_train").wait_for()
    settle(page)
    shoot(page, "checkpoints")

    # Inside the network while the lecture's run trains (its saturated tanh units), and one batch overfitted.
    visit(page, "Inside the network")
    button(page, "btn_overfit").click()
    page.get_by_text("steps the loss is").wait_for(timeout=120_000)
    page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollTo(0, 0)")  # the click scrolled
    settle(page)
    shoot(page, "diagnostics")

    # The lecture's run late in training: most letters in one dense blob, '.', q and a few others far out. The
    # labels that fit near their dots, the rest named in the caption; then the zoom into the blob.
    visit(page, "Embeddings")
    shoot(page, "embeddings")
    page.locator(".st-key-emb_zoom label").first.click()
    settle(page)
    shoot(page, "embeddings_zoom")

    # A second, quick run (the fast preset, to the end): two runs to compare, named where they are compared.
    button(page, "preset_fast").click()
    # Start only once the preset is in the widgets (on a busy machine a rerun takes seconds).
    fast = str(PRESETS["fast"].steps)
    wait_until(lambda: page.locator(".st-key-hp_steps input").first.input_value() == fast, 30)
    settle(page, 1)
    button(page, "btn_start").click()
    status = page.locator(".st-key-run_status")
    wait_until(lambda: status.count() and "finished #2" in status.first.inner_text(), 120)
    visit(page, "Train vs dev")
    name = page.locator('[class*="st-key-tvd_new_name_"] input').first  # keyed by the picked run's id
    name.fill(f"fast preset, {PRESETS['fast'].steps:,} steps")
    name.press("Enter")
    button(page, "btn_tvd_rename").click()
    page.get_by_text("Renamed to").wait_for()
    page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollTo(0, 0)")  # the click scrolled
    settle(page)
    shoot(page, "train_vs_dev")

    visit(page, "Runs")
    shoot(page, "runs")


if __name__ == "__main__":
    main()
