"""The MLP language model of Bengio et al. 2003, as built in the makemore part 2 lecture."""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig


class MLP(nn.Module):
    """Embedding table C -> concatenated context -> tanh hidden layer(s) -> logits.

    Parameter names follow the notebook (C, W1, b1, W2, b2), so a checkpoint reads like the
    lecture. With hidden_layers > 1 the extra tanh layers are Wh{i}, bh{i}, between W1 and W2.
    """

    def __init__(self, vocab_size: int, config: TrainConfig) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = config.block_size
        self.emb_dim = config.emb_dim
        self.dropout = config.dropout
        self.dropout_generator: torch.Generator | None = None  # the Trainer seeds one per run
        n_in = config.block_size * config.emb_dim
        self.C = nn.Parameter(torch.empty(vocab_size, config.emb_dim))
        self.W1 = nn.Parameter(torch.empty(n_in, config.hidden))
        self.b1 = nn.Parameter(torch.empty(config.hidden))
        self.extra_layers = config.hidden_layers - 1
        for i in range(self.extra_layers):
            self.register_parameter(f"Wh{i}", nn.Parameter(torch.empty(config.hidden, config.hidden)))
            self.register_parameter(f"bh{i}", nn.Parameter(torch.empty(config.hidden)))
        self.W2 = nn.Parameter(torch.empty(config.hidden, vocab_size))
        self.b2 = nn.Parameter(torch.empty(vocab_size))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, block_size) of token ids -> logits (B, vocab_size)."""
        emb = self.C[idx]  # (B, block_size, emb_dim)
        h = torch.tanh(torch.addmm(self.b1, emb.view(emb.shape[0], -1), self.W1))
        for i in range(self.extra_layers):
            h = torch.tanh(torch.addmm(getattr(self, f"bh{i}"), h, getattr(self, f"Wh{i}")))
        if self.dropout > 0 and self.training:
            # Masks come from our own generator, never the global RNG: a run is reproducible for
            # its seed, and concurrent jobs in one server cannot disturb each other's streams.
            keep = 1.0 - self.dropout
            h = h * torch.empty_like(h).bernoulli_(keep, generator=self.dropout_generator).div_(keep)
        return torch.addmm(self.b2, h, self.W2)

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(idx), targets)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@torch.no_grad()
def init_weights(model: MLP, init: str, generator: torch.Generator) -> None:
    """Initialise in place, drawing from `generator` in the notebook's order (C, W1, b1, W2, b2).

    lecture: every tensor ~ N(0, 1), as in the notebook; tanh saturates and the first loss is ~26 on names.
    scaled: the next lecture's fixes -- Kaiming-style gain 5/3 / sqrt(fan_in) for tanh layers,
    small biases, and a near-zero output layer so the first loss is close to -log(1/vocab).
    """
    gain = 5 / 3

    def randn_like(p: torch.Tensor) -> torch.Tensor:
        # Draw on the CPU generator, then move: the same seed gives the same weights on any device.
        return torch.randn(p.shape, generator=generator).to(p.device, p.dtype)

    hidden_pairs = [(model.W1, model.b1)] + [
        (getattr(model, f"Wh{i}"), getattr(model, f"bh{i}")) for i in range(model.extra_layers)
    ]
    model.C.copy_(randn_like(model.C))
    for w, b in hidden_pairs:
        w.copy_(randn_like(w))
        b.copy_(randn_like(b))
        if init == "scaled":
            w.mul_(gain / math.sqrt(w.shape[0]))
            b.mul_(0.01)
    model.W2.copy_(randn_like(model.W2))
    model.b2.copy_(randn_like(model.b2))
    if init == "scaled":
        model.W2.mul_(0.01)
        model.b2.zero_()


def build_model(vocab_size: int, config: TrainConfig, device: torch.device | str = "cpu") -> MLP:
    """A freshly initialised model on `device`, seeded by config.seed."""
    model = MLP(vocab_size, config).to(device)
    init_weights(model, config.init, torch.Generator().manual_seed(config.seed))
    return model


def count_params(vocab_size: int, config: TrainConfig) -> int:
    """Parameter count without building the model (11,897 for the lecture config)."""
    n_in = config.block_size * config.emb_dim
    h = config.hidden
    extra = (config.hidden_layers - 1) * (h * h + h)
    return vocab_size * config.emb_dim + n_in * h + h + extra + h * vocab_size + vocab_size


# A run past this estimate is refused before it allocates anything: absurd sliders must not take
# down a shared server (override with MLP_MAX_MEMORY_GB).
DEFAULT_MAX_MEMORY_GB = 4.0
EVAL_ROWS = 32768  # examples per forward pass when evaluating (the trainer's EVAL_BATCH)


def estimate_memory_bytes(vocab_size: int, config: TrainConfig) -> int:
    """Rough upper bound of a run's float32 memory: weights, grads, optimizer state and one step's activations."""
    params = count_params(vocab_size, config)
    optimizer_state = 2 * params if config.optimizer == "adamw" else 0
    per_example = config.block_size * config.emb_dim + 3 * config.hidden * config.hidden_layers + 3 * vocab_size
    activations = max(config.batch_size, EVAL_ROWS) * per_example
    return 4 * (2 * params + optimizer_state + activations)


def check_memory(vocab_size: int, config: TrainConfig) -> None:
    """Refuse, with the numbers, a configuration that would need more memory than allowed."""
    limit_gb = float(os.environ.get("MLP_MAX_MEMORY_GB", DEFAULT_MAX_MEMORY_GB))
    need = estimate_memory_bytes(vocab_size, config)
    if need > limit_gb * 1e9:
        raise ValueError(
            f"this configuration needs about {need / 1e9:.1f} GB of memory (batch {config.batch_size:,}, "
            f"hidden {config.hidden:,} x {config.hidden_layers}, {count_params(vocab_size, config):,} parameters); "
            f"the limit is {limit_gb:g} GB (MLP_MAX_MEMORY_GB): use a smaller batch or model"
        )


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(device)
