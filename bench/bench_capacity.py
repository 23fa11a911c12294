"""Capacity: how many sessions one dashboard server holds, 4 of them training (the job cap), the rest watching.

One server (`streamlit run app.py`, the browser tests' flags). Sessions are driven by `stream_client.py`, a
client of Streamlit's websocket protocol that keeps the page's refresh timers but renders nothing: on this 2-core
machine, Chromium drawing the pages would take the cores from the server and the jobs (bench_watched.py: four
Chromium pages took 87 % of a core), so the browsers would be measured, not the server. The trainers press Start
on the Train page (the lecture config, long enough to train all through); the watchers open a link to one
finished run (`?run=ID`, as a class watching the teacher's run) and stay on its Train page. Watchers are added
in steps; at each N, over a window: every session's refresh latency (from when its fragment timer was due to the
server's end of that run: p95 per session, the worst session reported) and the 4 jobs' steps/s (from the
status's step counter) against the same 4 jobs headless (TrainingJobs in this process, no server).

    python bench/bench_capacity.py [--levels 4 8 12 16 20 24 28] [--window 15] [--root PATH]

A level passes when every session's refresh p95 <= 1 s and the jobs run at >= 0.8x headless.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_latency import pct, start_server
from bench_watched import cpu_seconds, headless
from common import ROOT, machine
from stream_client import StreamSession

TRAIN_STEPS = 600_000  # lecture config: trains through every window, and Start needs no second click
FINISHED_QUERY = "steps=300&eval_every=100"  # the watched run: finishes in a second or two


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


async def _trainer(url: str, seed: int, stop: asyncio.Event) -> StreamSession:
    s = StreamSession(url, f"steps={TRAIN_STEPS}&seed={seed}")
    task = asyncio.create_task(s.run(stop))
    s.task = task
    await _until(lambda: "btn_start" in s.buttons and not s._inflight, 120, "no Start button")
    await s.click("btn_start")
    await asyncio.sleep(1.0)
    if not s.steps or s.steps[-1][1] == 0:  # the "this run would take long" warning: Start again trains it
        await _until(lambda: not s._inflight, 60, "Start did not finish")
        await s.click("btn_start")
    await _until(lambda: s.steps and s.steps[-1][1] > 0, 60, "the run did not start")
    return s


async def _finished_run(url: str) -> str:
    """The query string of a short run trained to its end (what the watchers open)."""
    s = StreamSession(url, FINISHED_QUERY)
    done = asyncio.Event()
    task = asyncio.create_task(s.run(done))
    await _until(lambda: "btn_start" in s.buttons and not s._inflight, 120, "no Start button")
    await s.click("btn_start")
    await _until(lambda: s.steps and s.steps[-1][1] >= 300, 120, "the watched run did not finish")
    await asyncio.sleep(1.0)
    query = s.run_query
    done.set()
    await task
    run = next(p for p in query.split("&") if p.startswith("run="))
    return run


def _window_stats(sessions: list[StreamSession], t0: float, t1: float) -> list[float]:
    """Each session's refresh p95 over the window (inf when it had no refresh at all)."""
    out = []
    for s in sessions:
        lat = [dt for when, dt in s.latencies if t0 <= when <= t1]
        out.append(pct(lat, 0.95) if lat else float("inf"))
    return out


def _steps_per_sec(s: StreamSession, t0: float, t1: float) -> float:
    inside = [(w, st) for w, st in s.steps if t0 <= w <= t1]
    if len(inside) < 2:
        return 0.0
    (wa, sa), (wb, sb) = inside[0], inside[-1]
    return (sb - sa) / (wb - wa) if wb > wa else 0.0


async def _levels(url: str, pid: int, levels: list[int], window: float, base: float) -> list[tuple]:
    stop = asyncio.Event()
    run = await _finished_run(url)
    trainers = [await _trainer(url, i + 1, stop) for i in range(4)]
    watchers: list[StreamSession] = []
    rows = []
    try:
        for n in levels:
            while 4 + len(watchers) < n:
                w = StreamSession(url, run)
                w.task = asyncio.create_task(w.run(stop))
                watchers.append(w)
                await asyncio.sleep(0.05)  # the class does not open its tabs in the same millisecond
            await asyncio.sleep(5.0)  # the new sessions' first page runs are over
            t0, cpu0 = time.perf_counter(), cpu_seconds(pid)
            await asyncio.sleep(window)
            t1, cpu1 = time.perf_counter(), cpu_seconds(pid)
            server = (cpu1 - cpu0) / (t1 - t0)  # the server process alone (its jobs are other processes)
            p95 = _window_stats(trainers + watchers, t0, t1)
            sps = [_steps_per_sec(s, t0, t1) for s in trainers]
            kib = sum(s.received for s in trainers + watchers) / 1024
            load = os.getloadavg()[0]
            row = (
                n,
                max(p95[:4]),
                max(p95[4:], default=0.0),
                sum(sps),
                sum(sps) / base if base else float("nan"),
                load,
            )
            rows.append(row)
            ok = row[1] <= 1 and row[2] <= 1 and row[4] >= 0.8
            print(
                f"N={n:3d}: refresh p95 worst trainer {row[1]:.2f} s, worst watcher {row[2]:.2f} s; jobs "
                f"{row[3]:,.0f} steps/s = {row[4]:.2f}x headless; server CPU {server:.0%} of a core; load {load:.1f}; "
                f"{kib:,.0f} KiB so far; "
                f"{'PASS' if ok else 'fail'}",
                flush=True,
            )
    finally:
        stop.set()
        await asyncio.gather(*(s.task for s in trainers + watchers), return_exceptions=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", type=int, nargs="+", default=[4, 8, 12, 16, 20, 24, 28])
    p.add_argument("--window", type=float, default=15.0)
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app.py is served")
    p.add_argument("--max-jobs", type=int, default=4, help="MLP_MAX_JOBS for the server (the trainers need 5)")
    args = p.parse_args()
    print(machine(), "| load", " ".join(f"{x:.2f}" for x in os.getloadavg()), "| root", args.root.resolve())
    base = headless(4, args.window, 5.0, TRAIN_STEPS)
    print(f"headless: 4 jobs, {base:,.0f} steps/s in all")
    os.environ["MLP_MAX_JOBS"] = str(args.max_jobs + 1)  # + the watched run (finished: it holds no slot by then)
    server, url = start_server(args.root.resolve())
    try:
        rows = asyncio.run(_levels(url, server.pid, args.levels, args.window, base))
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    passing = [r[0] for r in rows if r[1] <= 1 and r[2] <= 1 and r[4] >= 0.8]
    print(f"\nlargest N with every refresh p95 <= 1 s and the jobs >= 0.8x headless: {max(passing, default=0)}")
    print("load", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    sys.exit(main())
