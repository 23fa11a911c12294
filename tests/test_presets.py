"""Presets: `lecture` is the notebook's final cell exactly; `fast`, `strong` and `best` are valid and actually train."""

import math
import random

import numpy as np
import pytest
import torch

from mlp_core import data
from mlp_core.config import PRESETS, ConfigError, TrainConfig, from_dict, preset, to_dict
from mlp_core.model import build_model, count_params
from mlp_core.trainer import Trainer


def _toy_words(n: int = 400) -> list[str]:
    """Made-up names from a few syllables: enough structure for a loss to fall, no file needed."""
    rng = random.Random(0)
    syllables = ["an", "na", "el", "la", "ma", "ri", "jo", "ka", "li", "sa", "em", "ot", "y", "be"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 3))) for _ in range(n)]


# ---------------------------------------------------------------------------- lecture
def test_lecture_preset_is_the_notebook():
    c = preset("lecture")
    assert c == TrainConfig()
    assert (c.block_size, c.emb_dim, c.hidden, c.hidden_layers, c.batch_size) == (3, 10, 200, 1, 32)
    assert (c.optimizer, c.lr, c.schedule, c.init, c.dropout, c.weight_decay) == ("sgd", 0.1, "step", "lecture", 0, 0)
    assert c.steps == 200_000 and c.lr_decay_step == 100_000
    assert c.lr * c.decay_factor == pytest.approx(0.01)
    assert c.seed == 2147483647 and c.split_seed == 42
    assert count_params(27, c) == 11_897
    assert build_model(27, c).num_params() == 11_897


def test_lecture_init_draws_the_notebooks_weights():
    g = torch.Generator().manual_seed(2147483647)
    expected = {
        "C": torch.randn((27, 10), generator=g),
        "W1": torch.randn((30, 200), generator=g),
        "b1": torch.randn(200, generator=g),
        "W2": torch.randn((200, 27), generator=g),
        "b2": torch.randn(27, generator=g),
    }
    model = build_model(27, preset("lecture"))
    for name, tensor in expected.items():
        assert torch.equal(getattr(model, name).detach(), tensor), name


# ---------------------------------------------------------------------------- fast, strong and best
@pytest.mark.parametrize("name", ["fast", "strong", "best"])
def test_tuned_presets_are_valid_and_round_trip(name):
    c = preset(name)
    assert from_dict(to_dict(c)) == c
    assert c != PRESETS["lecture"]
    # Both rely on the next lecture's init fixes and AdamW: plain randn init wastes the first thousands of steps.
    assert (c.init, c.optimizer, c.schedule) == ("scaled", "adamw", "cosine")
    assert c.steps % c.eval_every == 0  # the last evaluation is at the very last step


def test_fast_is_small_and_best_is_bigger():
    fast, best = preset("fast"), preset("best")
    assert count_params(27, fast) < count_params(27, best)
    assert fast.steps < best.steps
    assert best.block_size > PRESETS["lecture"].block_size  # more context is what buys quality
    assert best.dropout > 0 or best.weight_decay > 0  # and it needs regularising


def test_strong_sits_between_fast_and_best():
    fast, strong, best = preset("fast"), preset("strong"), preset("best")
    assert count_params(27, fast) < count_params(27, strong)
    assert fast.steps < strong.steps < best.steps / 10  # a short run: seconds, not minutes
    assert strong.block_size == best.block_size and strong.hidden == best.hidden
    assert strong.weight_decay > 0 and strong.dropout == 0  # too short to overfit: dropout only slows it
    assert strong.precision == "bf16"  # its training steps run under bf16 autocast
    assert all(preset(n).precision == "fp32" for n in ("lecture", "fast", "best"))


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'.*fast"):
        preset("nope")


@pytest.mark.parametrize("name", ["fast", "strong", "best"])
def test_a_short_run_of_each_tuned_preset_lowers_the_loss(name):
    c = preset(name)
    ds = data.make_dataset(_toy_words(), block_size=c.block_size)
    t = Trainer(c.replace(steps=200, eval_every=200, warmup_steps=20, device="cpu"), ds)
    before = t.evaluate("dev")
    assert before == pytest.approx(math.log(ds.vocab.size), abs=0.1)  # scaled init: ~uniform predictions
    while not t.finished:
        t.advance(200)
    assert t.evals[-1].dev_loss < before - 0.5
    assert t.train_history.view().mean[-1] < t.train_history.view().mean[0] - 0.5


def test_a_short_lecture_run_lowers_the_loss():
    ds = data.make_dataset(_toy_words(), block_size=3)
    t = Trainer(preset("lecture").replace(steps=300, eval_every=300, device="cpu"), ds)
    before = t.evaluate("dev")
    while not t.finished:
        t.advance(300)
    assert t.evals[-1].dev_loss < before - 2  # the lecture's randn init starts far above ln(V)


def test_bf16_precision_trains_like_fp32_but_not_bit_for_bit():
    """bf16 autocast is really on (the losses differ from fp32's) and learns as well (the dev losses agree)."""
    ds = data.make_dataset(_toy_words(), block_size=8)
    runs = {}
    for precision in ("fp32", "bf16"):
        c = preset("strong").replace(hidden=64, steps=300, eval_every=300, warmup_steps=20, precision=precision)
        t = Trainer(c.replace(device="cpu"), ds)
        while not t.finished:
            t.advance(300)
        runs[precision] = t
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert not np.array_equal(fp32.train_history.view().mean, bf16.train_history.view().mean)
    assert bf16.evals[-1].dev_loss == pytest.approx(fp32.evals[-1].dev_loss, abs=0.05)
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # master weights stay float32


@pytest.mark.lecture_data
def test_fast_preset_reaches_the_lectures_dev_loss_on_names(lecture_names_path):
    """The whole fast preset (700 steps, under a second) beats the lecture's 2.17 on its own split."""
    c = preset("fast").replace(device="cpu")
    ds = data.make_dataset(data.load_words(lecture_names_path), block_size=c.block_size, split_seed=c.split_seed)
    t = Trainer(c, ds)
    while not t.finished:
        t.advance(c.steps)
    assert t.best_dev <= 2.17


@pytest.mark.lecture_data
def test_strong_preset_reaches_the_wavenet_lectures_dev_loss_on_names(lecture_names_path):
    """The whole strong preset (3,500 steps, a few seconds) reaches the WaveNet lecture's 1.99 with an MLP."""
    c = preset("strong").replace(device="cpu")
    ds = data.make_dataset(data.load_words(lecture_names_path), block_size=c.block_size, split_seed=c.split_seed)
    t = Trainer(c, ds)
    while not t.finished:
        t.advance(c.steps)
    assert t.best_dev <= 1.99
