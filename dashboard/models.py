"""Which model the Sample page uses: the current run's latest weights or an uploaded checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlp_core.checkpoint import Checkpoint, CheckpointError, checkpoint_bytes
from mlp_core.data import Vocab
from mlp_core.job import TrainingJob
from mlp_core.model import MLP
from mlp_core.registry import Run

CURRENT, BEST, CHECKPOINT = "current", "best", "checkpoint"
LABELS = {CURRENT: "The current run", BEST: "The run's best-dev weights", CHECKPOINT: "The uploaded checkpoint"}
MAX_STEP = 2**53 - 1  # the largest whole number a browser shows exactly


@dataclass(frozen=True)
class ModelChoice:
    """A model to sample from, its vocabulary, the training words (to tell new names), and a caption.

    held_out_words are the data's dev and test words: a "new" name among them is a real name the model never saw.
    """

    model: MLP
    vocab: Vocab
    train_words: frozenset[str] | None
    caption: str
    held_out_words: frozenset[str] | None = None


def available(run: Run) -> list[str]:
    """The model sources this run offers, current run first."""
    sources = []
    if run.job is not None:
        sources.append(CURRENT)
        if run.job.snapshot().best_step is not None:
            sources.append(BEST)
    if run.checkpoint is not None:
        sources.append(CHECKPOINT)
    return sources


def choose(run: Run, source: str) -> ModelChoice:
    """The model for a source: a CPU copy of the current weights (safe mid-training) or the checkpoint's."""
    if source == CURRENT and run.job is not None:
        job = run.job
        at, snap, ds = job.current_weights(), job.snapshot(), job.dataset
        caption = f"run {run.job_label} at step {at.step:,} ({snap.status}) · {run.dataset_label}"
        return ModelChoice(at.model, ds.vocab, ds.train_word_set, caption, ds.held_out_word_set)
    at = run.job.best_weights() if source == BEST and run.job is not None else None
    if at is not None:
        ds, dev = run.job.dataset, _dev_loss_at(run.job.snapshot(), at.step)
        dev_text = f"dev {dev:.4f}" if dev is not None else "best dev"
        caption = f"run {run.job_label}'s best-dev weights ({dev_text} at step {at.step:,})"
        return ModelChoice(at.model, ds.vocab, ds.train_word_set, caption, ds.held_out_word_set)
    ckpt = run.checkpoint
    if ckpt is None:
        raise ValueError("no model yet: train one (sidebar: Start) or upload a checkpoint")
    # A checkpoint does not carry its training words; compare with this run's data when the vocabularies agree.
    train = held_out = None
    if run.job is not None and run.job.dataset.vocab == ckpt.vocab:
        ds = run.job.dataset
        train, held_out = ds.train_word_set, ds.held_out_word_set
    return ModelChoice(ckpt.model, ckpt.vocab, train, f"checkpoint {run.checkpoint_name}", held_out)


def checkpoint_step(ckpt: Checkpoint) -> int:
    """The step a checkpoint's metadata records (0 if none); CheckpointError if it is not a step."""
    step = ckpt.meta.get("step")
    if step is None:
        return 0
    # The metadata is free-form JSON from the file: a lying step would crash the widgets built from it.
    # (The range test comes first: it also refuses NaN, inf and ints too large for a float.)
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 <= step <= MAX_STEP or step != int(step):
        raise CheckpointError(f"its metadata gives step {step!r}; a step is a whole number from 0 to {MAX_STEP:,}")
    return int(step)


def job_checkpoint(run: Run, job: TrainingJob, label: str, dataset_label: str, best: bool = False) -> bytes:
    """A checkpoint of a job's weights as of now (safe mid-training), with its step and losses in the metadata.

    best=True: the best-dev weights instead. Either way the step is that of the weights in the file (the
    snapshot's step can be ahead of the latest weights the worker sent, by up to half a second of training).
    """
    return job_checkpoint_at(run, job, label, dataset_label, best)[1]


def job_checkpoint_at(
    run: Run, job: TrainingJob, label: str, dataset_label: str, best: bool = False
) -> tuple[int, bytes]:
    """`job_checkpoint` and the step of the weights in it (to name the file after)."""
    snap = job.snapshot()
    at = job.best_weights() if best else None
    if at is not None:
        dev = _dev_loss_at(snap, at.step)
        meta = {"step": at.step, "dataset_name": dataset_label, "run": label, "weights": "best dev"}
        if dev is not None:
            meta.update(dev_loss=dev, best_dev_loss=dev)
        return at.step, checkpoint_bytes(at.model, job.config, job.dataset.vocab, meta=meta)
    at = job.current_weights()
    meta = {"step": at.step, "best_dev_loss": snap.best_dev, "dataset_name": dataset_label, "run": label}
    summary = run.summaries.get(label)
    if summary is not None and summary.losses_step == at.step:  # full-split losses of exactly these weights
        meta.update(train_loss=summary.train_loss, dev_loss=summary.dev_loss)
    return at.step, checkpoint_bytes(at.model, job.config, job.dataset.vocab, meta=meta)


def _dev_loss_at(snap, step: int) -> float | None:
    """The dev loss evaluated at exactly this step, if the run evaluated there."""
    return next((e.dev_loss for e in snap.evals if e.step == step), None)


NOT_RECORDED = {
    "train_loss": "not recorded (saved only when the full-split losses of exactly these weights were computed)",
    "dev_loss": "not recorded (saved only when the full-split losses of exactly these weights were computed)",
    "best_dev_loss": "not recorded (no evaluation before it was saved)",
}


def checkpoint_rows(info: dict) -> list[tuple[str, str]]:
    """A checkpoint's description as (field, text) rows: losses to 4 decimals, a missing value said in words."""
    rows = []
    for name, value in info.items():
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            text = NOT_RECORDED.get(name, "not recorded")
        elif isinstance(value, float) and name.endswith("loss"):
            text = f"{value:.4f}"
        elif isinstance(value, int) and not isinstance(value, bool) and name in ("params", "step"):
            text = f"{value:,}"
        else:
            text = str(value)
        rows.append((name, text))
    return rows
