"""Training throughput with the diagnostics probe on vs off (the issue asks for >= 0.95x).

Baseline: `Trainer(config, ds, diagnostics_every=0)`. Ours: the default `Trainer(config, ds)`, which probes
activations, gradients and update sizes on a fixed batch at step 0 and at every evaluation point. Both time
the whole advance() loop (evaluations, histories and snapshots included), alternating off/on runs so load on
the machine hits both alike; the table shows medians and on/off as the ratio (higher is better).

    python bench/bench_diagnostics.py [--steps 20000] [--repeats 3] [--presets lecture fast]

Reads the lecture's names.txt like the other benches; without it, the built-in names (same alphabet).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import NAMES, lecture_dataset, machine, table

from mlp_core import data
from mlp_core.config import preset
from mlp_core.trainer import Trainer


def dataset(block_size: int) -> data.NamesDataset:
    if NAMES.exists():
        return lecture_dataset(block_size)
    return data.make_dataset(data.builtin_words(), block_size=block_size, split_seed=42)


def steps_per_second(config, ds, diagnostics: bool) -> tuple[float, int, float]:
    """(steps/s of one whole run, diagnostics points it recorded, share of the run's time spent probing)."""
    trainer = Trainer(config, ds, diagnostics_every=None if diagnostics else 0)
    recorder, probing = trainer._diagnostics, [0.0]
    record = recorder.maybe_record

    def timed_record(*args) -> None:
        t = time.perf_counter()
        record(*args)
        probing[0] += time.perf_counter() - t

    recorder.maybe_record = timed_record
    t0 = time.perf_counter()
    while not trainer.finished:
        trainer.advance(config.steps)
    seconds = time.perf_counter() - t0
    return trainer.step / seconds, len(trainer.diagnostics), probing[0] / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20_000, help="steps per run (lecture); fast runs its own 1,500")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--presets", nargs="+", default=["lecture", "fast"])
    p.add_argument("--norm", nargs="+", default=["none", "batchnorm"])
    args = p.parse_args()
    torch.set_num_threads(1)
    print(machine())
    print(f"data: {NAMES if NAMES.exists() else 'built-in names (names.txt not found)'}")
    rows, probe_share = [], []
    for name in args.presets:
        for norm in args.norm:
            config = preset(name).replace(device="cpu", norm=norm)
            if name == "lecture":
                config = config.replace(steps=args.steps)
            ds = dataset(config.block_size)
            steps_per_second(config.replace(steps=min(config.steps, 200)), ds, True)  # warm-up
            off, on, shares = [], [], []
            for _ in range(args.repeats):
                off.append(steps_per_second(config, ds, False)[0])
                speed, points, share = steps_per_second(config, ds, True)
                on.append(speed)
                shares.append(share)
            label = f"{name}/{norm}, {config.steps:,} steps, {points} probes"
            rows.append((label, statistics.median(off), statistics.median(on), "steps/s (median)"))
            rows.append((label, max(off), max(on), "steps/s (best run)"))
            probe_share.append((label, statistics.median(shares)))
    table("Training throughput: diagnostics off (baseline) vs on (ours)", rows, higher_is_better=True)
    # Within the same runs (so immune to load that changes between runs): the time spent in the probes.
    print("\nShare of the diagnostics-on run's time spent probing (1 - share = on/off throughput, load aside)")
    for label, share in probe_share:
        print(f"{label:<40} {share:>8.2%}   -> {1 - share:.3f}x")


if __name__ == "__main__":
    main()
