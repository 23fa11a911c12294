"""torch.compile on this CPU, compile time included: time to a target dev loss, eager vs compiled.

For the `lecture` preset (to dev <= 2.17) and `strong` (to dev <= 1.99), each in its own process:
eager (the Trainer as shipped), compiled with an empty inductor cache (what a user's first run pays) and
compiled again on that now warm cache (a later run). "Compiled" is `model.forward = torch.compile(model.forward)`
on the Trainer's model: the training step's forward and, through AOTAutograd, its backward; evaluation
calls the same compiled forward (a second graph, for no-grad). The optimizer step stays the fused kernel.

    python bench/bench_compile.py [--presets lecture strong]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import ROOT, lecture_dataset, machine, table

TARGETS = {"lecture": 2.17, "strong": 1.99, "fast": 2.17}


def one_run(preset_name: str, compiled: bool) -> dict:
    """In this process: train until the first dev evaluation <= the preset's target; the seconds it took."""
    import torch

    from mlp_core.config import preset
    from mlp_core.trainer import Trainer

    config = preset(preset_name).replace(device="cpu")
    trainer = Trainer(config, lecture_dataset(config.block_size))
    target = TARGETS[preset_name]
    t0 = time.perf_counter()
    if compiled:
        trainer.model.forward = torch.compile(trainer.model.forward)
    first_chunk = first_steps = None
    reached = None
    while not trainer.finished and reached is None:
        point = trainer.advance(config.steps).evaluated
        if first_chunk is None:  # up to the first evaluation: includes compiling the training graph
            first_chunk, first_steps = time.perf_counter() - t0, trainer.step
        if point is not None and point.dev_loss <= target:
            reached = time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    return {
        "reached": reached,
        "step": trainer.step,
        "seconds": seconds,
        "first_chunk": first_chunk,
        # After the first chunk (compiling done, evaluations included): the speed compiling buys, if any.
        "steady_steps_per_sec": (trainer.step - first_steps) / max(1e-9, seconds - first_chunk),
        "dev": trainer.evals[-1].dev_loss,
    }


def in_subprocess(preset_name: str, compiled: bool, cache_dir: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache_dir}
    cmd = [sys.executable, __file__, "--one", preset_name] + (["--compiled"] if compiled else [])
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["lecture", "strong"], choices=sorted(TARGETS))
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.one, args.compiled)))
        return
    print(machine())
    for name in args.presets:
        with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
            eager = in_subprocess(name, False, cache)
            cold = in_subprocess(name, True, cache)
            warm = in_subprocess(name, True, cache)
        for label, r in (("eager", eager), ("compiled, cold cache", cold), ("compiled, warm cache", warm)):
            print(
                f"{name} {label}: dev <= {TARGETS[name]} at step {r['step']:,} after {r['reached']:.2f} s; "
                f"first chunk {r['first_chunk']:.2f} s; then {r['steady_steps_per_sec']:,.0f} steps/s (evals included)"
            )
        table(
            f"--preset {name}: seconds to dev <= {TARGETS[name]} (compile included), eager = baseline",
            [
                ("compiled, cold inductor cache", eager["reached"], cold["reached"], "s"),
                ("compiled, warm inductor cache", eager["reached"], warm["reached"], "s"),
            ],
        )


if __name__ == "__main__":
    main()
