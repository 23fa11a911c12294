"""The MLP language model of Bengio et al. 2003, as built in the makemore part 2 lecture."""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig

# BatchNorm's running statistics: PyTorch's default momentum (the lecture's 0.001 suits 200k steps of
# batch 32 but would leave the statistics far from the data in a 1,500-step run).
BN_MOMENTUM = 0.1
BN_EPS = 1e-5


class MLP(nn.Module):
    """Embedding table C -> concatenated context -> tanh hidden layer(s) -> logits.

    Parameter names follow the notebook (C, W1, b1, W2, b2), so a checkpoint reads like the
    lecture. With hidden_layers > 1 the extra tanh layers are Wh{i}, bh{i}, between W1 and W2.
    With norm="batchnorm" (makemore part 3) each hidden linear layer k (1 = W1, 2.. = Wh0..) is
    followed by BatchNorm before its tanh: gain bngain{k}, shift bnbias{k}, running statistics
    bnmean{k}, bnvar{k} (buffers, saved in checkpoints). Its bias is dropped, as in the lecture:
    BatchNorm subtracts the batch mean, so a bias there would get no gradient.
    """

    def __init__(self, vocab_size: int, config: TrainConfig) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = config.block_size
        self.emb_dim = config.emb_dim
        self.dropout = config.dropout
        self.batchnorm = config.norm == "batchnorm"
        self.dropout_generator: torch.Generator | None = None  # the Trainer seeds one per run
        n_in = config.block_size * config.emb_dim
        h = config.hidden
        self.C = nn.Parameter(torch.empty(vocab_size, config.emb_dim))
        self.W1 = nn.Parameter(torch.empty(n_in, h))
        self.register_parameter("b1", None if self.batchnorm else nn.Parameter(torch.empty(h)))
        self.extra_layers = config.hidden_layers - 1
        for i in range(self.extra_layers):
            self.register_parameter(f"Wh{i}", nn.Parameter(torch.empty(h, h)))
            self.register_parameter(f"bh{i}", None if self.batchnorm else nn.Parameter(torch.empty(h)))
        if self.batchnorm:
            for k in range(1, config.hidden_layers + 1):
                self.register_parameter(f"bngain{k}", nn.Parameter(torch.ones(h)))
                self.register_parameter(f"bnbias{k}", nn.Parameter(torch.zeros(h)))
                self.register_buffer(f"bnmean{k}", torch.zeros(h))
                self.register_buffer(f"bnvar{k}", torch.ones(h))
        self.W2 = nn.Parameter(torch.empty(h, vocab_size))
        self.b2 = nn.Parameter(torch.empty(vocab_size))

    def hidden_weights(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """(weight, bias or None) of each hidden linear layer, input side first."""
        return [(self.W1, self.b1)] + [
            (getattr(self, f"Wh{i}"), getattr(self, f"bh{i}")) for i in range(self.extra_layers)
        ]

    def hidden_states(
        self, idx: torch.Tensor, record: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> torch.Tensor:
        """The last hidden layer's output (B, hidden); appends each layer's (pre-activation, tanh) to `record`."""
        emb = self.C[idx]  # (B, block_size, emb_dim)
        h = emb.view(emb.shape[0], -1)
        for k, (w, b) in enumerate(self.hidden_weights(), start=1):
            pre = h @ w if b is None else torch.addmm(b, h, w)
            if self.batchnorm:
                pre = self._batchnorm(pre, k)
            h = torch.tanh(pre)
            if record is not None:
                record.append((pre, h))
        return h

    def _batchnorm(self, pre: torch.Tensor, k: int) -> torch.Tensor:
        mean, var = getattr(self, f"bnmean{k}"), getattr(self, f"bnvar{k}")
        gain, bias = getattr(self, f"bngain{k}"), getattr(self, f"bnbias{k}")
        # One example has no batch statistics (its variance is 0, its unbiased variance undefined):
        # a batch of 1 is normalised with the running statistics and leaves them as they are.
        batch_stats = self.training and pre.shape[0] > 1
        return F.batch_norm(pre, mean, var, gain, bias, training=batch_stats, momentum=BN_MOMENTUM, eps=BN_EPS)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, block_size) of token ids -> logits (B, vocab_size)."""
        h = self.hidden_states(idx)
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

    model.C.copy_(randn_like(model.C))
    for w, b in model.hidden_weights():
        w.copy_(randn_like(w))
        if b is not None:  # batchnorm layers have none (and keep gain 1, shift 0, as built)
            b.copy_(randn_like(b))
        if init == "scaled":
            w.mul_(gain / math.sqrt(w.shape[0]))
            if b is not None:
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
    # batchnorm: no hidden biases, a gain and a shift per hidden unit instead (running stats are buffers)
    per_layer_extra = 2 * h if config.norm == "batchnorm" else h
    hidden = n_in * h + (config.hidden_layers - 1) * h * h + config.hidden_layers * per_layer_extra
    return vocab_size * config.emb_dim + hidden + h * vocab_size + vocab_size


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


def check_memory(vocab_size: int, config: TrainConfig, copies: int = 1) -> None:
    """Refuse, with the numbers, a configuration that would need more memory than allowed (`copies` at once)."""
    limit_gb = float(os.environ.get("MLP_MAX_MEMORY_GB", DEFAULT_MAX_MEMORY_GB))
    need = estimate_memory_bytes(vocab_size, config) * max(1, copies)
    if need > limit_gb * 1e9:
        raise ValueError(
            f"this configuration needs about {need / 1e9:.1f} GB of memory "
            + (f"({copies} trials at once; " if copies > 1 else "(")
            + f"batch {config.batch_size:,}, "
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
