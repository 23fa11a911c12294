"""Time to dev <= 1.99 with `--preset strong` vs the lecture's own loop's time to dev <= 2.17, side by side.

Baseline: the notebook's loop (bench/baseline.py, minibatches seeded) with a dev evaluation every 1,000
steps, stopped at the first one <= 2.17; its time includes those evaluations. Ours: the CLI in a
subprocess, as a user runs it,

    python -m mlp_core train --preset strong --target-dev-loss 1.99 --json

reading its `target_reached_seconds` (the training loop's wall time from the first step to the
evaluation that reached the target, evaluations included; process start-up and data loading are
outside it, as for the baseline). `--fast` also times `--preset fast --target-dev-loss 2.17` against the
same baseline run (issue 12, item 7).

    python bench/bench_strong.py [--repeats 3] [--fast] [--baseline-threads 1] [--skip-baseline SECONDS]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import torch
from baseline import LECTURE_SEED, run_baseline
from common import NAMES, ROOT, lecture_dataset, machine, table


def ours_cli(preset: str, target: float) -> dict:
    """One `train --preset P --target-dev-loss T --json` run; its summary (the last stdout line)."""
    cmd = [sys.executable, "-m", "mlp_core", "train", "--data", str(NAMES), "--preset", preset]
    cmd += ["--target-dev-loss", str(target), "--json", "--quiet"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    if summary["target_reached_seconds"] is None:
        sys.exit(f"--preset {preset} did not reach dev <= {target}: best {summary['best_dev_loss']}")
    return summary


def baseline_seconds(target: float, threads: int, seed: int) -> float:
    """The lecture's loop, seeded, until its first dev evaluation <= target; prints its step count."""
    torch.set_num_threads(threads)
    ds = lecture_dataset(3)
    (xtr, ytr), (xdev, ydev) = ds.splits["train"], ds.splits["dev"]
    b = run_baseline(xtr, ytr, 200_000, xdev, ydev, eval_every=1000, target=target, stop_at_target=True, seed=seed)
    if b.time_to_target is None:
        sys.exit(f"the baseline never reached dev <= {target}")
    print(f"baseline (seed {seed}): first dev <= {target} at step {b.step_at_target:,} after {b.time_to_target:.2f} s")
    return b.time_to_target


def run_ours(preset: str, target: float, repeats: int) -> float:
    runs = [ours_cli(preset, target) for _ in range(repeats)]
    times = [r["target_reached_seconds"] for r in runs]
    last = runs[-1]
    print(
        f"ours --preset {preset}, {repeats} runs: {', '.join(f'{t:.3f}' for t in times)} s to dev <= {target}; "
        f"last run: step {last['steps']:,}, dev {last['dev_loss']:.4f}, {last['steps_per_sec']:,.0f} steps/s"
    )
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--preset", default="strong")
    p.add_argument("--target", type=float, default=1.99, help="our target dev loss (the WaveNet lecture's 1.993)")
    p.add_argument("--fast", action="store_true", help="also time --preset fast to 2.17 against the same baseline")
    p.add_argument("--baseline-threads", type=int, default=1, help="torch threads for the baseline loop")
    p.add_argument("--seed", type=int, default=LECTURE_SEED, help="seed of the baseline's minibatch sampling")
    p.add_argument("--skip-baseline", type=float, default=None, help="use this baseline time instead of running it")
    args = p.parse_args()
    print(machine())
    ours_cli("fast", 2.17)  # warm the disk cache and the imports so the first timed run is not the odd one out
    ours = {f"{args.preset} to {args.target}": run_ours(args.preset, args.target, args.repeats)}
    if args.fast:
        ours["fast to 2.17"] = run_ours("fast", 2.17, args.repeats)
    base = args.skip_baseline
    if base is None:
        base = baseline_seconds(2.17, args.baseline_threads, args.seed)
    table(
        f"Seconds to target (lecture split, CPU; baseline: {args.baseline_threads} thread(s); ours: median)",
        [(f"loop to 2.17 vs {what}", base, seconds, "s") for what, seconds in ours.items()],
    )


if __name__ == "__main__":
    main()
