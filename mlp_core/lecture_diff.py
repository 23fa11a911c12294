"""What a config changes from the lecture's final cell, one change at a time, and the config as code to copy.

The lecture's run is `TrainConfig()` (block 3, embedding 10, hidden 200, SGD lr 0.1 then 0.01, batch 32,
200k steps: dev 2.17). `differences` lists each setting a config departs from it in, grouped so that one
change is one idea (the optimizer with its learning rate, a schedule with its knobs); `ablation` is the config
with one of those changes reverted, to train side by side and see what the change bought. `cli_command` and
`notebook_cell` give the same settings as a command line and as a cell that trains with this package.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import PRESETS, TrainConfig, preset_of, to_dict

LECTURE = TrainConfig()
# Measured here (bench/): the lecture's own config run 5x longer. A pure-lecture improvement, for contrast.
LECTURE_LONG_STEPS, LECTURE_LONG_DEV = 1_000_000, 2.1218

# Settings that change what is learned, in the order a reader meets them; each group is one change.
GROUPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("context", ("block_size",), "characters of context the model sees"),
    ("embedding", ("emb_dim",), "size of each character's vector"),
    ("hidden size", ("hidden",), "tanh neurons"),
    ("hidden layers", ("hidden_layers",), "depth"),
    ("initialisation", ("init",), "scaled: the next lecture's fixes (no saturated tanh, first loss ~3.3)"),
    ("normalisation", ("norm",), "BatchNorm before each tanh (makemore part 3)"),
    ("dropout", ("dropout",), "regularisation"),
    ("optimizer", ("optimizer", "lr"), "the update rule and its learning rate"),
    (
        "lr schedule",
        ("schedule", "decay_at", "decay_factor", "warmup_steps", "min_lr_ratio"),
        "how the learning rate changes over the run",
    ),
    ("weight decay", ("weight_decay",), "regularisation"),
    ("batch size", ("batch_size",), "examples per step: less noisy gradients, more work per step"),
    ("steps", ("steps",), "length of the run"),
    ("precision", ("precision",), "bf16 autocast: faster steps on a CPU with bf16 units, float32 weights"),
)
# Not differences in what is learned: when to evaluate, guard rails, seeds and where it runs.
BOOKKEEPING = ("eval_every", "early_stop_patience", "stop_on_divergence", "seed", "split_seed", "device")


@dataclass(frozen=True)
class Difference:
    """One change from the lecture: its name, the settings it touches, and both sides as text."""

    name: str
    fields: tuple[str, ...]
    lecture: str
    value: str
    why: str


def _show(config: TrainConfig, names: tuple[str, ...]) -> str:
    """One side of a change as a reader says it: "AdamW, lr 0.03", "cosine to 0, warm-up 100", "block 4"."""
    if names[0] == "optimizer":
        return f"{'SGD' if config.optimizer == 'sgd' else 'AdamW'}, lr {config.lr:g}"
    if names[0] == "schedule":
        warm = f", warm-up {config.warmup_steps:,}" if config.warmup_steps else ""
        if config.schedule == "step":
            return f"step: lr x{config.decay_factor:g} at {config.decay_at:.0%}{warm}"
        if config.schedule == "cosine":
            return f"cosine to {config.min_lr_ratio:g} x lr{warm}"
        return f"constant{warm}"
    value = getattr(config, names[0])
    return f"{value:,}" if isinstance(value, int) else f"{value:g}" if isinstance(value, float) else str(value)


def differences(config: TrainConfig) -> list[Difference]:
    """Every group of settings in which config departs from the lecture's final cell, in reading order."""
    out = []
    for name, names, why in GROUPS:
        if all(getattr(config, n) == getattr(LECTURE, n) for n in names):
            continue
        out.append(
            Difference(
                name,
                names,
                _show(LECTURE, names),
                _show(config, names),
                why,
            )
        )
    return out


def ablation(config: TrainConfig, name: str) -> TrainConfig:
    """config with one change (a group's name, as in `differences`) reverted to the lecture's values."""
    group = next((names for n, names, _ in GROUPS if n == name), None)
    if group is None:
        raise ValueError(f"unknown change {name!r}; one of {', '.join(n for n, _, _ in GROUPS)}")
    return config.replace(**{n: getattr(LECTURE, n) for n in group})


# ---------------------------------------------------------------------- as code
def cli_command(config: TrainConfig, data_path: str | None = None) -> str:
    """The `python -m mlp_core train` command that trains exactly config (from its preset when it is one)."""
    name = preset_of(config.replace(device=PRESETS["lecture"].device))
    base = PRESETS[name] if name != "custom" else _nearest_preset(config)
    parts = ["python -m mlp_core train"]
    base_name = next(n for n, c in PRESETS.items() if c == base)
    if base_name != "lecture":
        parts.append(f"--preset {base_name}")
    for field, value in to_dict(config).items():
        if value != getattr(base, field):
            parts.append(
                f"--{field.replace('_', '-')} {value:g}"
                if isinstance(value, float)
                else f"--{field.replace('_', '-')} {value}"
            )
    if data_path:
        parts.append(f"--data {data_path}")
    return " ".join(parts)


def _nearest_preset(config: TrainConfig) -> TrainConfig:
    """The preset config differs least from (fewest flags to type)."""
    return min(
        PRESETS.values(),
        key=lambda p: sum(a != b for a, b in zip(to_dict(p).values(), to_dict(config).values(), strict=True)),
    )


def notebook_cell(config: TrainConfig, data_path: str | None = None) -> str:
    """A notebook cell that trains config with this package; the lecture's variables named in comments."""
    changed = {k: v for k, v in to_dict(config).items() if v != getattr(LECTURE, k)}
    args = "".join(f"\n    {k}={v!r}," for k, v in changed.items())
    words = f"load_words({data_path!r})" if data_path else "default_words()  # the lecture's names.txt"
    diffs = differences(config)
    said = "\n".join(f"#   {d.name}: {d.lecture} -> {d.value}" for d in diffs) or "#   none: this is the lecture's cell"
    return f"""# makemore part 2, the final cell as a config (C: embedding table, W1/b1: hidden layer, W2/b2: logits).
# What differs from the lecture's cell:
{said}
from mlp_core.config import TrainConfig
from mlp_core.data import default_words, load_words, make_dataset
from mlp_core.trainer import Trainer

config = TrainConfig({args}{chr(10) if args else ""})
words = {words}
ds = make_dataset(words, block_size=config.block_size, split_seed=config.split_seed)  # Xtr, Ytr / Xdev, Ydev / Xte, Yte
trainer = Trainer(config, ds)  # C, W1, b1, W2, b2 = trainer.model's parameters
while not trainer.finished:
    trainer.advance(config.eval_every)  # minibatch steps: forward, loss, backward, update
print("train", trainer.evaluate("train"), "dev", trainer.evaluate("dev"))
"""
