"""Engine overhead: the lecture config through our Trainer (history, evals and all) vs the lecture's own loop.

Both run in this process, one after the other, repeated and interleaved; we report the median.
Ours evaluates dev (and a train subset) every 1,000 steps, as the engine always does; the baseline
does the notebook's `.item()` per step and no evaluation. With --full, both also run the whole
200k steps with a dev evaluation every 1,000 steps and we time when each first reaches dev <= 2.17.

    python bench/bench_engine.py [--steps 20000] [--repeats 3] [--threads 1 2] [--full]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from baseline import run_baseline
from common import lecture_dataset, machine, table

from mlp_core.config import PRESETS
from mlp_core.trainer import Trainer


def run_ours(dataset, steps: int, target: float | None = None) -> tuple[float, float, float | None, int | None, float]:
    """(seconds, train_seconds, time to target, step at target, final dev) for the lecture config."""
    config = PRESETS["lecture"]
    trainer = Trainer(config.replace(steps=steps), dataset)
    hit_time = hit_step = None
    t0 = time.perf_counter()
    while not trainer.finished:
        result = trainer.advance(trainer.config.steps)
        if target is not None and hit_time is None and result.evaluated and result.evaluated.dev_loss <= target:
            hit_time, hit_step = time.perf_counter() - t0, trainer.step
    seconds = time.perf_counter() - t0
    return seconds, trainer.train_seconds, hit_time, hit_step, trainer.evals[-1].dev_loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--full", action="store_true", help="also the whole 200k-step run and the time to dev <= 2.17")
    p.add_argument("--target", type=float, default=2.17)
    args = p.parse_args()
    ds = lecture_dataset(3)
    (xtr, ytr), (xdev, ydev) = ds.splits["train"], ds.splits["dev"]
    print(machine())
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(2147483647)
        run_baseline(xtr, ytr, 500)  # warm-up: first-call allocations and kernel selection
        run_ours(ds, 500)
        base, ours = [], []
        for _ in range(args.repeats):
            base.append(args.steps / run_baseline(xtr, ytr, args.steps).seconds)
            ours.append(args.steps / run_ours(ds, args.steps)[0])
        rows.append((f"steps/s, {threads} thread(s), {args.steps:,} steps", statistics.median(base),
                     statistics.median(ours), "steps/s (median)"))  # fmt: skip
    table("Lecture config on CPU: the notebook's loop vs our engine (ours includes evals + history)", rows, True)
    if args.full:
        torch.set_num_threads(args.threads[0])
        torch.manual_seed(2147483647)
        b = run_baseline(xtr, ytr, 200_000, xdev, ydev, eval_every=1000, target=args.target)
        seconds, _, hit, hit_step, dev = run_ours(ds, 200_000, target=args.target)
        table(
            f"Full lecture run, {args.threads[0]} thread(s), dev evaluated every 1,000 steps",
            [
                (f"seconds to first dev <= {args.target}", b.time_to_target or float("nan"), hit or float("nan"), "s"),
                ("seconds for 200k steps (incl. evals)", b.seconds, seconds, "s"),
            ],
        )
        print(f"baseline: first <= {args.target} at step {b.step_at_target}, final dev {b.dev_loss:.4f}")
        print(f"ours:     first <= {args.target} at step {hit_step}, final dev {dev:.4f}")


if __name__ == "__main__":
    main()
