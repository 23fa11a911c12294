"""Tuning helper: run configs the way the CLI does (advance to each eval, stop at a target dev loss) and time them.

python bench/tune.py --target 2.17 'preset=fast' 'preset=fast,batch_size=512,lr=0.02'
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import lecture_dataset

from mlp_core.config import from_dict, preset, to_dict
from mlp_core.trainer import Trainer


def parse(spec: str):
    """'preset=fast,lr=0.02,...' -> TrainConfig."""
    kv = dict(item.split("=", 1) for item in spec.split(",") if item)
    base = preset(kv.pop("preset", "fast"))
    return from_dict({**to_dict(base), **kv})


def run(config, dataset, target: float | None) -> dict:
    """Train like `python -m mlp_core train --target-dev-loss`: wall time of the loop, evals included."""
    trainer = Trainer(config, dataset)
    reached = None
    t0 = time.perf_counter()
    while not trainer.finished:
        result = trainer.advance(config.steps)
        ev = result.evaluated
        if target is not None and ev is not None and ev.dev_loss <= target:
            reached = time.perf_counter() - t0
            break
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 3),
        "reached_s": None if reached is None else round(reached, 3),
        "steps": trainer.step,
        "best_dev": round(trainer.best_dev, 4),
        "best_step": trainer.best_step,
        "train_s": round(trainer.train_seconds, 3),
        "last_dev": round(trainer.evals[-1].dev_loss, 4) if trainer.evals else None,
        "last_train": round(trainer.evals[-1].train_loss, 4) if trainer.evals else None,
        "curve": [
            (e.step, round(e.dev_loss, 3), round(e.train_loss, 3))
            for e in trainer.evals[:: max(1, len(trainer.evals) // 8)]
        ],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("specs", nargs="+")
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    datasets = {}
    for spec in args.specs:
        config = parse(spec)
        if config.block_size not in datasets:
            datasets[config.block_size] = lecture_dataset(config.block_size)
        out = run(config, datasets[config.block_size], args.target)
        print(json.dumps({"spec": spec, **out}), flush=True)


if __name__ == "__main__":
    main()
