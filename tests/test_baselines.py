"""mlp_core.baselines: uniform ln(V), the add-one bigram's dev loss, the lecture's 2.17 only on the lecture's data."""

import itertools
import json
import math
import random

import pytest
import torch

from mlp_core import baselines, cli, data
from mlp_core.baselines import Baselines, baselines_for, bigram_loss


def dense_bigram_dev_loss(ds: data.NamesDataset) -> float:
    """The lecture's count matrix N[V, V] + 1, row-normalised, scored on dev: the reference for the sparse version."""
    stoi, v = ds.vocab.stoi, ds.vocab.size
    counts = torch.ones(v, v, dtype=torch.float64)
    for w in ds.train_words:
        chs = [".", *w, "."]
        for a, b in itertools.pairwise(chs):
            counts[stoi[a], stoi[b]] += 1
    probs = counts / counts.sum(1, keepdim=True)
    nll = [-math.log(probs[stoi[a], stoi[b]]) for w in ds.dev_words for a, b in itertools.pairwise([".", *w, "."])]
    return sum(nll) / len(nll)


def test_a_hand_computed_case():
    # Train 'ab': the pairs .a, ab, b. are each the one count in their row; add-one over V = 3 gives 2/4 each.
    vocab = data.Vocab(("a", "b"))
    assert bigram_loss(["ab"], ["ab"], vocab) == pytest.approx(math.log(2))
    # An unseen pair (a -> a) gets (0 + 1) / (1 + 3).
    assert bigram_loss(["ab"], ["a"], vocab) == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)
    assert bigram_loss([], ["ab"], vocab) == pytest.approx(math.log(3))  # no counts: uniform


def test_baselines_match_the_dense_count_model(tiny_dataset):
    b = baselines_for(tiny_dataset)
    assert isinstance(b, Baselines)
    assert b.uniform_loss == pytest.approx(math.log(tiny_dataset.vocab.size))
    assert b.bigram_dev_loss == pytest.approx(dense_bigram_dev_loss(tiny_dataset), rel=1e-9)
    assert b.bigram_dev_loss < b.uniform_loss
    assert b.lecture_dev_loss is None  # 300 US names are not the lecture's data


def test_cached_per_fingerprint_not_per_block_size(small_words):
    ds = data.make_dataset(small_words, block_size=3)
    first = baselines_for(ds)
    assert baselines_for(ds.with_block_size(5)) is first
    assert baselines_for(data.make_dataset(small_words, block_size=2)) is first
    other = baselines_for(data.make_dataset(small_words, split_seed=7))
    assert other is not first and other.bigram_dev_loss != first.bigram_dev_loss


def test_a_wider_vocabulary_changes_uniform_and_smoothing(small_words):
    own = baselines_for(data.make_dataset(small_words))
    wide = baselines_for(data.make_dataset(small_words, vocab=data.Vocab(tuple("abcdefghijklmnopqrstuvwxyzABC"))))
    assert wide.uniform_loss == pytest.approx(math.log(30)) != own.uniform_loss
    assert wide.bigram_dev_loss > own.bigram_dev_loss  # add-one spreads more mass over unseen characters


@pytest.mark.lecture_data
def test_the_lecture_numbers_on_the_lecture_data(lecture_words):
    b = baselines_for(data.make_dataset(lecture_words, block_size=3, split_seed=42))
    assert b.uniform_loss == pytest.approx(math.log(27))  # 3.2958
    assert b.bigram_dev_loss == pytest.approx(2.45, abs=0.01)
    assert b.lecture_dev_loss == 2.17


@pytest.mark.lecture_data
def test_the_lecture_line_only_for_the_lecture_file_and_split(lecture_words):
    assert baselines.is_lecture_data(data.make_dataset(lecture_words, block_size=8))  # any block size
    assert baselines_for(data.make_dataset(lecture_words, split_seed=1)).lecture_dev_loss is None
    assert baselines_for(data.make_dataset(lecture_words[:-1])).lecture_dev_loss is None
    assert baselines_for(data.make_dataset([*lecture_words[1:], lecture_words[0]])).lecture_dev_loss is None


def test_a_large_alphabet_needs_no_square_table():
    # 8,000 characters: a dense V x V float64 table would be 512 MB; the sparse counts stay tiny.
    rng = random.Random(0)
    chars = [chr(0x4E00 + i) for i in range(data.MAX_DISTINCT_CHARS)]
    words = ["".join(rng.choice(chars) for _ in range(3)) for _ in range(4000)] + chars
    ds = data.make_dataset(words, block_size=1)
    b = baselines_for(ds)
    assert ds.vocab.size == data.MAX_DISTINCT_CHARS + 1
    assert b.uniform_loss == pytest.approx(math.log(ds.vocab.size))
    assert math.isfinite(b.bigram_dev_loss) and b.bigram_dev_loss > 0


def test_data_info_json_has_the_baselines(tmp_path, tiny_words, tiny_dataset, capsys):
    path = tmp_path / "words.txt"
    path.write_text("\n".join(tiny_words) + "\n")
    assert cli.main(["data", "info", "--data", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["uniform_loss"] == pytest.approx(math.log(info["vocab_size"]))
    assert info["bigram_dev_loss"] == pytest.approx(baselines_for(tiny_dataset).bigram_dev_loss)
    assert info["lecture_dev_loss"] is None


@pytest.mark.lecture_data
def test_data_info_defaults_to_the_lecture_data(capsys):
    assert cli.main(["data", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (info["words"], info["vocab_size"]) == (32033, 27)
    assert info["examples"] == {"train": 182441, "dev": 22902, "test": 22803}
    assert info["uniform_loss"] == pytest.approx(3.2958, abs=1e-4)
    assert info["bigram_dev_loss"] == pytest.approx(2.45, abs=0.01)
    assert info["lecture_dev_loss"] == 2.17
    assert cli.main(["data", "info"]) == 0
    assert "bigram 2.45" in capsys.readouterr().out
