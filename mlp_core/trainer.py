"""The synchronous training engine: minibatch steps, schedules, evaluation, histories, best weights.

The hot loop never calls `.item()`: step losses stay on the device and come back to the host once per
chunk, where they are checked for NaN/inf and appended to a bounded history. A chunk ends at every
evaluation point, so dev losses are taken at exact multiples of `eval_every`.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from .probes import DiagnosticsPoint, DiagnosticsRecorder

if TYPE_CHECKING:
    from .data import NamesDataset

EVAL_BATCH = EVAL_ROWS  # examples per forward pass when evaluating a whole split (bounds memory)
MAX_EMBEDDING_SNAPSHOTS = 64
HISTORY_CAPACITY = 4096  # buckets of the train-loss history (a job's mirror of it uses the same)
GATHER_ELEMENTS = 1 << 22  # token ids gathered at once for a slice of training steps (32 MiB)
# Consecutive steps with a minibatch loss above uniform guessing (ln V) before the run is flagged. Measured on
# names.txt: the lecture's init stays above ln 27 for its first 690 steps at lr 0.1 and 2,033 at lr 1.0 (and
# then trains fine), so a shorter window would cry wolf on healthy runs; lr 100 never gets below it.
UNIFORM_PATIENCE = 3000


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
    # The chunk's per-step losses as recorded in train_history (starting at the chunk's first step): a job
    # mirrors the history in another process from these.
    losses: np.ndarray | None = None


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
    history_capacity: int = HISTORY_CAPACITY
    # Probe activations, gradients and update sizes every this many steps (and at step 0, the init check)
    # into `self.diagnostics`; None: at every evaluation point; 0: off.
    diagnostics_every: int | None = None
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
        # Guard rails: `alert` says what looks wrong while the run goes on; `stop_reason` ends the run
        # (early stopping, or worse than uniform with config.stop_on_divergence).
        self.alert = ""
        self.stop_reason: str | None = None
        self.uniform_loss = math.log(self.dataset.vocab.size)
        self._above_uniform = 0  # consecutive steps with a loss above uniform_loss
        # The last weights known to give finite losses, and their step (a rollback must say where it went).
        self._last_good_state: dict[str, torch.Tensor] | None = _clone_state(self.model)
        self._last_good_step = self.step
        self.embedding_snapshots: list[EmbeddingSnapshot] = []
        self._snapshot_every = max(1, self.config.steps // MAX_EMBEDDING_SNAPSHOTS)
        self._next_snapshot_step = 0
        self.train_seconds = 0.0
        self._take_embedding_snapshot()
        every = self.config.eval_every if self.diagnostics_every is None else self.diagnostics_every
        self._diagnostics = DiagnosticsRecorder(self.dataset, every)
        self.diagnostics: list[DiagnosticsPoint] = self._diagnostics.points  # bounded; the same list all run
        self._diagnostics.maybe_record(self.model, self.step, self.lr_at(self.step))  # step 0: the init check

    # ------------------------------------------------------------------ schedule
    def lr_at(self, step: int) -> float:
        """Learning rate for the step with this 0-based index."""
        return lr_at(self.config, step)

    # ------------------------------------------------------------------ training
    @property
    def finished(self) -> bool:
        return self.step >= self.config.steps or self.diverged_at is not None or self.stop_reason is not None

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
            if first_bad > 0 and _all_finite(chunk_start):
                kept_state, kept_step = chunk_start, self.step
            else:
                kept_state, kept_step = self._last_good_state, self._last_good_step
            self.model.load_state_dict(kept_state)
            # The losses seen on the way to the blow-up stay in the history (they show what happened) ...
            self.train_history.extend(self.step, losses_host[:first_bad])
            self.diverged_at = self.step + first_bad
            # ... but `step` is that of the weights kept, so a checkpoint and the lr schedule resume there.
            self.step = kept_step
            return ChunkResult(first_bad, float(losses_host[first_bad]), diverged=True, losses=losses_host[:first_bad])
        self._last_good_state, self._last_good_step = chunk_start, self.step
        lrs = np.array([self.lr_at(s) for s in range(self.step, self.step + n)])
        self.train_history.extend(self.step, losses_host)
        self.lr_history.extend(self.step, lrs)
        self.step += n
        result = ChunkResult(n, float(losses_host[-1]), losses=losses_host)
        self._watch_uniform(losses_host)
        if self.step % self.config.eval_every == 0 or self.step == self.config.steps:
            result.evaluated = self.evaluate_point()
            self._check_early_stop()
        if self.step >= self._next_snapshot_step or self.step == self.config.steps:
            self._take_embedding_snapshot()
        self._diagnostics.maybe_record(self.model, self.step, self.lr_at(self.step))
        return result

    def _watch_uniform(self, losses: np.ndarray) -> None:
        """Alert (and with stop_on_divergence, stop) once the loss stays worse than uniform guessing."""
        above = losses > self.uniform_loss
        below = np.flatnonzero(~above)
        self._above_uniform = self._above_uniform + len(losses) if len(below) == 0 else len(losses) - 1 - below[-1]
        if self._above_uniform < UNIFORM_PATIENCE:
            self.alert = ""
            return
        self.alert = (
            f"the training loss has been above {self.uniform_loss:.2f} (guessing uniformly among "
            f"{self.dataset.vocab.size} characters) for {self._above_uniform:,} steps: try a lower learning rate"
        )
        if self.config.stop_on_divergence:
            self.stop_reason = f"stopped at step {self.step:,}: {self.alert}"

    def worse_than_uniform(self) -> str | None:
        """Why a run that reached its last step did not succeed: its last dev loss is worse than guessing
        uniformly (ln V). None when it is not (or when it never evaluated)."""
        if not self.evals or not self.evals[-1].dev_loss > self.uniform_loss:
            return None
        dev = self.evals[-1].dev_loss
        history = self.train_history.view()
        start = float(history.mean[0]) if len(history.mean) else math.nan
        worse = (
            f"ended worse than guessing: dev loss {dev:.2f} at step {self.evals[-1].step:,} is above "
            f"{self.uniform_loss:.2f}, the loss of guessing uniformly among {self.dataset.vocab.size} characters"
        )
        if not dev < start:  # no better than where it started: the steps jump instead of descending
            return (
                f"{worse}, and no better than its first loss ({start:.2f}). The model learned nothing usable: the "
                f"learning rate ({self.config.lr:g}) is most likely too high, try 10x lower (the LR sweep page finds "
                "a good one)"
            )
        return (
            f"{worse}. It fell from its first loss ({start:.2f}) but not far enough: the run is too short for this "
            f"learning rate ({self.config.lr:g}) and init, or the rate too high to settle; train longer, or find a "
            "better rate on the LR sweep page"
        )

    def _check_early_stop(self) -> None:
        patience = self.config.early_stop_patience
        if not patience or self.best_step is None:
            return
        since = sum(1 for e in self.evals if e.step > self.best_step)
        if since >= patience:
            self.stop_reason = (
                f"early stop at step {self.step:,}: no better dev loss in {since} evaluations; "
                f"the best, {self.best_dev:.4f}, was at step {self.best_step:,}"
            )

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
        # bf16 autocast around the forward only: the backward follows the forward's dtypes, the fp32 master
        # weights get fp32 grads, and the loss (cross_entropy autocasts to fp32) stays comparable.
        precision = contextlib.nullcontext()
        if self.config.precision == "bf16":
            precision = torch.autocast(self.device.type, dtype=torch.bfloat16)
        losses = []
        no_grad = torch.no_grad()
        with _spare_a_core():
            for start in range(0, n, per_gather):
                ix = ix_all[start : start + per_gather]
                xs, ys = x_train[ix], y_train[ix]
                for j in range(len(ix)):
                    i = start + j
                    lr = self.lr_at(self.step + i) if lrs is None else lrs[i]
                    with precision:
                        loss = F.cross_entropy(forward(xs[j]), ys[j])
                    # autograd.grad instead of backward(): no .grad to accumulate into and zero again.
                    grads = torch.autograd.grad(loss, params)
                    with no_grad:
                        update(grads, lr)
                    losses.append(loss.detach())
        return torch.stack(losses) if losses else torch.empty(0, device=self.device)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, split: str, model: MLP | None = None) -> float:
        """Mean loss over a whole split ('train', 'dev', 'test' or 'train_subset'), in eval mode (see `mean_loss`)."""
        return mean_loss(model or self.model, self._eval_counts(split))

    def _eval_counts(self, split: str) -> ContextCounts:
        """`context_counts` of a split, cached."""
        cache = self.__dict__.setdefault("_eval_cache", {})
        if split not in cache:
            cache[split] = context_counts(*self._eval_sets[split], self.dataset.vocab.size)
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
        """A copy of the model with the best dev loss seen so far (the current one if never evaluated), in eval mode.

        Built on the meta device and filled from the saved state, so making it draws nothing from any RNG.
        """
        state = self.best_state if self.best_state is not None else self.model.state_dict()
        return model_from_state(self.dataset.vocab.size, self.config, state, self.device)

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


def lr_at(c: TrainConfig, step: int) -> float:
    """The schedule's learning rate for the step with this 0-based index."""
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


@dataclass(frozen=True)
class ContextCounts:
    """A split as its distinct contexts and, sparsely, how often each character follows each of them.

    Sparse because a dense (contexts x vocabulary) table does not scale to large alphabets: a CJK file
    with 5,000 characters and 100k distinct contexts would need 2 GB; the pairs need memory in
    proportion to the examples, whatever the alphabet.
    """

    contexts: torch.Tensor  # (C, block) distinct contexts, sorted
    totals: torch.Tensor  # (C,) examples with each context
    pair_context: torch.Tensor  # (P,) context index of each distinct (context, next char) pair, ascending
    pair_target: torch.Tensor  # (P,) the next char
    pair_count: torch.Tensor  # (P,) how often that pair occurs

    def to(self, device: torch.device | str) -> ContextCounts:
        return ContextCounts(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))

    @property
    def examples(self) -> float:
        return float(self.totals.sum())


def context_counts(x: torch.Tensor, y: torch.Tensor, vocab_size: int) -> ContextCounts:
    """The `ContextCounts` of a split's examples (x: contexts, y: next characters)."""
    block = x.shape[1] if x.dim() == 2 else 0
    if block > 0 and vocab_size**block < 2**62 and len(x):
        # Each context as one integer in base vocab_size (its digits in order, so sorting the integers sorts
        # the contexts the same way): a 1-D unique is ~50x faster than unique(dim=0), which sorts rows. The
        # first evaluation of every new worker waited on it (~0.1-0.3 s for dev + train subset here).
        weights = vocab_size ** torch.arange(block - 1, -1, -1, device=x.device, dtype=torch.int64)
        keys, inverse = torch.unique((x.long() * weights).sum(1), return_inverse=True)
        contexts = torch.empty((len(keys), block), dtype=x.dtype, device=x.device)
        contexts[inverse] = x  # every row of a context writes the same values
    else:
        contexts, inverse = torch.unique(x, dim=0, return_inverse=True)
    pairs, pair_count = torch.unique(inverse * vocab_size + y, return_counts=True)  # sorted by context
    totals = torch.bincount(inverse, minlength=len(contexts))
    return ContextCounts(contexts, totals, pairs // vocab_size, pairs % vocab_size, pair_count)


@torch.inference_mode()
def mean_loss(model: MLP, counts: ContextCounts) -> float:
    """Mean cross-entropy over a split given as `context_counts`, in eval mode.

    Many examples share a context (dev at block 3: 22,902 examples, 2,969 contexts), and the loss
    only depends on the context's logits and how often each next character follows it. So we run
    the model once per distinct context and weight by those counts: the same number, up to float
    rounding, for 2-8x less work.
    """
    contexts = counts.contexts
    if len(contexts) == 0:
        return math.nan
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=contexts.device, dtype=torch.float64)
    with _spare_a_core():
        for i in range(0, len(contexts), EVAL_BATCH):
            j = min(i + EVAL_BATCH, len(contexts))
            logits = model(contexts[i:j]).float()
            # sum over examples of -log softmax(logits)[y] = sum_ctx n_ctx * logsumexp - sum_pairs n_pair * logit_pair
            a, b = torch.searchsorted(counts.pair_context, torch.tensor([i, j], device=contexts.device)).tolist()
            picked = logits[counts.pair_context[a:b] - i, counts.pair_target[a:b]]
            total += (counts.totals[i:j] * torch.logsumexp(logits, 1)).sum() - (counts.pair_count[a:b] * picked).sum()
    model.train(was_training)
    return float(total) / counts.examples


def model_from_state(
    vocab_size: int, config: TrainConfig, state: dict[str, torch.Tensor], device: torch.device | str = "cpu"
) -> MLP:
    """A model holding a copy of `state`, in eval mode; no init runs, so no RNG is touched."""
    with torch.device("meta"):
        model = MLP(vocab_size, config)
    model.load_state_dict({k: v.detach().to(device, copy=True) for k, v in state.items()}, assign=True)
    return model.eval()


def estimate_step_seconds(config: TrainConfig, dataset: NamesDataset, max_steps: int = 3) -> float:
    """Seconds one training step of this config takes here, timed on 1-3 steps of a throwaway Trainer.

    The first step pays one-off costs (allocation, kernel choice), so it is only the answer when it is
    already slow (over 0.5 s: a UI wants the warning, not precision); otherwise the rest are timed.
    """
    trainer = Trainer(config.replace(steps=max(config.steps, max_steps)), dataset, diagnostics_every=0)
    t0 = time.perf_counter()
    trainer.train_steps(1).cpu()
    first = time.perf_counter() - t0
    if first > 0.5 or max_steps < 2:
        return first
    t0 = time.perf_counter()
    trainer.train_steps(max_steps - 1).cpu()
    return (time.perf_counter() - t0) / (max_steps - 1)


def estimate_run_seconds(config: TrainConfig, dataset: NamesDataset) -> float:
    """A rough wall time for a whole run on this server: steps × a timed step (estimate_step_seconds).

    Timing a step of a big model would itself take long inside the click, so a step that the flop count
    says takes over 50 ms is not timed: that count is close enough to warn. Small steps are timed three
    times and the fastest kept: on a busy 2-core machine one timing was seen 50x off (12 ms for a 0.25 ms
    step), and load only ever makes a timing slower.
    """
    guess = flop_step_seconds(config, dataset.vocab.size)
    if guess > 0.05:
        return config.steps * guess
    return config.steps * min(estimate_step_seconds(config, dataset, max_steps=8) for _ in range(3))


def flop_step_seconds(config: TrainConfig, vocab_size: int) -> float:
    """~6 flops per weight and example (forward and backward) at a conservative one-thread CPU rate."""
    d_in = config.block_size * config.emb_dim
    dense = d_in * config.hidden + (config.hidden_layers - 1) * config.hidden**2 + config.hidden * vocab_size
    gpu = config.device != "cpu" and torch.cuda.is_available()
    return 2e-4 + 6.0 * config.batch_size * dense / (5e12 if gpu else 2e10)  # + the per-step overhead


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
