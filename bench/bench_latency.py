"""What a learner waits for on a warm server: Start -> a step, Start -> the first dev point, page switches.

One dashboard server (`streamlit run app.py`, the browser tests' flags) and Chromium (/usr/bin/chromium via
Playwright). The server is warmed first (a run started and every page visited, so torch, plotly, the fork
server and each page's modules are loaded), then each repeat opens the Train page in a fresh browser context
with the lecture's config and `eval_every=200`, waits until its charts are drawn (as they are when a user
reads the page), and clicks Start, timing from the click to
  - the sidebar's status showing a step >= 1 ("status shows a step"), and
  - the Train page's chart holding a dev loss point (read from the Plotly graph's data in the page).
With that run training, it then clicks every page link in turn (twice around), timing from the click to the
page's heading. Times are Python's clock around Playwright calls that poll the page once per animation
frame (~16 ms resolution).

    python bench/bench_latency.py [--repeats 5] [--laps 2] [--root PATH ...]

`--root` serves another checkout's app.py (e.g. a worktree of main); given twice, both servers run side by side
and are measured alternately (the same load for both: the before/after table).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, machine

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from server import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy  # the browser tests' helpers

sys.path.insert(0, str(ROOT))
from dashboard.layout import PAGES

QUERY = "?eval_every=200"  # the lecture config (200k steps), a dev point every 200 steps
STATUS_STEP = r"""() => {
  const el = document.querySelector('.st-key-run_status');
  const m = el && el.textContent.match(/step ([\d,]+) \//);
  return m !== null && parseInt(m[1].replace(/,/g, '')) >= 1;
}"""
DEV_DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot')].some(
  g => (g.data || []).some(t => (t.name || '').startsWith('dev loss')))"""  # the trace exists once a point does


PREVIEW_DRAWN = """() => document.body.innerText.includes('The loss curves appear here')
  && [...document.querySelectorAll('.st-key-lr_schedule_preview')].every(c => c.querySelector('.js-plotly-plot'))"""


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    env = {**os.environ, "MLP_IDLE_TIMEOUT": "600", "PYTHONPATH": str(root)}
    server = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, server)
    return server, url


def click_start(page) -> tuple[float, float]:
    """Seconds from Start's click to a step in the status, and to the first dev point on the chart."""
    start = page.locator(".st-key-btn_start button").first
    start.wait_for(timeout=120_000)
    page.wait_for_timeout(300)  # the page has settled (its first run's last deltas)
    # ... and drawn its charts, as it has by the time a user reads it and clicks (the Train page's lr schedule
    # preview; a checkout without one passes at once).
    page.wait_for_function(PREVIEW_DRAWN, polling="raf", timeout=60_000)
    t0 = time.perf_counter()
    start.click()
    page.wait_for_function(STATUS_STEP, polling="raf", timeout=60_000)
    t_step = time.perf_counter() - t0
    page.wait_for_function(DEV_DRAWN, polling="raf", timeout=60_000)
    return t_step, time.perf_counter() - t0


def switch(page, label: str, heading: str) -> float:
    link = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink"]').get_by_text(label, exact=True)
    link.wait_for(timeout=60_000)
    t0 = time.perf_counter()
    link.click()
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=60_000)
    return time.perf_counter() - t0


def measure(browser, url: str, seed: int, laps: int, stats: dict, warm: bool = False) -> None:
    """One Start in a fresh context (and with laps, the page switches while that run trains); into stats."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        page.goto(f"{url}/{QUERY}&seed={seed}", timeout=120_000)
        t_step, t_dev = click_start(page)
        if not warm:
            stats["step"].append(t_step)
            stats["dev"].append(t_dev)
        for _ in range(laps):
            for target in (*PAGES[1:], PAGES[0]):
                links = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink"]')
                if links.get_by_text(target.label, exact=True).count() == 0:
                    continue  # a page this checkout does not have (an older one, served for comparison)
                took = switch(page, target.label, target.heading)
                if not warm:
                    stats["switch"].setdefault(target.label, []).append(took)
        # Stop it: a closed tab's run would train on (and count against the server's job cap).
        page.locator(".st-key-btn_stop button").first.click()
        page.locator(".st-key-run_status").get_by_text("stopped").first.wait_for(timeout=60_000)
    finally:
        ctx.close()


def report(root: Path, stats: dict) -> None:
    steps, devs, switches = stats["step"], stats["dev"], stats["switch"]
    every = [t for ts in switches.values() for t in ts]
    print(f"\n== {root}")
    print(f"start -> step, s: {', '.join(f'{t:.3f}' for t in steps)}")
    print(f"start -> dev point, s: {', '.join(f'{t:.3f}' for t in devs)}")
    print("page switch -> heading, s (each visit):")
    for label, ts in switches.items():
        print(f"  {label:<20} {', '.join(f'{t:.3f}' for t in ts)}")
    print(
        f"click Start -> status shows a step: median {statistics.median(steps):.3f} s, p95 {pct(steps, 0.95):.3f} s"
        f" ({len(steps)} starts; target <= 0.5)"
    )
    print(
        f"click Start -> first dev point drawn: median {statistics.median(devs):.3f} s, p95 {pct(devs, 0.95):.3f} s"
        " (target <= 1.0)"
    )
    if every:
        print(
            f"page switch -> heading: median {statistics.median(every):.3f} s, p95 {pct(every, 0.95):.3f} s, "
            f"max {max(every):.3f} s ({len(every)} switches; target p95 <= 0.3)"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="Start clicks per server, each in a fresh browser context")
    p.add_argument("--laps", type=int, default=2, help="times around every page link (with the last run training)")
    p.add_argument(
        "--root",
        type=Path,
        action="append",
        help="a checkout whose app.py is served (repeatable: each gets its own server, measured alternately)",
    )
    args = p.parse_args()
    roots = [r.resolve() for r in (args.root or [ROOT])]
    if not os.path.exists(CHROMIUM):
        sys.exit(f"bench: {CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    print(machine(), "| load", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    servers = [start_server(r) for r in roots]
    stats = {r: {"step": [], "dev": [], "switch": {}} for r in roots}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for (_, url), r in zip(servers, roots, strict=True):
                # Warms the server, not counted: a Start and a visit to every page (a page's first visit imports
                # its modules, e.g. the Sweep page's pyarrow: ~0.5 s once per server).
                measure(browser, url, 99, 1, stats[r], warm=True)
            for i in range(args.repeats):
                for (_, url), r in zip(servers, roots, strict=True):  # alternately: the same load for each
                    measure(browser, url, i + 1, args.laps if i == args.repeats - 1 else 0, stats[r])
                    print(f"{r.name} start {i}: step {stats[r]['step'][-1]:.3f} s, dev {stats[r]['dev'][-1]:.3f} s")
            browser.close()
    finally:
        for server, _ in servers:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
    for r in roots:
        report(r, stats[r])
    print("load", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
