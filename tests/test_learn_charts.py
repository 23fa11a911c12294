"""Issue 17, charts that survive a bad run: the all-runs overlay, the lr schedule (pure figure functions)."""

from __future__ import annotations

import math
from types import SimpleNamespace

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
