"""The baseline: the lecture's final training cell, as plain tensors, for the benches to compare against.

Exactly the notebook's loop (raw C, W1, b1, W2, b2 from the lecture's generator, batch 32, manual SGD, a
`.item()` every step for `lossi`), plus an optional dev evaluation every `eval_every` steps so we can time
when it first reaches a target dev loss. `python bench/baseline.py` runs it.

One change from the notebook: its minibatches come from the unseeded global RNG, so its steps to dev <= 2.17
vary from run to run (34-78 s here); ours come from a generator seeded with `seed` (default: the notebook's
2147483647), so a bench run's baseline repeats (same steps; only the machine's speed varies).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from common import lecture_dataset  # bench/ is on sys.path when run as a script

LECTURE_SEED = 2147483647  # the notebook's generator seed (mlp_core.config.LECTURE_SEED)


@dataclass
class BaselineResult:
    steps: int
    seconds: float  # the whole loop, dev evaluations included
    train_seconds: float  # the loop without dev evaluations
    dev_loss: float
    time_to_target: float | None = None  # seconds (evaluations included) until dev <= target
    step_at_target: int | None = None
    lossi: list[float] = field(default_factory=list)

    @property
    def steps_per_sec(self) -> float:
        return self.steps / self.train_seconds


def lecture_params(vocab_size: int = 27) -> list[torch.Tensor]:
    """C, W1, b1, W2, b2 as the notebook makes them (11,897 numbers)."""
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((vocab_size, 10), generator=g)
    W1 = torch.randn((30, 200), generator=g)
    b1 = torch.randn(200, generator=g)
    W2 = torch.randn((200, vocab_size), generator=g)
    b2 = torch.randn(vocab_size, generator=g)
    parameters = [C, W1, b1, W2, b2]
    for p in parameters:
        p.requires_grad = True
    return parameters


@torch.no_grad()
def dev_loss(parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> float:
    C, W1, b1, W2, b2 = parameters
    h = torch.tanh(C[X].view(-1, 30) @ W1 + b1)
    return F.cross_entropy(h @ W2 + b2, Y).item()


def run_baseline(
    Xtr: torch.Tensor,
    Ytr: torch.Tensor,
    steps: int = 200_000,
    Xdev: torch.Tensor | None = None,
    Ydev: torch.Tensor | None = None,
    eval_every: int = 1000,
    target: float | None = None,
    stop_at_target: bool = False,
    seed: int = LECTURE_SEED,
) -> BaselineResult:
    """The notebook's loop for `steps` steps (lr 0.1, then 0.01 from step 100,000), minibatches seeded by `seed`."""
    parameters = lecture_params()
    g = torch.Generator().manual_seed(seed)
    C, W1, b1, W2, b2 = parameters
    lossi: list[float] = []
    eval_seconds = 0.0
    hit_time = hit_step = None
    t0 = time.perf_counter()
    for i in range(steps):
        ix = torch.randint(0, Xtr.shape[0], (32,), generator=g)
        emb = C[Xtr[ix]]
        h = torch.tanh(emb.view(-1, 30) @ W1 + b1)
        logits = h @ W2 + b2
        loss = F.cross_entropy(logits, Ytr[ix])
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < 100000 else 0.01
        for p in parameters:
            p.data += -lr * p.grad
        lossi.append(loss.log10().item())
        if Xdev is not None and (i + 1) % eval_every == 0:
            te = time.perf_counter()
            d = dev_loss(parameters, Xdev, Ydev)
            eval_seconds += time.perf_counter() - te
            if target is not None and hit_time is None and d <= target:
                hit_time, hit_step = time.perf_counter() - t0, i + 1
                if stop_at_target:
                    steps = i + 1
                    break
    seconds = time.perf_counter() - t0
    final = dev_loss(parameters, Xdev, Ydev) if Xdev is not None else math.nan
    return BaselineResult(steps, seconds, seconds - eval_seconds, final, hit_time, hit_step, lossi)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--target", type=float, default=2.17)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=LECTURE_SEED, help="seed of the minibatch sampling")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = lecture_dataset(3)
    (Xtr, Ytr), (Xdev, Ydev) = ds.splits["train"], ds.splits["dev"]
    r = run_baseline(Xtr, Ytr, args.steps, Xdev, Ydev, target=args.target, seed=args.seed)
    print(f"baseline: {r.steps:,} steps in {r.seconds:.1f} s ({r.steps_per_sec:,.0f} steps/s), dev {r.dev_loss:.4f}")
    if r.time_to_target is not None:
        print(f"first dev <= {args.target} at step {r.step_at_target:,} after {r.time_to_target:.1f} s")
    else:
        print(f"never reached dev <= {args.target}")


if __name__ == "__main__":
    main()
