"""The dashboard's pure chart and analysis functions: right numbers in, readable figures out."""

import math
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest

from dashboard import analysis, charts
from mlp_core.baselines import Baselines
from mlp_core.config import TrainConfig
from mlp_core.history import DecimatedSeries

LECTURE = Baselines(uniform_loss=math.log(27), bigram_dev_loss=2.45, lecture_dev_loss=2.17)
OTHER_DATA = Baselines(uniform_loss=math.log(53), bigram_dev_loss=2.9, lecture_dev_loss=None)


def _history(losses: np.ndarray, capacity: int = 4096):
    series = DecimatedSeries(capacity)
    for start in range(0, len(losses), 997):  # odd chunks, as a training job appends them
        series.extend(start, losses[start : start + 997])
    return series.view()


def test_downsample_keeps_mean_min_max_and_caps_points():
    rng = np.random.default_rng(0)
    losses = 3 + rng.random(200_000)
    losses[123_457] = 50.0  # one spike deep inside a long run
    view = _history(losses)
    step, mean, low, high, count = analysis.downsample_buckets(
        view.step, view.mean, view.low, view.high, view.count, 800
    )
    assert len(step) <= 800
    assert count.sum() == 200_000
    assert high.max() == 50.0 and low.min() == losses.min()
    # Count-weighted means: the overall mean is exactly the mean of every step.
    assert np.average(mean, weights=count) == pytest.approx(losses.mean(), rel=1e-12)
    assert np.all(np.diff(step) > 0)


def test_centred_average_has_no_startup_bias_or_lag():
    values = np.full(50, 2.0)
    assert np.allclose(analysis.centred_average(values, np.ones(50), 9), 2.0)  # an EMA from 0 would start near 0
    ramp = np.arange(100, dtype=float)
    smoothed = analysis.centred_average(ramp, np.ones(100), 11)
    assert np.allclose(smoothed[10:-10], ramp[10:-10])  # a centred window follows a straight line exactly
    weights = np.array([1.0, 3.0, 1.0])
    assert analysis.centred_average(np.array([0.0, 4.0, 0.0]), weights, 3)[1] == pytest.approx(12 / 5)


def test_centred_average_skips_nan_and_shrinks_symmetrically_at_the_start():
    out = analysis.centred_average(np.array([1.0, np.nan, 3.0]), np.ones(3), 3)
    assert out[1] == pytest.approx(2.0)
    steep = np.array([100.0, 50.0, 10.0, 5.0, 4.0, 3.0, 2.0])
    out = analysis.centred_average(steep, np.ones(7), 5)
    assert out[0] == 100.0 and out[1] == pytest.approx(160 / 3)
    assert out[-1] == pytest.approx(3.0)  # the end keeps its window behind it (issue 17: no jump at the last step)


def test_train_chart_from_long_history():
    rng = np.random.default_rng(1)
    steps = 200_000
    losses = 2.2 + 20 * np.exp(-np.arange(steps) / 2000) + 0.2 * rng.random(steps)
    view = _history(losses)
    evals = [SimpleNamespace(step=s, dev_loss=2.3 - s * 1e-7, train_loss=2.25) for s in range(1000, steps + 1, 1000)]
    refs = charts.reference_losses(LECTURE)
    fig = charts.train_chart(view, evals, best_step=200_000, best_dev=2.28, max_points=800, references=refs)
    names = [t.name for t in fig.data]
    # The band is two edges (the lower one filled up to the upper), then the curves.
    assert names[:4] == [
        "minibatch loss: max",
        "minibatch loss: min–max",
        "minibatch loss: mean",
        "minibatch loss: smoothed",
    ]
    assert "dev loss (whole split)" in names and any(n.startswith("best dev 2.2800") for n in names)
    assert all(len(t.y) <= 800 for t in fig.data)
    assert fig.layout.yaxis.type == "log"
    assert "step" in fig.layout.xaxis.title.text and "loss" in fig.layout.yaxis.title.text
    labels = [a.text for a in fig.layout.annotations]
    assert any("uniform guessing 3.30" in t for t in labels) and any("2.45" in t for t in labels)
    assert any("2.17" in t for t in labels)
    lo, hi = fig.layout.yaxis.range
    assert 10**lo <= 2.17 and 10**hi >= losses.max()  # the data and every reference line are in view
    smoothed = fig.data[3].y
    assert np.isfinite(smoothed).all()
    assert smoothed[0] == pytest.approx(fig.data[2].y[0])  # the first point is itself: not pulled towards 0


def test_train_chart_empty_and_single_point():
    empty = DecimatedSeries().view()
    fig = charts.train_chart(empty, references=charts.reference_losses(LECTURE))
    assert len(fig.data) == 0 and len(fig.layout.annotations) == 3
    series = DecimatedSeries()
    series.extend(0, np.array([3.3]))
    fig = charts.train_chart(series.view(), smoothing=0.5)
    assert fig.data[3].y[0] == pytest.approx(3.3)


def test_reference_losses_follow_the_data_and_the_lecture_line_only_on_the_lecture_data():
    (label, value), (bigram_label, bigram), *rest = charts.reference_losses(OTHER_DATA)
    assert value == pytest.approx(math.log(53)) and "3.97" in label
    assert bigram == 2.9 and "2.90" in bigram_label
    assert rest == []  # no 2.17 (nor 2.45) on other data
    assert [v for _, v in charts.reference_losses(LECTURE)] == [pytest.approx(math.log(27)), 2.45, 2.17]


def _lecture_init_curve(steps: int = 20_000) -> charts.TrainCurve:
    rng = np.random.default_rng(2)
    losses = 2.2 + 20 * np.exp(-np.arange(steps) / 300) + 0.2 * rng.random(steps)
    view = _history(losses)
    return charts.train_curve(view.step, view.mean, view.low, view.high, view.count, smoothing=0.02)


def test_the_init_spike_does_not_squeeze_the_interesting_range():
    curve = _lecture_init_curve()
    refs = charts.reference_losses(LECTURE)
    full = charts.train_figure(curve, refs)
    view = charts.train_figure(curve, refs, skip_spike=True, uniform=LECTURE.uniform_loss)
    share = lambda fig: math.log10(2.6 / 2.0) / np.diff(fig.layout.yaxis.range)[0]  # noqa: E731
    assert 10 ** full.layout.yaxis.range[1] > 20  # the whole spike when asked for
    assert share(view) > 2 * share(full) and share(view) > 0.25  # 2.0-2.6 gets a real share of the height
    assert view.layout.xaxis.range[0] > 0  # the view starts after the spike...
    assert len(view.data[0].y) == len(full.data[0].y)  # ...and the data is all still there (zoom out)
    flat = charts.train_curve(*(np.array(a) for a in ([0, 100], [3.3, 3.0], [3.2, 2.9], [3.4, 3.1], [1, 1])))
    assert charts.spike_end(flat, LECTURE.uniform_loss) is None  # a scaled init has no spike: nothing skipped


@pytest.mark.parametrize("low, high", [(0.8, 3.3), (2.05, 2.6), (1.9, 1000.0), (2.0, 26.0), (0.01, 0.05)])
def test_loss_ticks_cover_the_plotted_range_and_never_overlap(low, high):
    lo, hi = math.log10(low), math.log10(high)
    ticks = np.log10(charts.log_ticks(lo, hi))
    assert len(ticks) >= 2 and (lo <= ticks).all() and (ticks <= hi).all()
    span = hi - lo
    assert ticks[0] - lo <= 0.3 * span and hi - ticks[-1] <= 0.3 * span  # no big stretch without a label
    assert np.diff(ticks).min() >= span * charts.LABEL_PX / charts.PLOT_PX  # no two labels on top of each other


def test_a_loss_far_below_or_above_the_usual_range_still_gets_ticks_around_it():
    for losses in (np.full(500, 0.8), np.full(500, 900.0)):
        view = _history(losses)
        fig = charts.train_chart(view, references=charts.reference_losses(LECTURE))
        lo, hi = fig.layout.yaxis.range
        ticks = np.log10(fig.layout.yaxis.tickvals)
        near = math.log10(losses[0])
        assert lo <= near <= hi and np.abs(ticks - near).min() <= 0.3 * (hi - lo)


def test_reference_labels_do_not_overlap_over_a_wide_range():
    curve = _lecture_init_curve()
    fig = charts.train_figure(curve, charts.reference_losses(LECTURE))  # 2 to 22: 2.17 and 2.45 nearly touch
    ys = sorted(a.y for a in fig.layout.annotations)
    span = np.diff(fig.layout.yaxis.range)[0]
    assert len(ys) == 3 and np.diff(ys).min() >= span * charts.LABEL_PX / charts.PLOT_PX - 1e-12


def test_pca_basis_is_stable_and_explains_variance():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(27, 10)) * np.array([5, 2] + [0.1] * 8)
    basis = analysis.pca_basis(w)
    assert basis.explained[0] > basis.explained[1] > 0 and basis.explained.sum() <= 1
    p = basis.project(w)
    assert p.shape == (27, 2)
    assert np.allclose(p.mean(0), 0, atol=1e-9)
    assert basis.components[0, np.argmax(np.abs(basis.components[0]))] > 0  # sign fixed
    assert np.allclose(analysis.pca_basis(w).components, basis.components)
    one_d = analysis.pca_basis(rng.normal(size=(5, 1)))
    assert one_d.project(np.ones((5, 1))).shape == (5, 2)


def test_axis_ranges_cover_every_snapshot():
    a, b = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[-2.0, 5.0]])
    xr, yr = analysis.axis_ranges([a, b])
    assert xr[0] < -2 and xr[1] > 1 and yr[0] < 0 and yr[1] > 5


def test_nearest_neighbours_by_cosine():
    labels = [".", "a", "b", "c"]
    w = np.array([[-1.0, 0.0], [1.0, 0.0], [10.0, 1.0], [0.0, 1.0]])
    nn = analysis.nearest_neighbours(w, labels, "a", k=2)
    assert [c for c, _ in nn] == ["b", "c"]
    assert nn[0][1] == pytest.approx(10 / math.sqrt(101))


def test_lr_sweep_with_adamw_shows_the_valley_not_a_flat_line_under_the_spike():
    exps = np.linspace(-4, 0, 1000)
    valley = 3.3 - 0.8 * np.exp(-(((exps + 2.5) / 0.5) ** 2))  # 3.3 down to 2.5 and back
    losses = np.where(exps > -1.6, 40.0, valley)  # adamw explodes for the top 40% of the lrs
    lo, hi = charts.lr_sweep_figure(exps, losses, losses).layout.yaxis.range
    assert lo <= 2.5 and hi < 4.0  # the valley fills the height; the explosion runs off the top


def test_lr_sweep_figure_marks_the_suggestion_and_clips_the_blow_up():
    exps = np.linspace(-3, 0, 1000)
    losses = 3 + (exps + 1) ** 2
    losses[-20:] = np.inf
    fig = charts.lr_sweep_figure(exps, losses, losses, -1.0)
    assert len(fig.data) == 2 and len(fig.data[0].x) == 1000
    assert any("suggested lr = 0.1" in a.text for a in fig.layout.annotations)
    assert fig.layout.xaxis.title.text == "log10(learning rate)"
    assert np.isfinite(fig.layout.yaxis.range).all()


def test_overlay_and_train_dev_figures():
    ev = [SimpleNamespace(step=s, dev_loss=2.5, train_loss=2.4) for s in (10, 20)]
    assert charts.train_dev_figure(ev).data[0].name.startswith("train")
    cfg = SimpleNamespace(
        block_size=3, emb_dim=10, hidden=200, hidden_layers=1, optimizer="sgd", lr=0.1, batch_size=32, steps=200
    )
    runs = [
        SimpleNamespace(label="#1", config=cfg, dataset="lecture names.txt", evals=((10, 2.5, 2.4), (100, 2.2, 2.1))),
        SimpleNamespace(label="#2", config=cfg, dataset="US names 2017", evals=()),
    ]
    fig = charts.runs_overlay_figure(runs)
    assert len(fig.data) == 1 and fig.data[0].name.startswith("#1") and "lecture names.txt" in fig.data[0].name
    assert fig.layout.yaxis.type == "log" and list(fig.data[0].x) == [10, 100]
    fraction = charts.runs_overlay_figure(runs, x="fraction")
    assert list(fraction.data[0].x) == [0.05, 0.5] and "fraction" in fraction.layout.xaxis.title.text


def test_the_live_figures_are_small_and_valid_plotly():
    """The Train page's figures are resent on every refresh: built from plain dicts (no per-property validation),
    losses as float32, evenly spaced steps as x0/dx, and a trimmed template; plotly must still accept them."""
    rng = np.random.default_rng(3)
    losses = 2.2 + 20 * np.exp(-np.arange(200_000) / 2000) + 0.2 * rng.random(200_000)
    evals = [SimpleNamespace(step=s, dev_loss=2.3, train_loss=2.25) for s in range(1000, 200_001, 1000)]
    fig = charts.train_chart(_history(losses), evals, 200_000, 2.3, references=charts.reference_losses(LECTURE))
    lr = charts.lr_schedule_figure(TrainConfig(), 120_000)
    for f in (fig, lr):
        go.Figure(f.to_dict())  # raises on any key or value plotly would refuse
        assert len(f.to_json()) < 16_000
    curves = [t for t in fig.data if t.name.startswith("minibatch")]
    assert all(t.x is None and t.x0 == 0 and t.dx > 0 for t in curves)
    assert all(np.asarray(t.y).dtype == np.float32 for t in curves)
    dev = next(t for t in fig.data if t.name.startswith("dev loss"))
    assert (dev.x0, dev.dx) == (1000, 1000)


def test_uneven_steps_keep_their_x():
    x = charts._x_axis(np.array([0, 10, 20, 100]))
    assert list(x["x"]) == [0, 10, 20, 100]
    assert charts._x_axis(np.array([0, 64, 128, 176, 240])) == {"x0": 0, "dx": 60.0}  # one merge kink: x0/dx


def test_house_style_figures_keep_plotlys_full_template():
    """Figures drawn through _layout (every chart but the Train page's prebuilt live ones) keep plotly_white
    whole: with the trimmed template, Inside the network's live saturation heatmap drew blank in Chromium."""
    import numpy as np
    import plotly.io as pio

    from dashboard import diagnostics_charts as dc
    from mlp_core.diagnostics import LayerStats

    fields = {f: None for f in LayerStats.__dataclass_fields__}
    layer = LayerStats(**{**fields, "name": "hidden 1", "neurons": 4, "saturation_map": np.eye(4, dtype=bool)})
    fig = dc.saturation_map(layer)
    assert fig.layout.template == pio.templates["plotly_white"]
