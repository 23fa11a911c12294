"""The dashboard's figures: pure functions from data to plotly Figures (no Streamlit): testable and timeable.

Every redraw resends the whole figure to the browser (a chart cannot be appended to), so long
series are downsampled here to at most ~1,000 points per trace, keeping each group's min and max.
Traces stay plain SVG `go.Scatter` on purpose: at this size it is fast, and it avoids WebGL
contexts, of which a browser allows only a handful per page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas  # noqa: F401 (imported whole before any figure: plotly looks it up lazily while building one,
import plotly.graph_objects as go  # and a page's fragment once saw a pandas another thread was still importing)
import plotly.io as pio

from .analysis import centred_average, downsample_buckets

BLUE, ORANGE, GREEN, RED, GREY, PURPLE = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7f7f7f", "#9467bd"
RUN_COLORS = (BLUE, ORANGE, GREEN, RED, PURPLE, "#8c564b", "#e377c2", "#17becf", "#bcbd22", GREY)
FONT_SIZE = 14
HEIGHT = 500
# Points per curve on the Train page: about one per two pixels of a wide chart. Each refresh resends the whole
# figure; at 800 points and float64 it was ~60 KB a second per watching browser (bench/bench_watched.py).
MAX_POINTS = 500


def _lean_template() -> go.layout.Template:
    """plotly_white's look for the 2-D charts drawn here, without what it holds for every other kind of chart.

    The whole template is ~6 KB of JSON in every figure, and setting it deep-copies and validates it: ~2/3 of
    the server's time to build the Train page's figures (cProfile), on every live refresh.
    """
    full = pio.templates["plotly_white"].layout.to_plotly_json()
    keep = ("annotationdefaults", "colorway", "font", "hoverlabel", "hovermode", "paper_bgcolor", "plot_bgcolor")
    layout = {k: full[k] for k in keep if k in full}
    layout |= {k: full[k] for k in ("shapedefaults", "title", "xaxis", "yaxis") if k in full}
    return go.layout.Template(layout=layout)


LEAN_TEMPLATE = _lean_template()
_LEAN_TEMPLATE_DICT = LEAN_TEMPLATE.to_plotly_json()


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = HEIGHT) -> go.Figure:
    """The house style: title, labelled axes, a legend above the plot, readable fonts."""
    fig.update_layout(
        title={"text": title, "font": {"size": FONT_SIZE + 4}},
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=height,
        font={"size": FONT_SIZE},
        # The legend goes under the plot: above it, a long legend wraps into the title.
        margin={"l": 70, "r": 30, "t": 60, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "left", "x": 0, "traceorder": "normal"},
        hovermode="closest",
        showlegend=True,  # even for one trace: the legend names what is plotted
        # The full template here: with LEAN_TEMPLATE, Inside the network's live saturation heatmap drew blank in
        # Chromium (no title, no image). LEAN_TEMPLATE stays for the Train page's prebuilt live figures.
        template="plotly_white",
    )
    return fig


def layout_dict(title: str, x_title: str, y_title: str, height: int = HEIGHT) -> dict:
    """_layout's house style as a plain dict, for figures built by `prebuilt_figure`."""
    return {
        "title": {"text": title, "font": {"size": FONT_SIZE + 4}},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}},
        "height": height,
        "font": {"size": FONT_SIZE},
        "margin": {"l": 70, "r": 30, "t": 60, "b": 40},
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "left", "x": 0, "traceorder": "normal"},
        "hovermode": "closest",
        "showlegend": True,
        "template": _LEAN_TEMPLATE_DICT,
    }


def prebuilt_figure(traces: list[dict], layout: dict) -> go.Figure:
    """A Figure from plain trace and layout dicts, without plotly's per-property validation.

    For the figures redrawn on every live refresh: validating them (the object API, or go.Figure(dict)) cost
    ~20-40 ms of the server's CPU per figure, the plain dicts ~1 ms. Their keys are plotly's own; the tests
    check that they pass plotly's validation (tests/test_charts.py).
    """
    return go.Figure({"data": traces, "layout": layout}, _validate=False)


# ---------------------------------------------------------------------- training curve
@dataclass(frozen=True)
class TrainCurve:
    """Arrays the Train page plots: downsampled minibatch losses (mean, smoothed, min/max) and dev evaluations."""

    step: np.ndarray
    mean: np.ndarray
    smoothed: np.ndarray
    low: np.ndarray
    high: np.ndarray
    dev_step: np.ndarray
    dev_loss: np.ndarray
    best_step: int | None
    best_dev: float


def train_curve(
    step: np.ndarray,
    mean: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    count: np.ndarray,
    evals: Sequence = (),
    best_step: int | None = None,
    best_dev: float = math.nan,
    smoothing: float = 0.02,
    max_points: int = MAX_POINTS,
) -> TrainCurve:
    """Downsample a bucketed loss history and smooth it.

    smoothing is a centred moving-average window as a fraction of the plotted points (0 = none). It
    averages log10(loss), as the lecture plots log10, weighted by how many steps each point holds: no
    start-up bias (nothing starts from 0) and no lag.
    """
    step, mean, low, high, count = downsample_buckets(step, mean, low, high, count, max_points)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mean = np.log10(mean)
    window = round(smoothing * len(step)) | 1 if smoothing > 0 else 1
    smoothed = 10 ** centred_average(log_mean, count, window) if window > 1 else mean
    dev_step = np.array([e.step for e in evals], dtype=np.int64)
    dev_loss = np.array([e.dev_loss for e in evals], dtype=np.float64)
    return TrainCurve(step, mean, smoothed, low, high, dev_step, dev_loss, best_step, best_dev)


# Tick mantissas per decade for a log axis, finest first (see log_ticks for the choice).
TICK_MANTISSAS = (
    tuple(round(1 + 0.1 * i, 1) for i in range(90)),  # 1.0, 1.1, ... 9.9: for a narrow range like 2.05-2.6
    (1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75, 3, 3.5, 4, 5, 6, 7, 8, 9),
    (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8),
    (1, 1.5, 2, 3, 5, 7),
    (1, 2, 5),
    (1, 3),
    (1,),
)
PLOT_PX = 380  # about the plotting area's height in a HEIGHT-pixel figure (title, legend and margins removed)
LABEL_PX = 18  # two tick or reference labels closer than this overlap


def log_ticks(lo: float, hi: float, plot_px: float = PLOT_PX) -> list[float]:
    """Tick values for a log10 axis from lo to hi (in log10 units) that cover the range, labels never overlapping.

    The coarsest set with at least 6 ticks in range (round labels, yet one every few tenths where the
    interesting losses are), else the set with the most ticks.
    """
    span = max(hi - lo, 1e-9)
    min_gap = span * LABEL_PX / plot_px  # in decades
    decades = range(math.floor(lo) - 1, math.ceil(hi) + 1)
    fitting = []
    for mantissas in TICK_MANTISSAS:
        ticks = [round(m * 10.0**d, 12) for d in decades for m in mantissas]
        ticks = [t for t in ticks if lo <= math.log10(t) <= hi]
        if len(ticks) < 2 or np.diff(np.log10(ticks)).min() >= min_gap:
            fitting.append(ticks)
    enough = [t for t in fitting if len(t) >= 6]
    if enough:
        return enough[-1]
    best = max(fitting, key=len, default=[])
    return best if best else [10.0 ** round((lo + hi) / 2)]


def spike_end(curve: TrainCurve, uniform: float) -> int | None:
    """The first plotted step after the init spike: where the smoothed loss is first back under uniform guessing.

    None when there is no spike to skip (the run starts near uniform, or never gets under it).
    """
    if len(curve.step) < 2 or not np.isfinite(curve.smoothed[0]) or curve.smoothed[0] <= 1.2 * uniform:
        return None
    below = np.nonzero(np.asarray(curve.smoothed) <= uniform)[0]
    if len(below) == 0 or below[0] == 0 or below[0] >= len(curve.step) - 1:
        return None
    return int(curve.step[below[0]])


def _x_axis(step: np.ndarray) -> dict:
    """Plotly's x as x0 + i * dx (a few bytes instead of an array per trace) where that puts every point within
    half a spacing of its step, else the steps themselves.

    A loss history's buckets are evenly spaced but for one kink where its last odd bucket was merged (a shift
    of half a bucket, invisible at ~2 px a point); evaluation steps are multiples of eval_every.
    """
    step = np.asarray(step)
    if len(step) > 1:
        x0, dx = int(step[0]), (int(step[-1]) - int(step[0])) / (len(step) - 1)
        if dx > 0 and np.abs(step - (x0 + dx * np.arange(len(step)))).max() <= dx / 2:
            return {"x0": x0, "dx": dx}
    return {"x": step.astype(np.int32) if len(step) and abs(step).max() < 2**31 else step}


def _f32(values: np.ndarray) -> np.ndarray:
    """Losses as float32 on the wire: half of float64's bytes, 7 digits where the chart shows 4."""
    return np.asarray(values, dtype=np.float32)


def train_figure(
    curve: TrainCurve,
    references: Sequence[tuple[str, float]] = (),
    title: str = "Training loss",
    *,
    skip_spike: bool = False,
    uniform: float | None = None,
) -> go.Figure:
    """Minibatch loss (min/max band, mean, smoothed), dev loss, reference lines and the best dev step, log y.

    skip_spike starts the view after the init spike (the lecture init starts near 20): the spike would
    otherwise squeeze the interesting 2.0-2.6 into a sliver. The data stays in the figure (zoom out to see it).
    """
    traces: list[dict] = []
    if len(curve.step):
        x = _x_axis(curve.step)
        band = {"type": "scatter", "mode": "lines", "line": {"width": 0}, "hoverinfo": "skip", "legendgroup": "band"}
        # The band is two edges, the lower one filled up to the upper: each edge can then share the x axis
        # (x0/dx) with the curves instead of carrying a polygon's 2 x N steps.
        traces += [
            {**band, **x, "y": _f32(curve.high), "showlegend": False, "name": "minibatch loss: max"},
            {
                **band,
                **x,
                "y": _f32(curve.low),
                "fill": "tonexty",
                "fillcolor": "rgba(31,119,180,0.15)",
                "name": "minibatch loss: min–max",
            },
            {
                "type": "scatter",
                **x,
                "y": _f32(curve.mean),
                "mode": "lines",
                "line": {"color": "rgba(31,119,180,0.45)", "width": 1},
                "name": "minibatch loss: mean",
                "hovertemplate": "step %{x:,}<br>mean loss %{y:.4f}<extra></extra>",
            },
            {
                "type": "scatter",
                **x,
                "y": _f32(curve.smoothed),
                "mode": "lines",
                "line": {"color": BLUE, "width": 3},
                "name": "minibatch loss: smoothed",
                "hovertemplate": "step %{x:,}<br>smoothed loss %{y:.4f}<extra></extra>",
            },
        ]
    if len(curve.dev_step):
        traces.append(
            {
                "type": "scatter",
                **_x_axis(curve.dev_step),
                "y": _f32(curve.dev_loss),
                "mode": "lines+markers",
                "line": {"color": ORANGE, "width": 2},
                "marker": {"size": 6},
                "name": "dev loss (whole split)",
                "hovertemplate": "step %{x:,}<br>dev loss %{y:.4f}<extra></extra>",
            }
        )
    if curve.best_step is not None and math.isfinite(curve.best_dev):
        # A "best" worse than guessing is no achievement: a grey cross that says so, not the red star.
        failed = uniform is not None and curve.best_dev > uniform
        marker = {"symbol": "star", "size": 18, "color": RED, "line": {"width": 1, "color": "white"}}
        if failed:
            marker = {"symbol": "x", "size": 12, "color": GREY}
        traces.append(
            {
                "type": "scatter",
                "x": [curve.best_step],
                "y": [curve.best_dev],
                "mode": "markers",
                "marker": marker,
                "name": (f"lowest dev {curve.best_dev:.2f}: still worse than guessing" if failed else "")
                or f"best dev {curve.best_dev:.4f} at step {curve.best_step:,}",
                "hovertemplate": "best dev loss %{y:.4f}<br>at step %{x:,}<extra></extra>",
            }
        )
    refs = list(references)
    layout = layout_dict(title, "training step", "loss (nats per character, log scale)")
    layout["margin"]["r"] = 170  # room for the reference lines' labels
    start = spike_end(curve, uniform) if skip_spike and uniform is not None else None
    y_range = _log_range(curve, [v for _, v in refs], from_step=start)
    if start is not None and len(curve.step):
        layout["xaxis"]["range"] = [start, float(curve.step[-1])]
    layout["shapes"], layout["annotations"] = _reference_lines(refs, y_range)
    # Explicit ticks: plotly's own log ticks label 20 as a bare "2" next to the real 2.
    ticks = log_ticks(*y_range)
    layout["yaxis"] |= {"type": "log", "range": y_range, "tickvals": ticks, "ticktext": [f"{v:g}" for v in ticks]}
    return prebuilt_figure(traces, layout)


def reference_losses(baselines) -> list[tuple[str, float]]:
    """(label, loss) lines for a dataset's mlp_core.baselines.Baselines: uniform, bigram, and the lecture's MLP

    (the lecture's 2.17 only where the baselines carry it: the lecture's data and split)."""
    refs = [
        (f"uniform guessing {baselines.uniform_loss:.2f}", baselines.uniform_loss),
        (f"bigram (this data) {baselines.bigram_dev_loss:.2f}", baselines.bigram_dev_loss),
    ]
    if baselines.lecture_dev_loss is not None:
        refs.append((f"MLP dev (lecture) {baselines.lecture_dev_loss:.2f}", baselines.lecture_dev_loss))
    return refs


def _reference_lines(refs: list[tuple[str, float]], y_range: Sequence[float]) -> tuple[list[dict], list[dict]]:
    """(shapes, annotations): a dashed line per reference loss in view, its label in the right margin."""
    # Layout shapes and annotations, not traces: they cost nothing to redraw and stay out of the legend.
    shapes: list[dict] = []
    notes: list[dict] = []
    lo, hi = y_range
    # Labels sit in the right margin at their line's height, pushed apart where lines are close (2.17 / 2.45).
    place = sorted((math.log10(v), label, v) for label, v in refs if v > 0 and lo <= math.log10(v) <= hi)
    ys, gap = [], (hi - lo) * LABEL_PX / PLOT_PX
    for y, _, _ in place:
        ys.append(max(y, ys[-1] + gap) if ys else y)
    for (_, label, value), y in zip(place, ys, strict=True):
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": value,
                "y1": value,
                "line": {"color": GREY, "width": 1, "dash": "dash"},
            }
        )
        notes.append(
            {  # in the right margin, outside the data: the curves end right where these lines are
                "xref": "paper",
                "x": 1.01,
                "xanchor": "left",
                "yref": "y",
                "y": y,
                "yanchor": "middle",
                "align": "left",
                "text": label,
                "showarrow": False,
                "font": {"size": FONT_SIZE - 2, "color": GREY},
            }
        )
    return shapes, notes


def _log_range(curve: TrainCurve, refs: list[float], from_step: int | None = None) -> list[float]:
    """A log10 y range that shows the curves (from from_step on) and the reference lines, ignoring non-finite values."""
    keep = np.asarray(curve.step) >= from_step if from_step is not None else slice(None)
    dev_keep = np.asarray(curve.dev_step) >= from_step if from_step is not None else slice(None)
    # The smoothed losses (the bucket means when not smoothing), not the min-max band: one lucky or unlucky
    # minibatch (1.25, 4) would take the height from the 2.1-2.5 that matters. The band runs off the axis there.
    parts = [np.asarray(curve.smoothed)[keep], np.asarray(curve.dev_loss)[dev_keep]]
    values = np.concatenate([*parts, np.asarray(refs, dtype=np.float64)])
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) == 0:
        return [0.0, 1.0]
    lo, hi = float(values.min()), float(values.max())
    return [math.log10(lo) - 0.03, math.log10(hi) + 0.03]


def train_chart(
    history,
    evals: Sequence = (),
    best_step: int | None = None,
    best_dev: float = math.nan,
    *,
    smoothing: float = 0.02,
    max_points: int = MAX_POINTS,
    references: Sequence[tuple[str, float]] = (),
    title: str = "Training loss",
    skip_spike: bool = False,
    uniform: float | None = None,
) -> go.Figure:
    """The Train page's whole server-side work for one redraw: loss history (a SeriesView) -> arrays -> Figure.

    This is the function to time (bench/): with a 200k-step run it must stay well under 150 ms.
    """
    curve = train_curve(
        history.step,
        history.mean,
        history.low,
        history.high,
        history.count,
        evals,
        best_step,
        best_dev,
        smoothing=smoothing,
        max_points=max_points,
    )
    return train_figure(curve, references, title, skip_spike=skip_spike, uniform=uniform)


# ---------------------------------------------------------------------- train vs dev
def train_dev_figure(evals: Sequence, title: str = "Train vs dev loss at each evaluation") -> go.Figure:
    """Train (a fixed subset the size of dev) and dev loss over training, with the gap shaded."""
    step = [e.step for e in evals]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=step,
            y=[e.train_loss for e in evals],
            mode="lines+markers",
            line={"color": BLUE, "width": 2},
            name="train (subset the size of dev)",
            hovertemplate="step %{x:,}<br>train %{y:.4f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=step,
            y=[e.dev_loss for e in evals],
            mode="lines+markers",
            line={"color": ORANGE, "width": 2},
            fill="tonexty",
            fillcolor="rgba(214,39,40,0.12)",
            name="dev (shaded: the gap)",
            hovertemplate="step %{x:,}<br>dev %{y:.4f}<extra></extra>",
        )
    )
    _layout(fig, title, "training step", "loss (nats per character)", height=460)
    y_range = train_dev_y_range(evals)
    if y_range is not None:
        fig.update_yaxes(range=y_range)
        peak = max(v for e in evals for v in (e.train_loss, e.dev_loss) if math.isfinite(v))
        off_top_note(
            fig,
            f"↑ the first evaluations (up to {peak:.3g}) run off the top: the height goes to the gap now",
            {"size": FONT_SIZE - 1, "color": GREY},
            yanchor="top",
        )
    return fig


def off_top_note(fig: go.Figure, text: str, font: dict, yanchor: str = "bottom") -> None:
    """A note at the top right of a chart whose y range leaves some values off its top (say how high they go)."""
    fig.add_annotation(
        x=1, y=1, xref="paper", yref="paper", xanchor="right", yanchor=yanchor, showarrow=False, text=text, font=font
    )


def train_dev_y_range(evals: Sequence) -> list[float] | None:
    """A y range that gives the height to where train and dev are now, not to the first evaluations.

    The first evaluations of a run (3.3, then 2.6) would set a 2-4 axis and squeeze the gap of the later ones
    (2.12 vs 2.17) into one line. The range runs from the lowest loss to the highest of the later half of the
    evaluations plus 1.5 times that span; the early points above it leave through the top. None (autoscale) when
    nothing is off the chart or there are too few evaluations.
    """
    if len(evals) < 4:
        return None
    both = [[v for v in (e.train_loss, e.dev_loss) if math.isfinite(v)] for e in evals]
    every = [v for pair in both for v in pair]
    recent = [v for pair in both[len(both) // 2 :] for v in pair]
    if not recent:
        return None
    lo, top = min(every), max(recent)
    span = max(top - lo, 0.01 * abs(lo), 1e-3)
    hi = top + 1.5 * span
    if max(every) <= hi:
        return None
    return [lo - 0.1 * span, hi]


OVERLAY_X = ("step", "fraction", "time")  # the overlay's x axes
CLIP_RATIO = 2.0  # the overlay's y axis ends at this many times the lowest dev loss: a diverged run is clipped


def overlay_y_range(values: Sequence[float]) -> tuple[float, float] | None:
    """A robust (lo, hi) in losses for dev curves: from the lowest to at most CLIP_RATIO x the lowest.

    One diverged run (dev 700) would otherwise set a log axis of 2-700 and flatten every sensible run (1.95-2.7)
    into one line; its points above hi are drawn at hi, marked, with their true value on hover.
    """
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if not finite:
        return None
    lo = min(finite)
    return lo, min(max(finite), CLIP_RATIO * lo)


def runs_overlay_figure(
    summaries: Sequence,
    x: str = "step",
    title: str = "Dev loss of every run in this session",
    *,
    selected: Sequence[str] | None = None,
    names: dict[str, str] | None = None,
) -> go.Figure:
    """One dev-loss curve per run (RunSummary.evals), log y, so runs with different settings compare at a glance.

    x: "step"; "fraction" (each run's steps over its planned steps: runs of different lengths align); "time"
    (seconds of training, at each run's average pace). With x="step" and runs whose lengths differ more than 10x,
    the step axis is logarithmic, so a 700-step run is not a sliver beside a 200k one. selected: the labels of
    the runs to draw (None: all); names: a label -> name the user gave it, shown in the legend.
    """
    if x not in OVERLAY_X:
        raise ValueError(f"x must be one of {', '.join(OVERLAY_X)}, got {x!r}")
    names = names or {}
    shown = [(i, s) for i, s in enumerate(summaries) if s.evals and (selected is None or s.label in set(selected))]
    y_range = overlay_y_range([v for _, s in shown for _, v, _ in s.evals])
    fig = go.Figure(layout={"yaxis": {"type": "log"}})
    x_hover = {"fraction": "%{x:.0%} of the run", "time": "%{x:.1f} s", "step": "step %{x:,}"}[x]
    for i, s in shown:
        steps, dev, _ = zip(*s.evals, strict=True)
        if x == "fraction":
            xs = [k / max(s.config.steps, 1) for k in steps]
        elif x == "time":
            pace = s.seconds / max(s.steps, 1)
            xs = [k * pace for k in steps]
        else:
            xs = list(steps)
        color = RUN_COLORS[i % len(RUN_COLORS)]
        name = names.get(s.label) or f"{s.label} · {s.dataset or 'dataset?'} · {run_caption(s.config)}"
        top = y_range[1] if y_range else math.inf
        clipped = [v > top for v in dev]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[min(v, top) for v in dev],
                mode="lines+markers",
                marker={"size": 5},
                line={"color": color, "width": 2},
                name=name + (" (diverged)" if getattr(s, "status", "") == "diverged" else ""),
                legendgroup=s.label,
                customdata=list(dev),
                hovertemplate=f"{s.label}<br>{x_hover}<br>dev %{{customdata:.4f}}<extra></extra>",
            )
        )
        if any(clipped):
            fig.add_trace(
                go.Scatter(
                    x=[xv for xv, c in zip(xs, clipped, strict=True) if c],
                    y=[top] * sum(clipped),
                    mode="markers",
                    marker={
                        "symbol": "triangle-up",
                        "size": 13,
                        "color": color,
                        "line": {"width": 1, "color": "white"},
                    },
                    name=f"{s.label}: off the chart (dev up to {max(dev):,.0f})",
                    legendgroup=s.label,
                    customdata=[v for v, c in zip(dev, clipped, strict=True) if c],
                    hovertemplate=f"{s.label}<br>{x_hover}<br>dev %{{customdata:,.2f}} (above the axis)<extra></extra>",
                )
            )
    x_title = {
        "fraction": "fraction of the run's steps",
        "time": "seconds of training (each run at its average pace)",
        "step": "training step",
    }[x]
    _layout(fig, title, x_title, "dev loss (nats per character, log scale)", height=460)
    if x == "fraction":
        fig.update_xaxes(tickformat=".0%")
    lengths = [s.config.steps for _, s in shown if s.config.steps > 0]
    if x == "step" and lengths and max(lengths) > 10 * min(lengths):
        fig.update_xaxes(type="log", title="training step (log scale: the runs' lengths differ more than 10x)")
    if y_range:
        lo, hi = math.log10(y_range[0]) - 0.02, math.log10(y_range[1]) + 0.02
        ticks = log_ticks(lo, hi, plot_px=300)
        fig.update_yaxes(range=[lo, hi], tickvals=ticks, ticktext=[f"{v:g}" for v in ticks])
    return fig


def run_caption(config) -> str:
    """A short human description of a config, for legends."""
    return (
        f"ctx {config.block_size}, emb {config.emb_dim}, hidden {config.hidden}x{config.hidden_layers}, "
        f"{config.optimizer} lr {config.lr:g}, batch {config.batch_size}"
    )


# ---------------------------------------------------------------------- LR sweep
def lr_sweep_figure(
    exponents: np.ndarray,
    losses: np.ndarray,
    smoothed: np.ndarray | None = None,
    suggested_exponent: float | None = None,
    title: str = "Learning-rate range test",
) -> go.Figure:
    """Loss vs log10(lr): raw per-step losses, the smoothed curve and the suggested lr."""
    exponents, losses = np.asarray(exponents, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    stride = max(1, math.ceil(len(exponents) / 1000))  # stay under 1,000 points per trace
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=exponents[::stride],
            y=losses[::stride],
            mode="lines",
            line={"color": "rgba(31,119,180,0.4)", "width": 1},
            name="loss at each step",
            hovertemplate="log10(lr) %{x:.3f}<br>loss %{y:.4f}<extra></extra>",
        )
    )
    if smoothed is not None:
        fig.add_trace(
            go.Scatter(
                x=exponents[::stride],
                y=np.asarray(smoothed)[::stride],
                mode="lines",
                line={"color": BLUE, "width": 3},
                name="smoothed (centred moving average)",
                hovertemplate="log10(lr) %{x:.3f}<br>smoothed %{y:.4f}<extra></extra>",
            )
        )
    if suggested_exponent is not None and math.isfinite(suggested_exponent):
        fig.add_vline(
            x=suggested_exponent,
            line={"color": RED, "width": 2, "dash": "dash"},
            annotation_text=f"suggested lr = {10**suggested_exponent:.3g} (10^{suggested_exponent:.2f})",
            annotation_position="top right",
            annotation_font={"size": FONT_SIZE, "color": RED},
        )
    _layout(fig, title, "log10(learning rate)", "minibatch loss (nats per character)")
    y_range = sweep_y_range(losses, smoothed)
    if y_range is not None:
        fig.update_yaxes(range=y_range)
        finite = losses[np.isfinite(losses)]
        blown = not np.isfinite(losses).all() or (len(finite) and finite.max() > y_range[1])
        if blown:
            peak = f"{finite.max():.3g}" if len(finite) else "inf"
            text = f"↑ blow-up off the top: the loss reaches {peak}"
            off_top_note(
                fig, text + ("" if np.isfinite(losses).all() else " then NaN/inf"), {"size": FONT_SIZE, "color": RED}
            )
    return fig


def sweep_y_range(losses: np.ndarray, smoothed: np.ndarray | None = None) -> list[float] | None:
    """A y range for the LR sweep that shows the valley: from the lowest loss up to the loss the sweep started at.

    The loss explodes at the largest lrs (with adamw to ~40 while the valley is 2.3-3.3): a range that fit
    the explosion would flatten the valley into a line. The start level is the median of the first 5% of steps.
    The top is at least 30% above the lowest loss, so the blow-up's start is on the chart even when the loss
    starts near its minimum (AdamW, whose loss has already fallen in the first steps of the lecture's range).
    """
    curve = np.asarray(smoothed if smoothed is not None else losses, dtype=np.float64)
    finite = curve[np.isfinite(curve)]
    raw = np.asarray(losses, dtype=np.float64)
    raw = raw[np.isfinite(raw)]
    if len(finite) == 0 or len(raw) == 0:
        return None
    start = float(np.median(finite[: max(1, len(finite) // 20)]))
    lo = float(min(finite.min(), np.percentile(raw, 1)))
    hi = min(float(raw.max()), max(start, float(finite.min()) * 1.3) * 1.1)
    pad = 0.05 * max(hi - lo, 1e-6)
    return [lo - pad, hi + pad]


# ---------------------------------------------------------------------- learning-rate schedule
def lr_schedule_points(config, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(step, lr) of the run's schedule: evenly spaced steps plus every step where it jumps (warm-up end, decay)."""
    from mlp_core.trainer import lr_at  # torch: imported only when the chart is drawn

    total = max(1, config.steps)
    steps = set(np.linspace(0, total - 1, min(points, total)).round().astype(int).tolist())
    for s in (config.warmup_steps, config.lr_decay_step if config.schedule == "step" else 0):
        steps |= {max(0, min(total - 1, s - 1)), max(0, min(total - 1, s))}
    step = np.array(sorted(steps))
    return step, np.array([lr_at(config, int(s)) for s in step])


def lr_schedule_figure(config, current_step: int | None = None, title: str = "Learning-rate schedule") -> go.Figure:
    """The learning rate the run uses at each step, with the current step marked."""
    step, lr = lr_schedule_points(config)
    traces = [
        {
            "type": "scatter",
            "x": step.astype(np.int32) if step.max() < 2**31 else step,  # exact: the jumps of the "hv" line
            "y": lr,
            "mode": "lines",
            "line": {"color": PURPLE, "width": 2, "shape": "hv"},
            "name": f"{config.schedule} schedule, peak lr {config.lr:g}",
            "hovertemplate": "step %{x:,}<br>lr %{y:.3g}<extra></extra>",
        }
    ]
    if current_step is not None:
        from mlp_core.trainer import lr_at

        now = lr_at(config, max(0, min(current_step, config.steps) - 1))
        traces.append(
            {
                "type": "scatter",
                "x": [min(current_step, config.steps)],
                "y": [now],
                "mode": "markers",
                "marker": {"size": 12, "color": RED, "symbol": "circle"},
                "name": f"now: step {current_step:,}, lr {now:.3g}",
                "hovertemplate": "step %{x:,}<br>lr %{y:.3g}<extra></extra>",
            }
        )
    layout = layout_dict(title, "training step", "learning rate", height=300)
    layout["yaxis"] |= {"rangemode": "tozero", "tickformat": "~g"}
    layout["margin"] |= {"b": 40, "t": 50}
    return prebuilt_figure(traces, layout)
