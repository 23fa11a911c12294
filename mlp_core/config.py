"""One validated config for the model and its training: the CLI, the dashboard and the URL all speak it."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Any

# The notebook's generator seed: `g = torch.Generator().manual_seed(2147483647)`.
LECTURE_SEED = 2147483647


class ConfigError(ValueError):
    """A setting is out of range or of the wrong kind; the message names it."""


@dataclass(frozen=True)
class Bound:
    """The allowed values of one numeric field, with the help text the UI and CLI show."""

    low: float
    high: float
    help: str


# Ranges are generous on purpose: the dashboard lets users try absurd settings, and the
# engine must either run them or refuse them here with a message (never crash deep inside).
BOUNDS: dict[str, Bound] = {
    "block_size": Bound(1, 32, "characters of context the model sees"),
    "emb_dim": Bound(1, 512, "size of each character's embedding vector"),
    "hidden": Bound(1, 4096, "neurons in each tanh hidden layer"),
    "hidden_layers": Bound(1, 4, "number of tanh hidden layers (the lecture: 1)"),
    "dropout": Bound(0.0, 0.9, "dropout on the hidden layer during training"),
    "batch_size": Bound(1, 65536, "examples per minibatch step"),
    "steps": Bound(0, 10_000_000, "minibatch steps to train"),
    "lr": Bound(1e-9, 100.0, "peak learning rate"),
    "weight_decay": Bound(0.0, 10.0, "L2 (sgd) or decoupled (adamw) weight decay"),
    "decay_at": Bound(0.0, 1.0, "sgd step schedule: fraction of the steps after which lr drops"),
    "decay_factor": Bound(0.0, 1.0, "sgd step schedule: the lr multiplier after the drop"),
    "warmup_steps": Bound(0, 1_000_000, "adamw: linear warm-up steps"),
    "min_lr_ratio": Bound(0.0, 1.0, "cosine schedule: final lr as a fraction of lr"),
    "eval_every": Bound(1, 1_000_000, "steps between dev-loss evaluations"),
    "early_stop_patience": Bound(0, 1_000_000, "stop after this many evaluations without a better dev loss (0: never)"),
    "stop_on_divergence": Bound(
        0, 1, "1: stop when the loss stays above uniform guessing (ln V); 0: only alert (NaN/inf always stops)"
    ),
    "seed": Bound(0, 2**63 - 1, "seed for init and minibatch sampling"),
    "split_seed": Bound(0, 2**63 - 1, "seed of random.shuffle before the 80/10/10 split"),
}

CHOICES: dict[str, tuple[str, ...]] = {
    "init": ("lecture", "scaled"),
    "norm": ("none", "batchnorm"),
    "optimizer": ("sgd", "adamw"),
    "schedule": ("step", "cosine", "constant"),
    "device": ("auto", "cpu", "cuda"),
    # bf16: training steps under bf16 autocast (weights, optimizer and evaluation stay float32). On this
    # project's CPU (AVX512-BF16) a 384-wide step's matmuls and tanh run 2-4x faster; see bench/README.md.
    "precision": ("fp32", "bf16"),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run. Defaults are the lecture's final notebook cell."""

    # model
    block_size: int = 3
    emb_dim: int = 10
    hidden: int = 200
    hidden_layers: int = 1
    init: str = "lecture"  # lecture: plain randn (first loss ~26 on names); scaled: next lecture's fixes
    dropout: float = 0.0
    norm: str = "none"  # batchnorm: BatchNorm after each hidden linear layer, before its tanh (makemore part 3)
    # optimisation
    optimizer: str = "sgd"
    lr: float = 0.1
    schedule: str = "step"  # step: lr * decay_factor after decay_at * steps
    decay_at: float = 0.5
    decay_factor: float = 0.1
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 32
    steps: int = 200_000
    eval_every: int = 1000
    early_stop_patience: int = 0  # guard rails: off by default, so the lecture's run is unchanged
    stop_on_divergence: int = 0
    seed: int = LECTURE_SEED
    split_seed: int = 42
    device: str = "auto"
    precision: str = "fp32"  # fp32: the lecture's arithmetic, bit for bit

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in BOUNDS:
                b = BOUNDS[f.name]
                want_int = f.type in ("int", int)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{f.name} must be a number, got {value!r}")
                if want_int and not float(value).is_integer():
                    raise ConfigError(f"{f.name} must be a whole number, got {value!r}")
                if want_int and isinstance(value, float):
                    value = int(value)  # 64.0 is accepted, so store 64: torch refuses float sizes
                    object.__setattr__(self, f.name, value)
                if value != value or not (b.low <= value <= b.high):  # NaN fails too
                    raise ConfigError(
                        f"{f.name} must be between {_fmt(b.low)} and {_fmt(b.high)} ({b.help}), got {value!r}"
                    )
            elif f.name in CHOICES and value not in CHOICES[f.name]:
                raise ConfigError(f"{f.name} must be one of {', '.join(CHOICES[f.name])}, got {value!r}")

    @property
    def lr_decay_step(self) -> int:
        """The step at which the sgd 'step' schedule drops the learning rate.

        Rounded, because int() truncates float error: 0.57 * 100 is 56.99999999999999.
        """
        return math.floor(self.decay_at * self.steps + 0.5)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (and validated)."""
        return from_dict({**to_dict(self), **changes})


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) >= 1 else f"{x:g}"


def field_names() -> list[str]:
    return list(_field_names())


@functools.cache
def _field_names() -> tuple[str, ...]:  # dataclasses.fields() is slow for a call made per widget per page run
    return tuple(f.name for f in fields(TrainConfig))


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain JSON-able dict of the config's fields."""
    return {name: getattr(config, name) for name in field_names()}


def from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a config from a dict (JSON, URL, form), coercing numeric strings; unknown keys are an error."""
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        ftype = known[name].type
        try:
            if ftype in ("int", int) and isinstance(value, str):
                try:
                    value = int(value)  # exact: a 19-digit seed must not round through float
                except ValueError:
                    value = int(float(value)) if float(value).is_integer() else float(value)
            elif ftype in ("int", int) and isinstance(value, float) and value.is_integer():
                value = int(value)
            elif ftype in ("float", float) and isinstance(value, (str, int)) and not isinstance(value, bool):
                value = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        kwargs[name] = value
    return TrainConfig(**kwargs)


# Presets. `lecture` is exactly the notebook's final setup. `fast`, `strong` and `best` are tuned in
# bench/ (see bench/README.md for how they were chosen and what they reach).
PRESETS: dict[str, TrainConfig] = {
    "lecture": TrainConfig(),
    "fast": TrainConfig(
        block_size=4,
        emb_dim=16,
        hidden=128,
        init="scaled",
        optimizer="adamw",
        lr=0.03,
        schedule="cosine",
        warmup_steps=100,
        batch_size=256,
        steps=700,
        eval_every=100,
        seed=1,
    ),
    # WaveNet-lecture quality (dev <= 1.99) in a few seconds: `best`'s recipe without dropout (a short run does
    # not overfit), a wider embedding, a schedule 14x shorter, and bf16 training steps (2x faster on this CPU).
    "strong": TrainConfig(
        block_size=8,
        emb_dim=32,
        hidden=512,
        init="scaled",
        optimizer="adamw",
        lr=5e-3,
        schedule="cosine",
        warmup_steps=200,
        weight_decay=0.1,
        batch_size=256,
        steps=3500,
        eval_every=500,
        seed=1,
        precision="bf16",
    ),
    "best": TrainConfig(
        block_size=8,
        emb_dim=24,
        hidden=512,
        init="scaled",
        dropout=0.1,
        optimizer="adamw",
        lr=3e-3,
        schedule="cosine",
        warmup_steps=500,
        weight_decay=0.1,
        batch_size=256,
        steps=50_000,
        eval_every=2000,
        seed=1,
    ),
}


def preset_of(config: TrainConfig) -> str:
    """The name of the preset this config is exactly, or "custom"."""
    return next((name for name, c in PRESETS.items() if c == config), "custom")


def preset(name: str) -> TrainConfig:
    """A preset by name, with a clear error for an unknown one."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


__all__ = [
    "BOUNDS",
    "CHOICES",
    "PRESETS",
    "ConfigError",
    "TrainConfig",
    "field_names",
    "from_dict",
    "preset",
    "preset_of",
    "to_dict",
]
