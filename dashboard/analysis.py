"""Numerical helpers behind the charts: downsampling, smoothing, PCA, nearest neighbours. Pure numpy."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def downsample_buckets(
    step: np.ndarray,
    mean: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    count: np.ndarray,
    max_points: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge consecutive buckets into at most max_points groups: count-weighted mean, min of mins, max of maxes.

    A spike survives in the band however long the run, and the mean is exactly the mean of the steps.
    """
    n = len(step)
    if n <= max_points:
        return step, mean, low, high, count
    group = math.ceil(n / max_points)
    starts = np.arange(0, n, group)
    count = np.asarray(count, dtype=np.float64)
    total = np.add.reduceat(np.asarray(mean) * count, starts)
    counts = np.add.reduceat(count, starts)
    return (
        np.asarray(step)[starts],
        total / np.maximum(counts, 1),
        np.minimum.reduceat(np.asarray(low), starts),
        np.maximum.reduceat(np.asarray(high), starts),
        counts,
    )


def centred_average(values: np.ndarray, weights: np.ndarray, window: int) -> np.ndarray:
    """Weighted centred moving average that skips non-finite values.

    Near the start the window shrinks symmetrically (the first point is itself, the second averages three,
    ...); near the end it keeps its points behind (the last point is not one bucket alone). So there is no
    start-up bias (nothing starts from 0, unlike a plain EMA), no lag, and a steep
    early descent is not flattened by the points after it.
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    n = len(values)
    ok = np.isfinite(values)
    w = np.where(ok, weights, 0.0)
    # Prefix sums give every window's sum in O(n), whatever its width.
    num = np.concatenate([[0.0], np.cumsum(np.where(ok, values, 0.0) * w)])
    den = np.concatenate([[0.0], np.cumsum(w)])
    i = np.arange(n)
    full = max(0, window // 2)
    # The start shrinks symmetrically (a steep first descent is not flattened by what follows); the end keeps its
    # full window behind it: a symmetric shrink made the last point one (often partial, few-step) bucket alone,
    # and the smoothed curve jumped at the last step.
    half = np.minimum(full, i)
    lo, hi = i - half, np.minimum(i + half + 1, n)
    total, weight = num[hi] - num[lo], den[hi] - den[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / weight, np.nan)


def display_char(ch: str) -> str:
    """How a character is shown in a chart: a space as '␣', anything else as itself."""
    return "␣" if ch == " " else ch


def display_chars(chars: Sequence[str], limit: int = 30) -> str:
    """Characters for a sentence, space-separated; past `limit` (a CJK alphabet), the count of the rest."""
    shown = " ".join(display_char(c) for c in chars[:limit])
    return shown + (f" and {len(chars) - limit:,} more" if len(chars) > limit else "")


# Base letters of vowels, lower case: Latin (with æ, ø, œ, which do not decompose), Greek and Cyrillic.
VOWEL_BASES = frozenset("aeiouæøœ" + "αεηιουω" + "аеиоуыэюяё")


def is_vowel(ch: str) -> bool:
    """A vowel, accents and case aside: 'é', 'Ö', 'å' count (NFD splits off the accent; the base letter decides)."""
    if len(ch) != 1 or ch in "йЙ":  # и with a breve is the consonant й
        return False
    base = unicodedata.normalize("NFD", ch)[0].lower()
    return base in VOWEL_BASES or ch.lower() in VOWEL_BASES


# ---------------------------------------------------------------------- embeddings
@dataclass(frozen=True)
class PCABasis:
    """A 2-D projection fitted once (on the latest snapshot) and reused for every snapshot, so a replay is stable."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (2, D)
    explained: np.ndarray  # (2,) share of the fitted snapshot's variance along each component

    def project(self, weights: np.ndarray) -> np.ndarray:
        return (np.asarray(weights, dtype=np.float64) - self.mean) @ self.components.T

    def explained_of(self, weights: np.ndarray) -> np.ndarray:
        """(2,) share of this snapshot's own variance along each component of the basis.

        The basis is the latest snapshot's, so `explained` describes only that one: at the init, the same
        directions hold far less of the (still random) variance, and the axis titles must say so.
        """
        x = np.asarray(weights, dtype=np.float64)
        x = x - x.mean(0)
        total = float((x**2).sum())
        return ((x @ self.components.T) ** 2).sum(0) / total if total > 0 else np.zeros(2)


def pca_basis(weights: np.ndarray) -> PCABasis:
    """The top two principal directions of the rows of weights (vocab, D); padded with zeros if D < 2."""
    x = np.asarray(weights, dtype=np.float64)
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s**2
    total = var.sum()
    comps = np.zeros((2, x.shape[1]))
    k = min(2, len(vt))
    comps[:k] = vt[:k]
    # SVD's signs are arbitrary: make each component's largest entry positive so the picture is reproducible.
    for i in range(k):
        if comps[i, np.argmax(np.abs(comps[i]))] < 0:
            comps[i] *= -1
    explained = np.zeros(2)
    if total > 0:
        explained[:k] = var[:k] / total
    return PCABasis(mean, comps, explained)


def axis_ranges(point_sets: Sequence[np.ndarray], pad: float = 0.08) -> tuple[list[float], list[float]]:
    """Fixed x and y ranges that contain every point of every set (so a replay does not rescale)."""
    pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in point_sets])
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts) == 0:
        return [-1.0, 1.0], [-1.0, 1.0]
    lo, hi = pts.min(0), pts.max(0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad * span, hi + pad * span
    return [float(lo[0]), float(hi[0])], [float(lo[1]), float(hi[1])]


def crowd_ranges(points: np.ndarray, spread: float = 3.0) -> tuple[list[float], list[float]]:
    """Axis ranges around the dense part of a snapshot: the points within `spread` median absolute deviations
    of the median on both axes (the lecture's blob of letters, without '.', q and the other loners)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts) == 0:
        return axis_ranges([pts])
    median = np.median(pts, 0)
    mad = np.median(np.abs(pts - median), 0)
    near = (np.abs(pts - median) <= spread * np.maximum(mad, 1e-9)).all(1)
    return axis_ranges([pts[near] if near.sum() >= 2 else pts], pad=0.12)


def nearest_neighbours(weights: np.ndarray, labels: Sequence[str], char: str, k: int = 5) -> list[tuple[str, float]]:
    """The k characters whose embeddings point most nearly the same way as char's (cosine similarity)."""
    x = np.asarray(weights, dtype=np.float64)
    i = list(labels).index(char)
    norms = np.linalg.norm(x, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sims = (x @ x[i]) / (norms * norms[i])
    sims = np.nan_to_num(sims, nan=0.0)
    order = [j for j in np.argsort(-sims, kind="stable") if j != i][:k]
    return [(labels[j], float(sims[j])) for j in order]
