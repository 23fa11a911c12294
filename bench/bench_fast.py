"""Time to dev <= 2.17 on CPU: the lecture's loop vs `python -m mlp_core train --preset fast`.

Baseline: the notebook's loop (bench/baseline.py) with a dev evaluation every 1,000 steps, stopped at
the first one <= 2.17; its time includes those evaluations. Ours: the CLI in a subprocess, as a user
runs it; we read `target_reached_seconds` (wall time of the training loop, evaluations included,
from the first step; process start-up and data loading are not in it, as for the baseline). If the
CLI cannot run yet, the same loop runs in-process through the Trainer.

    python bench/bench_fast.py [--repeats 3] [--target 2.17] [--baseline-threads 1] [--skip-baseline SECONDS]

The baseline runs with 1 torch thread by default: its fastest setting on the 2-core CI machine (with 2
threads it falls off a contention cliff, which would flatter our ratio).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from baseline import LECTURE_SEED, run_baseline
from common import NAMES, ROOT, lecture_dataset, machine, table


def ours_cli(target: float) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "mlp_core", "train", "--data", str(NAMES), "--preset", "fast"]
    cmd += ["--target-dev-loss", str(target), "--json", "--quiet"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    return summary["target_reached_seconds"], summary


def ours_inprocess(target: float) -> tuple[float, dict]:
    """The CLI's loop through the Trainer: advance to each evaluation, stop at the first dev <= target."""
    from mlp_core.config import preset
    from mlp_core.trainer import Trainer

    config = preset("fast")
    trainer = Trainer(config, lecture_dataset(config.block_size))
    reached = None
    t0 = time.perf_counter()
    while not trainer.finished and reached is None:
        point = trainer.advance(config.steps).evaluated
        if point is not None and point.dev_loss <= target:
            reached = time.perf_counter() - t0
    return reached, {"steps": trainer.step, "best_dev": trainer.best_dev}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--target", type=float, default=2.17)
    p.add_argument("--baseline-threads", type=int, default=1, help="torch threads for the baseline loop")
    p.add_argument("--seed", type=int, default=LECTURE_SEED, help="seed of the baseline's minibatch sampling")
    p.add_argument("--skip-baseline", type=float, default=None, help="use this baseline time instead of running it")
    args = p.parse_args()
    print(machine())
    try:
        ours_cli(args.target)
        how, fn = "CLI", ours_cli
    except (subprocess.CalledProcessError, json.JSONDecodeError, KeyError) as exc:
        print(f"the CLI could not run ({type(exc).__name__}); timing the Trainer in-process instead")
        how, fn = "Trainer", ours_inprocess
    runs = [fn(args.target) for _ in range(args.repeats)]
    times = [t for t, _ in runs]
    if any(t is None for t in times):
        sys.exit(f"the fast preset did not reach dev <= {args.target}: {runs}")
    print(
        f"ours ({how}), {args.repeats} runs: {', '.join(f'{t:.3f}' for t in times)} s; last: {json.dumps(runs[-1][1])}"
    )
    if args.skip_baseline is None:
        torch.set_num_threads(args.baseline_threads)
        ds = lecture_dataset(3)
        (xtr, ytr), (xdev, ydev) = ds.splits["train"], ds.splits["dev"]
        b = run_baseline(
            xtr, ytr, 200_000, xdev, ydev, eval_every=1000, target=args.target, stop_at_target=True, seed=args.seed
        )
        base = b.time_to_target
        print(
            f"baseline (seed {args.seed}): first dev <= {args.target} at step {b.step_at_target:,} after {base:.1f} s"
        )
    else:
        base = args.skip_baseline
    table(
        f"Seconds to first dev <= {args.target} (lecture split, CPU; baseline: {args.baseline_threads} thread(s))",
        [("lecture loop vs --preset fast", base, statistics.median(times), "s (ours: median)")],
    )


if __name__ == "__main__":
    main()
