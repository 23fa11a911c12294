"""Sampling 1,000 names on CPU: the lecture's one-name-at-a-time loop vs `mlp_core.sampling.sample_names`.

Both sample from the same model: the `fast` preset trained on names.txt (about a second), so names
have realistic lengths. The baseline is the notebook's cell: one forward pass and one
`torch.multinomial(...).item()` per character, one name after another.

    python bench/bench_sampling.py [--n 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from common import lecture_dataset, machine, table

from mlp_core.config import preset
from mlp_core.trainer import Trainer


def baseline_sample(model, n: int, seed: int = 2147483647 + 10) -> list[str]:
    """The notebook's sampling cell with the model's raw tensors."""
    C, W1, b1, W2, b2 = (getattr(model, k).detach() for k in ("C", "W1", "b1", "W2", "b2"))
    g = torch.Generator().manual_seed(seed)
    names = []
    for _ in range(n):
        out = []
        context = [0] * model.block_size
        while True:
            emb = C[torch.tensor([context])]
            h = torch.tanh(emb.view(1, -1) @ W1 + b1)
            logits = h @ W2 + b2
            probs = F.softmax(logits, dim=1)
            ix = torch.multinomial(probs, num_samples=1, generator=g).item()
            context = context[1:] + [ix]  # noqa: RUF005 -- the notebook, verbatim
            out.append(ix)
            if ix == 0:
                break
        names.append(out)
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    try:
        from mlp_core.sampling import sample_names
    except ImportError:
        sys.exit("mlp_core/sampling.py is not there yet: nothing to time")
    print(machine())
    config = preset("fast").replace(device="cpu")
    ds = lecture_dataset(config.block_size)
    trainer = Trainer(config, ds)
    while not trainer.finished:
        trainer.advance(config.steps)
    model = trainer.model.eval()
    base, ours = [], []
    with torch.no_grad():
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            baseline_sample(model, args.n)
            base.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            names = sample_names(model, ds.vocab, args.n)
            ours.append(time.perf_counter() - t0)
    print(f"ours, first names: {[getattr(s, 'name', s) for s in list(names)[:8]]}")
    table(f"Sampling {args.n:,} names (fast preset, CPU)", [("seconds (median)", statistics.median(base),
          statistics.median(ours), "s")])  # fmt: skip


if __name__ == "__main__":
    main()
