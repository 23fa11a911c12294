"""Sweeps on Ray Tune (`python -m mlp_core sweep`): Ray's cost per trial, 1 vs 2 nodes, and a budget result.

1. overhead: N identical trials of the fast preset (2,000 steps, lecture split) run one after another in
   this process through the Trainer (baseline) vs a local Ray sweep of the same trials, one at a time.
   Per trial: the trial's wall time as Ray ran it, and the steady-state time per trial (first trial's
   start to last trial's end, / N) vs the baseline's; Ray's fixed start-up + shut-down is reported apart.
2. nodes: trials per minute on a one-node vs a two-node `ray start` cluster (1 CPU per node).
3. budget (--budget): a sweep around `fast` (lr, hidden, emb_dim, block_size, batch_size, dropout,
   6,000 steps) stopped after --budget-minutes; prints its best dev and config vs the presets.

    python bench/bench_tune.py [--trials 4] [--steps 2000] [--skip-nodes] [--budget] [--budget-minutes 10]

Everything Ray here runs on loopback only: the script re-runs itself inside `unshare -n` (own network
namespace) when it can (root); elsewhere the two-node part is skipped, and the local sweeps keep Ray on
127.0.0.1 as mlp_core.sweep always does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import NAMES, ROOT, lecture_dataset, machine, table

from mlp_core.config import PRESETS
from mlp_core.trainer import Trainer

BUDGET_STEPS = 6000
BUDGET_SPACE = [
    "lr=0.003:0.03:log",
    "hidden=128:512:log",
    "emb_dim=8:32",
    "block_size=3|4|5|6|8",
    "batch_size=128|256|512",
    "dropout=0:0.2",
]


def isolated() -> bool:
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return [ln.split(":", 1)[0].strip() for ln in lines] == ["lo"]


def reexec_isolated() -> None:
    """Run this script again in its own network namespace (root only); return if that is not possible."""
    if isolated() or os.environ.get("BENCH_TUNE_NO_UNSHARE") or os.geteuid() != 0 or not shutil.which("unshare"):
        return
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return
    env = {**os.environ, "BENCH_TUNE_NO_UNSHARE": "1"}
    script = 'ip link set lo up && exec "$0" "$@"'
    os.execvpe("unshare", ["unshare", "-n", "sh", "-c", script, sys.executable, *sys.argv], env)


def sweep(env: dict[str, str], *args: str, timeout: float | None = None) -> tuple[dict | None, Path]:
    """Run the CLI; returns (its --json result or None if stopped by the timeout, the sweep dir)."""
    out = Path(tempfile.mkdtemp(prefix="bench_tune_")) / "sweep"
    cmd = [sys.executable, "-m", "mlp_core", "sweep", "--data", str(NAMES), *args, "--out", str(out), "--json"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # Tune stops the trials and saves its state; summary.json has the results
        proc.communicate(timeout=120)
        return None, out
    if proc.returncode != 0:
        sys.exit(f"bench: the sweep failed (exit {proc.returncode}): {' '.join(cmd)}")
    return json.loads(stdout.strip().splitlines()[-1]), out


def read_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def ray_env() -> dict[str, str]:
    home = tempfile.mkdtemp(prefix="bth")
    env = {**os.environ, "HOME": home, "RAY_TMPDIR": tempfile.mkdtemp(prefix="btr")}
    env.pop("RAY_ADDRESS", None)
    return env


def overhead(trials: int, steps: int) -> None:
    config = PRESETS["fast"].replace(steps=steps, device="cpu")
    ds = lecture_dataset(config.block_size)
    torch.set_num_threads(1)

    def sequential(n: int) -> list[float]:
        times = []
        for i in range(n + 1):  # the first is a warm-up (allocator, kernels), not timed: Ray's worker warms up too
            t0 = time.perf_counter()
            trainer = Trainer(config, ds, diagnostics_every=0)
            while not trainer.finished:
                trainer.advance(config.steps)
            if i:
                times.append(time.perf_counter() - t0)
        return times

    # Half the baseline before the Ray sweep and half after: the machine is shared, so its load drifts.
    seq = sequential(max(1, trials // 2))
    t0 = time.perf_counter()
    result, out = sweep(
        ray_env(), "--preset", "fast", "--trials", str(trials), "--steps", str(steps), "--scheduler", "fifo",
        "--concurrency", "1", "--quiet",
    )  # fmt: skip
    wall = time.perf_counter() - t0
    seq += sequential(max(1, trials - trials // 2))
    entries = list(read_summary(out)["trials"].values())
    per_trial = [t["finished"] - t["started"] for t in entries]
    span = (max(t["finished"] for t in entries) - min(t["started"] for t in entries)) / trials
    print(f"sequential trials (s): {', '.join(f'{s:.2f}' for s in seq)}")
    print(f"ray trials (s):        {', '.join(f'{s:.2f}' for s in per_trial)}; completed {result['completed']}")
    print(f"ray command wall {wall:.1f} s = {trials} trials + start-up/shut-down {wall - span * trials:.1f} s (fixed)")
    base = statistics.median(seq)
    table(
        f"{trials} trials x {steps:,} steps, fast preset, lecture split, 1 thread; ours: Ray Tune, 1 trial at a time",
        [
            ("seconds per trial (trial's own wall, median)", base, statistics.median(per_trial), "s"),
            ("seconds per trial (first start..last end)/N", base, span, "s"),
        ],
    )
    print(f"overhead per trial: {100 * (span / base - 1):+.1f}% (goal <= 10%)")


def nodes(trials: int, steps: int) -> None:
    if not isolated():
        print("\nnodes: skipped (needs an isolated network namespace: run as root so the script can unshare -n)")
        return
    ray_bin = str(Path(sys.executable).parent / "ray")
    env = ray_env()
    port = "46380"
    procs: list[subprocess.Popen] = []
    rates = []
    try:
        for n in (1, 2):
            cmd = [ray_bin, "start", "--num-cpus", "1", "--block", "--temp-dir", env["RAY_TMPDIR"]]
            cmd += (
                ["--head", "--port", port, "--include-dashboard", "false"]
                if n == 1
                else ["--address", f"127.0.0.1:{port}"]
            )
            procs.append(
                subprocess.Popen(
                    cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
            time.sleep(8)
            args = ["--preset", "fast", "--trials", str(trials), "--steps", str(steps), "--scheduler", "fifo"]
            result, out = sweep(env, *args, "--address", f"127.0.0.1:{port}", "--quiet")
            entries = list(read_summary(out)["trials"].values())
            # Steady state: first trial's start to last trial's end (the driver's connect and upload are apart).
            span = max(t["finished"] for t in entries) - min(t["started"] for t in entries)
            rates.append(60 * result["trials"] / span)
            print(
                f"{n} node(s): {result['trials']} trials in {span:.1f} s of trials ({result['seconds']:.1f} s for "
                f"the whole command) on {result['nodes_used']} node(s)"
            )
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    table(
        f"trials per minute, {trials} trials x {steps:,} steps, 1 CPU per node",
        [("1 node vs 2 nodes", rates[0], rates[1], "trials/min")],
        higher_is_better=True,
    )


def budget(minutes: float, trials: int) -> None:
    params = [a for p in BUDGET_SPACE for a in ("--param", p)]
    args = [
        "--preset",
        "fast",
        "--trials",
        str(trials),
        "--steps",
        str(BUDGET_STEPS),
        "--concurrency",
        "2",
        "--quiet",
        *params,
    ]
    t0 = time.perf_counter()
    result, out = sweep(ray_env(), *args, timeout=60 * minutes)
    wall = time.perf_counter() - t0
    summary = read_summary(out)
    best = summary.get("best")
    ended = sum(t["status"] in ("completed", "stopped", "errored") for t in summary["trials"].values())
    print(f"\nbudget sweep: {wall / 60:.1f} min, {ended} trials ended ({'all' if result else 'stopped at the budget'})")
    if best is None:
        print("no trial finished within the budget")
        return
    config = PRESETS["fast"].replace(steps=BUDGET_STEPS, **best["config"])
    print(f"best dev {best['dev_loss']:.4f} (goal <= 2.02) after {best['steps']} steps; swept values: {best['config']}")
    keys = ("block_size", "emb_dim", "hidden", "batch_size", "lr", "dropout", "steps")
    print(f"{'':<8}" + "".join(f"{k:>12}" for k in keys))
    for name, c in [("sweep", config), *PRESETS.items()]:
        print(f"{name:<8}" + "".join(f"{getattr(c, k):>12.4g}" for k in keys))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--skip-nodes", action="store_true")
    p.add_argument("--budget", action="store_true", help="also run the budget sweep (up to --budget-minutes)")
    p.add_argument("--budget-minutes", type=float, default=10.0)
    p.add_argument("--budget-trials", type=int, default=24)
    args = p.parse_args()
    reexec_isolated()
    print(machine(), "| network namespace: " + ("isolated (loopback only)" if isolated() else "shared"))
    if not NAMES.exists():
        sys.exit(f"bench: {NAMES} not found (set MLP_NAMES=/path/to/names.txt)")
    if not args.skip_overhead:
        overhead(args.trials, args.steps)
    if not args.skip_nodes:
        nodes(args.trials, args.steps)
    if args.budget:
        budget(args.budget_minutes, args.budget_trials)


if __name__ == "__main__":
    main()
