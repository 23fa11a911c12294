"""What a run's losses say, in words: the Train vs dev verdict reads the whole picture, not only the gap."""

from __future__ import annotations

import math

from mlp_core.job import FINISHED

OVERFIT_GAP = 0.1  # nats of dev above train that count as overfitting


def fit_advice(train: float, dev: float, uniform: float, bigram: float | None = None) -> tuple[str, str]:
    """(level, text) for full-split train and dev losses: level is "error", "warning" or "success".

    The order matters: a model worse than uniform guessing has not learned at all, and its train/dev gap is
    noise between two failures; calling it overfitting would send the learner to dropout and weight decay
    when the learning rate is what broke it.
    """
    gap = dev - train
    if not (math.isfinite(train) and math.isfinite(dev)):
        return "error", (
            "The losses are not finite: training **diverged**. Lower the learning rate (10x), then try again."
        )
    if max(train, dev) > uniform:
        return "error", (
            f"Train {train:.2f} and dev {dev:.2f}: **worse than guessing uniformly** ({uniform:.2f}). This is not "
            "overfitting: the model never learned. The **learning rate** is most likely too high (the loss jumps "
            "instead of descending): try 10x lower, or find one on the LR sweep page. (A run far too short for its "
            "rate ends here too: the Train chart tells them apart.)"
        )
    if bigram is not None and dev > bigram and gap <= OVERFIT_GAP:
        return "warning", (
            f"Dev {dev:.3f} is worse than a bigram count model ({bigram:.2f}): the MLP is **far from trained**. "
            "Train longer, or check the learning rate (LR sweep page)."
        )
    if gap > OVERFIT_GAP:
        return "warning", (
            f"Dev is {gap:.2f} nats above train: the model starts to **overfit** (it memorises the training "
            "names). More data, dropout, weight decay or a smaller model help; stopping at the best dev step too."
        )
    return "success", (
        f"Train and dev are close (gap {gap:+.3f}): **not overfitting**. As in the lecture, this means the model "
        "is probably still underfitting: a bigger model (embedding, hidden size, context) can do better."
    )


def is_loaded(snap) -> bool:
    """A model that came in trained (a sweep's best, a checkpoint) and has not trained here: no curve of its own."""
    return snap.final and snap.step > 0 and len(snap.train_history) == 0


def loaded_story(snap, dataset_label: str) -> str:
    """What a loaded model is, for pages that would otherwise wait for a curve that never comes."""
    losses = snap.final_losses or {}
    known = [f"{k.removesuffix('_loss')} **{v:.4f}**" for k, v in losses.items() if v is not None and math.isfinite(v)]
    numbers = f" Its losses on the full splits: {', '.join(known)}." if known else ""
    return (
        f"**A loaded model** ({dataset_label}): trained for {snap.step:,} steps elsewhere, not in this dashboard, so "
        f"it has no loss curve or evaluations here.{numbers} Sample from it, look at its embeddings, or keep "
        "training it (Checkpoints)."
    )


def progress_status(snap, label: str) -> tuple[float, str]:
    """The sidebar's progress bar of a run: its fill and its text, which must say the same thing.

    A run that finished before its planned steps (early stopping; a loaded checkpoint or a sweep's best, saved
    part-way) is done: a bar at step / planned (200 / 3,000 read "finished" beside a bar at 7 %) contradicted
    its status, so the bar is full and the text says where it ended. Stopped, diverged and interrupted runs
    keep the bar at step / planned: their plan was cut short, and the text says so in its status word.
    """
    text = f"**{snap.status}** {label} · step {snap.step:,} / {snap.total_steps:,}"
    if snap.status == FINISHED and snap.step < snap.total_steps:
        return 1.0, f"**{snap.status}** {label} · step {snap.step:,} (ended before the planned {snap.total_steps:,})"
    return snap.progress, text


SHORT_TRIALS = 10  # trials this many times shorter than the run they tune: their ranking may not hold


def sweep_verdict(
    best_dev: float | None,
    trial_steps: int,
    run_steps: int,
    reference_dev: float | None,
    uniform: float,
    trial_devs: list[float],
) -> list[tuple[str, str]]:
    """(level, text) notes on what a finished sweep can and cannot say, most important first."""
    notes = []
    if trial_steps and run_steps >= SHORT_TRIALS * trial_steps:
        notes.append(
            (
                "warning",
                f"The trials ran **{trial_steps:,} steps**, {run_steps / trial_steps:,.0f}x fewer than the sidebar's "
                f"run ({run_steps:,}). A setting that wins a short race (a high learning rate, no decay) often loses "
                "a long one: take these as hints, or sweep with more steps per trial.",
            )
        )
    worse = sum(d > uniform for d in trial_devs)
    if worse:
        notes.append(
            (
                "warning",
                f"{worse} of {len(trial_devs)} trials ended worse than guessing uniformly ({uniform:.2f}): they "
                "learned nothing in their steps, so they say little about their settings.",
            )
        )
    if best_dev is not None and reference_dev is not None and best_dev >= reference_dev:
        notes.append(
            (
                "error",
                f"**No trial beats the reference**: the best trial's dev {best_dev:.4f} is no better than the "
                f"sidebar's own run ({reference_dev:.4f}). Keep your settings; 'Use these settings' would make them "
                "worse.",
            )
        )
    elif best_dev is not None and reference_dev is None:
        notes.append(
            (
                "info",
                "No reference yet: train the sidebar's settings (Start) to see whether the best trial beats them.",
            )
        )
    return notes
