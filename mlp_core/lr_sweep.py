"""The lecture's learning-rate range test: one minibatch step per candidate lr, lr growing exponentially.

From a fresh init, step i uses lr = 10 ** exponents[i] with exponents = linspace(-3, 0, 1000), and we
record that step's minibatch loss. The loss first falls, then flattens and finally blows up once the lr
is too large.

Suggested lr, and why: the lecture reads the plot by eye and picks the bottom of the valley, just
before the curve turns up (exponent about -1, lr 0.1). We do the same on a smoothed curve: a centred
moving average (no lag, unlike an EMA, which would shift the minimum towards larger lr) over about
5% of the points, then the lr at its minimum, ignoring the last 5% where the loss may be exploding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .config import TrainConfig
from .trainer import Trainer

if TYPE_CHECKING:
    from .data import NamesDataset

ProgressFn = Callable[[int, int, object], None]

# The default sweep range per optimizer, log10(lr): the lecture's 10^-3..10^0 suits SGD; AdamW's good rates
# are ~100x smaller (1e-3..1e-2), so on the lecture's range its valley sits at the left edge.
DEFAULT_RANGES = {"sgd": (-3.0, 0.0), "adamw": (-5.0, -1.0)}


def default_range(optimizer: str) -> tuple[float, float]:
    """(from, to) log10(lr) where this optimizer's valley and blow-up both fall inside."""
    return DEFAULT_RANGES.get(optimizer, DEFAULT_RANGES["sgd"])


def at_left_edge(exponents: np.ndarray, suggested_exponent: float) -> bool:
    """True when the suggestion lies in the first 5% of the range: the valley may start below it."""
    lo, hi = float(exponents[0]), float(exponents[-1])
    return suggested_exponent <= lo + 0.05 * (hi - lo)


@dataclass(frozen=True)
class LRSweepResult:
    exponents: np.ndarray  # log10(lr) per step
    losses: np.ndarray  # minibatch loss at that step (NaN/inf once it diverged)
    smoothed: np.ndarray
    suggested_exponent: float
    rule: str = "minimum of the centred moving average (the lecture's valley bottom)"

    @property
    def suggested_lr(self) -> float:
        return float(10**self.suggested_exponent)

    def rows(self) -> list[tuple[float, float]]:
        return list(zip(self.exponents.tolist(), self.losses.tolist(), strict=True))


def smooth(losses: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average that ignores non-finite points and shrinks its window at the edges."""
    finite = np.isfinite(losses)
    values = np.where(finite, losses, 0.0)
    kernel = np.ones(max(1, window))
    sums = np.convolve(values, kernel, mode="same")
    counts = np.convolve(finite.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def suggest_exponent(exponents: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, float]:
    """(smoothed curve, exponent at its minimum before the last 5%)."""
    n = len(losses)
    smoothed = smooth(losses, max(3, n // 20) | 1)
    usable = smoothed[: max(1, n - n // 20)]
    if not np.isfinite(usable).any():
        return smoothed, float(exponents[0])
    return smoothed, float(exponents[int(np.nanargmin(usable))])


def lr_range_test(
    config: TrainConfig,
    dataset: NamesDataset,
    start: float = -3.0,
    end: float = 0.0,
    num: int = 1000,
    progress: ProgressFn | None = None,
) -> LRSweepResult:
    """Run the sweep with the config's model, init, optimizer and batch size; lr comes from the sweep."""
    if not (num >= 2 and start < end):
        raise ValueError("the sweep needs num >= 2 and start < end")
    # One step per candidate, no schedule: the trainer's lr is overridden step by step.
    trainer = Trainer(config.replace(steps=num, eval_every=num, warmup_steps=0, schedule="constant"), dataset)
    exponents = np.linspace(start, end, num)
    lrs = 10**exponents
    losses = np.full(num, np.nan)
    done = 0
    chunk = max(1, num // 50)
    while done < num:
        n = min(chunk, num - done)
        losses[done : done + n] = trainer.train_steps(n, lrs[done : done + n].tolist()).float().cpu().numpy()
        done += n
        if progress is not None:
            progress(done, num, (exponents[:done], losses[:done]))
        if not np.isfinite(losses[done - n : done]).all():
            break  # everything past a NaN is NaN: stop early and leave the rest as NaN
    smoothed, best = suggest_exponent(exponents, losses)
    return LRSweepResult(exponents, losses, smoothed, best)
