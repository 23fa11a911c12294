"""The synchronous training engine: minibatch steps, schedules, evaluation, histories, best weights.

The hot loop never calls `.item()`: step losses stay on the device and come back to the host once per
chunk, where they are checked for NaN/inf and appended to a bounded history. A chunk ends at every
evaluation point, so dev losses are taken at exact multiples of `eval_every`.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .history import DecimatedSeries
from .model import EVAL_ROWS, MLP, build_model, check_memory, resolve_device

if TYPE_CHECKING:
    from .data import NamesDataset

EVAL_BATCH = EVAL_ROWS  # examples per forward pass when evaluating a whole split (bounds memory)
MAX_EMBEDDING_SNAPSHOTS = 64
GATHER_ELEMENTS = 1 << 22  # token ids gathered at once for a slice of training steps (32 MiB)


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
        check_memory(self.dataset.vocab.size, self.config)
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
        self.model.dropout_generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 1)
        self._batch_gen = torch.Generator(device=self.device).manual_seed(self.config.seed)
        self.train_history = DecimatedSeries(self.history_capacity)
        self.lr_history = DecimatedSeries(self.history_capacity)
        self.evals: list[EvalPoint] = []
        self.best_dev = math.inf
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.diverged_at: int | None = None
        self._last_good_state: dict[str, torch.Tensor] | None = _clone_state(self.model)
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
        chunk_start = _clone_state(self.model)
        t0 = time.perf_counter()
        losses = self.train_steps(n)
        losses_host = losses.float().cpu().numpy()  # the chunk's one host sync
        self.train_seconds += time.perf_counter() - t0
        bad = ~np.isfinite(losses_host)
        if not bad.any() and not _all_finite(self.model.state_dict()):
            bad[-1] = True  # finite losses but the last update overflowed the weights
        if bad.any():
            first_bad = int(np.argmax(bad))
            # Back to the last weights known to give a finite loss: this chunk's start if its first
            # step was still finite, else the start of the last clean chunk.
            last_good = chunk_start if first_bad > 0 and _all_finite(chunk_start) else self._last_good_state
            if last_good is not None:
                self.model.load_state_dict(last_good)
            self.train_history.extend(self.step, losses_host[:first_bad])
            self.diverged_at = self.step + first_bad
            self.step += first_bad
            return ChunkResult(first_bad, float(losses_host[first_bad]), diverged=True)
        self._last_good_state = chunk_start
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
        model = self.model
        model.train()
        update = _FastUpdate(self.optimizer)
        params = update.params
        x_train, y_train = self._x_train, self._y_train
        batch = self.config.batch_size
        # All of the chunk's minibatch indices in one call: fewer kernel launches. Sampling is with
        # replacement, as in the lecture, so a batch larger than the training split is allowed.
        ix_all = torch.randint(0, len(x_train), (n, batch), device=self.device, generator=self._batch_gen)
        # Gather the examples a slice of steps at a time: one big gather beats one per step, and
        # bounding the slice keeps memory flat for huge batches.
        per_gather = max(1, GATHER_ELEMENTS // (batch * x_train.shape[1]))
        forward = model.forward  # skips nn.Module.__call__'s hook machinery: no hooks are used here
        losses = []
        no_grad = torch.no_grad()
        with _spare_a_core():
            for start in range(0, n, per_gather):
                ix = ix_all[start : start + per_gather]
                xs, ys = x_train[ix], y_train[ix]
                for j in range(len(ix)):
                    i = start + j
                    lr = self.lr_at(self.step + i) if lrs is None else lrs[i]
                    loss = F.cross_entropy(forward(xs[j]), ys[j])
                    # autograd.grad instead of backward(): no .grad to accumulate into and zero again.
                    grads = torch.autograd.grad(loss, params)
                    with no_grad:
                        update(grads, lr)
                    losses.append(loss.detach())
        return torch.stack(losses) if losses else torch.empty(0, device=self.device)

    # ------------------------------------------------------------------ evaluation
    @torch.inference_mode()
    def evaluate(self, split: str, model: MLP | None = None) -> float:
        """Mean loss over a whole split ('train', 'dev', 'test' or 'train_subset'), in eval mode.

        Many examples share a context (dev at block 3: 22,902 examples, 2,969 contexts), and the loss
        only depends on the context's logits and how often each next character follows it. So we run
        the model once per distinct context and weight by those counts: the same number, up to float
        rounding, for 2-8x less work.
        """
        model = model or self.model
        contexts, counts = self._eval_counts(split)
        if len(contexts) == 0:
            return math.nan
        was_training = model.training
        model.eval()
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        with _spare_a_core():
            for i in range(0, len(contexts), EVAL_BATCH):
                logits = model(contexts[i : i + EVAL_BATCH]).float()
                c = counts[i : i + EVAL_BATCH]
                # sum over examples of -log softmax(logits)[y] = sum_ctx (n_ctx * logsumexp - sum_y n_ctx,y * logit_y)
                total += (c.sum(1) * torch.logsumexp(logits, 1)).sum() - (c * logits).sum()
        model.train(was_training)
        return float(total) / float(counts.sum())

    def _eval_counts(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(distinct contexts of a split, (n_contexts, vocab) counts of the character that follows each), cached."""
        cache = self.__dict__.setdefault("_eval_cache", {})
        if split not in cache:
            x, y = self._eval_sets[split]
            contexts, inverse = torch.unique(x, dim=0, return_inverse=True)
            counts = torch.zeros(len(contexts), self.dataset.vocab.size, device=self.device)
            counts.index_put_((inverse, y), torch.ones_like(y, dtype=counts.dtype), accumulate=True)
            cache[split] = (contexts, counts)
        return cache[split]

    def evaluate_point(self) -> EvalPoint:
        """Dev loss (and a train-subset loss) now; keeps the best-dev weights."""
        point = EvalPoint(self.step, self.evaluate("dev"), self.evaluate("train_subset"))
        self.evals.append(point)
        if point.dev_loss < self.best_dev:
            self.best_dev, self.best_step = point.dev_loss, self.step
            self.best_state = _clone_state(self.model)
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


def _clone_state(model: MLP) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _all_finite(state: dict[str, torch.Tensor]) -> bool:
    return bool(torch.stack([torch.isfinite(v).all() for v in state.values()]).all())  # one host sync


def _make_optimizer(model: MLP, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    # Embeddings and biases are not decayed: weight decay is meant for the weight matrices.
    decay = [p for name, p in model.named_parameters() if name.startswith("W")]
    no_decay = [p for name, p in model.named_parameters() if not name.startswith("W")]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99), fused=device.type in ("cuda", "cpu"))


@contextlib.contextmanager
def _spare_a_core() -> Iterator[None]:
    """Use at most cpu_count - 1 intra-op threads while training or evaluating; restore the setting after.

    Measured on the 2-core CI machine: with both cores in torch's OpenMP team, any other busy process
    (a test runner, the dashboard's server, the browser) stalls every parallel op and a step gets
    10-20x slower (fast preset: 20 s instead of 1.2 s); on an idle machine 2 threads gained only
    0-10% at our sizes. One core left free costs little and removes that cliff.
    """
    before = torch.get_num_threads()
    cap = max(1, (os.cpu_count() or 1) - 1)
    if before <= cap:
        yield
        return
    torch.set_num_threads(cap)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _FastUpdate:
    """One optimizer step from given grads, through the optimizer's own kernels but without torch.optim's
    per-call Python overhead (profiler scopes, grouping, zero_grad: ~80 us, a third of a lecture-size step).

    Same math and the same state tensors (optimizer.state), so optimizer.state_dict() stays valid and a
    run matches `optimizer.step()` bit for bit. Anything else (momentum, non-fused AdamW) takes the
    ordinary optimizer.step().
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.groups = optimizer.param_groups
        self.params: list[torch.Tensor] = [p for g in self.groups for p in g["params"]]
        if isinstance(optimizer, torch.optim.SGD):
            fast = all(g["momentum"] == 0 and not g["maximize"] for g in self.groups)
            self._apply = self._sgd if fast else self._generic
        elif isinstance(optimizer, torch.optim.AdamW):
            fast = all(g["fused"] and not g["amsgrad"] and not g["maximize"] for g in self.groups)
            self._apply = self._adamw if fast else self._generic
        else:
            self._apply = self._generic
        self._adam_state: list[tuple[list, list, list, list, dict]] | None = None

    def __call__(self, grads: Sequence[torch.Tensor], lr: float) -> None:
        self._apply(list(grads), lr)

    def _sgd(self, grads: list[torch.Tensor], lr: float) -> None:
        i = 0
        for g in self.groups:
            ps = g["params"]
            gs = grads[i : i + len(ps)]
            i += len(ps)
            g["lr"] = lr
            if g["weight_decay"]:
                gs = torch._foreach_add(gs, ps, alpha=g["weight_decay"])
            torch._foreach_add_(ps, gs, alpha=-lr)

    def _adamw(self, grads: list[torch.Tensor], lr: float) -> None:
        if self._adam_state is None:
            if any(p not in self.optimizer.state for p in self.params):
                # The first step ever: let torch create the state (exp_avg, exp_avg_sq, step) its own way.
                self._generic(grads, lr)
                return
            self._adam_state = []
            i = 0
            for g in self.groups:
                ps = g["params"]
                states = [self.optimizer.state[p] for p in ps]
                self._adam_state.append(
                    (
                        ps,
                        [s["exp_avg"] for s in states],
                        [s["exp_avg_sq"] for s in states],
                        [s["step"] for s in states],
                        g,
                    )
                )
                i += len(ps)
        i = 0
        for ps, m, v, steps, g in self._adam_state:
            gs = grads[i : i + len(ps)]
            i += len(ps)
            g["lr"] = lr
            beta1, beta2 = g["betas"]
            torch._foreach_add_(steps, 1)
            torch._fused_adamw_(
                ps,
                gs,
                m,
                v,
                [],
                steps,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=g["weight_decay"],
                eps=g["eps"],
                amsgrad=False,
                maximize=False,
            )

    def _generic(self, grads: list[torch.Tensor], lr: float) -> None:
        for g in self.groups:
            g["lr"] = lr
        for p, grad in zip(self.params, grads, strict=True):
            p.grad = grad
        self.optimizer.step()
        for p in self.params:
            p.grad = None
