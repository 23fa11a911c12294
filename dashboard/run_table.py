"""The Runs page's table: stored runs (mlp_core.store.RunRecord) as rows a person can sort and compare."""

from __future__ import annotations

import dataclasses
import math
import time

import pandas as pd

from mlp_core.config import ConfigError, field_names, from_dict
from mlp_core.registry import RunSummary
from mlp_core.store import RunRecord, RunStore

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


def summaries(records: list[RunRecord], store: RunStore, live: list[RunSummary], curves: int = 30) -> list[RunSummary]:
    """Stored runs as Train vs dev's rows, oldest first, with the session's live rows in place of their stored
    ones (a live row is newer, labelled "#2 <its stored name>"); the dev curves of the newest `curves` runs come
    from the store's metrics. Every row of a stored run is labelled with its name, so a rename shows here."""
    by_id = {s.run_id: s for s in live if s.run_id}
    rows: list[RunSummary] = []
    for i, r in enumerate(records):  # newest first
        if r.run_id in by_id:  # this session's run: its number, and the name it has in the store (maybe renamed)
            row = by_id.pop(r.run_id)
            rows.append(dataclasses.replace(row, label=f"{row.label} {r.name}".strip()))
            continue
        try:
            config = from_dict({k: v for k, v in r.params.items() if k in set(field_names())})
        except ConfigError:
            continue  # not one of ours
        evals: tuple = ()
        if i < curves:
            evals = tuple((step, dev, math.nan) for step, dev in store.metric_history(r.run_id, "dev_loss"))
        rows.append(
            RunSummary(
                label=f"{r.name} [{r.run_id[:6]}]",  # names repeat; the id tells runs apart
                config=config,
                dataset=r.dataset,
                status=r.status,
                params=int(float(r.params.get("model_params", "0") or 0)),
                steps=r.step,
                seconds=r.seconds if math.isfinite(r.seconds) else 0.0,
                train_loss=r.metrics.get("final_train_loss", math.nan),
                dev_loss=r.metrics.get("final_dev_loss", math.nan),
                test_loss=r.metrics.get("final_test_loss", math.nan),
                losses_step=r.step if "final_dev_loss" in r.metrics else None,
                best_dev=r.best_dev,
                evals=evals,
                run_id=r.run_id,
            )
        )
    rows.reverse()
    rows.extend(s for s in live if s.run_id is None or s.run_id in by_id)  # untracked, or not yet in the store
    return rows


def checkpoint_of(record: RunRecord, store: RunStore, which: str = "current") -> bytes:
    """A stored run's current or best-dev weights as a plain safetensors checkpoint (from its resume checkpoint)."""
    from mlp_core.resume import weights_checkpoint

    meta = {"run_id": record.run_id, "dataset_name": record.dataset, "best_dev_loss": record.best_dev}
    return weights_checkpoint(store.load_resume(record.run_id), which, meta)
