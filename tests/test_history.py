"""DecimatedSeries: bounded size, exact count-weighted means, min/max kept through every merge."""

import numpy as np
import pytest

from mlp_core.history import DecimatedSeries


def _fill(series: DecimatedSeries, values: np.ndarray, rng: np.random.Generator, first_step: int = 0) -> None:
    """Feed values in random-sized chunks, as a trainer does."""
    i = 0
    while i < len(values):
        n = int(rng.integers(1, 5000))
        series.extend(first_step + i, values[i : i + n])
        i += n


def _check_against_raw(series: DecimatedSeries, raw: np.ndarray, first_step: int = 0) -> None:
    v = series.view()
    assert v.count.sum() == len(raw) == series.total_points
    assert v.step[0] == first_step
    # Buckets tile the steps: each starts where the previous one ended.
    assert np.array_equal(v.step[1:], v.step[:-1] + v.count[:-1])
    assert np.all(np.diff(v.step) > 0)
    for s, c, mean, low, high in zip(v.step, v.count, v.mean, v.low, v.high, strict=True):
        chunk = raw[s - first_step : s - first_step + c]
        assert mean == pytest.approx(chunk.mean(), rel=1e-9, abs=1e-12)
        assert low == chunk.min() and high == chunk.max()


def test_capacity_bound_over_a_million_points():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=1_000_000)
    series = DecimatedSeries(capacity=500)
    i = 0
    while i < len(raw):
        n = int(rng.integers(1, 20_000))
        series.extend(i, raw[i : i + n])
        i += n
        # Full buckets never exceed capacity; view() may add the one partly filled bucket.
        assert len(series.view()) <= series.capacity + 1
    assert len(series.view()) > series.capacity // 4  # still detailed, not collapsed
    _check_against_raw(series, raw)


def test_means_are_count_weighted_over_every_merged_bucket():
    rng = np.random.default_rng(1)
    raw = np.cumsum(rng.normal(size=123_457))  # a trend, so a biased merge would show
    series = DecimatedSeries(capacity=64)
    _fill(series, raw, rng, first_step=10)
    _check_against_raw(series, raw, first_step=10)
    v = series.view()
    assert (v.mean * v.count).sum() == pytest.approx(raw.sum(), rel=1e-9)


def test_a_single_spike_stays_visible():
    raw = np.full(1_000_000, 2.0)
    raw[900_000] = 1e6
    raw[123_456] = -5.0
    series = DecimatedSeries(capacity=100)
    _fill(series, raw, np.random.default_rng(2))
    v = series.view()
    bucket = np.searchsorted(v.step, 900_000, side="right") - 1
    assert v.high[bucket] == 1e6 and v.high.max() == 1e6
    assert v.low.min() == -5.0
    assert np.sum(v.high == 1e6) == 1


def test_partial_bucket_is_included_in_view():
    series = DecimatedSeries(capacity=4)
    raw = np.arange(11, dtype=float)
    for i, x in enumerate(raw):
        series.extend(i, [x])
    assert series.stride > 1  # merged at least once, so some points sit in a partial bucket
    v = series.view()
    assert v.count.sum() == 11 and v.high[-1] == 10.0
    _check_against_raw(series, raw)
    # view() does not consume the partial bucket: more points keep accumulating into it.
    series.extend(11, [11.0])
    _check_against_raw(series, np.arange(12, dtype=float))


def test_view_is_an_independent_copy():
    series = DecimatedSeries(capacity=8)
    series.extend(0, np.ones(5))
    v = series.view()
    before = v.mean.copy()
    series.extend(5, np.full(100, 7.0))
    assert np.array_equal(v.mean, before)
    assert len(v) == 5


def test_empty_and_bad_capacity():
    series = DecimatedSeries()
    series.extend(0, [])
    assert len(series.view()) == 0 and series.total_points == 0
    with pytest.raises(ValueError, match="capacity"):
        DecimatedSeries(capacity=1)
