"""Sampling, scoring and next-character distributions, checked against the lecture's one-name-at-a-time loop."""

import itertools
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from mlp_core.config import TrainConfig
from mlp_core.data import DatasetError, Vocab
from mlp_core.model import MLP, build_model
from mlp_core.sampling import Sample, next_char_distribution, sample_names, score_word

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail", "zoe", "quinn"]


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.from_words(WORDS)


@pytest.fixture(scope="module")
def model(vocab) -> MLP:
    """Random lecture-style weights: peaky, context-dependent distributions, names of varied length."""
    return build_model(vocab.size, TrainConfig(emb_dim=4, hidden=32, seed=7))


def reference_sample(model, vocab, n, *, temperature=1.0, seed=0, prefix="", max_len=32) -> list[str]:
    """The lecture's sampling loop, one name at a time (plus the prefix and the max_len guard)."""
    g = torch.Generator().manual_seed(seed)
    names = []
    for _ in range(n):
        context = [0] * model.block_size
        out = []
        for ch in prefix:
            out.append(vocab.stoi[ch])
            context = [*context[1:], vocab.stoi[ch]]
        while len(out) < max_len:
            logits = model(torch.tensor([context]))
            probs = F.softmax(logits / temperature, dim=1)
            ix = torch.multinomial(probs, num_samples=1, generator=g).item()
            if ix == 0:
                break
            out.append(ix)
            context = [*context[1:], ix]
        names.append(vocab.decode(out))
    return names


def lecture_windows(vocab, word, block_size):
    """The lecture's loop building (X, Y) for one word."""
    X, Y, context = [], [], [0] * block_size
    for ch in word + ".":
        ix = vocab.stoi[ch]
        X.append(context)
        Y.append(ix)
        context = [*context[1:], ix]
    return torch.tensor(X), torch.tensor(Y)


def spelling_model(word: str = "abc") -> tuple[MLP, Vocab]:
    """Hand-set weights that spell `word` then stop, whatever the sampler draws (block size 1, one-hot C)."""
    vocab = Vocab.from_words([word])
    v = vocab.size
    m = MLP(v, TrainConfig(block_size=1, emb_dim=v, hidden=v))
    nxt = torch.zeros(v, v)
    ids = [0, *vocab.encode(word), 0]
    for a, b in itertools.pairwise(ids):
        nxt[a, b] = 1.0
    with torch.no_grad():
        m.C.copy_(torch.eye(v))
        m.W1.copy_(10 * torch.eye(v))
        m.b1.zero_()
        m.W2.copy_(100 * nxt)
        m.b2.zero_()
    return m, vocab


def constant_model(probs: list[float]) -> tuple[MLP, Vocab]:
    """Hand-set weights whose next-token distribution is `probs` ('.', a, b, ...) in every context."""
    vocab = Vocab(tuple("abcdefgh"[: len(probs) - 1]))
    m = build_model(vocab.size, TrainConfig(emb_dim=2, hidden=4))
    with torch.no_grad():
        m.W2.zero_()
        m.b2.copy_(torch.tensor(probs).log())
    return m, vocab


# ---------------------------------------------------------------------------- sample_names
def test_same_seed_same_names_different_seed_different_names(model, vocab):
    a = sample_names(model, vocab, 50, seed=3)
    assert a == sample_names(model, vocab, 50, seed=3)
    assert len(a) == 50 and all(isinstance(s, Sample) for s in a)
    assert [s.name for s in a] != [s.name for s in sample_names(model, vocab, 50, seed=4)]


@pytest.mark.parametrize(("prefix", "temperature"), [("", 1.0), ("e", 0.7), ("mia", 1.5)])
def test_one_name_equals_the_lecture_loop_draw_for_draw(model, vocab, prefix, temperature):
    """With n=1 the batched sampler makes exactly the reference's multinomial draws, so the names are equal."""
    kwargs = {"prefix": prefix, "temperature": temperature, "max_len": 12}
    for seed in range(40):
        got = sample_names(model, vocab, 1, seed=seed, **kwargs)[0].name
        assert got == reference_sample(model, vocab, 1, seed=seed, **kwargs)[0], seed


def test_batched_matches_reference_on_a_deterministic_model():
    m, vocab = spelling_model("abc")
    ref = reference_sample(m, vocab, 5)
    samples = sample_names(m, vocab, 64, seed=1)
    assert ref == ["abc"] * 5 and [s.name for s in samples] == ["abc"] * 64
    assert all(s.nll == pytest.approx(0, abs=1e-6) and not s.truncated for s in samples)
    # Prefix is fed in, and sampling continues from there; max_len cuts a name and says so.
    assert {s.name for s in sample_names(m, vocab, 8, prefix="b")} == {"bc"}
    cut = sample_names(m, vocab, 8, max_len=2)
    assert {s.name for s in cut} == {"ab"} and all(s.truncated for s in cut)
    assert {s.name for s in sample_names(m, vocab, 3, prefix="abc", max_len=3)} == {"abc"}


def test_batched_statistics_match_a_known_distribution():
    """Every step: P('.')=0.5, P(a)=0.3, P(b)=0.2, so lengths are geometric and letters come 3:2."""
    m, vocab = constant_model([0.5, 0.3, 0.2])
    samples = sample_names(m, vocab, 20_000, seed=0, max_len=64)
    lengths = Counter(len(s.name) for s in samples)
    for k in range(4):
        p = 0.5**k * 0.5
        assert abs(lengths[k] / 20_000 - p) < 5 * math.sqrt(p * (1 - p) / 20_000), k
    letters = Counter("".join(s.name for s in samples))
    total = letters["a"] + letters["b"]
    assert abs(letters["a"] / total - 0.6) < 5 * math.sqrt(0.24 / total)
    # nll is exact here: each letter costs -log p, the end marker -log 0.5.
    s = next(s for s in samples if len(s.name) == 3)
    expected = -sum(math.log({"a": 0.3, "b": 0.2}[c]) for c in s.name) - math.log(0.5)
    assert s.nll == pytest.approx(expected, rel=1e-5)
    assert s.sampling_nll == pytest.approx(expected, rel=1e-5)  # temperature 1: the same distribution


def test_temperature_reshapes_the_distribution():
    m, vocab = constant_model([0.5, 0.3, 0.2])
    samples = sample_names(m, vocab, 20_000, seed=1, temperature=2.0, max_len=64)
    q = torch.tensor([0.5, 0.3, 0.2]) ** 0.5
    q = (q / q.sum()).tolist()
    p_empty = sum(s.name == "" for s in samples) / 20_000
    assert abs(p_empty - q[0]) < 5 * math.sqrt(q[0] * (1 - q[0]) / 20_000)
    s = next(s for s in samples if s.name == "ab")
    assert s.sampling_nll == pytest.approx(-math.log(q[1] * q[2] * q[0]), rel=1e-5)
    assert s.nll == pytest.approx(-math.log(0.3 * 0.2 * 0.5), rel=1e-5)  # nll stays the model's own


def test_tiny_temperature_is_greedy(model, vocab):
    greedy, context = [], [0] * model.block_size
    with torch.no_grad():
        while len(greedy) < 20:
            ix = int(model(torch.tensor([context])).argmax())
            if ix == 0:
                break
            greedy.append(ix)
            context = [*context[1:], ix]
    expected = vocab.decode(greedy)
    for t in (1e-3, 1e-30):
        for seed in (0, 1):
            assert {s.name for s in sample_names(model, vocab, 10, temperature=t, seed=seed, max_len=20)} == {expected}


def test_nll_of_a_sample_is_its_score(model, vocab):
    for s in sample_names(model, vocab, 30, seed=5, prefix="a"):
        assert s.name.startswith("a")
        if not s.truncated:
            assert s.nll == pytest.approx(score_word(model, vocab, s.name).nll, rel=1e-4)


def test_one_forward_per_step_for_the_whole_batch(model, vocab, monkeypatch):
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda idx: calls.append(idx.shape[0]) or forward(idx))
    samples = sample_names(model, vocab, 500, seed=0, prefix="em", max_len=10)
    assert len(samples) == 500
    assert len(calls) <= 10  # 2 prefix steps (one row) + at most 8 sampling steps, not one loop per name
    assert calls[:3] == [1, 1, 500]


def test_is_new_flags(model, vocab):
    samples = sample_names(model, vocab, 20, seed=2)
    assert all(s.is_new is None for s in samples)
    known = [samples[0].name, "emma"]
    flagged = sample_names(model, vocab, 20, seed=2, train_words=known)  # any collection, a list too
    assert [s.name for s in flagged] == [s.name for s in samples]
    assert all(s.is_new == (s.name not in known) for s in flagged)
    assert flagged[0].is_new is False


def test_training_mode_is_restored_and_dropout_is_off(vocab):
    m = build_model(vocab.size, TrainConfig(emb_dim=4, hidden=32, dropout=0.5))
    m.train()
    in_train_mode = sample_names(m, vocab, 30, seed=9)
    assert m.training
    m.eval()
    assert sample_names(m, vocab, 30, seed=9) == in_train_mode
    assert not m.training
    score_word(m.train(), vocab, "emma")
    next_char_distribution(m, vocab, "em")
    assert m.training and all(p.grad is None for p in m.parameters())


BAD_CALLS = {
    "n zero": ({"n": 0}, "n must be between 1"),
    "n huge": ({"n": 100_001}, "n must be between 1"),
    "n not a number": ({"n": "ten"}, "n must be a whole number"),
    "temperature zero": ({"temperature": 0}, "temperature must be > 0"),
    "temperature negative": ({"temperature": -1.0}, "temperature must be > 0"),
    "temperature nan": ({"temperature": float("nan")}, "temperature must be > 0"),
    "max_len zero": ({"max_len": 0}, "max_len must be between 1"),
    "end marker in prefix": ({"prefix": "em.a"}, "prefix must not contain '.'"),
    "prefix too long": ({"prefix": "emma", "max_len": 3}, "more than max_len=3"),
    "seed negative": ({"seed": -1}, "seed must be between 0"),
}


@pytest.mark.parametrize(("kwargs", "message"), BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_arguments_are_clear_errors(model, vocab, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_names(model, vocab, **{"n": 5, **kwargs})


def test_unknown_prefix_characters_are_named(model, vocab):
    with pytest.raises(DatasetError, match="'9x'"):
        sample_names(model, vocab, 5, prefix="x9")


def test_vocabulary_must_fit_the_model(model):
    with pytest.raises(ValueError, match="vocabulary has 4 tokens but the model was built for"):
        sample_names(model, Vocab(tuple("abc")), 5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_sampling_on_cuda(model, vocab):
    import copy

    gpu = copy.deepcopy(model).to("cuda")
    a = sample_names(gpu, vocab, 200, seed=0, prefix="a")
    assert a == sample_names(gpu, vocab, 200, seed=0, prefix="a")
    assert all(s.name.startswith("a") for s in a)
    assert score_word(gpu, vocab, "emma").nll == pytest.approx(score_word(model, vocab, "emma").nll, rel=1e-4)


# ---------------------------------------------------------------------------- score_word
def test_score_word_equals_cross_entropy_over_the_lecture_windows(model, vocab):
    X, Y = lecture_windows(vocab, "olivia", model.block_size)
    with torch.no_grad():
        logits = model(X)
    score = score_word(model, vocab, "olivia")
    assert score.word == "olivia"
    assert score.targets == list("olivia.")
    assert score.contexts == ["...", "..o", ".ol", "oli", "liv", "ivi", "via"]
    assert score.nll == pytest.approx(F.cross_entropy(logits, Y, reduction="sum").item(), rel=1e-5)
    assert score.mean_nll == pytest.approx(F.cross_entropy(logits, Y).item(), rel=1e-5)
    per_position = F.cross_entropy(logits, Y, reduction="none")
    assert score.probs == pytest.approx(torch.exp(-per_position).tolist(), rel=1e-5)


@pytest.mark.parametrize(
    ("word", "message"),
    [("", "word is empty"), ("em.ma", "must not contain '.'"), ("emmx!", "'!x'"), ("a" * 1001, "too long")],
)
def test_score_word_bad_input(model, vocab, word, message):
    with pytest.raises(ValueError, match=message):
        score_word(model, vocab, word)


# ---------------------------------------------------------------------------- next_char_distribution
def test_next_char_distribution(model, vocab):
    dist = next_char_distribution(model, vocab, "")
    assert [ch for ch, _ in dist] == list(vocab.itos)
    assert sum(p for _, p in dist) == pytest.approx(1.0, abs=1e-9)
    with torch.no_grad():
        expected = F.softmax(model(torch.tensor([[0, 0, 0]])), dim=1)[0].tolist()
    assert [p for _, p in dist] == pytest.approx(expected, abs=1e-6)
    # Only the last block_size characters matter; '' and explicit padding are the start of a name.
    assert next_char_distribution(model, vocab, "isabem") == next_char_distribution(model, vocab, "bem")
    assert next_char_distribution(model, vocab, "...") == dist
    # The score of a word is built from these distributions.
    score = score_word(model, vocab, "ava")
    for context, target, p in zip(score.contexts, score.targets, score.probs, strict=True):
        assert dict(next_char_distribution(model, vocab, context))[target] == pytest.approx(p, rel=1e-5)


def test_next_char_distribution_temperature(model, vocab):
    probs = [p for _, p in next_char_distribution(model, vocab, "em", temperature=1e-6)]
    assert max(probs) == pytest.approx(1.0) and sum(probs) == pytest.approx(1.0)
    flat = [p for _, p in next_char_distribution(model, vocab, "em", temperature=1e6)]
    assert max(flat) - min(flat) < 1e-3
    with pytest.raises(ValueError, match="temperature must be > 0"):
        next_char_distribution(model, vocab, "em", temperature=0)
    with pytest.raises(DatasetError, match="'#'"):
        next_char_distribution(model, vocab, "e#")


def test_a_diverged_model_is_a_clear_error(vocab):
    m = build_model(vocab.size, TrainConfig(emb_dim=4, hidden=8))
    with torch.no_grad():
        m.b2[3] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        sample_names(m, vocab, 5)
