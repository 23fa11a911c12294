"""Reference losses for the data in use: what a loss chart's guide lines should say.

- uniform: ln(V), the loss of guessing every token equally (V counts the '.' marker).
- bigram: the lecture's count model (makemore part 1) with add-one smoothing, fit on the train
  split's words and scored on the dev split's; ≈ 2.45 on the lecture's names.txt.
- lecture: the lecture's final dev loss, 2.17, only for the lecture's names.txt with the lecture's
  split; on any other data it means nothing, so it is None.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass

import torch

from .data import LECTURE_NAMES_SHA256, LECTURE_SHUFFLE_ROUNDS, SPECIAL, NamesDataset, Vocab

LECTURE_DEV_LOSS = 2.17
LECTURE_SPLIT_SEED = 42


@dataclass(frozen=True)
class Baselines:
    """Losses in nats per character that a model must beat on this dataset's dev split."""

    uniform_loss: float
    bigram_dev_loss: float
    lecture_dev_loss: float | None


# Keyed by (fingerprint, vocabulary): a checkpoint's vocabulary may be larger than the data's own.
_CACHE: dict[tuple[str, tuple[str, ...]], Baselines] = {}
_LOCK = threading.Lock()


def baselines_for(dataset: NamesDataset) -> Baselines:
    """The baselines of a dataset (cached per dataset fingerprint and vocabulary; the block size plays no part)."""
    key = (dataset.fingerprint, dataset.vocab.chars)
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    result = Baselines(
        uniform_loss=math.log(dataset.vocab.size),
        bigram_dev_loss=bigram_loss(dataset.train_words, dataset.dev_words, dataset.vocab),
        lecture_dev_loss=LECTURE_DEV_LOSS if is_lecture_data(dataset) else None,
    )
    with _LOCK:
        _CACHE[key] = result
    return result


def is_lecture_data(dataset: NamesDataset) -> bool:
    """True for the lecture's names.txt (by content sha256) split the lecture's way (seed 42, its shuffle rounds)."""
    if dataset.split_seed != LECTURE_SPLIT_SEED or LECTURE_SHUFFLE_ROUNDS != 4:
        return False
    # The file has no trailing newline, so its bytes are exactly the words joined by newlines.
    return hashlib.sha256("\n".join(dataset.words).encode()).hexdigest() == LECTURE_NAMES_SHA256


def bigram_loss(fit_words: list[str], eval_words: list[str], vocab: Vocab) -> float:
    """Mean NLL of eval_words under the add-one-smoothed bigram counts of fit_words ('.' starts and ends words).

    Counts are kept sparse (one id per distinct pair) so a 5,000-character alphabet needs no V x V table.
    """
    v = vocab.size
    fit_a, fit_b = _pairs(fit_words, vocab)
    eval_a, eval_b = _pairs(eval_words, vocab)
    if eval_a.numel() == 0:
        return math.log(v)
    pair_ids, pair_counts = torch.unique(fit_a * v + fit_b, return_counts=True)  # sorted
    row_totals = torch.bincount(fit_a, minlength=v).double()
    counts = torch.zeros(eval_a.numel(), dtype=torch.double)
    if pair_ids.numel():
        wanted = eval_a * v + eval_b
        pos = torch.searchsorted(pair_ids, wanted).clamp(max=pair_ids.numel() - 1)
        seen = pair_ids[pos] == wanted
        counts[seen] = pair_counts[pos[seen]].double()
    probs = (counts + 1.0) / (row_totals[eval_a] + v)
    return float(-probs.log().mean())


def _pairs(words: list[str], vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
    """(previous id, next id) of every transition in '.' + word + '.', over all words."""
    stoi = vocab.stoi
    ids = [stoi[ch] for w in words for ch in SPECIAL + w] + [0]
    # One stream '.w1.w2.…wn.': every adjacent pair is a transition, because each word's end '.' is the next start.
    stream = torch.tensor(ids, dtype=torch.long)
    return stream[:-1], stream[1:]
