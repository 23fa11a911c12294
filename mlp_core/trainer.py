"""The synchronous training engine: minibatch steps, schedules, evaluation, histories, best weights.

The hot loop never calls `.item()`: step losses stay on the device and come back to the host once per
chunk, where they are checked for NaN/inf and appended to a bounded history. A chunk ends at every
evaluation point, so dev losses are taken at exact multiples of `eval_every`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .history import DecimatedSeries
from .model import MLP, build_model, resolve_device

if TYPE_CHECKING:
    from .data import NamesDataset

EVAL_BATCH = 32768  # examples per forward pass when evaluating a whole split (bounds memory)
MAX_EMBEDDING_SNAPSHOTS = 64


@dataclass
class EvalPoint:
    step: int
    dev_loss: float
    train_loss: float  # on a fixed train subset the size of dev: cheap, and comparable to dev


@dataclass
class ChunkResult:
    steps_run: int
    last_loss: float
    diverged: bool = False
    evaluated: EvalPoint | None = None


@dataclass
class EmbeddingSnapshot:
    step: int
    weights: np.ndarray  # (vocab, emb_dim), a copy of C


@dataclass
class Trainer:
    """Owns a model, its optimizer and everything recorded about its training."""

    config: TrainConfig
    dataset: NamesDataset
    model: MLP | None = None
    step: int = 0
    history_capacity: int = 4096
    device: torch.device = field(init=False)

    def __post_init__(self) -> None:
        if self.dataset.block_size != self.config.block_size:
            self.dataset = self.dataset.with_block_size(self.config.block_size)
        self.device = resolve_device(self.config.device)
        if self.model is None:
            self.model = build_model(self.dataset.vocab.size, self.config, self.device)
        else:
            self.model.to(self.device)
        self.model.train()
        x_train, y_train = self.dataset.splits["train"]
        if len(x_train) == 0:
            raise ValueError("the training split is empty: the dataset needs more words")
        self._x_train = x_train.to(self.device)
        self._y_train = y_train.to(self.device)
        self._eval_sets = {name: (x.to(self.device), y.to(self.device)) for name, (x, y) in self.dataset.splits.items()}
        # A fixed train subset the size of dev, for a train/dev comparison at every evaluation point.
        subset = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))[
            : max(1, len(self.dataset.splits["dev"][0]))
        ]
        self._eval_sets["train_subset"] = (self._x_train[subset.to(self.device)], self._y_train[subset.to(self.device)])
        self.optimizer = _make_optimizer(self.model, self.config, self.device)
        self._batch_gen = torch.Generator(device=self.device).manual_seed(self.config.seed)
        self.train_history = DecimatedSeries(self.history_capacity)
        self.lr_history = DecimatedSeries(self.history_capacity)
        self.evals: list[EvalPoint] = []
        self.best_dev = math.inf
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.diverged_at: int | None = None
        self.embedding_snapshots: list[EmbeddingSnapshot] = []
        self._snapshot_every = max(1, self.config.steps // MAX_EMBEDDING_SNAPSHOTS)
        self._next_snapshot_step = 0
        self.train_seconds = 0.0
        self._take_embedding_snapshot()

    # ------------------------------------------------------------------ schedule
    def lr_at(self, step: int) -> float:
        """Learning rate for the step with this 0-based index."""
        c = self.config
        if c.warmup_steps and step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        if c.schedule == "step":
            return c.lr * (c.decay_factor if step >= c.lr_decay_step else 1.0)
        if c.schedule == "cosine":
            span = max(1, c.steps - c.warmup_steps)
            progress = min(1.0, (step - c.warmup_steps) / span)
            floor = c.lr * c.min_lr_ratio
            return floor + (c.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        return c.lr

    # ------------------------------------------------------------------ training
    @property
    def finished(self) -> bool:
        return self.step >= self.config.steps or self.diverged_at is not None

    def steps_to_boundary(self) -> int:
        """Steps until the next evaluation point or the end of the run."""
        c = self.config
        to_eval = c.eval_every - self.step % c.eval_every
        to_end = c.steps - self.step
        return max(1, min(to_eval, to_end)) if to_end > 0 else to_eval

    def advance(self, n: int) -> ChunkResult:
        """Run up to n steps, stopping early at an evaluation point; evaluate there.

        Runs past config.steps are allowed (a user's "step x N" after the end) at the final lr.
        """
        n = max(1, min(n, self.steps_to_boundary()))
        good_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        t0 = time.perf_counter()
        losses = self.train_steps(n)
        losses_host = losses.float().cpu().numpy()  # the chunk's one host sync
        self.train_seconds += time.perf_counter() - t0
        bad = ~np.isfinite(losses_host)
        if bad.any():
            first_bad = int(np.argmax(bad))
            # Restore the weights from before this chunk: the last ones known to give a finite loss.
            self.model.load_state_dict(good_state)
            self.train_history.extend(self.step, losses_host[:first_bad])
            self.diverged_at = self.step + first_bad
            self.step += first_bad
            return ChunkResult(first_bad, float(losses_host[first_bad]), diverged=True)
        lrs = np.array([self.lr_at(s) for s in range(self.step, self.step + n)])
        self.train_history.extend(self.step, losses_host)
        self.lr_history.extend(self.step, lrs)
        self.step += n
        result = ChunkResult(n, float(losses_host[-1]))
        if self.step % self.config.eval_every == 0 or self.step == self.config.steps:
            result.evaluated = self.evaluate_point()
        if self.step >= self._next_snapshot_step or self.step == self.config.steps:
            self._take_embedding_snapshot()
        return result

    def train_steps(self, n: int, lrs: Sequence[float] | None = None) -> torch.Tensor:
        """n optimizer steps with no bookkeeping; returns their minibatch losses, still on the device.

        lrs overrides the schedule (the LR range test uses it); self.step is not advanced here.
        """
        model, opt = self.model, self.optimizer
        model.train()
        losses = torch.empty(n, device=self.device)
        n_train = len(self._x_train)
        # All of the chunk's minibatch indices in one call: fewer kernel launches. Sampling is with
        # replacement, as in the lecture, so a batch larger than the training split is allowed.
        ix_all = torch.randint(0, n_train, (n, self.config.batch_size), device=self.device, generator=self._batch_gen)
        groups = opt.param_groups
        for i in range(n):
            lr = self.lr_at(self.step + i) if lrs is None else lrs[i]
            for group in groups:
                group["lr"] = lr
            ix = ix_all[i]
            logits = model(self._x_train[ix])
            loss = F.cross_entropy(logits, self._y_train[ix])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[i] = loss.detach()
        return losses

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, split: str, model: MLP | None = None) -> float:
        """Mean loss over a whole split ('train', 'dev', 'test' or 'train_subset'), in eval mode."""
        model = model or self.model
        x, y = self._eval_sets[split]
        if len(x) == 0:
            return math.nan
        was_training = model.training
        model.eval()
        total = torch.zeros((), device=self.device)
        for i in range(0, len(x), EVAL_BATCH):
            total += F.cross_entropy(model(x[i : i + EVAL_BATCH]), y[i : i + EVAL_BATCH], reduction="sum")
        model.train(was_training)
        return float(total) / len(x)

    def evaluate_point(self) -> EvalPoint:
        """Dev loss (and a train-subset loss) now; keeps the best-dev weights."""
        point = EvalPoint(self.step, self.evaluate("dev"), self.evaluate("train_subset"))
        self.evals.append(point)
        if point.dev_loss < self.best_dev:
            self.best_dev, self.best_step = point.dev_loss, self.step
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return point

    def best_model(self) -> MLP:
        """A copy of the model with the best dev loss seen so far (the current one if never evaluated)."""
        model = build_model(self.dataset.vocab.size, self.config, self.device)
        model.load_state_dict(self.best_state if self.best_state is not None else self.model.state_dict())
        return model

    def _take_embedding_snapshot(self) -> None:
        snaps = self.embedding_snapshots
        if snaps and snaps[-1].step == self.step:
            return
        snaps.append(EmbeddingSnapshot(self.step, self.model.C.detach().float().cpu().numpy().copy()))
        self._next_snapshot_step = self.step + self._snapshot_every
        if len(snaps) > MAX_EMBEDDING_SNAPSHOTS:
            # Thin out evenly, always keeping the first (the init) and the latest.
            keep = [*snaps[:-1:2], snaps[-1]]
            snaps[:] = keep
            self._snapshot_every *= 2


def _make_optimizer(model: MLP, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    # Embeddings and biases are not decayed: weight decay is meant for the weight matrices.
    decay = [p for name, p in model.named_parameters() if name.startswith("W")]
    no_decay = [p for name, p in model.named_parameters() if not name.startswith("W")]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99), fused=device.type in ("cuda", "cpu"))
