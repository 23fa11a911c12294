"""Any alphabet: CJK and mixed-script word lists load, train, sample, score and round-trip through a checkpoint.

The lecture's 27 characters are one case of the same code: a 5,000-character file goes the same way.
"""

import json
import math
import random
from pathlib import Path

import pytest
import torch

from mlp_core import cli, data
from mlp_core.checkpoint import load_checkpoint, save_checkpoint
from mlp_core.sampling import next_char_distribution, sample_names, score_word

CJK = [chr(0x4E00 + i) for i in range(5000)]  # 5,000 distinct CJK ideographs
MIXED = [
    "Émile", "Zoë", "Åsa", "Søren", "José María", "Jean-Luc", "O'Neil", "Nguyễn", "Łukasz", "Çağrı",
    "Анна", "Дмитрий", "Ольга", "Γιώργος", "Ελένη", "민준", "서연", "さくら", "ハルト", "王芳", "李娜",
    "محمد", "דוד", "Ngũgĩ",
]  # fmt: skip


def cjk_names(n_chars: int = 5000, extra: int = 300, seed: int = 0) -> list[str]:
    """Two- and three-character names that use each of the first n_chars ideographs at least once."""
    rng = random.Random(seed)
    chars = CJK[:n_chars]
    names = ["".join(chars[i : i + 3]) for i in range(0, n_chars, 3)]
    names += ["".join(rng.choice(chars) for _ in range(rng.choice((2, 3)))) for _ in range(extra)]
    rng.shuffle(names)
    return names


def write(path: Path, words: list[str]) -> Path:
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return path


def run_json(argv: list[str], capsys) -> dict:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


TINY_TRAIN = ["--steps", "30", "--eval-every", "30", "--hidden", "16", "--emb-dim", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def cjk_file(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("cjk") / "cjk_names.txt", cjk_names())


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("mixed") / "mixed_names.txt", MIXED * 3)


def test_5000_characters_load_and_the_limits_stay(cjk_file, tmp_path):
    words = data.load_words(cjk_file)
    assert len(set("".join(words))) == 5000
    too_many = [chr(0x4E00 + i) for i in range(data.MAX_DISTINCT_CHARS + 1)]
    with pytest.raises(data.DatasetError, match="distinct characters; the limit is"):
        data.load_words(write(tmp_path / "wide.txt", too_many))
    with pytest.raises(data.DatasetError, match="looks binary"):
        data.parse_words("王芳\n".encode() + bytes(range(1, 32)), "x.bin")


def test_data_info_on_cjk_and_mixed_scripts(cjk_file, mixed_file, capsys):
    info = run_json(["data", "info", "--data", str(cjk_file), "--json"], capsys)
    assert info["vocab_size"] == 5001 and len(info["chars"]) == 5000
    assert info["uniform_loss"] == pytest.approx(math.log(5001))
    assert math.isfinite(info["bigram_dev_loss"]) and info["lecture_dev_loss"] is None
    mixed = run_json(["data", "info", "--data", str(mixed_file), "--json"], capsys)
    assert mixed["vocab_size"] == len(set("".join(MIXED))) + 1
    assert {"É", "ë", "Å", " ", "'", "-", "민", "さ", "ハ", "王", "Д", "Γ", "م", "ד"} <= set(mixed["chars"])
    assert mixed["uniform_loss"] == pytest.approx(math.log(mixed["vocab_size"]))


@pytest.mark.parametrize("which", ["cjk", "mixed"])
def test_train_sample_score_and_checkpoint_round_trip(which, cjk_file, mixed_file, tmp_path, capsys):
    path = cjk_file if which == "cjk" else mixed_file
    words = data.load_words(path)
    ckpt_path = tmp_path / "model.safetensors"
    summary = run_json(
        ["train", "--data", str(path), *TINY_TRAIN, "--out", str(ckpt_path), "--json", "--quiet"], capsys
    )
    assert summary["steps"] == 30 and math.isfinite(summary["dev_loss"])

    ckpt = load_checkpoint(ckpt_path)
    assert ckpt.vocab == data.Vocab.from_words(words)
    assert ckpt.vocab.size == len(set("".join(words))) + 1

    samples = run_json(
        ["sample", "--checkpoint", str(ckpt_path), "--data", str(path), "--n", "8", "--seed", "3", "--json"], capsys
    )["samples"]
    assert len(samples) == 8
    assert all(set(s["name"]) <= set(ckpt.vocab.chars) and isinstance(s["is_new"], bool) for s in samples)
    again = sample_names(ckpt.model, ckpt.vocab, 8, seed=3)  # the loaded weights give the CLI's names
    assert [s.name for s in again] == [s["name"] for s in samples]

    name = words[0]
    score = score_word(ckpt.model, ckpt.vocab, name)
    assert score.targets == [*name, "."] and all(0 < p <= 1 for p in score.probs)
    dist = next_char_distribution(ckpt.model, ckpt.vocab, name[:1])
    assert len(dist) == ckpt.vocab.size and sum(p for _, p in dist) == pytest.approx(1, abs=1e-5)

    # Saved and loaded again: the same function (same logits for the same contexts).
    resaved = tmp_path / "again.safetensors"
    save_checkpoint(resaved, ckpt.model, ckpt.config, ckpt.vocab, ckpt.meta)
    reloaded = load_checkpoint(resaved)
    x = torch.randint(0, ckpt.vocab.size, (16, ckpt.config.block_size))
    assert torch.equal(reloaded.model(x), ckpt.model(x))
    assert reloaded.vocab == ckpt.vocab


def test_case_folding_only_where_the_data_lacks_the_case():
    lower = data.Vocab.from_words(["anna", "émile", "zoë"])
    assert lower.fold_case("Anna") == "anna" and lower.fold_case("ÉMILE") == "émile"
    assert lower.fold_case("王") == "王"  # no case: left for encode to name
    mixed = data.Vocab.from_words(["Anna", "anna"])
    assert mixed.fold_case("Anna") == "Anna"  # both cases known: nothing folded
