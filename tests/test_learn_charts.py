"""Issue 17, charts that survive a bad run: the all-runs overlay, the lr schedule (pure figure functions)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from dashboard import charts
from mlp_core.config import TrainConfig


def summary(label: str, dev: list[float], steps: int, seconds: float = 10.0, status: str = "finished"):
    evals = tuple((round(steps * (i + 1) / len(dev)), v, v) for i, v in enumerate(dev))
    return SimpleNamespace(
        label=label,
        config=TrainConfig(steps=steps, device="cpu"),
        dataset="lecture names.txt",
        evals=evals,
        steps=steps,
        seconds=seconds,
        status=status,
    )


def test_one_diverged_run_does_not_flatten_the_sensible_ones():
    runs = [
        summary("#1", [2.7, 2.3, 2.1, 1.95], 200_000, 60),
        summary("#2", [2.6, 2.4, 2.2], 700, 0.5),
        summary("#3", [150.0, 700.0, 118.55], 5000, 5, status="diverged"),
    ]
    fig = charts.runs_overlay_figure(runs)
    lo, hi = fig.layout.yaxis.range
    assert 10**hi < 4.2 and 10**lo < 1.95  # 1.95-2.7 gets the height, not 2-700
    clipped = [t for t in fig.data if "off the chart" in t.name]
    assert len(clipped) == 1 and clipped[0].marker.symbol == "triangle-up" and "700" in clipped[0].name
    assert max(clipped[0].customdata) == 700.0  # the true value, on hover
    assert "(diverged)" in next(t.name for t in fig.data if t.name.startswith("#3"))
    # A 700-step run beside a 200k one: a log step axis, not a sliver.
    assert fig.layout.xaxis.type == "log"


def test_overlay_selects_runs_names_them_and_plots_wall_time():
    runs = [summary("#1", [2.5, 2.2], 1000, 20.0), summary("#2", [2.6, 2.3], 1000, 5.0)]
    fig = charts.runs_overlay_figure(runs, selected=["#2"], names={"#2": "my adamw try"})
    assert [t.name for t in fig.data] == ["my adamw try"]
    timed = charts.runs_overlay_figure(runs, x="time")
    assert list(timed.data[0].x) == [10.0, 20.0] and list(timed.data[1].x) == [2.5, 5.0]
    assert "seconds" in timed.layout.xaxis.title.text


def test_lr_schedule_has_its_jumps_and_marks_now():
    config = TrainConfig(steps=1000, lr=0.1, decay_at=0.5, device="cpu")
    fig = charts.lr_schedule_figure(config, 700)
    x, y = list(fig.data[0].x), list(fig.data[0].y)
    assert 499 in x and 500 in x and y[x.index(499)] == 0.1 and math.isclose(y[x.index(500)], 0.01)
    assert "step 700" in fig.data[1].name and math.isclose(fig.data[1].y[0], 0.01)


def curve_with_wide_band():
    """A run at 2.1-2.5 whose single minibatches reach 1.25 and 4, ending in a partial bucket of one noisy step."""
    rng = np.random.default_rng(0)
    n = 400
    step = np.arange(n) * 10
    mean = np.linspace(2.5, 2.1, n) + rng.normal(0, 0.01, n)
    low, high = mean - 0.3, mean + 0.3
    low[50], high[60] = 1.25, 4.0
    count = np.full(n, 10.0)
    mean[-1], count[-1] = 2.9, 1.0  # the last, partial bucket: one unlucky minibatch
    return charts.train_curve(step, mean, low, high, count, smoothing=0.05)


def test_the_train_chart_gives_its_height_to_the_losses_not_the_band():
    curve = curve_with_wide_band()
    fig = charts.train_figure(curve, [("bigram 2.45", 2.45)])
    lo, hi = (10**v for v in fig.layout.yaxis.range)
    assert lo > 1.9 and hi < 2.8  # was 1.2-4.2: the 2.1-2.5 that matters got ~15% of the height
    share = (math.log10(2.5) - math.log10(2.1)) / (math.log10(hi) - math.log10(lo))
    assert share > 0.5  # was ~0.15


def test_the_smoothed_curve_does_not_jump_at_the_last_step():
    curve = curve_with_wide_band()
    assert abs(curve.smoothed[-1] - curve.smoothed[-2]) < 0.02  # the one-step last bucket is weighed as one step


def test_the_lr_sweep_chart_keeps_the_blow_up_it_describes_on_the_chart():
    # AdamW on the lecture's range: the loss has already fallen in the first steps (start ≈ 2.6, lowest 2.2 at
    # 10^-2.62), then climbs to ~19: a top at 2.85 hid the whole blow-up.
    exps = np.linspace(-3, 0, 1000)
    losses = 2.2 + 0.4 * ((exps + 2.62) / 0.4) ** 2
    losses = np.where(exps < -2.62, 2.2 + 0.4 * (exps + 2.62) ** 2 / 0.15, losses)
    fig = charts.lr_sweep_figure(exps, losses, losses, -2.62)
    lo, hi = fig.layout.yaxis.range
    assert lo <= 2.2 and hi >= 2.2 * 1.3  # room above the valley for the curve to turn up
    on_chart = exps[(losses > 2.2 * 1.1) & (losses < hi) & (exps > -2.62)]
    assert len(on_chart) > 20  # the climb is drawn, then leaves through the top
    assert any("blow-up off the top" in a.text and f"{losses.max():.3g}" in a.text for a in fig.layout.annotations)
    # A sweep whose loss stays on the chart says nothing of a blow-up.
    calm = charts.lr_sweep_figure(exps, 3 - 0.1 * exps, None)
    assert not any("blow-up" in (a.text or "") for a in calm.layout.annotations)


def test_the_lr_sweep_range_follows_the_optimizer():
    from mlp_core.lr_sweep import at_left_edge, default_range

    assert default_range("sgd") == (-3.0, 0.0)  # the lecture's
    lo, hi = default_range("adamw")
    assert lo <= -2.62 - 1 and hi >= -2.62 + 1  # AdamW's valley (10^-2.62) well inside, not at the left edge
    assert at_left_edge(np.linspace(-3, 0, 1000), -2.9) and not at_left_edge(np.linspace(lo, hi, 1000), -2.62)


def test_train_vs_dev_gives_the_height_to_the_gap_now_not_the_first_evaluations():
    # The lecture run: 3.3 and 2.6 at the first evaluations, then train ~2.12 and dev ~2.17.
    train = [3.3, 2.6, 2.35, 2.25, 2.2, 2.16, 2.14, 2.12]
    dev = [3.3, 2.62, 2.38, 2.29, 2.24, 2.2, 2.18, 2.17]
    evals = [
        SimpleNamespace(step=1000 * i, train_loss=t, dev_loss=d)
        for i, (t, d) in enumerate(zip(train, dev, strict=True))
    ]
    fig = charts.train_dev_figure(evals)
    lo, hi = fig.layout.yaxis.range
    assert lo <= 2.12 and hi < 2.6  # a 2-4 axis made the last gap (0.05 nats) a sliver
    assert (dev[-1] - train[-1]) / (hi - lo) > 0.08  # the gap now has a visible share of the height
    assert any("run off the top" in a.text and "3.3" in a.text for a in fig.layout.annotations)
    # A curve that fits its range is left to autoscale.
    flat = [SimpleNamespace(step=i, train_loss=2.2 - 0.01 * i, dev_loss=2.25 - 0.01 * i) for i in range(6)]
    assert charts.train_dev_figure(flat).layout.yaxis.range is None
