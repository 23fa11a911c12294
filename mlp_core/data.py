"""Words in, tensors out: loading, the vocabulary, the lecture's split and context windows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

# '.' is both the start and the end marker, index 0, exactly the lecture's stoi/itos.
SPECIAL = "."


class DatasetError(ValueError):
    """A dataset cannot be used; the message says why in words a user understands."""


@dataclass(frozen=True)
class Vocab:
    """Index 0 is '.', then the sorted characters of the data (27 tokens for names)."""

    chars: tuple[str, ...]  # the data's characters, sorted, without '.'

    @classmethod
    def from_words(cls, words: Iterable[str]) -> Vocab:
        return cls(tuple(sorted(set("".join(words)))))

    @property
    def itos(self) -> tuple[str, ...]:
        return (SPECIAL, *self.chars)

    @property
    def stoi(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.itos)}

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        stoi = self.stoi
        missing = sorted({ch for ch in text if ch not in stoi})
        if missing:
            raise DatasetError(f"character(s) not in the vocabulary: {''.join(missing)!r}")
        return [stoi[ch] for ch in text]

    def decode(self, ids: Sequence[int]) -> str:
        itos = self.itos
        return "".join(itos[i] for i in ids)

    def __len__(self) -> int:
        return self.size


def build_windows(words: Sequence[str], vocab: Vocab, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Context windows padded with '.', as the lecture's loop builds them, but vectorised.

    For each word w and each position t in w + '.', X holds the block_size ids before t
    (ids before the word's start are '.', i.e. 0) and Y holds the id at t.
    """
    stoi = vocab.stoi
    lengths = torch.tensor([len(w) + 1 for w in words], dtype=torch.long)
    n = int(lengths.sum())
    if n == 0:
        return torch.zeros((0, block_size), dtype=torch.long), torch.zeros(0, dtype=torch.long)
    # One flat stream per word: block_size pads, the word's ids, then the end marker.
    targets = torch.tensor([stoi[ch] for w in words for ch in w + SPECIAL], dtype=torch.long)
    word_of = torch.repeat_interleave(torch.arange(len(words)), lengths)
    starts = torch.cumsum(lengths, 0) - lengths  # flat offset of each word's first target
    pos = torch.arange(n) - starts[word_of]  # position t within its word
    # X[i, j] = target at flat index i - block_size + j, if that index is still inside the same word.
    offsets = torch.arange(-block_size, 0)
    src_pos = pos[:, None] + offsets[None, :]
    src_flat = torch.arange(n)[:, None] + offsets[None, :]
    X = torch.where(src_pos >= 0, targets[src_flat.clamp(min=0)], torch.zeros((), dtype=torch.long))
    return X, targets
