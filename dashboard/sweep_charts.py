"""The Sweep page's figures, pure functions of a sweep's summary.json trials (no Streamlit).

A trial is the dict mlp_core.sweep writes: id, status, steps, config, dev_loss, curve [[step, dev, time]], ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from .charts import BLUE, GREY, ORANGE, _layout

FINISHED = ("completed", "stopped", "errored")
COLORSCALE = "Viridis"  # dark = low dev loss = good


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
            else {"color": GREY if dim else BLUE, "width": 2.5 if dim else 2, "dash": "dot" if dim else "solid"}
        )
        label = f"{t['id']} ({t.get('status')})" + (" · best" if is_best else "")
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in curve], y=[p[1] for p in curve], mode="lines+markers", name=label, line=style,
                # Dimmed, not faded out: a trial stopped at its first evaluation is a single dot, which at 4 px
                # and 35 % opacity was a speck nobody could find.
                marker={"size": 8 if is_best or dim else 5}, opacity=0.6 if dim else 1.0,
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


# ---------------------------------------------------------------------- parallel coordinates
# Drawn with plain lines, not plotly's Parcoords: that one draws every trial as a 1-pixel WebGL hairline (no line
# width to set), labels its ticks with raw numbers ("-1.22394" for log10 lr) and cannot dim a trial.
LOG_SETTINGS = ("lr", "weight_decay")  # always on a log axis; any other positive setting when it spans 10x
PARALLEL_TICKS = 5


def short_number(v: float) -> str:
    """A tick label: whole numbers as such (1,024), else 3 significant digits in plain notation (0.003, 2.15),
    beyond that as 1e-5."""
    if v == 0:
        return "0"
    if float(v).is_integer() and abs(v) < 1e6:
        return f"{v:,.0f}"
    if 1e-4 <= abs(v) < 1e6:
        return f"{float(f'{v:.3g}'):f}".rstrip("0").rstrip(".")
    mantissa, exponent = f"{v:.2g}".split("e")
    return f"{mantissa}e{int(exponent)}"  # 1e-5, not 1e-05


def _nice_step(span: float, ticks: int = PARALLEL_TICKS) -> float:
    raw = span / max(ticks - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def axis_ticks(lo: float, hi: float, log: bool = False, integer: bool = False) -> list[float]:
    """Round tick values inside [lo, hi] (log: 1, 2 and 5 times powers of ten), never fewer than the two ends."""
    if hi <= lo:
        return [lo]
    if log:
        decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        for mantissas in ((1, 2, 5), (1, 2, 3, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):  # finer within a narrow range
            ticks = [
                m * 10.0**e for e in decades for m in mantissas if lo * (1 - 1e-9) <= m * 10.0**e <= hi * (1 + 1e-9)
            ]
            if len(ticks) >= 3:
                break
        if len(ticks) > PARALLEL_TICKS + 1:  # many decades: their powers of ten only
            ticks = [t for t in ticks if f"{t:e}".startswith("1")] or ticks
        if len(ticks) > PARALLEL_TICKS + 1:
            ticks = ticks[:: math.ceil(len(ticks) / PARALLEL_TICKS)]
    else:
        step = max(_nice_step(hi - lo), 1.0) if integer else _nice_step(hi - lo)
        first = math.ceil(lo / step - 1e-9) * step
        ticks = [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]
    return ticks if len(ticks) >= 2 else [lo, hi]


def _axis(name: str, values: list[Any]) -> dict[str, Any]:
    """One vertical axis: each trial's position on it (0 = bottom, 1 = top), its ticks and their labels."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    if not numeric:  # a choice (optimizer, schedule, init): its options evenly spaced
        options = sorted({str(v) for v in values})
        at = {o: (i + 0.5) / len(options) for i, o in enumerate(options)}
        return {"title": name, "pos": [at[str(v)] for v in values], "ticks": list(at.values()), "text": options}
    lo, hi = min(values), max(values)
    log = lo > 0 and (name in LOG_SETTINGS or hi / lo >= 10)
    integer = all(float(v).is_integer() for v in values)
    ticks = axis_ticks(lo, hi, log, integer)
    f = math.log10 if log else float
    a, b = min(f(lo), f(ticks[0])), max(f(hi), f(ticks[-1]))
    if b - a < 1e-12:  # one value: the middle of the axis
        return {"title": name, "pos": [0.5] * len(values), "ticks": [0.5], "text": [short_number(lo)]}
    pos = [(f(v) - a) / (b - a) for v in values]
    return {
        "title": f"{name} (log)" if log else name,
        "pos": pos,
        "ticks": [(f(t) - a) / (b - a) for t in ticks],
        "text": [short_number(t) for t in ticks],
    }


def parallel_figure(trials: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> go.Figure:
    """Parallel coordinates: one thick line per trial with a dev loss through its swept settings and its dev
    loss, coloured by dev loss (dark = low); trials stopped early dotted and lighter, the best drawn last."""
    rows = sorted(
        (t for t in trials if _finite(t.get("dev_loss"))), key=lambda t: -t["dev_loss"]
    )  # worst first: the best lines end up on top
    names = [*fields, "dev loss"]
    axes = [_axis(name, [t.get("config", {}).get(name) for t in rows]) for name in fields]
    axes.append(_axis("dev loss", [t["dev_loss"] for t in rows]))
    axes[-1]["title"] = "dev loss"
    fig = go.Figure()
    if rows:
        dev = [t["dev_loss"] for t in rows]
        lo, hi = min(dev), max(dev)
        shades = sample_colorscale(COLORSCALE, [(d - lo) / (hi - lo) if hi > lo else 0.0 for d in dev])
        for j, t in enumerate(rows):
            stopped = t.get("status") in ("stopped", "errored")
            values = "<br>".join(
                f"{n}: {short_number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v}"
                for n, v in zip(names, [*(t.get("config", {}).get(n) for n in fields), t["dev_loss"]], strict=True)
            )
            fig.add_trace(
                go.Scatter(
                    x=list(range(len(axes))), y=[a["pos"][j] for a in axes], mode="lines+markers",
                    line={"color": shades[j], "width": 2.5 if stopped else 4, "dash": "dot" if stopped else "solid"},
                    marker={"size": 7 if stopped else 9, "color": shades[j]}, opacity=0.55 if stopped else 1.0,
                    name=t["id"], showlegend=False,
                    hovertemplate=f"{t['id']} ({t.get('status')})<br>{values}<extra></extra>",
                )
            )  # fmt: skip
        # Legend entries for the two line styles, and the colour bar for dev loss.
        for label, dash, opacity in (("completed", "solid", 1.0), ("stopped early", "dot", 0.55)):
            fig.add_trace(
                go.Scatter(
                    x=[None], y=[None], mode="lines", name=label, opacity=opacity,
                    line={"color": GREY, "width": 3, "dash": dash},
                )
            )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                marker={
                    "color": [lo, hi], "cmin": lo, "cmax": hi, "colorscale": COLORSCALE, "showscale": True,
                    "colorbar": {"title": {"text": "dev"}, "thickness": 14, "len": 0.8, "tickformat": ".2f"},
                },
            )
        )  # fmt: skip
    _layout(fig, "Settings vs dev loss (one line per trial)", "", "", height=440)
    for i, a in enumerate(axes):
        fig.add_shape(type="line", x0=i, x1=i, y0=0, y1=1, line={"color": "#444", "width": 1.5}, layer="below")
        fig.add_annotation(x=i, y=1.04, text=f"<b>{a['title']}</b>", showarrow=False, yanchor="bottom")
        for tick, text in zip(a["ticks"], a["text"], strict=True):
            fig.add_annotation(
                x=i,
                y=tick,
                text=text,
                showarrow=False,
                xanchor="right",
                xshift=-5,
                font={"size": 12, "color": "#333"},
                bgcolor="rgba(255,255,255,0.75)",  # readable where lines pass behind it
            )
    fig.update_xaxes(visible=False, range=[-0.55, max(len(axes) - 1, 1) + 0.15])
    fig.update_yaxes(visible=False, range=[-0.04, 1.12])
    fig.update_layout(margin={"l": 30, "r": 20, "t": 60, "b": 20}, hovermode="closest")
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
