"""Using a trained model: sample new names, score a name character by character, peek at the next character.

Everything here runs under torch.no_grad with the model temporarily in eval mode (dropout off), on whatever
device the model lives on, and leaves the model's training mode as it found it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections import Counter
from collections.abc import Collection, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import DatasetError, Vocab

MAX_SAMPLES = 100_000
MAX_NAME_LEN = 1000  # max_len above this is surely a mistake, and would only burn time
MAX_WORD_LEN = 1000


@dataclass(frozen=True)
class Sample:
    """One sampled name.

    nll is the name's negative log-likelihood (nats) under the model itself, at temperature 1, prefix and end
    marker included: the same number score_word gives, whatever temperature drew the name, so names from
    different temperatures compare. sampling_nll is what the sampler actually paid: the sampled characters'
    (prefix excluded) negative log-probability under the temperature-scaled distribution. A name cut at max_len
    has no end marker in either sum (truncated=True).
    """

    name: str
    is_new: bool | None  # not in the training words; None when they were not given
    nll: float
    sampling_nll: float = 0.0
    truncated: bool = False


@dataclass
class WordScore:
    """How the model scores one word: per position, the context it saw, the target and its probability."""

    word: str
    targets: list[str]  # the word's characters, then the end marker '.'
    contexts: list[str]  # the block_size characters before each target, padded with '.'
    probs: list[float]  # the model's probability of each target (temperature 1)
    nll: float  # total negative log-likelihood, nats
    mean_nll: float  # per target, i.e. comparable to the training loss


@contextlib.contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and no grad for the duration, then the caller's training mode back."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _check_model(model: nn.Module, vocab: Vocab) -> tuple[int, torch.device]:
    if vocab.size != model.vocab_size:
        raise ValueError(f"the vocabulary has {vocab.size} tokens but the model was built for {model.vocab_size}")
    return model.block_size, next(model.parameters()).device


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be > 0 (and finite), got {temperature!r}")
    return t


def _check_int(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:,} and {high:,}, got {value:,}")
    return int(value)


def _encode(vocab: Vocab, text: str, what: str, allow_end: bool) -> list[int]:
    """Ids of text, with a message naming the characters the model does not know."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text, got {type(text).__name__}")
    end = vocab.itos[0]
    if not allow_end and end in text:
        raise ValueError(f"{what} must not contain {end!r}: it marks the start and end of a name")
    stoi = vocab.stoi
    unknown = sorted({ch for ch in text if ch not in stoi})
    if unknown:
        raise DatasetError(f"{what} has character(s) the model does not know: {''.join(unknown)!r}")
    return [stoi[ch] for ch in text]


def _scaled_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / T), shifted first so that a tiny T gives an argmax-like one-hot instead of inf/inf."""
    return F.softmax((logits - logits.amax(dim=1, keepdim=True)) / temperature, dim=1)


def sample_names(
    model: nn.Module,
    vocab: Vocab,
    n: int = 20,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    prefix: str = "",
    max_len: int = 32,
    train_words: Collection[str] | None = None,
) -> list[Sample]:
    """Sample n names, all advancing together one character per step (one forward pass per step).

    Each name starts from block_size '.' tokens, is fed the prefix (teacher-forced), then draws characters with
    torch.multinomial from a generator seeded by `seed` on the model's device, until it draws '.' or reaches
    max_len characters (prefix included). Same model, arguments and seed: same names.
    """
    n = _check_int("n", n, 1, MAX_SAMPLES)
    max_len = _check_int("max_len", max_len, 1, MAX_NAME_LEN)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    temperature = _check_temperature(temperature)
    prefix_ids = _encode(vocab, prefix, "prefix", allow_end=False)
    if len(prefix_ids) > max_len:
        raise ValueError(f"prefix has {len(prefix_ids)} characters, more than max_len={max_len}")
    block_size, device = _check_model(model, vocab)
    gen = torch.Generator(device=device).manual_seed(seed)

    with _inference(model):
        # The prefix is the same for every name: feed it once, to one row, then copy the context n times.
        ctx = torch.zeros((1, block_size), dtype=torch.long, device=device)
        prefix_nll = torch.zeros((), dtype=torch.float64, device=device)
        for ix in prefix_ids:
            logp = F.log_softmax(model(ctx).float(), dim=1)
            prefix_nll -= logp[0, ix].double()
            ctx = torch.cat([ctx[:, 1:], ctx.new_full((1, 1), ix)], dim=1)
        ctx = ctx.expand(n, block_size).contiguous()

        tokens = torch.zeros((n, max_len), dtype=torch.long, device=device)
        if prefix_ids:
            tokens[:, : len(prefix_ids)] = torch.tensor(prefix_ids, device=device)
        lengths = torch.full((n,), max_len, dtype=torch.long, device=device)
        nll = prefix_nll.expand(n).clone()
        sampling_nll = torch.zeros(n, dtype=torch.float64, device=device)
        alive = torch.arange(n, device=device)  # rows still growing; finished ones leave the batch
        for pos in range(len(prefix_ids), max_len):
            logits = model(ctx).float()
            probs = _scaled_probs(logits, temperature)
            if not torch.isfinite(probs).all():
                raise ValueError("the model's outputs are not finite (NaN/inf): it has diverged, retrain it")
            ix = torch.multinomial(probs, 1, generator=gen)  # (B, 1)
            nll[alive] -= F.log_softmax(logits, dim=1).gather(1, ix).squeeze(1).double()
            sampling_nll[alive] -= probs.gather(1, ix).squeeze(1).double().log()
            ix = ix.squeeze(1)
            tokens[alive, pos] = ix
            ended = ix == 0
            lengths[alive[ended]] = pos
            keep = ~ended
            alive, ctx = alive[keep], torch.cat([ctx[keep, 1:], ix[keep, None]], dim=1)
            if alive.numel() == 0:
                break
        truncated = torch.zeros(n, dtype=torch.bool, device=device)
        truncated[alive] = True

    if train_words is not None and not isinstance(train_words, AbstractSet):
        train_words = set(train_words)  # membership in a list would be O(words) per name
    itos = vocab.itos
    samples = []
    rows = zip(tokens.tolist(), lengths.tolist(), nll.tolist(), sampling_nll.tolist(), truncated.tolist(), strict=True)
    for row, length, row_nll, row_snll, cut in rows:
        name = "".join(itos[i] for i in row[:length])
        is_new = None if train_words is None else name not in train_words
        samples.append(Sample(name, is_new, row_nll, row_snll, cut))
    return samples


def score_word(model: nn.Module, vocab: Vocab, word: str) -> WordScore:
    """The probability the model gives each character of word (and its end marker), in one forward pass."""
    ids = _encode(vocab, word, "word", allow_end=False)
    if not ids:
        raise ValueError("word is empty: type at least one character")
    if len(ids) > MAX_WORD_LEN:
        raise ValueError(f"word is too long ({len(ids):,} characters; at most {MAX_WORD_LEN:,})")
    block_size, device = _check_model(model, vocab)
    # The lecture's windows: block_size pads, then slide one character at a time over word + '.'.
    stream = [0] * block_size + ids + [0]
    windows = [stream[t : t + block_size] for t in range(len(ids) + 1)]
    targets = stream[block_size:]
    with _inference(model):
        logits = model(torch.tensor(windows, device=device)).float()
        logp = F.log_softmax(logits, dim=1).gather(1, torch.tensor(targets, device=device)[:, None]).squeeze(1)
    logp = logp.double().cpu()
    itos = vocab.itos
    nll = -float(logp.sum())
    return WordScore(
        word=word,
        targets=[itos[i] for i in targets],
        contexts=["".join(itos[i] for i in w) for w in windows],
        probs=logp.exp().tolist(),
        nll=nll,
        mean_nll=nll / len(targets),
    )


def next_char_distribution(
    model: nn.Module, vocab: Vocab, context: str, temperature: float = 1.0
) -> list[tuple[str, float]]:
    """(token, probability) for every token, in vocab order, after context ('' = the start of a name).

    The context is left-padded with '.' and only its last block_size characters matter, as in the model.
    """
    temperature = _check_temperature(temperature)
    ids = _encode(vocab, context, "context", allow_end=True)
    if len(ids) > MAX_WORD_LEN:
        raise ValueError(f"context is too long ({len(ids):,} characters; at most {MAX_WORD_LEN:,})")
    block_size, device = _check_model(model, vocab)
    window = ([0] * block_size + ids)[-block_size:]
    with _inference(model):
        probs = _scaled_probs(model(torch.tensor([window], device=device)).float().double(), temperature)
    return list(zip(vocab.itos, probs[0].cpu().tolist(), strict=True))


@dataclass(frozen=True)
class Novelty:
    """How new a batch of samples is, counted by distinct name: a name drawn 17 times is one name, 16 repeats."""

    samples: int  # samples whose novelty is known
    distinct: int
    distinct_new: int  # distinct names not in the training words
    new_held_out: int  # of those, real names from the held-out (dev/test) words
    repeats: int  # samples that repeat a name drawn before in the batch
    most_common: tuple[str, int] | None  # the most repeated name and its count (None when nothing repeats)


def novelty(samples: list[Sample], held_out: frozenset[str] | set[str] = frozenset()) -> Novelty:
    """Count a batch's distinct names, the new ones among them and its repeats (samples of unknown novelty skipped)."""
    known = [s.name for s in samples if s.is_new is not None]
    counts = Counter(known)
    new = {s.name for s in samples if s.is_new}
    top = counts.most_common(1)[0] if counts else None
    return Novelty(
        samples=len(known),
        distinct=len(counts),
        distinct_new=len(new),
        new_held_out=len(new & set(held_out)),
        repeats=len(known) - len(counts),
        most_common=top if top is not None and top[1] > 1 else None,
    )


__all__ = ["Sample", "WordScore", "next_char_distribution", "sample_names", "score_word"]
