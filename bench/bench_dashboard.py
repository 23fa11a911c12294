"""Server time of one Train-page refresh with a 200k-step history: naive plotting vs dashboard/charts.py.

The history is a lecture-like 200k-step minibatch loss curve (noisy, decaying) held the way the engine
holds it (a DecimatedSeries of <= 4,096 buckets), plus 200 dev evaluations. One refresh = data prep +
building the plotly Figure + serialising it to JSON (what Streamlit sends to the browser).
Baseline: the naive way, one go.Scatter of all 200k raw points (and the dev points), serialised the same way.

    python bench/bench_dashboard.py [--repeats 7] [--steps 200000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import plotly.graph_objects as go
from common import machine, table

from dashboard.charts import train_chart
from mlp_core.history import DecimatedSeries
from mlp_core.trainer import EvalPoint


def fake_run(steps: int, seed: int = 0) -> tuple[np.ndarray, list[EvalPoint]]:
    """Per-step losses shaped like the lecture's run (17 -> ~2.1, lr drop halfway) and dev evals every 1,000 steps."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    trend = 2.1 + 15 * np.exp(-t / 300) + 0.4 * np.exp(-t / 20_000) - 0.05 * (t >= steps // 2)
    losses = trend * np.exp(rng.normal(0, 0.12, steps))
    evals = [EvalPoint(s, float(trend[s - 1]) + 0.03, float(trend[s - 1])) for s in range(1000, steps + 1, 1000)]
    return losses, evals


def naive_refresh(losses: np.ndarray, evals: list[EvalPoint]) -> str:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=np.arange(len(losses)), y=losses, mode="lines", name="minibatch loss"))
    fig.add_trace(go.Scatter(x=[e.step for e in evals], y=[e.dev_loss for e in evals], name="dev loss"))
    fig.update_yaxes(type="log")
    return fig.to_json()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=200_000)
    args = p.parse_args()
    print(machine())
    losses, evals = fake_run(args.steps)
    series = DecimatedSeries(4096)
    for i in range(0, len(losses), 1000):  # as the engine fills it: one chunk per evaluation
        series.extend(i, losses[i : i + 1000])
    best = min(evals, key=lambda e: e.dev_loss)

    def ours() -> str:
        return train_chart(series.view(), evals, best.step, best.dev_loss).to_json()

    base_t, ours_t, base_kb, ours_kb = [], [], 0, 0
    naive_refresh(losses, evals), ours()  # warm-up: plotly's validators load lazily on first use
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        base_kb = len(naive_refresh(losses, evals)) / 1024
        base_t.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        ours_kb = len(ours()) / 1024
        ours_t.append((time.perf_counter() - t0) * 1e3)
    table(
        f"Train-page refresh, {args.steps:,}-step history ({len(series.view()):,} buckets), {len(evals)} evals",
        [
            ("server time, ms (median)", statistics.median(base_t), statistics.median(ours_t), "ms"),
            ("figure JSON sent to the browser, KiB", base_kb, ours_kb, "KiB"),
        ],
    )


if __name__ == "__main__":
    main()
