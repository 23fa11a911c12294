"""Resume checkpoints: everything a Trainer needs to go on exactly where it stopped, in one safetensors file.

A plain checkpoint (checkpoint.py) holds weights to sample from; a resume checkpoint also holds the optimizer's
moments, every RNG stream (minibatch indices, dropout masks), the step (so the lr schedule's position), the best-dev
weights, the guard rails' counters and the loss histories. Restored into a fresh Trainer it produces, on the CPU,
the same losses step for step as the run that was never interrupted (tests/test_resume.py holds it to that).

Like every file we read, it is parsed without pickle: the tensors by safetensors, the rest as JSON metadata.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import safetensors.torch
import torch

from .checkpoint import CheckpointError, _check_layout, _jsonable, _one_line, _parse_header, _read, write_atomic
from .config import ConfigError, TrainConfig, from_dict, to_dict
from .history import DecimatedSeries
from .trainer import EmbeddingSnapshot, EvalPoint, Trainer, model_from_state

if TYPE_CHECKING:
    from .data import NamesDataset

FORMAT = "mlp_core.resume"
VERSION = "1"
MAX_RESUME_BYTES = 2 * 1024**3  # weights x ~5 (model, best, two AdamW moments) plus histories
MAX_EMBEDDING_BYTES = 32 * 1024**2  # the embedding replay kept in a resume file; past it, the first and last only


class ResumeError(CheckpointError):
    """A resume checkpoint cannot be read or does not fit; one line says why."""


@dataclass
class ResumeState:
    """A Trainer's whole state at a step, as tensors plus JSON-able facts (see `capture` / `restore`)."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    vocab: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # whoever saves it: status, message, dataset, ...

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def config(self) -> TrainConfig:
        return from_dict(self.meta["config"])


# ---------------------------------------------------------------------------- capture / restore
def capture(trainer: Trainer, **extra: Any) -> ResumeState:
    """A consistent copy of the trainer's state, taken between chunks (cheap: tensor copies only)."""
    t: dict[str, torch.Tensor] = {}
    for name, value in trainer.model.state_dict().items():
        t[f"model.{name}"] = value.detach().to("cpu", copy=True)
    if trainer.best_state is not None:
        for name, value in trainer.best_state.items():
            t[f"best.{name}"] = value.detach().to("cpu", copy=True)
    opt = trainer.optimizer.state_dict()
    for index, param_state in opt["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                t[f"opt.{index}.{key}"] = value.detach().to("cpu", copy=True)
    groups = [{k: v for k, v in g.items()} for g in opt["param_groups"]]
    t["rng.batch"] = trainer._batch_gen.get_state()
    if trainer.model.dropout_generator is not None:
        t["rng.dropout"] = trainer.model.dropout_generator.get_state()
    histories = {}
    for name, series in (("train", trainer.train_history), ("lr", trainer.lr_history)):
        arrays, numbers = series.state()
        histories[name] = numbers
        for key, array in arrays.items():
            t[f"hist.{name}.{key}"] = torch.from_numpy(np.ascontiguousarray(array).copy())
    evals = np.array([[e.step, e.dev_loss, e.train_loss] for e in trainer.evals], dtype=np.float64).reshape(-1, 3)
    t["evals"] = torch.from_numpy(evals)
    snaps = trainer.embedding_snapshots
    if snaps and sum(s.weights.nbytes for s in snaps) > MAX_EMBEDDING_BYTES:
        snaps = [snaps[0], snaps[-1]] if len(snaps) > 1 else snaps
    if snaps:
        t["emb.steps"] = torch.tensor([s.step for s in snaps], dtype=torch.int64)
        t["emb.weights"] = torch.from_numpy(np.stack([s.weights for s in snaps]).astype(np.float32))
    meta = {
        "step": trainer.step,
        "config": to_dict(trainer.config),
        "optimizer_groups": groups,
        "histories": histories,
        "best_dev": trainer.best_dev,
        "best_step": trainer.best_step,
        "diverged_at": trainer.diverged_at,
        "alert": trainer.alert,
        "stop_reason": trainer.stop_reason,
        "above_uniform": int(trainer._above_uniform),
        "train_seconds": trainer.train_seconds,
        "snapshot_every": trainer._snapshot_every,
        "next_snapshot_step": trainer._next_snapshot_step,
    }
    return ResumeState(t, meta, tuple(trainer.dataset.vocab.chars), dict(extra))


def restore(state: ResumeState, dataset: NamesDataset, **trainer_kwargs: Any) -> Trainer:
    """A Trainer on `dataset` that goes on exactly where the captured one was."""
    meta, t = state.meta, state.tensors
    config = state.config
    if tuple(dataset.vocab.chars) != tuple(state.vocab):
        raise ResumeError("the dataset's alphabet differs from the one this run was trained on")
    try:
        model_state = _prefixed(t, "model.")
        model = model_from_state(dataset.vocab.size, config, model_state)
        trainer = Trainer(config, dataset, model=model, step=int(meta["step"]), **trainer_kwargs)
        trainer.model.train()
        groups = meta["optimizer_groups"]
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in t.items():
            if name.startswith("opt."):
                _, index, key = name.split(".", 2)
                opt_state.setdefault(int(index), {})[key] = value
        trainer.optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    except (KeyError, RuntimeError, ValueError, ConfigError) as exc:
        raise ResumeError(f"the resume checkpoint does not fit its model: {_one_line(exc)}") from None
    trainer._batch_gen.set_state(t["rng.batch"])
    if "rng.dropout" in t and trainer.model.dropout_generator is not None:
        trainer.model.dropout_generator.set_state(t["rng.dropout"])
    best = _prefixed(t, "best.")
    if best:
        trainer.best_state = {k: v.to(trainer.device) for k, v in best.items()}
    trainer.best_dev = math.inf if meta["best_dev"] is None else float(meta["best_dev"])
    trainer.best_step = meta["best_step"]
    trainer.diverged_at = meta["diverged_at"]
    trainer.alert = meta["alert"] or ""
    trainer.stop_reason = meta["stop_reason"]
    trainer._above_uniform = int(meta["above_uniform"])
    trainer.train_seconds = float(meta["train_seconds"])
    trainer._snapshot_every = int(meta["snapshot_every"])
    trainer._next_snapshot_step = int(meta["next_snapshot_step"])
    for name in ("train", "lr"):
        arrays = {k.split(".", 2)[2]: v.numpy() for k, v in t.items() if k.startswith(f"hist.{name}.")}
        series = DecimatedSeries.from_state(arrays, meta["histories"][name])
        setattr(trainer, f"{name}_history", series)
    trainer.evals = [EvalPoint(int(s), float(d), float(tr)) for s, d, tr in t["evals"].tolist()]
    if "emb.steps" in t:
        trainer.embedding_snapshots = [
            EmbeddingSnapshot(int(s), w.numpy().copy()) for s, w in zip(t["emb.steps"], t["emb.weights"], strict=True)
        ]
    return trainer


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def weights_checkpoint(state: ResumeState, which: str = "current", meta: dict[str, Any] | None = None) -> bytes:
    """The current ("current") or best-dev ("best", when there are any) weights of a resume checkpoint as a plain
    checkpoint (checkpoint.py): what `sample --checkpoint`, the Checkpoints page and MLflow's UI users download."""
    from .checkpoint import checkpoint_bytes
    from .data import Vocab

    best = which == "best" and any(k.startswith("best.") for k in state.tensors)
    weights = _prefixed(state.tensors, "best." if best else "model.")
    vocab = Vocab(state.vocab)
    config = state.config.replace(device="cpu")
    model = model_from_state(vocab.size, config, weights)
    step = state.meta["best_step"] if best else state.step
    return checkpoint_bytes(model, config, vocab, {"step": step, **(meta or {})})


# ---------------------------------------------------------------------------- files
def to_bytes(state: ResumeState) -> bytes:
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "meta": json.dumps(_jsonable(state.meta), allow_nan=False),
        "vocab": json.dumps(list(state.vocab)),
        "extra": json.dumps(_jsonable(state.extra), allow_nan=False),
    }
    tensors = {k: v.contiguous() for k, v in state.tensors.items()}
    return safetensors.torch.save(tensors, metadata=metadata)


def save(path: str | Path, state: ResumeState) -> Path:
    """Write atomically: a crash mid-write leaves the previous resume checkpoint intact."""
    return write_atomic(path, to_bytes(state))


def load(source: str | Path | bytes) -> ResumeState:
    """Read and validate a resume checkpoint (ResumeError with one line when it is not one, or is damaged)."""
    try:
        data = _read(source, limit=MAX_RESUME_BYTES)
        header, start = _parse_header(data)
        _check_layout(header, len(data) - start)
    except ResumeError:
        raise
    except CheckpointError as exc:
        raise ResumeError(f"resume checkpoint: {exc}") from None
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ResumeError("not a resume checkpoint (its metadata has no mlp_core.resume marker)")
    if metadata.get("version") != VERSION:
        raise ResumeError(f"resume checkpoint version {metadata.get('version')!r} is not supported (need {VERSION})")
    try:
        meta = json.loads(metadata["meta"])
        vocab = tuple(json.loads(metadata["vocab"]))
        extra = json.loads(metadata.get("extra", "{}"))
        from_dict(meta["config"])
        tensors = safetensors.torch.load(bytes(data))
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise ResumeError(f"damaged resume checkpoint: {_one_line(exc)}") from None
    except Exception as exc:  # safetensors' own parse error
        raise ResumeError(f"damaged resume checkpoint: {_one_line(exc)}") from None
    if not isinstance(meta, dict) or not isinstance(extra, dict) or "step" not in meta:
        raise ResumeError("damaged resume checkpoint: its metadata is not what was saved")
    return ResumeState(tensors, meta, vocab, extra)


__all__ = ["ResumeError", "ResumeState", "capture", "load", "restore", "save", "to_bytes", "weights_checkpoint"]
