"""The "Inside the network" figures: pure functions from mlp_core.diagnostics results to plotly Figures."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mlp_core.diagnostics import SATURATED, DiagnosticsPoint, Histogram, LayerStats, OverfitResult

from .charts import FONT_SIZE, GREY, RED, RUN_COLORS, _layout

UPDATE_GUIDE = -3.0  # the lecture: updates about 1/1000 of the data's spread are healthy


def _centres(h: Histogram) -> np.ndarray:
    return (h.edges[:-1] + h.edges[1:]) / 2


def _percent(h: Histogram) -> np.ndarray:
    total = h.counts.sum()
    return h.counts / total * 100 if total else h.counts.astype(float)


def layer_histograms(layer: LayerStats, title: str | None = None) -> go.Figure:
    """Pre-activations and tanh outputs of one layer side by side, with the saturated zones shaded."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            f"pre-activation, std {layer.preact_std:.2f}",
            f"tanh: {layer.saturated_fraction:.1%} saturated",
        ),
        horizontal_spacing=0.1,
    )
    pre, act = layer.preact, layer.act
    width_pre, width_act = pre.edges[1] - pre.edges[0], act.edges[1] - act.edges[0]
    fig.add_bar(x=_centres(pre), y=_percent(pre), width=width_pre, marker_color=RUN_COLORS[0], name="pre-activation")
    fig.add_bar(
        x=_centres(act), y=_percent(act), width=width_act, marker_color=RUN_COLORS[1], name="tanh", col=2, row=1
    )
    for x0, x1 in ((-1.0, -SATURATED), (SATURATED, 1.0)):
        fig.add_vrect(x0=x0, x1=x1, fillcolor=RED, opacity=0.15, line_width=0, row=1, col=2)
    _layout(fig, title or f"{layer.name}: activations on the probe batch", "", "% of values", height=340)
    fig.update_xaxes(title_text="value (end bins: all beyond ±10)", row=1, col=1)
    fig.update_xaxes(title_text=f"tanh(value); shaded: |h| > {SATURATED}", range=[-1.05, 1.05], row=1, col=2)
    fig.update_yaxes(title_text="% of values", row=1, col=1)
    fig.update_layout(showlegend=False, bargap=0, margin={"t": 80, "b": 50})
    fig.update_annotations(font_size=FONT_SIZE)
    return fig


def saturation_map(layer: LayerStats, title: str | None = None) -> go.Figure:
    """The lecture's |h| > 0.97 image: one row per neuron, one column per probe example, white = saturated."""
    sat = layer.saturation_map
    if sat is None:
        sat = np.zeros((0, 0), dtype=bool)
    neurons, examples = sat.shape
    fig = go.Figure(
        go.Heatmap(
            z=sat.astype(np.uint8),
            colorscale=[[0, "#1a1a1a"], [1, "#ffffff"]],
            zmin=0,
            zmax=1,
            showscale=False,
            hovertemplate="neuron %{y}, example %{x}: %{customdata}<extra></extra>",
            customdata=np.where(sat, "saturated", "active"),
            xgap=0,
            ygap=0,
        )
    )
    shown = f"first {neurons} of {layer.neurons} neurons" if neurons < layer.neurons else f"{neurons} neurons"
    _layout(
        fig,
        title or f"{layer.name}: saturated units in white ({shown} × {examples} examples)",
        "probe example",
        "neuron",
        height=max(260, min(520, 120 + 2 * neurons)),
    )
    fig.update_layout(showlegend=False, plot_bgcolor="#1a1a1a")
    fig.update_yaxes(autorange="reversed", showgrid=False, zeroline=False)
    fig.update_xaxes(showgrid=False, zeroline=False)
    return fig


def saturation_over_training(points: Sequence[DiagnosticsPoint]) -> go.Figure:
    """% of saturated units per layer at every probed step."""
    fig = go.Figure()
    steps = [p.step for p in points]
    n_layers = len(points[0].layers) if points else 0
    for k in range(n_layers):
        fig.add_scatter(
            x=steps,
            y=[p.layers[k].saturated_fraction * 100 for p in points],
            mode="lines+markers",
            name=points[0].layers[k].name,
            line={"color": RUN_COLORS[k % len(RUN_COLORS)]},
        )
    _layout(fig, "Saturated tanh units over training", "step", f"% of units with |h| > {SATURATED}", height=340)
    fig.update_yaxes(rangemode="tozero")
    return fig


def gradient_histograms(point: DiagnosticsPoint, weights_only: bool = True) -> go.Figure:
    """Each parameter's gradient distribution on the probe batch (the lecture plots the weight matrices')."""
    fig = go.Figure()
    params = [p for p in point.params if not weights_only or len(p.shape) == 2]
    for i, p in enumerate(params):
        fig.add_scatter(
            x=_centres(p.grad),
            y=_percent(p.grad),
            mode="lines",
            name=f"{p.name} {tuple(p.shape)}: grad std {p.grad_std:.2e}",
            line={"color": RUN_COLORS[i % len(RUN_COLORS)]},
        )
    _layout(fig, f"Gradient distributions at step {point.step:,}", "gradient value", "% of entries", height=380)
    fig.update_xaxes(exponentformat="e")
    return fig


def grad_data_ratio_figure(point: DiagnosticsPoint) -> go.Figure:
    """std(grad) / std(data) per parameter: a tensor far above the others learns much faster than the rest."""
    params = [p for p in point.params if math.isfinite(p.grad_data_ratio) and p.grad_data_ratio > 0]
    fig = go.Figure(
        go.Bar(
            x=[p.name for p in params],
            y=[p.grad_data_ratio for p in params],
            marker_color=[RUN_COLORS[i % len(RUN_COLORS)] for i in range(len(params))],
            text=[f"{p.grad_data_ratio:.2g}" for p in params],
            textposition="outside",
            name="grad:data",
        )
    )
    _layout(fig, f"Gradient to data ratio at step {point.step:,}", "parameter", "std(grad) / std(data)", height=340)
    fig.update_yaxes(type="log", dtick=1)  # one tick per decade: minor log ticks read as stray digits
    fig.update_layout(showlegend=False)
    return fig


def update_ratio_figure(points: Sequence[DiagnosticsPoint]) -> go.Figure:
    """log10(std(lr·grad) / std(data)) per parameter over training, with the lecture's -3 guide line."""
    fig = go.Figure()
    names = [p.name for p in points[0].params] if points else []
    for i, name in enumerate(names):
        steps, values = [], []
        for point in points:
            value = next((p.update_ratio for p in point.params if p.name == name), math.nan)
            if math.isfinite(value):
                steps.append(point.step)
                values.append(value)
        fig.add_scatter(
            x=steps, y=values, mode="lines+markers", name=name, line={"color": RUN_COLORS[i % len(RUN_COLORS)]}
        )
    if points:  # a legend entry rather than an annotation, which would sit on top of the curves
        fig.add_scatter(
            x=[points[0].step, points[-1].step],
            y=[UPDATE_GUIDE, UPDATE_GUIDE],
            mode="lines",
            name="−3: the lecture's rule of thumb",
            line={"color": GREY, "dash": "dash", "width": 2},
        )
    _layout(fig, "Update size relative to the data, over training", "step", "log10(std(lr·grad) / std(data))", 400)
    return fig


def overfit_figure(result: OverfitResult) -> go.Figure:
    """The loss on one batch while training on it alone, falling to the floor its repeated contexts impose."""
    fig = go.Figure()
    fig.add_scatter(x=result.steps, y=result.losses, mode="lines+markers", name="loss on the batch", marker_size=4)
    fig.add_scatter(
        x=[result.steps[0], result.steps[-1]],
        y=[result.floor, result.floor],
        mode="lines",
        name=f"floor {result.floor:.3f}: contexts that repeat with different next characters",
        line={"color": RED, "dash": "dash", "width": 2},
    )
    _layout(fig, f"Overfitting one batch of {result.batch_size} examples", "step", "loss on the batch", height=400)
    if result.floor > 0 and np.all(result.losses > 0):
        # Log scale: the first loss of a lecture init (~27) would otherwise flatten the approach to the floor.
        ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20, 30, 50, 100) if t >= result.floor * 0.8]
        fig.update_yaxes(type="log", title_text="loss on the batch (log scale)", tickvals=ticks)
    else:
        fig.update_yaxes(rangemode="tozero")
    return fig


__all__ = [
    "grad_data_ratio_figure",
    "gradient_histograms",
    "layer_histograms",
    "overfit_figure",
    "saturation_map",
    "saturation_over_training",
    "update_ratio_figure",
]
