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
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .analysis import centred_average, display_char, downsample_buckets

# Reference losses (nats per character) from the lecture, on its names.txt.
BIGRAM_LOSS = 2.45  # makemore part 1: the counted bigram model
LECTURE_DEV_LOSS = 2.17  # makemore part 2: the MLP at the end of the lecture

BLUE, ORANGE, GREEN, RED, GREY, PURPLE = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7f7f7f", "#9467bd"
RUN_COLORS = (BLUE, ORANGE, GREEN, RED, PURPLE, "#8c564b", "#e377c2", "#17becf", "#bcbd22", GREY)
VOWELS = frozenset("aeiouAEIOU")
FONT_SIZE = 14
HEIGHT = 500


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
        template="plotly_white",
    )
    return fig


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
    max_points: int = 800,
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


LOSS_TICKS = (1.5, 1.75, 2, 2.25, 2.5, 2.75, 3, 3.5, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100)
# Over a wide range (the lecture init starts near 20) the quarter ticks would print on top of each other.
LOSS_TICKS_COARSE = (1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100)


def train_figure(curve: TrainCurve, vocab_size: int = 27, title: str = "Training loss") -> go.Figure:
    """Minibatch loss (min/max band, mean, smoothed), dev loss, reference lines and the best dev step, log y."""
    fig = go.Figure(layout={"yaxis": {"type": "log"}})  # log first: annotations are placed in log10 units
    if len(curve.step):
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([curve.step, curve.step[::-1]]),
                y=np.concatenate([curve.high, curve.low[::-1]]),
                fill="toself",
                fillcolor="rgba(31,119,180,0.15)",
                line={"width": 0},
                hoverinfo="skip",
                name="minibatch loss: min–max",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=curve.step,
                y=curve.mean,
                mode="lines",
                line={"color": "rgba(31,119,180,0.45)", "width": 1},
                name="minibatch loss: mean",
                hovertemplate="step %{x:,}<br>mean loss %{y:.4f}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=curve.step,
                y=curve.smoothed,
                mode="lines",
                line={"color": BLUE, "width": 3},
                name="minibatch loss: smoothed",
                hovertemplate="step %{x:,}<br>smoothed loss %{y:.4f}<extra></extra>",
            )
        )
    if len(curve.dev_step):
        fig.add_trace(
            go.Scatter(
                x=curve.dev_step,
                y=curve.dev_loss,
                mode="lines+markers",
                line={"color": ORANGE, "width": 2},
                marker={"size": 6},
                name="dev loss (whole split)",
                hovertemplate="step %{x:,}<br>dev loss %{y:.4f}<extra></extra>",
            )
        )
    if curve.best_step is not None and math.isfinite(curve.best_dev):
        fig.add_trace(
            go.Scatter(
                x=[curve.best_step],
                y=[curve.best_dev],
                mode="markers",
                marker={"symbol": "star", "size": 18, "color": RED, "line": {"width": 1, "color": "white"}},
                name=f"best dev {curve.best_dev:.4f} at step {curve.best_step:,}",
                hovertemplate="best dev loss %{y:.4f}<br>at step %{x:,}<extra></extra>",
            )
        )
    refs = reference_losses(vocab_size)
    _add_reference_lines(fig, refs)
    _layout(fig, title, "training step", "loss (nats per character, log scale)")
    fig.update_layout(margin={"r": 170})  # room for the reference lines' labels
    # Explicit ticks: plotly's own log ticks label 20 as a bare "2" next to the real 2.
    y_range = _log_range(curve, [v for _, v in refs])
    ticks = LOSS_TICKS if y_range[1] - y_range[0] < 0.5 else LOSS_TICKS_COARSE  # 0.5 decades: about 1.8 to 5.7
    fig.update_yaxes(range=y_range, tickvals=ticks, ticktext=[f"{v:g}" for v in ticks])
    return fig


def reference_losses(vocab_size: int = 27) -> list[tuple[str, float]]:
    """(label, loss) lines to compare against: uniform guessing, the lecture's bigram and MLP."""
    uniform = math.log(max(vocab_size, 2))
    return [
        (f"uniform: ln {vocab_size} = {uniform:.2f}", uniform),
        (f"bigram (lecture) {BIGRAM_LOSS:.2f}", BIGRAM_LOSS),
        (f"MLP dev (lecture) {LECTURE_DEV_LOSS:.2f}", LECTURE_DEV_LOSS),
    ]


def _add_reference_lines(fig: go.Figure, refs: list[tuple[str, float]]) -> None:
    # Layout shapes and annotations, not traces: they cost nothing to redraw and stay out of the legend.
    shapes, notes = list(fig.layout.shapes), list(fig.layout.annotations)
    for label, value in refs:
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
                "y": math.log10(value) if fig.layout.yaxis.type == "log" else value,
                "yanchor": "middle",
                "align": "left",
                "text": label,
                "showarrow": False,
                "font": {"size": FONT_SIZE - 2, "color": GREY},
            }
        )
    fig.update_layout(shapes=shapes, annotations=notes)


def _log_range(curve: TrainCurve, refs: list[float]) -> list[float]:
    """A log10 y range that shows the data and the reference lines, ignoring non-finite values."""
    values = np.concatenate([curve.low, curve.high, curve.dev_loss, np.asarray(refs, dtype=np.float64)])
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
    max_points: int = 800,
    vocab_size: int = 27,
    title: str = "Training loss",
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
    return train_figure(curve, vocab_size, title)


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
    return _layout(fig, title, "training step", "loss (nats per character)", height=460)


def runs_overlay_figure(summaries: Sequence, title: str = "Dev loss of every run in this session") -> go.Figure:
    """One dev-loss curve per run (RunSummary.evals), so runs with different settings compare at a glance."""
    fig = go.Figure()
    for i, s in enumerate(summaries):
        if not s.evals:
            continue
        steps, dev, _ = zip(*s.evals, strict=True)
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=dev,
                mode="lines+markers",
                marker={"size": 5},
                line={"color": RUN_COLORS[i % len(RUN_COLORS)], "width": 2},
                name=f"{s.label}: {run_caption(s.config)}",
                hovertemplate=f"{s.label}<br>step %{{x:,}}<br>dev %{{y:.4f}}<extra></extra>",
            )
        )
    return _layout(fig, title, "training step", "dev loss (nats per character)", height=460)


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
    finite = losses[np.isfinite(losses)]
    if len(finite):
        # The loss explodes at the largest lrs: clip the y axis so the valley stays readable.
        hi = min(float(finite.max()), float(np.percentile(finite, 98)) * 1.1)
        lo = float(finite.min())
        fig.update_yaxes(range=[lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)])
    return fig


# ---------------------------------------------------------------------- embeddings
def embedding_figure(
    points: np.ndarray,
    labels: Sequence[str],
    *,
    x_title: str,
    y_title: str,
    x_range: Sequence[float] | None = None,
    y_range: Sequence[float] | None = None,
    title: str = "Character embeddings",
) -> go.Figure:
    """Each character as a labelled circle at its 2-D position; vowels, consonants and '.' in their own colours."""
    # Drawn '.', consonants, vowels: where circles overlap the vowels stay readable; the legend keeps vowels first.
    groups = {"'.' start/end": ([], GREY, 3), "consonant / other": ([], BLUE, 2), "vowel": ([], ORANGE, 1)}
    for i, ch in enumerate(labels):
        key = "'.' start/end" if ch == "." else "vowel" if ch in VOWELS else "consonant / other"
        groups[key][0].append(i)
    fig = go.Figure()
    for name, (idx, color, rank) in groups.items():
        if not idx:
            continue
        fig.add_trace(
            go.Scatter(
                x=points[idx, 0],
                y=points[idx, 1],
                mode="markers+text",
                text=[display_char(labels[i]) for i in idx],
                textposition="middle center",
                textfont={"color": "white", "size": FONT_SIZE},
                marker={"size": 28, "color": color, "line": {"width": 1, "color": "white"}},
                name=name,
                legendrank=rank,
                hovertemplate="%{text}<br>(%{x:.3f}, %{y:.3f})<extra></extra>",
            )
        )
    _layout(fig, title, x_title, y_title, height=560)
    if x_range is not None:
        fig.update_xaxes(range=list(x_range))
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return fig


# ---------------------------------------------------------------------- sampling
def char_probs_figure(word: str, targets: Sequence[str], probs: Sequence[float], title: str = "") -> go.Figure:
    """For each character of a word (and the end '.'), the model's probability of it and its NLL."""
    probs = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        nll = -np.log(probs)
    x = list(range(len(targets)))
    ticks = [display_char(t) for t in targets]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    rows = (
        (probs, BLUE, "p(char | context)", "p = %{y:.4f}"),
        (nll, RED, "NLL = −log p (nats)", "NLL = %{y:.3f}"),
    )
    for row, (values, color, name, hover) in enumerate(rows, start=1):
        fig.add_trace(
            go.Bar(
                x=x,
                y=values,
                marker_color=color,
                text=[f"{v:.2f}" for v in values],
                textposition="outside",
                name=name,
                hovertemplate="%{customdata}<br>" + hover + "<extra></extra>",
                customdata=ticks,
            ),
            row=row,
            col=1,
        )
    _layout(fig, title or f"How likely is '{word}'?", "", "", height=520)
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=ticks)
    fig.update_xaxes(title_text="character (the last '.' ends the name)", row=2, col=1)
    fig.update_yaxes(title_text="probability", range=[0, 1.15], row=1, col=1)
    fig.update_yaxes(title_text="NLL (nats)", row=2, col=1)
    return fig


def next_char_figure(distribution: Sequence[tuple[str, float]], context: str, top: int = 30) -> go.Figure:
    """The next-character distribution after a context, most likely first."""
    dist = sorted(distribution, key=lambda cp: -cp[1])[:top]
    fig = go.Figure(
        go.Bar(
            x=[display_char(c) for c, _ in dist],
            y=[p for _, p in dist],
            marker_color=[GREY if c == "." else ORANGE if c in VOWELS else BLUE for c, _ in dist],
            text=[f"{p:.2f}" for _, p in dist],
            textposition="outside",
            hovertemplate="%{x}: p = %{y:.4f}<extra></extra>",
            name="p(next char)",
            showlegend=False,
        )
    )
    # One bar trace keeps the bars in probability order; empty marker traces give the colours a legend.
    for name, color in (("consonant / other", BLUE), ("vowel", ORANGE), ("'.' end of name", GREY)):
        fig.add_trace(
            go.Scatter(
                x=[None], y=[None], mode="markers", marker={"symbol": "square", "size": 12, "color": color}, name=name
            )
        )
    shown = context if context else "(start of a name)"
    _layout(fig, f"Next character after '{shown}'", "next character ('.' = end of name)", "probability", height=460)
    fig.update_xaxes(type="category")
    return fig
