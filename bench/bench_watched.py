"""Watched vs headless: a training job's steps/s while a real Chromium shows its Train page, vs no browser.

Headless (baseline): the same config as a `TrainingJob` (its own worker process, one torch thread, as
the dashboard starts them) in this process, nobody watching. Watched: a fresh dashboard server
(`streamlit run app.py`, the browser tests' flags) and Chromium (/usr/bin/chromium via Playwright) on the
Train page, where the run is started with the sidebar's Start button and then refreshes live. Both
measure the job's steps over the same window after a warm-up (watched: the page's "step" metric, read
at both ends of the window). Alongside: the server process's CPU seconds per refresh (from
/proc/PID/stat; its training jobs are other processes), the WebSocket bytes the page received per
refresh, the refresh intervals the page saw (a MutationObserver on the step metric), and the RSS of the
server's worker processes per job.

    python bench/bench_watched.py [--sessions 1 4] [--window 20] [--warmup 5] [--streamlit-gc] [--steps N]
        [--root PATH]

The lecture config (batch 32, SGD) with 10M steps (`--steps`): it trains for the whole window. `--root` serves
another checkout's app.py (a worktree of main, for a before/after table).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, lecture_dataset, machine, table

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from server import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy  # the browser tests' helpers

from mlp_core.config import TrainConfig
from mlp_core.job import TrainingJob, warm_up

STEPS = 10_000_000  # --steps
TICK = os.sysconf("SC_CLK_TCK")
# Records when the first metric (the step counter) changes: one entry per refresh the page shows.
OBSERVER = """() => {
  window.__refreshes = [];
  let last = null;
  const read = () => {
    const el = document.querySelector('[data-testid="stMetricValue"]');
    const text = el ? el.textContent : null;
    if (text !== null && text !== last) { last = text; window.__refreshes.push(performance.now()); }
  };
  new MutationObserver(read).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def descendants(pid: int, depth: int | None = None) -> list[int]:
    """pid's children, their children and so on (only the children with depth=1), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [(pid, 0)]
    while todo:
        parent, level = todo.pop()
        if depth is not None and level >= depth:
            continue
        for child in children.get(parent, []):
            out.append(child)
            todo.append((child, level + 1))
    return out


def descendants_of_children(pid: int) -> list[int]:
    """Every process below pid's children (its grandchildren and further)."""
    return [d for child in descendants(pid, depth=1) for d in descendants(child)]


def browser_cpu(server_pid: int) -> float:
    """CPU seconds of this process's other children: Playwright's driver and Chromium's processes."""
    total = 0.0
    for pid in set(descendants(os.getpid())) - {server_pid, *descendants(server_pid)}:
        try:
            total += cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def headless(n: int, window: float, warmup: float, steps: int = STEPS) -> float:
    """Total steps/s of n TrainingJobs of the lecture config, nobody watching."""
    ds = lecture_dataset(3)
    warm_up()
    jobs = [TrainingJob(TrainConfig(steps=steps, device="cpu", seed=i + 1), ds) for i in range(n)]
    for job in jobs:
        job.start()
    try:
        time.sleep(warmup)
        s0, t0 = sum(j.snapshot().step for j in jobs), time.perf_counter()
        time.sleep(window)
        s1, t1 = sum(j.snapshot().step for j in jobs), time.perf_counter()
    finally:
        for job in jobs:
            job.stop()
    return (s1 - s0) / (t1 - t0)


def page_step(page) -> int:
    text = page.locator('[data-testid="stMetricValue"]').first.text_content(timeout=30_000) or "0"
    return int(text.replace(",", "") or 0)


def watched(
    browser, n: int, window: float, warmup: float, flags: tuple[str, ...] = (), steps: int = STEPS, root: Path = ROOT
) -> dict:
    """n browser sessions, each starting its own run on the Train page; what the server and pages did."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *flags,
    ]  # fmt: skip
    env = {**os.environ, "MLP_MAX_JOBS": str(max(4, n)), "MLP_IDLE_TIMEOUT": "600", "PYTHONPATH": str(root)}
    server = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    contexts = []
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, server)
        pages, received = [], [0] * n
        for i in range(n):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            contexts.append(ctx)
            page = ctx.new_page()

            def on_ws(ws, i=i):
                ws.on("framereceived", lambda payload: received.__setitem__(i, received[i] + len(payload)))

            page.on("websocket", on_ws)
            page.goto(f"{url}/?steps={steps}&seed={i + 1}", timeout=120_000)
            start = page.locator(".st-key-btn_start button").first
            start.wait_for(timeout=60_000)
            start.click()
            # A 10M-step run gets the "this run would take about ..." warning: Start again trains it anyway.
            page.get_by_text("Press Start again").or_(page.locator(".st-key-run_status")).first.wait_for(timeout=60_000)
            if page.get_by_text("Press Start again").count():
                start.click()
            page.locator(".st-key-run_status").get_by_text("step").first.wait_for(timeout=60_000)
            page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=60_000)
            pages.append(page)
        time.sleep(warmup)
        for page in pages:
            page.evaluate(OBSERVER)
        steps0 = [page_step(p) for p in pages]
        cpu0, bytes0, t0 = cpu_seconds(server.pid), list(received), time.perf_counter()
        browser0 = browser_cpu(server.pid)
        time.sleep(window)
        steps1 = [page_step(p) for p in pages]
        cpu1, bytes1, t1 = cpu_seconds(server.pid), list(received), time.perf_counter()
        browser1 = browser_cpu(server.pid)
        stamps = [p.evaluate("() => window.__refreshes") for p in pages]
        # The jobs' workers are forked by the server's fork server: the server's grandchildren.
        children = set(descendants(server.pid)) - set(descendants_of_children(server.pid))
        worker_rss = [rss_mb(pid) for pid in descendants(server.pid) if pid not in children]
        server_rss = rss_mb(server.pid)
    finally:
        for ctx in contexts:
            ctx.close()
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    refreshes = sum(max(1, len(s) - 1) for s in stamps)
    gaps = sorted(b - a for s in stamps for a, b in itertools.pairwise(s))
    p95 = gaps[min(len(gaps) - 1, int(0.95 * len(gaps)))] / 1000 if gaps else float("nan")
    return {
        "steps_per_sec": sum(b - a for a, b in zip(steps0, steps1, strict=True)) / (t1 - t0),
        "per_session": [(b - a) / (t1 - t0) for a, b in zip(steps0, steps1, strict=True)],
        "cpu_per_refresh_ms": 1000 * (cpu1 - cpu0) / refreshes,
        "server_cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "browser_cpu_share": (browser1 - browser0) / (t1 - t0),
        "kib_per_refresh": sum(b - a for a, b in zip(bytes0, bytes1, strict=True)) / 1024 / refreshes,
        "refreshes": refreshes,
        "refresh_p95_s": p95,
        "refresh_median_s": statistics.median(gaps) / 1000 if gaps else float("nan"),
        "worker_rss": worker_rss,  # MB, one per job
        "server_rss": server_rss,
    }


def report(n: int, label: str, base: float, w: dict) -> None:
    print(
        f"{n} session(s){label}: headless {base:,.0f} steps/s; watched {w['steps_per_sec']:,.0f} steps/s "
        f"(per session {', '.join(f'{s:,.0f}' for s in w['per_session'])}); {w['refreshes']} refreshes, "
        f"interval median {w['refresh_median_s']:.2f} s, p95 {w['refresh_p95_s']:.2f} s; server CPU "
        f"{w['cpu_per_refresh_ms']:.0f} ms/refresh ({w['server_cpu_share']:.0%} of a core); browser "
        f"{w['browser_cpu_share']:.0%} of a core; {w['kib_per_refresh']:.1f} KiB/refresh; "
        f"server RSS {w['server_rss']:.0f} MB, per job {', '.join(f'{r:.0f}' for r in w['worker_rss'])} MB"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 4])
    p.add_argument("--window", type=float, default=20.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of training before the window")
    p.add_argument(
        "--streamlit-gc",
        action="store_true",
        help="also watch with Streamlit's default runner.postScriptGC=true (a full gc.collect after every rerun; "
        "our .streamlit/config.toml turns it off)",
    )
    p.add_argument("--steps", type=int, default=STEPS, help="the run's steps (it should outlast the window)")
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app.py is served")
    p.add_argument("--no-headless", action="store_true", help="skip the headless baseline (server cost only)")
    args = p.parse_args()
    if not os.path.exists(CHROMIUM):
        sys.exit(f"bench: {CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    print(machine(), "| load", " ".join(f"{x:.2f}" for x in os.getloadavg()), "| root", args.root.resolve())
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n in args.sessions:
            base = float("nan") if args.no_headless else headless(n, args.window, args.warmup, args.steps)
            variants = [("", ())]
            if args.streamlit_gc:
                variants.insert(0, (", Streamlit's post-run GC on", ("--runner.postScriptGC", "true")))
            for label, flags in variants:
                w = watched(browser, n, args.window, args.warmup, flags, args.steps, args.root.resolve())
                report(n, label, base, w)
                rows.append((f"{n} session(s){label}", base, w["steps_per_sec"], "steps/s (watched/headless)"))
        browser.close()
    print("load", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    table("A job's steps/s: headless vs watched on the Train page (lecture config)", rows, higher_is_better=True)


if __name__ == "__main__":
    main()
