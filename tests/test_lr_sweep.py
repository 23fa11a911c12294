"""The lecture's learning-rate range test: one step per lr, lr = 10 ** linspace(-3, 0, 1000)."""

import numpy as np
import pytest

from mlp_core.lr_sweep import lr_range_test, smooth, suggest_exponent


@pytest.fixture(scope="module")
def sweep(tiny_dataset):
    from mlp_core.config import TrainConfig

    calls: list[int] = []
    result = lr_range_test(
        TrainConfig(hidden=16, device="cpu"), tiny_dataset, progress=lambda done, total, _: calls.append(done)
    )
    return result, calls


def test_a_thousand_rows_on_the_lectures_exponents(sweep):
    result, calls = sweep
    assert np.array_equal(result.exponents, np.linspace(-3, 0, 1000))
    rows = result.rows()
    assert len(rows) == 1000
    assert rows[0][0] == -3.0 and rows[-1][0] == 0.0
    assert [r[1] for r in rows] == result.losses.tolist()
    assert np.isfinite(result.losses).all()
    assert calls == sorted(calls) and calls[-1] == 1000


def test_suggestion_is_in_range_at_the_smoothed_minimum(sweep):
    result, _ = sweep
    assert -3.0 <= result.suggested_exponent <= 0.0
    assert result.suggested_lr == pytest.approx(10**result.suggested_exponent)
    usable = result.smoothed[:950]  # the last 5% is ignored: that is where the loss may explode
    i = int(np.nanargmin(usable))
    assert result.suggested_exponent == result.exponents[i]
    assert result.smoothed[i] == np.nanmin(usable)
    assert "moving average" in result.rule
    # The loss fell: the valley is well below where the sweep started.
    assert result.smoothed[i] < result.smoothed[0] - 0.2


def test_smoothing_skips_nan_and_shrinks_at_the_edges():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    np.testing.assert_allclose(smooth(x, 3), [1.5, 1.5, 3.0, 4.5, 4.5])
    assert np.isnan(smooth(np.full(4, np.nan), 3)).all()
    assert np.array_equal(smooth(np.array([1.0, np.inf, 3.0]), 1), np.array([1.0, np.nan, 3.0]), equal_nan=True)
    ramp = np.arange(100.0)
    np.testing.assert_allclose(smooth(ramp, 5)[2:-2], ramp[2:-2])  # centred: no lag on a straight line


def test_suggestion_ignores_a_nan_tail_and_handles_all_nan():
    exponents = np.linspace(-3, 0, 200)
    losses = (exponents + 1.0) ** 2 + 2.0  # valley bottom at exponent -1
    losses[150:] = np.nan
    smoothed, best = suggest_exponent(exponents, losses)
    assert best == pytest.approx(-1.0, abs=0.05)
    assert np.isfinite(smoothed[:150]).all()
    _, fallback = suggest_exponent(exponents, np.full(200, np.nan))
    assert fallback == -3.0


def test_diverging_tail_stops_early_with_nans(tiny_dataset):
    from mlp_core.config import TrainConfig

    # sgd's L2 term multiplies the weights by (1 - lr * wd) each step: past lr = 0.2 that is an
    # exponential blow-up, so the sweep up to lr = 100 must overflow and stop.
    config = TrainConfig(hidden=16, init="scaled", weight_decay=10.0, device="cpu")
    calls: list[int] = []
    result = lr_range_test(config, tiny_dataset, end=2.0, num=1000, progress=lambda d, t, _: calls.append(d))
    finite = np.isfinite(result.losses)
    first_bad = int(np.argmin(finite))
    assert 0 < first_bad < 1000 and not finite[first_bad:].any()
    assert calls[-1] < 1000  # stopped early: no step was spent past the blow-up chunk
    assert calls[-1] - first_bad <= 20  # one chunk (num // 50) at most
    assert result.exponents[first_bad] > np.log10(0.2)
    assert result.suggested_exponent < result.exponents[first_bad]


def test_bad_range_is_refused(tiny_dataset):
    from mlp_core.config import TrainConfig

    with pytest.raises(ValueError, match="num >= 2"):
        lr_range_test(TrainConfig(hidden=8), tiny_dataset, num=1)
    with pytest.raises(ValueError, match="start < end"):
        lr_range_test(TrainConfig(hidden=8), tiny_dataset, start=0.0, end=-1.0)
