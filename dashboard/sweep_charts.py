"""The Sweep page's figures, pure functions of a sweep's summary.json trials (no Streamlit).

A trial is the dict mlp_core.sweep writes: id, status, steps, config, dev_loss, curve [[step, dev, time]], ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from .charts import BLUE, GREY, ORANGE, _layout

FINISHED = ("completed", "stopped", "errored")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def best_so_far_figure(trials: Sequence[Mapping[str, Any]], started: float) -> go.Figure:
    """The lowest dev loss any trial had reported, over the sweep's wall time (a step line)."""
    points = sorted((p[2], p[1]) for t in trials for p in t.get("curve", []) if len(p) > 2 and _finite(p[1]))
    xs, ys, best = [], [], math.inf
    for when, dev in points:
        if dev < best:
            best = dev
            xs.append(when - started)
            ys.append(dev)
    fig = go.Figure()
    if xs:
        last = max(when for when, _ in points) - started
        fig.add_trace(
            go.Scatter(
                x=[*xs, last], y=[*ys, ys[-1]], mode="lines+markers", line={"shape": "hv", "color": BLUE, "width": 3},
                name="best dev loss so far", hovertemplate="%{x:.0f} s<br>best dev %{y:.4f}<extra></extra>",
            )
        )  # fmt: skip
    return _layout(fig, "Best dev loss so far", "seconds since the sweep started", "dev loss", height=360)


def curves_figure(
    trials: Sequence[Mapping[str, Any]], best_id: str | None, references: Sequence[tuple[str, float]] = ()
) -> go.Figure:
    """Every trial's dev loss over its steps; the best in bold orange, stopped and failed ones dimmed.

    references: (label, loss) dashed lines: uniform guessing, the bigram model, the lecture's MLP, your own run.
    """
    fig = go.Figure()
    values = [v for _, v in references if _finite(v)]
    ordered = sorted(trials, key=lambda t: t.get("id") == best_id)  # the best drawn last, on top
    for t in ordered:
        curve = [p for p in t.get("curve", []) if _finite(p[1])]
        if not curve:
            continue
        values += [p[1] for p in curve]
        is_best = t.get("id") == best_id
        dim = t.get("status") in ("stopped", "errored")
        style = (
            {"color": ORANGE, "width": 4}
            if is_best
            else {"color": GREY if dim else BLUE, "width": 1.5, "dash": "dot" if dim else "solid"}
        )
        label = f"{t['id']} ({t.get('status')})" + (" · best" if is_best else "")
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in curve], y=[p[1] for p in curve], mode="lines+markers", name=label, line=style,
                marker={"size": 7 if is_best else 4}, opacity=0.35 if dim else 1.0,
                hovertemplate=f"{t['id']}<br>step %{{x:,}}<br>dev %{{y:.4f}}<extra></extra>",
            )
        )  # fmt: skip
    _layout(fig, "Dev loss of every trial (best: orange; stopped early: dotted, dimmed)", "step", "dev loss", 460)
    if values:  # a diverging or barely-trained trial must not squash the interesting range into a sliver
        lo, hi = min(values), min(max(values), min(values) + 1.5)
        fig.update_yaxes(range=[lo - 0.02, hi + 0.02])
    for label, value in references:
        if _finite(value):
            fig.add_hline(
                y=value, line={"color": GREY, "width": 1, "dash": "dash"}, annotation_text=label,
                annotation_position="bottom right" if label.startswith("your run") else "top left",
                annotation_font={"color": GREY, "size": 12},  # your run's label on the other side: 2.14 vs 2.17
            )  # fmt: skip
    fig.update_layout(showlegend=len(fig.data) <= 12)
    return fig


def parallel_figure(trials: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> go.Figure:
    """Parallel coordinates: each trial's swept settings and its dev loss, coloured by dev loss (dark = low)."""
    rows = [t for t in trials if _finite(t.get("dev_loss"))]
    dims = []
    for name in fields:
        values = [t.get("config", {}).get(name) for t in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            log = name in ("lr", "weight_decay") and all(v > 0 for v in values)
            if log:
                shown = [math.log10(v) for v in values]
                dims.append({"label": f"log10 {name}", "values": shown})
            else:
                dims.append({"label": name, "values": values})
        else:
            labels = sorted({str(v) for v in values})
            codes = {v: i for i, v in enumerate(labels)}
            dims.append(
                {"label": name, "values": [codes[str(v)] for v in values], "tickvals": list(codes.values()),
                 "ticktext": labels}
            )  # fmt: skip
    dev = [t["dev_loss"] for t in rows]
    dims.append({"label": "dev loss", "values": dev})
    fig = go.Figure()
    if rows:
        fig.add_trace(
            go.Parcoords(
                dimensions=dims,
                line={"color": dev, "colorscale": "Viridis", "showscale": True, "colorbar": {"title": "dev"}},
                labelfont={"size": 14},
                tickfont={"size": 12},
            )
        )
    fig.update_layout(
        title={"text": "Settings vs dev loss (one line per trial with a dev loss)", "font": {"size": 18}},
        height=420,
        margin={"l": 70, "r": 40, "t": 90, "b": 30},
        font={"size": 14},
    )
    return fig


def trial_rows(trials: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> list[dict[str, Any]]:
    """The live table: one row per trial, lowest dev loss first."""
    rows = []
    for t in trials:
        dev = t.get("dev_loss")
        reason = t.get("reason") or ""
        row = {
            "trial": t["id"],
            "status": t.get("status"),
            "steps": t.get("steps", 0),
            "dev loss": round(dev, 4) if _finite(dev) else None,
            "stopped early": reason if t.get("status") == "stopped" else "",
        }
        row.update({name: t.get("config", {}).get(name) for name in fields})
        if t.get("status") in ("errored", "retrying"):
            row["stopped early"] = reason
        rows.append(row)
    return sorted(rows, key=lambda r: (r["dev loss"] is None, r["dev loss"] or 0))
