"""Shared bits of the bench scripts: the lecture's data split, a timer, the side-by-side table."""

from __future__ import annotations

import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/x.py` from the repo root imports the local mlp_core

from mlp_core import data  # noqa: E402

NAMES = Path(os.environ.get("MLP_NAMES", ROOT.parent / "shared" / "data" / "names.txt"))


def load_words() -> list[str]:
    """names.txt as the lecture reads it; exits with a message when it is missing."""
    if not NAMES.exists():
        sys.exit(f"bench: {NAMES} not found (set MLP_NAMES=/path/to/names.txt)")
    return NAMES.read_text().splitlines()


@dataclass
class _Dataset:
    """Stand-in for data.NamesDataset while data.make_dataset is not there yet (same attributes)."""

    words: list[str]
    vocab: data.Vocab
    block_size: int
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]

    def with_block_size(self, block_size: int) -> _Dataset:
        return _split(self.words, self.vocab, block_size)


def _split(words: list[str], vocab: data.Vocab, block_size: int) -> _Dataset:
    w = list(words)
    for _ in range(4):  # the lecture's notebook reshuffles 4 times: that reproduces its 182,441 / 22,902 / 22,803
        random.seed(42)
        random.shuffle(w)
    n1, n2 = int(0.8 * len(w)), int(0.9 * len(w))
    parts = {"train": w[:n1], "dev": w[n1:n2], "test": w[n2:]}
    splits = {k: data.build_windows(v, vocab, block_size) for k, v in parts.items()}
    return _Dataset(words, vocab, block_size, splits)


def lecture_dataset(block_size: int = 3):
    """The lecture's split of names.txt, via data.make_dataset when it exists."""
    words = load_words()
    if hasattr(data, "make_dataset"):
        return data.make_dataset(words, block_size=block_size, split_seed=42)
    return _split(words, data.Vocab.from_words(words), block_size)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def machine() -> str:
    """One line naming the machine, for the README's tables."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "?"
    return f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, {torch.get_num_threads()} torch threads"


def table(title: str, rows: Sequence[tuple[str, float, float, str]], higher_is_better: bool = False) -> None:
    """Print rows of (what, baseline, ours, unit) with the ratio that says how many times better ours is."""
    print(f"\n{title}")
    print(f"{'':<40} {'baseline':>12} {'ours':>12} {'ratio':>8}")
    for what, base, ours, unit in rows:
        good, bad = (ours, base) if higher_is_better else (base, ours)
        ratio = good / bad if bad else float("nan")
        print(f"{what:<40} {base:>12,.3f} {ours:>12,.3f} {ratio:>7.2f}x  {unit}")
