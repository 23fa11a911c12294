"""Inside the network (makemore part 3): activations, gradients and update sizes on one fixed probe batch.

Every number here comes from one forward and backward pass on a seeded batch of training examples, with the
model exactly as it trains (BatchNorm on batch statistics) but without touching it: no optimizer step, no
dropout mask drawn, BatchNorm's running statistics restored. So a run with diagnostics on trains to exactly
the weights of a run with them off. Results are frozen, picklable dataclasses of numpy arrays and floats:
they cross a process boundary in a job snapshot.

The probes themselves live in `probes` (the Trainer records them, so they cannot import it); this module
re-exports them and adds what trains a model: the init verdict's context and overfitting one batch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .config import TrainConfig
from .data import NamesDataset
from .probes import (  # noqa: F401 (re-exported: callers import them from here)
    ACT_BINS,
    GRAD_BINS,
    MAP_EXAMPLES,
    MAP_NEURONS,
    MAX_POINTS,
    PREACT_BINS,
    PREACT_RANGE,
    PROBE_SEED,
    PROBE_SIZE,
    SATURATED,
    DiagnosticsPoint,
    DiagnosticsRecorder,
    Histogram,
    LayerStats,
    ParamStats,
    probe,
    probe_batch,
)
from .trainer import Trainer


def init_verdict(loss: float, uniform_loss: float) -> str:
    """One line on the loss at step 0: a fresh model should be unsure of everything, i.e. near ln(V)."""
    excess = loss - uniform_loss
    if not math.isfinite(loss):
        return f"The initial loss is {loss}: the model is broken before training starts."
    if excess > 1.0:
        return (
            f"Initial loss {loss:.2f} is far above the uniform guess ln(V) = {uniform_loss:.2f}: the model starts "
            "confidently wrong, and the first steps are spent undoing it (shrink the output layer at init)."
        )
    if excess > 0.2:
        return f"Initial loss {loss:.2f} is somewhat above ln(V) = {uniform_loss:.2f}: the init is a bit overconfident."
    return f"Initial loss {loss:.2f} is close to ln(V) = {uniform_loss:.2f}: a well-calibrated start."


# ---------------------------------------------------------------------------- overfit one batch
@dataclass(frozen=True, eq=False)
class OverfitResult:
    """The loss on one fixed batch while training on nothing else, and the lowest loss any model can reach on it."""

    steps: np.ndarray  # (points,) int
    losses: np.ndarray  # (points,) float: the whole batch's loss at each step
    floor: float
    batch_size: int


def one_batch(dataset: NamesDataset, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` consecutive training examples, i.e. a few whole names, as the lecture's first batch was.

    Consecutive, not random: a few names share their start contexts ('...', '..e' after the first letter),
    which is what gives the batch a floor above 0. seed 0 is the very start of the training split.
    """
    x, y = dataset.splits["train"]
    if len(x) == 0:
        raise ValueError("the training split is empty: no batch to overfit")
    size = min(size, len(x))
    start = (
        0
        if seed == 0
        else int(torch.randint(0, len(x) - size + 1, (1,), generator=torch.Generator().manual_seed(seed)))
    )
    return x[start : start + size], y[start : start + size]


def loss_floor(x: torch.Tensor, y: torch.Tensor) -> float:
    """The lowest mean cross-entropy any model can reach on (x, y): why an overfit batch does not reach 0.

    A model sees only the context, so examples that share one (often '...' at a name's start) must share a
    prediction; the best it can do is each context's empirical next-character distribution, whose loss is
    that distribution's entropy. The floor is those entropies averaged over the examples.
    """
    if len(y) == 0:
        return math.nan
    _, ctx = torch.unique(x, dim=0, return_inverse=True)
    pairs, pair_counts = torch.unique(torch.stack([ctx, y.to(ctx.device)], 1), dim=0, return_counts=True)
    ctx_counts = torch.bincount(ctx).double()
    n_pair = pair_counts.double()
    p = n_pair / ctx_counts[pairs[:, 0]]
    return float(-(n_pair * p.log()).sum() / len(y))


def overfit_one_batch(
    config: TrainConfig,
    dataset: NamesDataset,
    steps: int = 1000,
    batch_size: int = 32,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> OverfitResult:
    """The lecture's sanity check: train these settings on one batch only and watch the loss fall to its floor.

    Runs the ordinary Trainer on a dataset whose every split is the same `batch_size` consecutive training
    examples (see one_batch), so each point is the exact loss on the whole batch. Dropout and weight decay are
    turned off: they exist to stop overfitting, and here overfitting is the point.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    dataset = dataset.with_block_size(config.block_size)
    x, y = one_batch(dataset, batch_size, seed)
    points = 100
    cfg = config.replace(
        steps=steps, batch_size=len(y), eval_every=max(1, steps // points), dropout=0.0, weight_decay=0.0
    )
    only_batch = dataclasses.replace(dataset, splits={name: (x, y) for name in ("train", "dev", "test")})
    trainer = Trainer(cfg, only_batch, diagnostics_every=0)
    history = [(0, trainer.evaluate("dev"))]
    while not trainer.finished:
        result = trainer.advance(steps)
        if result.evaluated is not None:
            history.append((result.evaluated.step, result.evaluated.dev_loss))
        if progress is not None:
            progress(trainer.step, steps)
    return OverfitResult(
        steps=np.array([s for s, _ in history], dtype=np.int64),
        losses=np.array([v for _, v in history], dtype=np.float64),
        floor=loss_floor(x, y),
        batch_size=len(y),
    )


__all__ = [
    "DiagnosticsPoint",
    "DiagnosticsRecorder",
    "Histogram",
    "LayerStats",
    "OverfitResult",
    "ParamStats",
    "init_verdict",
    "loss_floor",
    "one_batch",
    "overfit_one_batch",
    "probe",
    "probe_batch",
]
