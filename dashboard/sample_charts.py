"""The Sample page's figures: a name's per-character probabilities and the next-character distribution (top k).

Both work for any alphabet: characters are categories on the x axis, drawn with a font list that has CJK
glyphs, and the next-character view shows the k most likely of however many tokens there are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .analysis import display_char, is_vowel
from .charts import BLUE, GREY, ORANGE, RED, _layout
from .embedding_charts import LABEL_FONT

TOP_K = 30  # more bars than the lecture's 27 characters, so names.txt shows its whole distribution


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
    fig.update_layout(font={"family": LABEL_FONT})
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=ticks)
    fig.update_xaxes(title_text="character (the last '.' ends the name)", row=2, col=1)
    fig.update_yaxes(title_text="probability", range=[0, 1.15], row=1, col=1)
    fig.update_yaxes(title_text="NLL (nats)", row=2, col=1)
    return fig


def next_char_figure(
    distribution: Sequence[tuple[str, float]], context: str, top: int = TOP_K, temperature: float = 1.0
) -> go.Figure:
    """The k most likely next characters after a context, most likely first; the title names the temperature."""
    ranked = sorted(distribution, key=lambda cp: -cp[1])
    dist = ranked[:top]
    fig = go.Figure(
        go.Bar(
            x=[display_char(c) for c, _ in dist],
            y=[p for _, p in dist],
            marker_color=[GREY if c == "." else ORANGE if is_vowel(c) else BLUE for c, _ in dist],
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
    heat = "T = 1: the model's own distribution" if temperature == 1 else f"T = {temperature:g} applied"
    title = f"Next character after '{shown}' ({heat})"
    x_title = "next character ('.' = end of name)"
    if len(ranked) > len(dist):
        rest = sum(p for _, p in ranked[len(dist) :])
        others = len(ranked) - len(dist)
        x_title = (
            f"the {len(dist)} most likely of {len(ranked):,} tokens (the other {others:,}: p = {rest:.2f} together)"
        )
    _layout(fig, title, x_title, "probability", height=460)
    fig.update_layout(font={"family": LABEL_FONT})
    fig.update_xaxes(type="category")
    return fig
