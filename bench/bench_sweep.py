"""The 1,000-step LR range test on CPU: the lecture's loop vs `mlp_core.lr_sweep.lr_range_test`.

Both use the lecture config (block 3, emb 10, hidden 200, batch 32, lecture init) and lrs
10 ** linspace(-3, 0, 1000). Ours is timed end to end: building the Trainer (model, optimizer,
data on the device) plus the sweep and the suggestion.

    python bench/bench_sweep.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from baseline import lecture_params
from common import lecture_dataset, machine, table

from mlp_core.config import PRESETS
from mlp_core.lr_sweep import lr_range_test


def baseline_sweep(xtr: torch.Tensor, ytr: torch.Tensor, num: int = 1000) -> list[float]:
    """The notebook's cell: one step per lr, `lossi.append(loss.item())` every step."""
    parameters = lecture_params()
    C, W1, b1, W2, b2 = parameters
    lre = torch.linspace(-3, 0, num)
    lrs = 10**lre
    lri, lossi = [], []
    for i in range(num):
        ix = torch.randint(0, xtr.shape[0], (32,))
        emb = C[xtr[ix]]
        h = torch.tanh(emb.view(-1, 30) @ W1 + b1)
        logits = h @ W2 + b2
        loss = F.cross_entropy(logits, ytr[ix])
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = lrs[i]
        for p in parameters:
            p.data += -lr * p.grad
        lri.append(lre[i])
        lossi.append(loss.item())
    return lossi


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(machine())
    ds = lecture_dataset(3)
    xtr, ytr = ds.splits["train"]
    base, ours = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        baseline_sweep(xtr, ytr)
        base.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = lr_range_test(PRESETS["lecture"], ds)
        ours.append(time.perf_counter() - t0)
    print(f"ours suggests lr {result.suggested_lr:.3g} (10^{result.suggested_exponent:.2f})")
    table(
        "1,000-step LR range test, lecture config",
        [("seconds (median)", statistics.median(base), statistics.median(ours), "s")],
    )


if __name__ == "__main__":
    main()
