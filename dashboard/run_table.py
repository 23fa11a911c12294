"""The Runs page's table: stored runs (mlp_core.store.RunRecord) as rows a person can sort and compare."""

from __future__ import annotations

import math
import time

import pandas as pd

from mlp_core.store import RunRecord

KEY_SETTINGS = ("block_size", "emb_dim", "hidden", "optimizer", "lr", "batch_size", "steps")
SETTING_LABELS = {
    "block_size": "block",
    "emb_dim": "emb",
    "hidden": "hidden",
    "optimizer": "optimizer",
    "lr": "lr",
    "batch_size": "batch",
    "steps": "steps planned",
}


def runs_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run, newest first: what it is, how it ended, and the settings that tell runs apart."""
    rows = []
    for r in records:
        row = {
            "name": r.name,
            "dataset": r.dataset,
            "preset": r.preset or "custom",
            "status": r.status,
            "step": r.step,
            "best dev": _finite(r.best_dev),
            "train/dev gap": _finite(r.gap),
            "duration (s)": _finite(round(r.seconds, 1)) if math.isfinite(r.seconds) else None,
            "started": pd.Timestamp(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.start_time))),
        }
        for key in KEY_SETTINGS:
            value = r.params.get(key, "")
            row[SETTING_LABELS[key]] = _number(value)
        row["run id"] = r.run_id
        rows.append(row)
    columns = ["name", "dataset", "preset", "status", "step", "best dev", "train/dev gap", "duration (s)", "started"]
    columns += [SETTING_LABELS[k] for k in KEY_SETTINGS] + ["run id"]
    return pd.DataFrame(rows, columns=columns)


def _finite(x: float) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _number(value: str) -> object:
    try:
        f = float(value)
    except ValueError:
        return value
    return int(f) if f.is_integer() and "." not in value and "e" not in value.lower() else f
