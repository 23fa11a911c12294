"""Bounded loss histories: a million-step run stays a few thousand points, keeping each bucket's min and max."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeriesView:
    """An immutable copy of a series, safe to hand to another thread. `step` is each bucket's first step."""

    step: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    count: np.ndarray  # raw points per bucket

    def __len__(self) -> int:
        return len(self.step)


class DecimatedSeries:
    """Per-step values in buckets of `stride` steps; past `capacity` buckets, neighbours merge and stride doubles.

    Means are count-weighted, so merging never biases the curve, and min/max survive every merge
    (a spike at step 900,000 still shows on the chart).
    """

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self.stride = 1
        self._step = np.zeros(0, dtype=np.int64)
        self._sum = np.zeros(0)
        self._low = np.zeros(0)
        self._high = np.zeros(0)
        self._count = np.zeros(0, dtype=np.int64)
        self._pending: np.ndarray = np.zeros(0)  # raw values not yet filling a bucket
        self._pending_step = 0

    def extend(self, first_step: int, values: np.ndarray) -> None:
        """Append values for consecutive steps first_step, first_step + 1, ..."""
        values = np.asarray(values, dtype=np.float64).ravel()
        if len(values) == 0:
            return
        if len(self._pending) == 0:
            self._pending_step = first_step
        values = np.concatenate([self._pending, values])
        n_full = len(values) // self.stride
        if n_full:
            full = values[: n_full * self.stride].reshape(n_full, self.stride)
            start = self._pending_step
            self._append(
                start + self.stride * np.arange(n_full),
                full.sum(1),
                full.min(1),
                full.max(1),
                np.full(n_full, self.stride),
            )
            self._pending_step = start + n_full * self.stride
        self._pending = values[n_full * self.stride :]
        while len(self._step) > self.capacity:
            self._merge_pairs()

    def _append(self, step, total, low, high, count) -> None:
        self._step = np.concatenate([self._step, step])
        self._sum = np.concatenate([self._sum, total])
        self._low = np.concatenate([self._low, low])
        self._high = np.concatenate([self._high, high])
        self._count = np.concatenate([self._count, count])

    def _merge_pairs(self) -> None:
        n = len(self._step) // 2 * 2
        tail = slice(n, None)  # an odd last bucket stays as it is
        self._step = np.concatenate([self._step[:n:2], self._step[tail]])
        self._sum = np.concatenate([self._sum[:n].reshape(-1, 2).sum(1), self._sum[tail]])
        self._low = np.concatenate([self._low[:n].reshape(-1, 2).min(1), self._low[tail]])
        self._high = np.concatenate([self._high[:n].reshape(-1, 2).max(1), self._high[tail]])
        self._count = np.concatenate([self._count[:n].reshape(-1, 2).sum(1), self._count[tail]])
        self.stride *= 2

    def view(self) -> SeriesView:
        """A copy including the partly filled last bucket."""
        step, total, low, high, count = self._step, self._sum, self._low, self._high, self._count
        if len(self._pending):
            p = self._pending
            step = np.append(step, self._pending_step)
            total = np.append(total, p.sum())
            low = np.append(low, p.min())
            high = np.append(high, p.max())
            count = np.append(count, len(p))
        return SeriesView(step.copy(), total / np.maximum(count, 1), low.copy(), high.copy(), count.copy())

    @property
    def total_points(self) -> int:
        return int(self._count.sum()) + len(self._pending)

    # ------------------------------------------------------------------ persistence (resume checkpoints)
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Arrays and numbers from which `from_state` rebuilds this series exactly (buckets, stride, pending)."""
        arrays = {
            "step": self._step,
            "sum": self._sum,
            "low": self._low,
            "high": self._high,
            "count": self._count,
            "pending": self._pending,
        }
        return arrays, {"capacity": self.capacity, "stride": self.stride, "pending_step": self._pending_step}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], numbers: dict[str, int]) -> DecimatedSeries:
        series = cls(int(numbers["capacity"]))
        series.stride = int(numbers["stride"])
        series._pending_step = int(numbers["pending_step"])
        series._step = np.asarray(arrays["step"], dtype=np.int64)
        series._sum = np.asarray(arrays["sum"], dtype=np.float64)
        series._low = np.asarray(arrays["low"], dtype=np.float64)
        series._high = np.asarray(arrays["high"], dtype=np.float64)
        series._count = np.asarray(arrays["count"], dtype=np.int64)
        series._pending = np.asarray(arrays["pending"], dtype=np.float64)
        n = len(series._step)
        if not (len(series._sum) == len(series._low) == len(series._high) == len(series._count) == n):
            raise ValueError("a loss history's arrays differ in length")
        return series
